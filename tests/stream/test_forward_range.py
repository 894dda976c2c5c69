"""Decoding only the scored stretch of each window (``forward_range``) changes no alert.

The shipped picker runs on ObsPy's real BW.UH* recordings through the whole pipeline, once as
shipped (its contract has ``forward_range``: only each window's owned stretch and a second either
side are decoded) and once told to decode whole windows; the picks must be the same, at the
throughput stride (half a window) and at the latency stride (1 s), with low thresholds so that
many peaks, some near the edges of owned stretches, are compared.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stream.config import load_config_dict
from stream.detectors.factory import build_detectors
from stream.pipeline import Pipeline
from stream.records import Window
from stream.testing import MemorySink, MemorySource, demo_stream, mseed_records

pytest.importorskip("training.models.cnn")


def _picks(stride_s: float, whole_windows: bool) -> list[tuple[str, str, int, float]]:
    cfg = load_config_dict({
        "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                       "stride_s": stride_s, "missing_components": "zeros",
                       "thresholds": {"P": 0.1, "S": 0.1}}],
        "inference": {"precision": "fp32", "max_batch": 16}})
    dets = build_detectors(cfg)
    assert dets[0].contract.forward_range
    if whole_windows:
        dets[0].contract = dataclasses.replace(dets[0].contract, forward_range=False)
    payloads = [p for tr in demo_stream() for p in mseed_records(tr)]
    sink = MemorySink()
    import asyncio

    asyncio.run(Pipeline(cfg, [MemorySource(payloads)], [sink], dets).run())
    return sorted((a.station, a.phase or "", a.time_ns, round(a.score, 4))
                  for a in sink.alerts if a.kind == "pick")


@pytest.mark.parametrize("stride_s", [15.0, 1.0])
def test_owned_stretch_decoding_gives_the_same_picks(stride_s: float) -> None:
    ranged, whole = _picks(stride_s, False), _picks(stride_s, True)
    assert len(whole) >= 6  # enough picks to compare (3 network events on 4 stations)
    assert [p[:3] for p in ranged] == [p[:3] for p in whole]
    np.testing.assert_allclose([p[3] for p in ranged], [p[3] for p in whole], atol=2e-4)


def test_batch_decodes_the_union_of_its_windows_ranges() -> None:
    """A stream's first window owns everything before its stride: a batch holding one decodes
    from sample 0; a batch of steady-state windows decodes their stretch only."""
    cfg = load_config_dict({"detectors": [{"name": "picker", "type": "model",
                                           "path": "builtin:picker", "stride_s": 1.0}],
                            "inference": {"precision": "fp32"}})
    det = build_detectors(cfg)[0]
    rng = np.random.default_rng(0)

    def window(first: bool) -> Window:
        return Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0,
                      rng.normal(size=(3, 3001)).astype(np.float32), 0, "picker", first)

    steady = det.infer([window(False), window(False)])
    # owned: the second ending 14.5 s before the end (3001 samples); 1 s of peak context each side
    assert (steady.start, steady.values.shape[-1]) == (1351, 300)
    mixed = det.infer([window(False), window(True)])
    assert (mixed.start, mixed.values.shape[-1]) == (0, 1651)
    with torch.inference_mode():
        x = torch.from_numpy(det.normalise(np.stack([window(False).data])))
        full = det.module(x).numpy()
        part = det.module.forward_range(x, 1350, 1650).numpy()
    np.testing.assert_allclose(part, full[:, :, 1350:1650], atol=1e-5)
