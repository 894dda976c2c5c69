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


def test_service_runs_shipped_geomag_model_on_iaga() -> None:
    """The service loads ``builtin:anomaly-geomag``, cuts H, E, Z windows from an IAGA-2002 file
    (D converted to E by its decoder) and alarms on a 40 nT step but not on the quiet hours."""
    import asyncio
    from dataclasses import replace

    from stream.config import load_config_dict
    from stream.decode.iaga import elements_to_mseed, parse_iaga, read_text
    from stream.detectors.factory import build_detectors
    from stream.pipeline import Pipeline
    from stream.testing import MemorySink, MemorySource
    from training_shared import require_shared

    if not (MODELS_DIR / "anomaly-geomag.pt").exists():
        pytest.skip("anomaly-geomag not shipped")
    path = require_shared("geomag/intermagnet-1s-2014-04") / "bou20140408vsec.sec.gz"
    quiet = parse_iaga(read_text(path))
    quiet = replace(quiet, elements={k: v[:7200] for k, v in quiet.elements.items()})  # 00-02 UT
    stepped = {k: v.copy() for k, v in quiet.elements.items()}
    stepped["H"][3900:] += 40.0
    cfg = load_config_dict({"detectors": [{"name": "ae", "type": "model",
                                           "path": "builtin:anomaly-geomag"}],
                            "coincidence": {"enabled": False}})

    def alerts(f) -> list:  # type: ignore[no-untyped-def]
        sink = MemorySink()
        asyncio.run(Pipeline(cfg, [MemorySource(elements_to_mseed(f))], [sink],
                             build_detectors(cfg)).run())
        return [a for a in sink.alerts if a.kind == "anomaly"]

    assert alerts(quiet) == []
    hits = alerts(replace(quiet, elements=stepped))
    assert hits and all(a.details["components"] == "HEZ" for a in hits)
