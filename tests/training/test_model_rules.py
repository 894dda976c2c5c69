"""The model rules exist once (``geosentry.stream.inference.rules`` and ``contract``), and
training and the service both use them: normalisation, output shape, anomaly score, runnable
kinds, contract verification, and the shipped-model listing validates what it lists."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from geosentry.stream.config import DetectorConfig
from geosentry.stream.errors import ContractError
from geosentry.stream.inference import contract as contract_mod
from geosentry.stream.inference import model as model_mod
from geosentry.stream.inference import rules
from geosentry.stream.inference.model import TorchScriptDetector
from geosentry.training.export import exporter, export_model, export_tiny_picker, verify_export


class TwoLabelDetector(nn.Module):
    """A detector with two outputs per step (event, noise): ``(B, 2, N // 10)``."""

    def __init__(self, rows: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, rows, kernel_size=10, stride=10)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.conv(x))


def _export_detector(out: Path, rows: int, labels: tuple[str, ...]) -> tuple[Path, Path]:
    torch.manual_seed(0)
    return export_model(TwoLabelDetector(rows), name="multi", kind="detector",
                        sampling_rate_hz=100.0, components=("Z", "N", "E"), window_samples=500,
                        stride_samples=250, labels=labels, thresholds={"event": 0.5},
                        out_dir=out, output_step_samples=10)


def _cfg() -> DetectorConfig:
    return DetectorConfig(name="multi", type="model", path="x")  # type: ignore[call-arg]


def test_multi_label_detector_shape_rule_is_the_same_for_export_and_load(tmp_path: Path) -> None:
    """A detector with one output row per label: export used to demand one row whatever the
    labels (``(B, 1, N // step)``) while the service demanded one per label, so such a model
    could not be exported, and one with a single row failed at load. Now one rule."""
    assert exporter.expected_output_shape is rules.output_shape
    pt, _ = _export_detector(tmp_path / "two", rows=2, labels=("event", "noise"))
    det = TorchScriptDetector(_cfg(), pt, torch.device("cpu"))  # the service's probe agrees
    assert det.contract.labels == ("event", "noise")
    assert det.infer_array(np.zeros((3, 3, 500), np.float32)).shape == (3, 2, 50)
    # a single-row model under two labels: refused at export and at load alike
    with pytest.raises(AssertionError, match="output shape"):
        _export_detector(tmp_path / "bad", rows=1, labels=("event", "noise"))
    pt1, js1 = _export_detector(tmp_path / "one", rows=1, labels=("event",))
    raw = json.loads(js1.read_text())
    raw["labels"] = ["event", "noise"]
    js1.write_text(json.dumps(raw))
    with pytest.raises(ContractError, match="output shape"):
        TorchScriptDetector(_cfg(), pt1, torch.device("cpu"))


def _old_training_normalise(x: np.ndarray, method: str, demean: bool, eps: float) -> np.ndarray:
    """``training/data/windows.py``'s normalisation before it became the service's (kept here to
    show the one rule gives the same bits)."""
    x = np.asarray(x, dtype=np.float32)
    if demean:
        x = x - x.mean(axis=-1, keepdims=True)
    if method == "std":
        x = x / (x.std(axis=-1, keepdims=True) + eps)
    elif method == "peak":
        x = x / (np.abs(x).max(axis=-1, keepdims=True) + eps)
    return x.astype(np.float32)


@pytest.mark.parametrize("method", rules.NORMALISATIONS)
@pytest.mark.parametrize("demean", [True, False])
def test_one_normalisation_for_training_and_service(method: str, demean: bool) -> None:
    from geosentry.training.data import windows

    assert windows.normalise is rules.normalise
    x = np.random.default_rng(1).normal(3.0, 50.0, size=(4, 3, 1000))
    before = x.copy()
    got = rules.normalise(x, method, demean, 1e-8)
    assert got.dtype == np.float32 and np.array_equal(x, before)  # input untouched
    assert np.array_equal(got, _old_training_normalise(x, method, demean, 1e-8))
    with pytest.raises(ValueError, match="normalisation"):
        rules.normalise(x, "bogus")


