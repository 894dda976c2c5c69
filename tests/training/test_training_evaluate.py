"""Pick/detection scoring and the STA/LTA baseline on constructed cases."""

from __future__ import annotations

import numpy as np

from geosentry.training.evaluate import detection_scores, extract_picks, pick_scores, write_report
from geosentry.training.evaluate.stalta import StaLtaParams, stalta_picks


def test_pick_scores_tolerances_and_residuals() -> None:
    truth = [100, 200, None]
    preds = [np.array([105]), np.array([240, 900]), np.array([50])]
    s = pick_scores(truth, preds, 100.0)
    assert s["0.1s"] == {"precision": 0.25, "recall": 0.5, "f1": 0.3333, "tp": 1, "fp": 3, "fn": 1}
    assert s["0.5s"]["tp"] == 2 and s["0.5s"]["fp"] == 2 and s["0.5s"]["fn"] == 0
    assert abs(s["residual_mean_s"] - 0.225) < 1e-9


def test_extract_picks_peaks() -> None:
    p = np.zeros(500)
    p[100], p[300], p[0] = 0.9, 0.6, 0.7
    assert list(extract_picks(p, 0.5)) == [0, 100, 300]
    assert extract_picks(p, 0.95).size == 0


def test_detection_scores() -> None:
    s = detection_scores(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.8, 0.1]), 0.5)
    assert s["tp"] == 1 and s["fp"] == 1 and s["fn"] == 1 and s["false_alarm_rate"] == 0.5


def test_stalta_picks_synthetic_onset() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal(3000) * 0.1
    z[1500:1700] += np.sin(np.arange(200) * 0.8) * 5
    picks = stalta_picks(z, 100.0, StaLtaParams(0.2, 3.0, 4.0, 2.0, None))
    assert picks.size >= 1 and abs(int(picks[0]) - 1500) < 20


def test_write_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    js, md = write_report({"P": {"0.5s": {"f1": 0.9}}}, tmp_path, "x")
    assert js.exists() and "| P.0.5s.f1 | 0.9 |" in md.read_text()
