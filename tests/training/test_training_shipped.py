"""The model files shipped in ``stream/models`` match their contracts and run as promised."""

from __future__ import annotations

import pytest
import torch

from training.export import verify_export
from training.paths import MODELS_DIR

SHIPPED = ("picker", "detector", "anomaly", "anomaly-geomag", "generator")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_contract(name: str) -> None:
    pt = MODELS_DIR / f"{name}.pt"
    if not pt.exists():
        pytest.skip(f"{pt} not shipped yet (python -m training train ...)")
    c = verify_export(pt)
    model = torch.jit.load(str(pt), map_location="cpu").eval()
    with torch.no_grad():
        if c.kind == "generator":
            z = torch.randn(2, int(model.latent_dim))
            y = model(z, torch.tensor([0, 1]))
            assert y.shape == (2, len(c.components), c.window_samples)
            return
        x = torch.randn(2, len(c.components), c.window_samples)
        x[1, 1:] = 0.0  # vertical-only station: missing components are zeros
        y = model(x)
    expected = {"picker": (2, len(c.labels), c.window_samples),
                "detector": (2, 1, c.window_samples // c.output_step_samples),
                "anomaly": (2, len(c.components), c.window_samples)}[c.kind]
    assert tuple(y.shape) == expected and torch.isfinite(y).all()
    assert c.metrics, "shipped models carry their evaluation metrics"
    if c.kind == "anomaly":
        assert "anomaly" in c.thresholds
