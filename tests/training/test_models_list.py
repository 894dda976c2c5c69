"""``geosentry models list / show``: shipped models and those in ``--path`` folders and
``$GEOSENTRY_MODEL_PATH``, each with its origin and what it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geosentry.stream.cli import main
from geosentry.training.export import export_tiny_picker


def test_list_and_show_shipped_trained_and_broken_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    export_tiny_picker(tmp_path / "env", name="from-env")
    export_tiny_picker(tmp_path / "cli" / "run1", name="from-path")  # one folder level below
    monkeypatch.setenv("GEOSENTRY_MODEL_PATH", str(tmp_path / "env"))
    assert main(["models", "list", "--json", "--path", str(tmp_path / "cli")]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["picker"]["origin"] == "shipped"
    assert "PhaseNet" in listed["picker"]["provenance"]["trained_on"]
    assert listed["from-env"]["origin"] == listed["from-path"]["origin"] == "trained"
    assert listed["from-path"]["builtin"].endswith("run1/from-path.pt")
    assert main(["models", "show", "from-path", "--path", str(tmp_path / "cli")]) == 0
    shown = capsys.readouterr().out
    assert "origin:     trained" in shown and "path = " in shown
    assert main(["models", "show", "picker"]) == 0
    assert "trained on: PhaseNet data" in capsys.readouterr().out
    # a contract that does not match its file is listed as BROKEN (exit 1), not skipped
    (tmp_path / "env" / "from-env.pt").write_bytes(b"not the exported file")
    assert main(["models", "list", "--path", str(tmp_path / "cli")]) == 1
    assert "BROKEN" in capsys.readouterr().out
    assert main(["models", "list", "--path", str(tmp_path / "nowhere")]) == 2
