"""``evaluate picker-lono --through-run``: fold pickers exported like the shipped one, served by
``geosentry run`` (a subprocess) on the PhaseNet records written as miniSEED, pick alerts scored
against the reference picks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from geosentry.stream.inference.contract import ModelContract, contract_path_for
from geosentry.training.cli import main as training_main
from geosentry.training.export.reexport import picker_members
from geosentry.training.paths import MODELS_DIR


def test_without_fold_checkpoints_one_line_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc = training_main(["evaluate", "picker-lono", "--through-run", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err and "no fold checkpoint" in err and str(tmp_path) in err


def _fold(out: Path, net: str, thresholds: dict[str, float]) -> None:
    """A fold folder as ``evaluate picker-lono`` leaves it, holding the shipped picker's first
    member's weights (a model that finds these picks; training one here would take minutes)."""
    pt = MODELS_DIR / "picker.pt"
    net_model = picker_members(pt, ModelContract.load(contract_path_for(pt)))[0]
    d = out / f"fold-{net}"
    d.mkdir(parents=True)
    torch.save({"modules": {"model": net_model.state_dict()}}, d / "checkpoint.pt")
    (d / "result.json").write_text(json.dumps({"network": net, "settings": {"quick": False},
                                               "thresholds": {"cnn": thresholds}}))


@pytest.mark.shared
def test_through_run_finds_the_reference_picks(tmp_path: Path,
                                               shared_data: Callable[[str], Path]) -> None:
    import obspy

    shared_data("phasenet")
    out = tmp_path / "lono"
    _fold(out, "PB", {"P": 0.3, "S": 0.35})
    _fold(out, "TA", {"P": 0.95, "S": 0.99})  # other thresholds: must reach the contract
    assert training_main(["evaluate", "picker-lono", "--through-run", "--networks", "PB,TA",
                          "--no-seisbench", "--bootstrap", "50", "--out", str(out)]) == 0
    work = out / "through-run"
    r = json.loads((work / "picker_lono_run.json").read_text())
    # the exported fold model carries the fold's thresholds and passes the service's check
    c = ModelContract.load(work / "models" / "picker-lono-TA.json")
    assert c.thresholds == {"P": 0.95, "S": 0.99} and c.stride_samples == 1500
    assert r["runs"]["cnn TA"]["thresholds_from"].startswith("tuned by the fold")
    # records as miniSEED with the true codes and the record's samples
    st = obspy.read(str(work / "mseed" / "PB" / "*.mseed"))
    assert {tr.stats.network for tr in st} == {"PB"} and len({tr.stats.station for tr in st}) >= 1
    assert all(tr.stats.sampling_rate == 100.0 and tr.stats.npts == 9001 for tr in st)
    sc = r["scores"]
    assert sc["records"] == 5 and r["network_events"] == {"PB": 4, "TA": 1}
    p = sc["pooled"]["cnn"]["P"]
    # the service's pick alerts land on the reference P picks (within 0.1 s in most records)
    assert p["0.5s"]["tp"] >= 4 and p["0.1s"]["tp"] >= 3, p
    assert abs(p["residual_mean_s"]) < 0.1 and p["residual_std_s"] < 0.1
    assert sc["pooled"]["cnn"]["S"]["0.5s"]["tp"] >= 2
    assert sc["picks_in_no_record"] == {"cnn": 0}
    assert sc["timing"]["cnn"]["P"]["n"] == p["0.5s"]["tp"]
    # per network adds up to the pooled counts
    per = sc["per_network"]["cnn"]
    assert sum(per[n]["P"]["0.5s"]["tp"] for n in ("PB", "TA")) == p["0.5s"]["tp"]
    alerts = [json.loads(x) for x in (work / "run" / "cnn-PB" / "alerts.jsonl").read_text()
              .splitlines()]
    assert all(a["network"] == "PB" for a in alerts if a["kind"] == "pick")
    md = (work / "picker_lono_run.md").read_text()
    assert "through `geosentry run`" in md and "| PB | 4 |" in md
    assert np.isfinite(p["residual_std_s"])


@pytest.mark.shared
def test_through_run_early_warning_serves_the_latency_settings(
        tmp_path: Path, shared_data: Callable[[str], Path]) -> None:
    """``--early-warning``: the fold CNN served at stride 0.5 s and lookahead 1 s (the paced
    replay's settings), its own results folder, PhaseNetLight left out with the reason."""
    shared_data("phasenet")
    out = tmp_path / "lono"
    _fold(out, "PB", {"P": 0.3, "S": 0.35})
    assert training_main(["evaluate", "picker-lono", "--through-run", "--early-warning",
                          "--networks", "PB", "--bootstrap", "20", "--out", str(out)]) == 0
    work = out / "through-run-early-warning"
    cfg = (work / "run" / "cnn-PB" / "geosentry.toml").read_text()
    assert "stride_s = 0.5" in cfg and "lookahead_s = 1.0" in cfg
    r = json.loads((work / "picker_lono_run.json").read_text())
    assert r["command"].endswith("--early-warning") and "stacks windows" in r["skipped"][
        "phasenetlight"]
    assert r["scores"]["pooled"]["cnn"]["P"]["0.5s"]["tp"] >= 3


