"""``evaluate picker-lono --refine-sweep``: the service's onset refinement applied to the
leave-one-network-out P picks, per setting and nested (a network never chooses its own)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from geosentry.training.cli import main as training_main


def test_without_fold_results_one_line_exit_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = training_main(["evaluate", "picker-lono", "--refine-sweep", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "no fold results" in err


@pytest.mark.shared
def test_picks_off_the_onset_move_to_it(tmp_path: Path,
                                        shared_data: Callable[[str], Path]) -> None:
    """Fold results whose "model" P picks are the analysts' ± 0.15 s: refined, they land
    closer (the real folds' figures: README, "Onset refinement")."""
    from geosentry.training.data.phasenet import load_events
    from geosentry.training.evaluate.lono import _windows
    from geosentry.training.evaluate.lono_refine import NONE

    shared_data("phasenet")
    events, _ = load_events(seed=0)
    for net in ("PB", "CI"):
        wins, _ = _windows([e for e in events if e.network == net], 8, 1234)
        picks = [[w.p + (15 if i % 2 else -15)] if w.p is not None else []
                 for i, w in enumerate(wins)]
        d = tmp_path / f"fold-{net}"
        d.mkdir()
        (d / "result.json").write_text(json.dumps({"network": net, "settings": {},
                                                   "picks": {"cnn": {"P": picks}}}))
    assert training_main(["evaluate", "picker-lono", "--refine-sweep", "--out",
                          str(tmp_path)]) == 0
    r = json.loads((tmp_path / "refine_sweep.json").read_text())
    assert r["networks"] == ["PB", "CI"]
    before, shipped = r["settings"][NONE], r["settings"][r["shipped"]]
    assert before["std_ms"] == 150.0 and before["f1_0.1s"] == 0.0
    assert shipped["std_ms"] < 60 and shipped["f1_0.1s"] > 0.7, shipped
    assert set(r["nested_choice"]) == {"PB", "CI"} and r["nested"]["std_ms"] < before["std_ms"]
    assert "(shipped)" in (tmp_path / "refine_sweep.md").read_text()
