"""``geosentry train picker --init MODEL --data DIR --out DIR``: fine-tuning on a network's own
miniSEED + CSV picks (real PhaseNet records written as miniSEED), with the station-held-out
evaluation before and after written beside the model and a refusal to export a worse model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import obspy
import pytest
import torch

from geosentry.stream.detectors.registry import ModelConfig
from geosentry.stream.inference.contract import load_contract
from geosentry.stream.inference.model import TorchScriptDetector
from geosentry.training.cli import main as training_main
from geosentry.training.export import export_tiny_picker

pytestmark = pytest.mark.shared


@pytest.fixture
def network_dir(tmp_path: Path, shared_data: Callable[[str], Path]) -> Path:
    """24 real PhaseNet records (16 stations) as one miniSEED file each + ``picks.csv``."""
    from geosentry.training.data.phasenet import load_phasenet

    events = [e for e in load_phasenet(shared_data("phasenet")) if e.its > e.itp][:24]
    out = tmp_path / "network"
    out.mkdir()
    rows = ["network,station,phase,time,event_id"]
    t0 = obspy.UTCDateTime(2020, 1, 1)
    for i, e in enumerate(events):
        start = t0 + 600 * i
        st = obspy.Stream([obspy.Trace(e.data[k].astype(np.int32), header={
            "network": e.network, "station": e.station, "channel": f"HH{c}",
            "starttime": start, "sampling_rate": 100.0})
            for k, c in enumerate("ZNE") if np.any(e.data[k])])
        st.write(str(out / f"{i:03d}.mseed"), format="MSEED")
        rows += [f"{e.network},{e.station},P,{start + e.itp / 100.0},ev{i}",
                 f"{e.network},{e.station},S,{start + e.its / 100.0},ev{i}"]
    (out / "picks.csv").write_text("\n".join(rows) + "\n")
    (out / "README").write_text("not miniSEED: skipped with a warning\n")
    return out


def _train(*args: str) -> int:
    return training_main(["train", "picker", *args])


def _serve(pt: Path) -> TorchScriptDetector:
    return TorchScriptDetector(ModelConfig(name="ft", type="model", path=str(pt)), pt,
                               torch.device("cpu"), "fp32")


def test_a_worse_model_is_refused_unless_forced(network_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped picker fine-tuned with a learning rate that wrecks it: the held-out F1 drops,
    nothing is exported, exit 2 with one line; the evaluation is written all the same. With
    ``--force`` it is exported, says so, keeps ``forward_range`` and loads in the service."""
    out = tmp_path / "out"
    args = ["--init", "picker", "--data", str(network_dir), "--out", str(out), "--epochs", "1",
            "--steps-per-epoch", "15", "--lr", "0.05"]
    assert _train(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "got worse" in err[0] and "--force" in err[0]
    assert not (out / "picker-ft.pt").exists()
    report = json.loads((out / "picker-ft.finetune.json").read_text())
    assert report["worse"] and not report["exported"]
    assert report["before"]["P"]["0.5s"]["f1"] > report["after"]["P"]["0.5s"]["f1"]
    assert set(report["test_stations"]).isdisjoint(report["train_stations"])
    assert _train(*args, "--force") == 0
    c = load_contract(out / "picker-ft.pt")
    assert c.provenance["source"] == "fine-tuned" and c.provenance["forced"] is True
    assert c.provenance["init"]["sha256"] == load_contract(
        Path(c.provenance["init"]["path"])).sha256
    assert "fine-tuned on" in c.provenance["trained_on"] and c.precisions == {}
    assert c.forward_range and _serve(out / "picker-ft.pt").decodes_range
    listed = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", "models", "list",
                             "--json", "--path", str(out)], capture_output=True, text=True,
                            timeout=60)
    entry = next(m for m in json.loads(listed.stdout) if m["name"] == "picker-ft")
    assert entry["origin"] == "fine-tuned"


def test_fine_tuning_an_untrained_picker_improves_it_and_exports(
        network_dir: Path, tmp_path: Path) -> None:
    """An untrained (seeded) picker picks nothing; 90 steps on the network's training stations
    make it pick held-out P arrivals: exported, with before/after in the contract and beside it."""
    init, _ = export_tiny_picker(tmp_path / "init", window_samples=3001, stride_samples=1500)
    out = tmp_path / "out"
    assert _train("--init", str(init), "--data", str(network_dir), "--out", str(out),
                  "--epochs", "3", "--steps-per-epoch", "30", "--lr", "3e-3") == 0
    report = json.loads((out / "tiny-picker-ft.finetune.json").read_text())
    assert report["after"]["P"]["0.5s"]["f1"] > report["before"]["P"]["0.5s"]["f1"]
    assert not report["worse"] and report["exported"]
    assert (out / "tiny-picker-ft.finetune.md").read_text().count("| after |") == 2
    c = load_contract(out / "tiny-picker-ft.pt")
    assert c.metrics["headline"]["P_f1_0.5s_after"] == report["after"]["P"]["0.5s"]["f1"]
    assert c.thresholds == report["after"]["thresholds"]
    assert _serve(out / "tiny-picker-ft.pt").contract.name == "tiny-picker-ft"


def test_an_imported_seisbench_picker_can_be_fine_tuned(
        network_dir: Path, tmp_path: Path, shared_data: Callable[[str], Path]) -> None:
    """PhaseNetLight-ETHZ imported from SeisBench, then fine-tuned: the traced module trains
    (its SeisBench pre-processing inside), is exported, and the service loads it; its
    provenance chains back to the SeisBench weights."""
    pytest.importorskip("seisbench", reason="seisbench not installed: pip install "
                                            "'geosentry[seisbench]'")
    from geosentry.stream.cli import main

    weights = shared_data("reference/seisbench-phasenetlight-ethz") / "ethz"
    assert main(["models", "import", "seisbench", "--model", "PhaseNetLight", "--weights",
                 str(weights), "--version", "2", "--out", str(tmp_path / "imported")]) == 0
    out = tmp_path / "out"
    assert _train("--init", str(tmp_path / "imported" / "phasenetlight-ethz.pt"), "--data",
                  str(network_dir), "--out", str(out), "--epochs", "1", "--steps-per-epoch",
                  "20", "--force") == 0
    c = load_contract(out / "phasenetlight-ethz-ft.pt")
    assert c.provenance["init"]["provenance"]["source"] == "seisbench"
    assert c.normalisation.method == "none"
    det = _serve(out / "phasenetlight-ethz-ft.pt")
    assert det.infer_array(np.ones((1, 3, 3001), np.float32) * 5.0).shape == (1, 3, 3001)