def test_one_anomaly_score_for_training_and_service() -> None:
    """Training's ``mse_scores`` and the service's score of an autoencoder are the same numbers
    (numpy), and the torch form the precision check uses agrees."""
    from geosentry.training.models.autoencoder import ConvAutoencoder
    from geosentry.training.train.anomaly import mse_scores
    from geosentry.training.train.common import predict

    torch.manual_seed(0)
    net = ConvAutoencoder(window_samples=256, channels=(8, 8)).eval()
    x = rules.normalise(np.random.default_rng(2).normal(size=(5, 3, 256)))
    want = ((predict(net, x) - x) ** 2).mean(axis=(1, 2))
    assert np.array_equal(mse_scores(net, x), want)
    with torch.no_grad():
        t = rules.anomaly_scores(net(torch.from_numpy(x)), torch.from_numpy(x))
    assert isinstance(t, Tensor) and np.allclose(t.numpy(), want, rtol=1e-6)


def test_runnable_kinds_listed_once() -> None:
    from geosentry.stream import models

    assert model_mod.RUNNABLE_KINDS is rules.RUNNABLE_KINDS
    assert models.RUNNABLE is rules.RUNNABLE_KINDS
    assert contract_mod.KINDS is rules.KINDS
    assert set(rules.RUNNABLE_KINDS) < set(rules.KINDS)


def test_verify_export_is_the_service_check(tmp_path: Path) -> None:
    """``verify_export`` fails exactly where the service's ``load_contract`` does, with the
    service's message."""
    pt, js = export_tiny_picker(tmp_path)
    assert verify_export(pt) == contract_mod.load_contract(pt)
    renamed = pt.with_name("other.pt")
    pt.rename(renamed)
    js.rename(renamed.with_suffix(".json"))
    with pytest.raises(ContractError) as service:
        contract_mod.load_contract(renamed)
    with pytest.raises(AssertionError) as training:
        verify_export(renamed)
    assert str(training.value) == str(service.value) and "names file" in str(service.value)


def test_shipped_reports_a_broken_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A shipped contract that fails the service's check is listed with the problem (and
    logged), never used as a default detector, and ``geosentry models list`` shows it and exits
    1 instead of crashing; valid ones are listed as before."""
    from geosentry.stream import models
    from geosentry.stream.catalog import describe, list_models
    from geosentry.stream.cli import main

    export_tiny_picker(tmp_path, name="picker")
    _, js = export_tiny_picker(tmp_path / "b", name="broken")
    raw = json.loads(js.read_text())
    raw["kind"] = "classifier"
    raw["metrics"] = {"beats_stalta": True}
    (tmp_path / "broken.json").write_text(json.dumps(raw))
    (tmp_path / "broken.pt").write_bytes((tmp_path / "b" / "broken.pt").read_bytes())
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    with caplog.at_level(logging.WARNING):
        entries = models.shipped()
    assert [e["name"] for e in entries] == ["broken", "picker"]
    assert "kind" in entries[0]["_error"] and set(entries[0]) == {"name", "_path", "_error"}
    assert "broken" in caplog.text and "kind" in caplog.text
    assert entries[1]["kind"] == "picker" and "_error" not in entries[1]
    assert [t["name"] for t in models.default_detector_tables()] == ["stalta"]
    listed = {m["name"]: m for m in list_models()}
    assert listed["broken"]["error"] and listed["picker"]["kind"] == "picker"
    with pytest.raises(Exception, match="broken"):
        describe("broken")
    assert main(["models", "list"]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "picker" in out


def test_shipped_models_all_pass_the_check() -> None:
    from geosentry.stream import models

    entries = models.shipped()
    assert entries and all("_error" not in e for e in entries), entries
