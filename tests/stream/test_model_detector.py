"""The service side of the model contract: an exported tiny model loads and runs; a model
whose contract does not match is refused with a clear error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from geosentry.stream.config import DetectorConfig
from geosentry.stream.errors import ContractError
from geosentry.stream.inference.model import TorchScriptDetector
from geosentry.stream.records import Window
from geosentry.stream.testing import mseed_records, run_pipeline, synthetic_trace

training_export = pytest.importorskip("geosentry.training.export.exporter")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    pt, _ = training_export.export_tiny_picker(tmp_path)
    return pt


def _cfg(**kw: object) -> DetectorConfig:
    return DetectorConfig(name="picker", type="model", path="x", **kw)  # type: ignore[arg-type]


def _edit_contract(pt: Path, **changes: object) -> None:
    js = pt.with_suffix(".json")
    raw = json.loads(js.read_text())
    raw.update(changes)
    js.write_text(json.dumps(raw))


@pytest.mark.parametrize("stride_s, decoded", [(None, 400), (0.5, 250)])
def test_exported_model_loads_and_matches_eager(tiny: Path, stride_s: float | None,
                                                 decoded: int) -> None:
    """The service's outputs equal the eager network's; at a short stride only the owned
    stretch and a second either side are decoded (forward_range), at half a window of 4 s
    that already covers the window."""
    from geosentry.training.models.cnn import PhasePicker

    det = TorchScriptDetector(_cfg(stride_s=stride_s), tiny, torch.device("cpu"))
    assert det.contract.forward_range
    assert det.spec.components == ("Z", "N", "E") and det.spec.window_s == 4.0
    rng = np.random.default_rng(0)
    windows = [Window("XX", f"S{i}", "", ("HHZ", "HHN", "HHE"), 0, 100.0,
                      rng.normal(size=(3, 400)).astype(np.float32), 0, "picker")
               for i in range(5)]
    torch.manual_seed(0)
    eager = PhasePicker(components=("Z", "N", "E"), labels=("P", "S", "N"),
                        sampling_rate_hz=100.0, window_samples=400, channels=(4, 8, 8),
                        kernel=5).eval()
    with torch.no_grad():
        want = eager(torch.from_numpy(det.normalise(np.stack([w.data for w in windows])))).numpy()
    out = det.infer(windows)
    for v, start, full in zip(out.values, out.starts, want):
        assert v.shape == (3, decoded)
        np.testing.assert_allclose(v, full[:, start:start + decoded], atol=1e-5)


def test_hash_mismatch_is_refused(tiny: Path) -> None:
    _edit_contract(tiny, sha256="0" * 64)
    with pytest.raises(ContractError, match="sha256 .* does not match"):
        TorchScriptDetector(_cfg(), tiny, torch.device("cpu"))


def test_window_mismatch_is_refused(tiny: Path) -> None:
    _edit_contract(tiny, labels=["P", "S"], thresholds={"P": 0.5})
    with pytest.raises(ContractError, match="output shape"):
        TorchScriptDetector(_cfg(), tiny, torch.device("cpu"))


@pytest.mark.parametrize("changes, match", [
    ({"format": "onnx"}, "format"),
    ({"kind": "generator", "forward_range": False}, "not run by the service"),
    ({"kind": "detector"}, "forward_range: only a picker"),
    ({"forward_range": "yes"}, "forward_range: must be true or false"),
    ({"stride_samples": 0}, "stride_samples"),
    ({"components": ["Z", "Z", "E"]}, "components"),
    ({"contract": "other.v9"}, "contract"),
])
def test_invalid_contracts_are_refused(tiny: Path, changes: dict, match: str) -> None:
    _edit_contract(tiny, **changes)
    with pytest.raises(ContractError, match=match):
        TorchScriptDetector(_cfg(), tiny, torch.device("cpu"))


class _OneConvPicker(torch.nn.Module):
    """A picker with no ``forward_range`` (or, ``wrong``, one that disagrees with forward)."""

    def __init__(self, wrong: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 3, 5, padding=2)
        self.wrong = wrong

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.conv(x), dim=1)


class _WrongRangePicker(_OneConvPicker):
    @torch.jit.export
    def forward_range(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return self.forward(x)[:, :, start + 1:stop + 1]  # off by one sample


def _export_one_conv(out: Path, module: torch.nn.Module) -> Path:
    pt, _ = training_export.export_model(
        module, name="one-conv", kind="picker", sampling_rate_hz=100.0,
        components=("Z", "N", "E"), window_samples=400, stride_samples=200,
        labels=("P", "S", "N"), thresholds={"P": 0.5, "S": 0.5}, out_dir=out)
    return pt


def test_forward_range_promised_but_absent_is_refused(tmp_path: Path) -> None:
    pt = _export_one_conv(tmp_path, _OneConvPicker())
    assert json.loads(pt.with_suffix(".json").read_text())["forward_range"] is False
    det = TorchScriptDetector(_cfg(stride_s=0.5), pt, torch.device("cpu"))
    assert det.infer([Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0,
                             np.ones((3, 400), np.float32), 0, "picker")]).values[0].shape[-1] == 400
    _edit_contract(pt, forward_range=True)
    with pytest.raises(ContractError, match="does not export it"):
        TorchScriptDetector(_cfg(stride_s=0.5), pt, torch.device("cpu"))


def test_forward_range_that_disagrees_is_refused_at_export_and_unused_at_load(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AssertionError, match="forward_range differs from forward"):
        _export_one_conv(tmp_path, _WrongRangePicker())
    # the same file slipped past export (contract edited by hand): the service says so and
    # decodes whole windows, which are right whatever forward_range does
    scripted = torch.jit.script(_WrongRangePicker().eval())
    pt = _export_one_conv(tmp_path, _OneConvPicker())
    torch.jit.save(scripted, str(pt))
    from geosentry.stream.inference.contract import sha256_file

    _edit_contract(pt, forward_range=True, sha256=sha256_file(pt))
    caplog.set_level(logging.WARNING, logger="geosentry.stream.inference.model")  # whatever ran before
    det = TorchScriptDetector(_cfg(stride_s=0.5), pt, torch.device("cpu"))
    assert not det.decodes_range
    assert "differs from forward" in caplog.text and "decoding whole windows" in caplog.text
    w = Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0, np.ones((3, 400), np.float32), 0,
               "picker")
    assert det.infer([w]).values[0].shape[-1] == 400


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="not found"):
        TorchScriptDetector(_cfg(), tmp_path / "absent.pt", torch.device("cpu"))


async def test_pipeline_runs_exported_model_micro_batched(tiny: Path) -> None:
    traces = [synthetic_trace(f"XX.S{i}..HH{c}", 40, seed=10 * i + j, events_s=[20.0])
              for i in range(4) for j, c in enumerate("ZNE")]
    payloads = [p for tr in traces for p in mseed_records(tr)]
    sink, _, metrics = await run_pipeline(payloads, {
        "detectors": [{"name": "picker", "type": "model", "path": str(tiny),
                       "thresholds": {"P": 0.0, "S": 0.0}}],
        "inference": {"max_batch": 8, "max_wait_s": 0.05}})
    contract = json.loads(tiny.with_suffix(".json").read_text())
    picks = [a for a in sink.alerts if a.kind == "pick"]
    assert picks and {a.station for a in picks} == {"S0", "S1", "S2", "S3"}
    assert all(a.model.sha256 == contract["sha256"] for a in picks)
    batches = metrics.value("geosentry_inference_batch_size_count", detector="picker")
    windows = metrics.value("geosentry_windows_total", detector="picker")
    assert 0 < batches < windows  # windows from several stations share batches
