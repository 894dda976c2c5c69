"""Decoding only the scored stretch of each window (``forward_range``) changes no alert.

The shipped picker runs on ObsPy's real BW.UH* recordings through the whole pipeline, once as
shipped (its contract has ``forward_range``: only each window's owned stretch and a second either
side are decoded) and once told to decode whole windows; the picks must be the same, at the
throughput stride (half a window) and at the latency stride (1 s), with low thresholds so that
many peaks, some near the edges of owned stretches, are compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geosentry.stream.config import load_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.inference.model import ModelOutputs
from geosentry.stream.records import Window
from geosentry.stream.testing import demo_stream, mseed_records, run_pipeline

pytest.importorskip("geosentry.training.models.cnn")


def _picks(stride_s: float, whole_windows: bool) -> list[tuple[str, str, int, float]]:
    cfg = load_config_dict({
        "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                       "stride_s": stride_s, "missing_components": "zeros",
                       "thresholds": {"P": 0.1, "S": 0.1}}],
        "inference": {"precision": "fp32", "max_batch": 16}})
    dets = build_detectors(cfg)
    assert dets[0].contract.forward_range and dets[0].decodes_range
    dets[0].decodes_range = not whole_windows
    payloads = [p for tr in demo_stream() for p in mseed_records(tr)]
    import asyncio

    sink, _, _ = asyncio.run(run_pipeline(payloads, cfg, detectors=dets))
    return sorted((a.station, a.phase or "", a.time_ns, round(a.score, 4))
                  for a in sink.alerts if a.kind == "pick")


def test_peak_near_a_cut_is_scored_on_the_whole_window() -> None:
    """Peak finding keeps picks a separation apart, so a peak just outside a decoded range could
    change which peaks inside survive. When a label has no quiet stretch (a separation below
    its threshold) between a cut and the owned stretch, the window is decoded whole and scored:
    here the decoded range is replaced by a silent one with peaks every 0.2 s from its left cut
    to the owned second, and the picks are the whole window's (a range with nothing near its
    cuts is scored as decoded)."""
    cfg = load_config_dict({"detectors": [{"name": "picker", "type": "model",
                                           "path": "builtin:picker", "stride_s": 1.0,
                                           "thresholds": {"P": 0.1, "S": 0.1}}],
                            "inference": {"precision": "fp32"}})
    det = build_detectors(cfg)[0]
    tr = demo_stream()[0]  # 50 Hz: resample the event stretch to the model's 100 Hz
    tr.interpolate(100.0)
    i0 = int((tr.stats.npts - 3001) // 2)
    while True:  # a window whose owned second holds a pick
        data = np.zeros((3, 3001), np.float32)
        data[0] = tr.data[i0:i0 + 3001]
        w = Window("BW", "UH1", "", ("HHZ", "", ""), 0, 100.0, data, 0, "picker")
        full = det.infer_array(data[None])
        whole = det.score([w], ModelOutputs.whole(full))[0][1]
        det._state.clear()
        if whole or i0 <= 100:
            break
        i0 -= 100
    assert whole, "no pick in any window tried"
    part = det.infer([w])
    assert part.starts[0] > 0
    silent = np.zeros_like(part.values[0])  # a decoded range with no pick in it: scored as is
    assert det.score([w], ModelOutputs([silent], part.starts))[0][1] == []
    det._state.clear()
    lo = w.data.shape[-1] - round(det._tail_s * 100) - 100 - part.starts[0]  # owned, in range
    silent[0, 0:lo:20] = 0.99  # P peaks from the left cut up to the owned second: a chain only
    # the whole window can resolve
    scored = det.score([w], ModelOutputs([silent], part.starts))[0][1]
    assert [(a.phase, a.time_ns) for a in scored] == [(a.phase, a.time_ns) for a in whole]


@pytest.mark.parametrize("stride_s", [15.0, 1.0])
def test_owned_stretch_decoding_gives_the_same_picks(stride_s: float) -> None:
    ranged, whole = _picks(stride_s, False), _picks(stride_s, True)
    assert len(whole) >= 6  # enough picks to compare (3 network events on 4 stations)
    assert [p[:3] for p in ranged] == [p[:3] for p in whole]
    np.testing.assert_allclose([p[3] for p in ranged], [p[3] for p in whole], atol=2e-4)


def test_each_window_decodes_its_own_range() -> None:
    """A stream's first window owns everything before its stride, so it is decoded from sample
    0; steady-state windows in the same batch still decode their stretch only (and so give the
    same outputs whichever windows share their batch)."""
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
    assert steady.starts == (1351, 1351) and [v.shape[-1] for v in steady.values] == [300, 300]
    mixed = det.infer([window(False), window(True)])  # each window decoded on its own range
    assert mixed.starts == (1351, 0) and [v.shape[-1] for v in mixed.values] == [300, 1651]
    with torch.inference_mode():
        x = torch.from_numpy(det.normalise(np.stack([window(False).data])))
        full = det.module(x).numpy()
        part = det.module.forward_range(x, 1350, 1650).numpy()
    np.testing.assert_allclose(part, full[:, :, 1350:1650], atol=1e-5)
