"""``python -m geosentry.training evaluate picker-lono``: leave-one-network-out on the PhaseNet
data (smoke run: tiny model, two small networks), report structure and the split rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from geosentry.training.cli import main as training_main


@pytest.mark.shared
def test_lono_quick_holds_out_whole_networks(tmp_path: Path,
                                             shared_data: Callable[[str], Path]) -> None:
    shared_data("phasenet")
    out = tmp_path / "lono"
    assert training_main(["evaluate", "picker-lono", "--quick", "--epochs", "1",
                          "--steps-per-epoch", "3", "--networks", "PB,TA", "--bootstrap", "50",
                          "--out", str(out)]) == 0
    r = json.loads((out / "picker_lono.json").read_text())
    assert r["network_events"] == {"PB": 4, "TA": 1} and r["events"] == 5
    assert set(r["folds_missing"]) == {"NC", "PG", "NN", "CI", "NP"}
    for net in ("PB", "TA"):
        fold = json.loads((out / f"fold-{net}" / "result.json").read_text())
        assert all(s.startswith(f"{net}.") for s in fold["test_stations"])
        assert fold["train_events"] == 96 - fold["test_events"]
        assert len(fold["truth"]["P"]) == len(fold["picks"]["cnn"]["P"]) == 2 * fold["test_events"]
    pooled = r["aggregate"]["pooled"]
    assert {"cnn", "stalta"} <= set(pooled) and "S" not in pooled["stalta"]
    assert pooled["cnn"]["P"]["n_windows"] == 10
    if r["phasenetlight"]:  # seisbench installed: PhaseNetLight on the same windows
        assert pooled["phasenetlight"]["P"]["n_windows"] == 10
        assert "cnn P 0.5s - phasenetlight P 0.5s" in r["aggregate"]["bootstrap"]
    else:
        assert "seisbench" in r["skipped"]["phasenetlight"]
    md = (out / "picker_lono.md").read_text()
    assert "| PB | 4 |" in md and "never saw its network" in md
    # the report again from the fold results, paired against itself: every difference is 0
    assert training_main(["evaluate", "picker-lono", "--quick", "--epochs", "1",
                          "--steps-per-epoch", "3", "--report-only", "--bootstrap", "50",
                          "--against", str(out), "--out", str(out)]) == 0
    again = json.loads((out / "picker_lono.json").read_text())
    assert again["aggregate"]["pooled"] == r["aggregate"]["pooled"]
    diffs = again["against"]["differences"]
    assert len(diffs) == 4 and all(d["diff"] == 0.0 for d in diffs.values())
    sigma = again["against"]["sigma_differences"]  # residual σ, paired: 0 against itself
    assert set(sigma) == {"P", "S"} and all(v["diff_s"] == 0.0 for v in sigma.values())
    # other label widths are other settings: their report never mixes in these folds
    with pytest.raises(SystemExit, match="label_sigma_s.: 0.1"):
        training_main(["evaluate", "picker-lono", "--quick", "--epochs", "1", "--steps-per-epoch",
                       "3", "--label-sigma-s", "0.1", "--report-only", "--out", str(out)])
    timing = again["aggregate"]["timing"]["cnn"]["P"]
    if timing["n"]:  # the breakdown covers the CNN's matched P picks
        assert timing["n"] == pooled["cnn"]["P"]["0.5s"]["tp"]
        assert set(timing["per_network"]) <= {"PB", "TA"}
