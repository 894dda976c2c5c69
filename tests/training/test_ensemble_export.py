"""``export picker-ensemble``: exported pickers averaged into one file the service loads, equal
to the mean of its members, with its members on record; mismatched members refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geosentry.stream.detectors.registry import ModelConfig
from geosentry.stream.inference.contract import load_contract
from geosentry.stream.inference.model import TorchScriptDetector
from geosentry.training.cli import main as training_main
from geosentry.training.export import export_tiny_picker
from geosentry.training.export.reexport import picker_members
from geosentry.training.paths import MODELS_DIR


def _members(tmp_path: Path, window: int = 400) -> list[Path]:
    return [export_tiny_picker(tmp_path / f"m{seed}", window_samples=window, seed=seed)[0]
            for seed in (1, 2)]


def test_the_ensemble_is_its_members_mean_and_the_service_loads_it(tmp_path: Path) -> None:
    a, b = _members(tmp_path)
    out = tmp_path / "ens"
    rc = training_main(["export", "picker-ensemble", "--members", str(a), str(b),
                        "--thresholds", "P=0.4,S=0.6", "--thresholds-from", "a test",
                        "--no-evaluate", "--out", str(out)])
    assert rc == 0
    pt = out / "picker.pt"
    c = load_contract(pt)  # the service's check: schema, sha256, this file
    assert c.kind == "picker" and c.thresholds == {"P": 0.4, "S": 0.6} and c.forward_range
    members = c.training["ensemble"]["members"]
    assert [m["sha256"] for m in members] == [load_contract(a).sha256, load_contract(b).sha256]
    assert c.training["ensemble"]["thresholds_from"] == "a test"
    assert "the mean of 2 pickers" in c.provenance["trained_on"]
    x = torch.randn(3, 3, 400, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = (torch.jit.load(str(a))(x) + torch.jit.load(str(b))(x)) / 2
        got = torch.jit.load(str(pt))(x)
    assert float((got - want).abs().max()) < 1e-5
    # the members come back out of the file (re-export, fold checkpoints)
    nets = picker_members(pt, c)
    assert len(nets) == 2
    with torch.no_grad():
        assert float((nets[0](x) - torch.jit.load(str(a))(x)).abs().max()) < 1e-5
    # and re-exported under the current model code (``export picker --from-model``) as a whole
    assert training_main(["export", "picker", "--from-model", str(pt), "--out",
                          str(tmp_path / "re")]) == 0
    with torch.no_grad():
        again = torch.jit.load(str(tmp_path / "re" / "picker.pt"))(x)
    assert float((again - got).abs().max()) < 1e-6
    # served as the service serves a picker
    det = TorchScriptDetector(ModelConfig(name="ens", path=str(pt)), pt, torch.device("cpu"),
                              "fp32")
    assert det.contract.sha256 == c.sha256


def test_mismatched_members_one_line_exit_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _members(tmp_path)
    c, _ = export_tiny_picker(tmp_path / "wide", window_samples=600, stride_samples=300)
    rc = training_main(["export", "picker-ensemble", "--members", str(a), str(c),
                        "--no-evaluate", "--out", str(tmp_path / "ens")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "window_samples" in err and str(c) in err
    assert not (tmp_path / "ens" / "picker.pt").exists()
    rc = training_main(["export", "picker-ensemble", "--members", str(a), "--no-evaluate",
                        "--out", str(tmp_path / "ens")])
    assert rc == 2 and "at least two" in capsys.readouterr().err
    # an ensemble as a member: refused (its members weigh half as much in the mean)
    b = _members(tmp_path)[1]
    assert training_main(["export", "picker-ensemble", "--members", str(a), str(b),
                          "--no-evaluate", "--out", str(tmp_path / "ens")]) == 0
    capsys.readouterr()
    rc = training_main(["export", "picker-ensemble", "--members", str(tmp_path / "ens" /
                        "picker.pt"), str(a), "--no-evaluate", "--out", str(tmp_path / "e2")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "is an ensemble of 2 already" in err


def test_the_shipped_folder_needs_overwrite(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _members(tmp_path)
    before = (MODELS_DIR / "picker.pt").read_bytes()
    rc = training_main(["export", "picker-ensemble", "--members", str(a), str(b),
                        "--no-evaluate", "--out", str(MODELS_DIR)])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert (MODELS_DIR / "picker.pt").read_bytes() == before


def test_a_member_of_another_layout_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torch import nn

    from geosentry.training.export import export_model

    class Pointwise(nn.Module):  # a picker, but not this project's U-Net
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.conv(x), dim=1)

    odd, _ = export_model(Pointwise(), name="odd", kind="picker", sampling_rate_hz=100.0,
                          components=("Z", "N", "E"), window_samples=400, stride_samples=200,
                          labels=("P", "S", "N"), thresholds={"P": 0.5, "S": 0.5},
                          out_dir=tmp_path / "odd")
    a, _ = _members(tmp_path)
    rc = training_main(["export", "picker-ensemble", "--members", str(a), str(odd),
                        "--no-evaluate", "--out", str(tmp_path / "ens")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "not a picker of this project's layout" in err
