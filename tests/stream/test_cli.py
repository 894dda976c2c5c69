"""The CLI contract: `geosentry run` on files, `models list --json`, errors name the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from geosentry.stream.sources.files import archive_records, paced
from geosentry.stream.testing import demo_stream, mseed_records

GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]


def _archive(tmp_path: Path) -> Path:
    d = tmp_path / "archive"
    d.mkdir()
    for tr in demo_stream():
        (d / f"{tr.id}.mseed").write_bytes(b"".join(mseed_records(tr)))
    return d


def test_run_on_a_directory_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    cfg = tmp_path / "g.toml"
    cfg.write_text('[[detectors]]\nname = "stalta"\ntype = "stalta"\nbandpass_hz = [10.0, 20.0]\n')
    done = subprocess.run(GEOSENTRY + ["run", "--source", str(_archive(tmp_path)), "--sink",
                                       f"jsonl:{out}", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(a["station"] == "*" for a in alerts) == 3
    assert "done: 153 records, 0 decode errors" in done.stderr


def test_paced_replay_follows_record_end_times(tmp_path: Path) -> None:
    records = archive_records(_archive(tmp_path))
    ends = [end for end, _ in records]
    assert ends == sorted(ends)
    due = [d for d, _ in paced(records, speed=10.0)]
    assert due[0] == 0.0 and abs(due[-1] - (ends[-1] - ends[0]) / 1e9 / 10.0) < 1e-9
    assert all(d == 0.0 for d, _ in paced(records, speed=0.0))


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[inference]\nmax_batch = 0\n")
    done = subprocess.run(GEOSENTRY + ["run", "--source", str(tmp_path), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "inference.max_batch" in done.stderr


def test_models_list_json() -> None:
    done = subprocess.run(GEOSENTRY + ["models", "list", "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for m in json.loads(done.stdout):
        assert {"name", "kind", "format", "path", "sha256", "contract", "metrics"} <= set(m)
        assert Path(m["path"]).exists()