def test_threshold_sweep_choices_are_nested() -> None:
    """Each network's nested threshold is chosen on the other networks' records only, and each
    row scores the run served at its thresholds."""
    from geosentry.training.evaluate.lono_thresholds import (GRID, grid_key, nested_choice,
                                                             scores_at, sweep)

    rec = {"P": 3000, "S": 4000}
    # A: the true P is picked up to 0.5, a false one up to 0.3 -> best above 0.3; B: the true P
    # up to 0.95, false ones up to 0.7 and 0.8 -> best above 0.8
    records = {"A": [dict(rec)], "B": [dict(rec)]}

    def runs(scored: list[tuple[int, float]]) -> dict[str, dict[str, list]]:
        return {grid_key(t): {"P": [[(k, sc) for k, sc in scored if sc >= t]], "S": [[]]}
                for t in GRID}

    picks = {"A": runs([(3000, 0.5), (7000, 0.3)]),
             "B": runs([(3010, 0.95), (100, 0.7), (8000, 0.8)])}
    chosen = nested_choice(records, picks, "P")
    assert 0.8 < chosen["A"] <= 0.95  # B's records chose A's threshold: A's true pick is lost
    assert 0.3 < chosen["B"] <= 0.5
    s = scores_at(records, picks, "P", lambda n: grid_key(chosen[n]))["0.5s"]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 2, 1)
    for n in picks:
        picks[n]["tuned"] = {"P": [[(3000, 0.9)]], "S": [[(4000, 0.9)]]}
        picks[n]["nested"] = picks[n][grid_key(chosen[n])]
    nested = {n: {"P": chosen[n], "S": 0.5} for n in picks}
    r = sweep(records, picks, nested, {"A": {"P": 0.35, "S": 0.5}, "B": {"P": 0.85, "S": 0.5}})
    assert r["fold_tuned"]["P"]["scores"]["0.5s"]["f1"] == 1.0
    assert r["fixed"]["P"]["0.10"]["0.5s"]["fp"] == 3
    assert r["nested"]["P"]["scores"]["0.5s"]["fp"] == 2 and r["nested"]["P"]["chosen"] == chosen


@pytest.mark.shared
def test_threshold_sweep_reproduces_the_run_at_the_folds_thresholds(
        tmp_path: Path, shared_data: Callable[[str], Path]) -> None:
    """The sweep's row at the folds' thresholds (one detector of its multi-detector run) scores
    exactly as ``--through-run``'s own run at those thresholds, and each grid row is a run at
    its threshold (the lowest sees at least the picks of the tuned run)."""
    shared_data("phasenet")
    out = tmp_path / "lono"
    _fold(out, "PB", {"P": 0.6, "S": 0.7})
    args = ["evaluate", "picker-lono", "--through-run", "--networks", "PB", "--out", str(out)]
    assert training_main(args + ["--no-seisbench", "--bootstrap", "20"]) == 0
    assert training_main(args + ["--threshold-sweep"]) == 0
    run = json.loads((out / "through-run" / "picker_lono_run.json").read_text())
    sw = json.loads((out / "through-run" / "thresholds.json").read_text())["sweep"]
    for ph in ("P", "S"):
        real = run["scores"]["pooled"]["cnn"][ph]
        assert sw["fold_tuned"][ph]["scores"]["0.5s"] == real["0.5s"]
        assert sw["fold_tuned"][ph]["scores"]["residual_std_s"] == real["residual_std_s"]
    # at 0.1 the sweep's run found at least the picks the tuned run found
    assert sw["fixed"]["P"]["0.10"]["0.5s"]["tp"] >= run["scores"]["pooled"]["cnn"]["P"]["0.5s"]["tp"]
    from geosentry.training.evaluate.lono_thresholds import GRID
    assert set(sw["nested"]["P"]["chosen"]) == {"PB"} and sw["nested"]["P"]["chosen"]["PB"] in GRID


@pytest.mark.shared
def test_through_run_on_short_cuts_scores_them_whole(tmp_path: Path,
                                                     shared_data: Callable[[str], Path]) -> None:
    """``--crop-s 30.01``: each record cut to one window's length with its P at random 1-29 s
    into it; the service scores a stream that short only through its last window (before, a cut
    that did not start on the stride grid was not scored at all)."""
    import obspy

    shared_data("phasenet")
    out = tmp_path / "lono"
    _fold(out, "PB", {"P": 0.3, "S": 0.35})
    assert training_main(["evaluate", "picker-lono", "--through-run", "--crop-s", "30.01",
                          "--networks", "PB", "--no-seisbench", "--bootstrap", "20",
                          "--out", str(out)]) == 0
    work = out / "through-run-crop-30.01"
    st = obspy.read(str(work / "mseed" / "PB" / "*.mseed"))
    assert all(tr.stats.npts == 3001 for tr in st)
    r = json.loads((work / "picker_lono_run.json").read_text())
    assert r["record_s"] == 30.01 and r["command"].endswith("--crop-s 30.01")
    assert "offline" not in r  # the offline windows are other cuts
    p = r["scores"]["pooled"]["cnn"]["P"]
    assert p["n_true"] == 4 and p["0.5s"]["tp"] >= 3, p
    assert training_main(["evaluate", "picker-lono", "--through-run", "--crop-s", "1",
                          "--out", str(out)]) == 2
