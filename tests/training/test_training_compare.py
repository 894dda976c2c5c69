"""Side-by-side picker comparison: bootstrap intervals, SeisBench PhaseNetLight on real windows,
the ``evaluate picker-compare`` command, and the k-fold split."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geosentry.training.evaluate.compare import bootstrap_f1, window_counts


def test_window_counts_and_bootstrap_intervals() -> None:
    truth = [100, 200, None, 300]
    preds = [np.array([102]), np.array([900]), np.array([5]), np.zeros(0, np.int64)]
    c = window_counts(truth, preds, 0.1)
    assert c.tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 1]]
    events = np.array([0, 0, 1, 1])
    b = bootstrap_f1({"a": c, "b": c}, events, n_boot=300, seed=1, pairs=[("a", "b")])
    assert b["a"]["f1"] == pytest.approx(2 / 6, abs=1e-4)  # tp 1, fp 2, fn 2
    lo, hi = b["a"]["ci95"]
    assert 0.0 <= lo <= b["a"]["f1"] <= hi <= 1.0
    assert b["a - b"]["diff"] == 0.0 and b["a - b"]["ci95"] == [0.0, 0.0]


@pytest.mark.shared
def test_phasenetlight_picks_real_phasenet_windows(shared_data: Callable[[str], Path]) -> None:
    """SeisBench PhaseNetLight (ETHZ weights, loaded at run time) on two real PhaseNet events,
    prepared as its sidecar says (ZNE, 3001 samples at 100 Hz, peak normalisation): probabilities
    over P, S, N sum to one and P is found within 0.1 s of the analyst pick."""
    pytest.importorskip("seisbench", reason="optional seisbench package not installed")
    from geosentry.training.data.phasenet import load_phasenet
    from geosentry.training.evaluate.compare import load_phasenetlight, phasenetlight_probs
    from geosentry.training.evaluate.picks import extract_picks

    shared_data("reference/seisbench-phasenetlight-ethz")
    shared_data("phasenet")
    loaded = load_phasenetlight()
    assert not isinstance(loaded, str), loaded
    model, sidecar = loaded
    assert sidecar["model_args"]["component_order"] == "ZNE" and model.labels == "PSN"
    events = load_phasenet(limit=2)
    raw = np.stack([e.data[:, e.itp - 1000: e.itp + 2001] for e in events])
    prob = phasenetlight_probs(model, raw)
    assert prob.shape == (2, 3, 3001)
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-4)
    thr = sidecar["default_args"]["P_threshold"]
    for p in prob:
        picks = extract_picks(p[0], thr)
        assert picks.size and np.min(np.abs(picks - 1000)) <= 10


def test_picker_compare_command_without_seisbench_weights(no_shared: Path, tmp_path: Path) -> None:
    """On the synthetic fallback (no shared data): CNN and STA/LTA rows with intervals, the
    PhaseNetLight row skipped with its reason, figures written."""
    from geosentry.training.cli import main

    models = tmp_path / "m"
    assert main(["export", "tiny-picker", "--out", str(models), "--window-samples", "3001",
                 "--stride-samples", "1500"]) == 0
    out = tmp_path / "cmp"
    assert main(["evaluate", "picker-compare", "--quick", "--bootstrap", "50", "--out", str(out),
                 "--picker", str(models / "tiny-picker.pt")]) == 0
    r = json.loads((out / "picker_compare.json").read_text())
    assert set(r["pickers"]) == {"cnn", "stalta"}
    assert "absent" in r["skipped"]["phasenetlight"]
    assert "cnn P 0.5s - stalta P 0.5s" in r["bootstrap_f1"]
    md = (out / "picker_compare.md").read_text()
    assert "phasenetlight skipped" in md and "| stalta | P |" in md
    assert (out / "picker_compare_residuals.png").stat().st_size > 1000
    assert (out / "picker_compare_pr.png").stat().st_size > 1000


def test_station_folds_disjoint_and_balanced(no_shared: Path) -> None:
    from geosentry.training.data.phasenet import load_events
    from geosentry.training.evaluate.kfold import station_folds

    events, _ = load_events()
    folds = station_folds(events, 5, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(len(events)))
    stations = [{events[i].station_id for i in f} for f in folds]
    assert all(not (a & b) for k, a in enumerate(stations) for b in stations[k + 1:])
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= max(2, max(sizes) // 3)


def test_picker_kfold_command_quick(no_shared: Path, tmp_path: Path) -> None:
    from geosentry.training.cli import main

    out = tmp_path / "kf"
    args = ["evaluate", "picker-kfold", "--quick", "--folds", "2", "--epochs", "1",
            "--steps-per-epoch", "1", "--out", str(out)]
    assert main(args + ["--folds-only", "1"]) == 0
    assert main(args + ["--folds-only", "0"]) == 0  # merged with fold 1's report
    r = json.loads((out / "picker_kfold.json").read_text())
    assert list(r["per_fold"]) == ["0", "1"] and r["mean_std"]["P_f1_0.5s"]["n"] == 2
    assert "**mean ± std**" in (out / "picker_kfold.md").read_text()
    assert (out / "picker_kfold.png").exists()


def test_evaluate_picker_writes_json_markdown_and_png(no_shared: Path, tmp_path: Path) -> None:
    """``geosentry evaluate picker`` (= ``python -m geosentry.training evaluate picker``) writes the
    report as JSON, Markdown and PNG figures (residual histograms, P/R/F1 vs threshold)."""
    from geosentry.training.cli import main

    run, out = tmp_path / "run", tmp_path / "ev"
    assert main(["train", "picker", "--quick", "--epochs", "1", "--steps-per-epoch", "2",
                 "--out", str(run), "--no-export"]) == 0
    assert main(["evaluate", "picker", "--quick", "--run", str(run), "--out", str(out)]) == 0
    for name in ("picker.json", "picker.md", "picker_residuals.png", "picker_pr_threshold.png"):
        assert (out / name).stat().st_size > 100, name


def test_detector_kfold_command_quick(no_shared: Path, tmp_path: Path) -> None:
    from geosentry.training.cli import main

    out = tmp_path / "dkf"
    assert main(["evaluate", "detector-kfold", "--quick", "--folds", "2", "--epochs", "1",
                 "--steps-per-epoch", "1", "--out", str(out)]) == 0
    r = json.loads((out / "detector_kfold.json").read_text())
    assert r["task"] == "detector" and list(r["per_fold"]) == ["0", "1"]
    assert {"event_f1", "false_alarm_rate", "STALTA_event_f1"} <= set(r["mean_std"])
    assert "| RNN event F1 |" in (out / "detector_kfold.md").read_text()
    assert (out / "detector_kfold.png").exists()
