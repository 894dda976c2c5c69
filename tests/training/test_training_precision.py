"""``evaluate precision``: the shipped models at bfloat16 vs float32 on held-out windows, run
through the service's own loader; verdicts written into (copies of) the contracts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from geosentry.stream.inference.contract import ModelContract
from geosentry.training.cli import main
from geosentry.training.evaluate import precision
from geosentry.training.paths import MODELS_DIR


@pytest.fixture
def models(tmp_path: Path) -> Path:
    out = tmp_path / "models"
    out.mkdir()
    for name in ("picker", "anomaly"):
        for ext in (".pt", ".json"):
            shutil.copy(MODELS_DIR / f"{name}{ext}", out / f"{name}{ext}")
    return out


def test_evaluate_precision_writes_report_and_contracts(no_shared: Path, models: Path,
                                                        tmp_path: Path) -> None:
    """Fallback data (no ../shared): the command runs end to end, reports both precisions per
    model, and records (or removes) ``precisions.bf16`` so the contract still loads."""
    for name in ("picker", "anomaly"):  # start from contracts that list nothing
        js = models / f"{name}.json"
        raw = json.loads(js.read_text())
        raw.pop("precisions", None)
        js.write_text(json.dumps(raw))
    out = tmp_path / "out"
    assert main(["evaluate", "precision", "--quick", "--models", str(models), "--out", str(out),
                 "--write-contracts"]) == 0
    report = json.loads((out / "precision.json").read_text())
    assert "bfloat16 vs float32" in (out / "precision.md").read_text()
    p, a = report["models"]["picker"], report["models"]["anomaly"]
    assert set(p["f1"]) == {"P 0.1s", "P 0.5s", "S 0.1s", "S 0.5s"}
    assert 0 < p["max_abs_probability_diff"] < 0.5 and a["max_relative_score_diff"] > 0
    for name, case in (("picker", p), ("anomaly", a)):
        c = ModelContract.load(models / f"{name}.json")
        assert ("bf16" in c.precisions) is case["accepted"]
        if case["accepted"]:
            assert c.precisions["bf16"]["tolerance"] == case["tolerance"] >= precision.MIN_TOLERANCE


def test_a_rejected_model_loses_its_bf16_entry(models: Path) -> None:
    precision.write_contract(models, "picker", {"accepted": False, "tolerance": 0.05}, "test")
    assert "bf16" not in ModelContract.load(models / "picker.json").precisions
    precision.write_contract(models, "picker", {"accepted": True, "tolerance": 0.05,
                                                "scores": {}, "max_metric_loss": 0.0}, "test")
    bf16 = ModelContract.load(models / "picker.json").precisions["bf16"]
    assert bf16["tolerance"] == 0.05 and "scores" not in bf16["evidence"]
