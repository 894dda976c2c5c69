"""Reduced precision: bfloat16 only where the contract validated it, the device has it natively
(or it is asked for explicitly) and the outputs stay within the contract's tolerance; float32
otherwise, with the reason; the choice is exported as a metric."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geosentry.stream.config import DetectorConfig, load_config_dict
from geosentry.stream.errors import ConfigError, ContractError
from geosentry.stream.inference import precision as prec
from geosentry.stream.inference.contract import ModelContract
from geosentry.stream.inference.model import TorchScriptDetector
from geosentry.stream.metrics import Metrics
from geosentry.stream.testing import mseed_records, run_pipeline, synthetic_trace

training_export = pytest.importorskip("geosentry.training.export.exporter")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    pt, _ = training_export.export_tiny_picker(tmp_path)
    return pt


def _validate_bf16(pt: Path, tolerance: float) -> None:
    js = pt.with_suffix(".json")
    raw = json.loads(js.read_text())
    raw["precisions"] = {"bf16": {"tolerance": tolerance, "evidence": {"note": "test"}}}
    js.write_text(json.dumps(raw))


def _det(pt: Path, precision: str) -> TorchScriptDetector:
    cfg = DetectorConfig(name="picker", type="model", path=str(pt))
    return TorchScriptDetector(cfg, pt, torch.device("cpu"), precision)


def test_unvalidated_model_runs_fp32_and_refuses_forced_bf16(tiny: Path) -> None:
    det = _det(tiny, "auto")
    assert det.precision == "fp32"
    assert "does not list bf16" in det.precision_choice.reason
    with pytest.raises(ContractError, match="inference.precision = bf16 but the contract"):
        _det(tiny, "bf16")


def test_forced_bf16_on_a_validated_model_stays_close_to_fp32(tiny: Path) -> None:
    _validate_bf16(tiny, 0.05)
    det = _det(tiny, "bf16")
    assert det.precision == "bf16" and det.precision_choice.max_abs_diff is not None
    assert det.precision_choice.max_abs_diff <= 0.05
    raw = np.random.default_rng(3).normal(size=(6, 3, 400)).astype(np.float32)
    low, ref = det.infer_array(raw), det.infer_array(raw, "fp32")
    assert low.dtype == np.float32 and low.shape == ref.shape == (6, 3, 400)
    diff = float(np.abs(low - ref).max())
    assert 0 < diff <= 0.05  # bfloat16 really ran (not bit-identical) and stayed within tolerance


def test_probe_outside_tolerance_falls_back_or_refuses(tiny: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _validate_bf16(tiny, 1e-9)  # no real bfloat16 pass is this close to float32
    with pytest.raises(ContractError, match="differs from fp32 by .*contract tolerance 1e-09"):
        _det(tiny, "bf16")
    # hardware capability is the one thing a test machine cannot choose: pretend it is native
    monkeypatch.setattr(prec, "native_bf16", lambda device: True)
    det = _det(tiny, "auto")
    assert det.precision == "fp32" and "differs from fp32" in det.precision_choice.reason


def test_no_native_bf16_keeps_auto_at_fp32(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _validate_bf16(tiny, 0.05)
    monkeypatch.setattr(prec, "native_bf16", lambda device: False)
    det = _det(tiny, "auto")
    assert det.precision == "fp32" and det.precision_choice.reason == "no native bfloat16 on this device"


def test_native_bf16_follows_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n")
    assert "amx_bf16" in prec.cpu_flags(info)
    assert prec.cpu_flags(tmp_path / "absent") == set()


def test_contract_and_config_validate_precision() -> None:
    with pytest.raises(ConfigError, match="inference.precision"):
        load_config_dict({"inference": {"precision": "fp16"}})
    assert load_config_dict({"inference": {"precision": "fp32"}}).inference.precision == "fp32"
    base = {"contract": "geosentry.model.v1", "name": "m", "version": "1", "kind": "picker",
            "format": "torchscript", "file": "m.pt", "sha256": "0" * 64,
            "sampling_rate_hz": 100.0, "components": ["Z"], "window_samples": 10,
            "stride_samples": 5, "labels": ["P"], "thresholds": {"P": 0.5}}
    with pytest.raises(ContractError, match="precisions: 'fp16'"):
        ModelContract.from_dict({**base, "precisions": {"fp16": {"tolerance": 0.1}}})
    with pytest.raises(ContractError, match="precisions.bf16.tolerance"):
        ModelContract.from_dict({**base, "precisions": {"bf16": {}}})


def test_shipped_models_state_their_validated_precisions() -> None:
    from geosentry.stream.models import resolve

    for name, bf16 in (("picker", True), ("anomaly", True), ("detector", False),
                       ("anomaly-geomag", False)):
        c = ModelContract.load(resolve(f"builtin:{name}").with_suffix(".json"))
        assert ("bf16" in c.precisions) is bf16, name
        if bf16:
            ev = c.precisions["bf16"]["evidence"]
            assert ev["accepted"] and "evaluate precision" in c.precisions["bf16"]["command"]


def test_pipeline_exports_the_chosen_precision(tiny: Path) -> None:
    cfg = load_config_dict({"detectors": [{"name": "picker", "type": "model", "path": str(tiny),
                                           "missing_components": "zeros"}],
                            "inference": {"precision": "fp32"}, "coincidence": {"enabled": False}})
    det = _det(tiny, "fp32")
    payloads = [p for j, c in enumerate("ZNE")
                for p in mseed_records(synthetic_trace(f"XX.S1..HH{c}", 12, seed=j))]
    metrics = Metrics()
    asyncio.run(run_pipeline(payloads, cfg, detectors=[det], metrics=metrics))
    sha = det.model.sha256[:12]
    assert metrics.value("geosentry_model_info", detector="picker", model="tiny-picker",
                         sha256=sha, device="cpu", precision="fp32") == 1.0
