"""A model detector's deployment options: ``lookahead_s`` (how much data a window holds after
the stretch it reports on: early warning) and ``highpass_hz`` (a zero-phase high-pass before
the model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geosentry.stream.config import DetectorConfig
from geosentry.stream.detectors.registry import parse_detector
from geosentry.stream.errors import ConfigError, ContractError
from geosentry.stream.inference.model import TorchScriptDetector
from geosentry.stream.testing import demo_stream, mseed_records, run_pipeline

training_export = pytest.importorskip("geosentry.training.export.exporter")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    pt, _ = training_export.export_tiny_picker(tmp_path)  # window 4 s at 100 Hz
    return pt


@pytest.mark.parametrize("key, value, match", [
    ("lookahead_s", 0.5, "lookahead_s.*>= 1.0"),
    ("lookahead_s", "2", "lookahead_s.*number"),
    ("highpass_hz", 0.0, "highpass_hz.*> 0"),
])
def test_bad_values_are_refused_naming_the_key(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_detector(0, {"name": "p", "type": "model", "path": "builtin:picker", key: value})


def test_lookahead_places_the_reported_stretch(tiny: Path) -> None:
    """Default: the stretch a window owns is centred; with ``lookahead_s`` it ends that far
    before the window's end, and only it (plus peak-finding context) is decoded."""
    cpu = torch.device("cpu")
    centred = TorchScriptDetector(DetectorConfig("p", "model", path="x", stride_s=0.5), tiny, cpu)
    early = TorchScriptDetector(DetectorConfig("p", "model", path="x", stride_s=0.5,
                                               lookahead_s=1.0), tiny, cpu)
    assert centred.spec.report_lag_s == pytest.approx(1.75)  # (4 - 0.5) / 2
    assert early.spec.report_lag_s == 1.0
    # owned [250, 300) of 400 samples, decoded with 1 s of context either side
    assert early.decode_range(400, first=False) == (150, 400)
    with pytest.raises(ContractError, match="lookahead_s 3.8 \\+ stride_s 0.5 exceed"):
        TorchScriptDetector(DetectorConfig("p", "model", path="x", stride_s=0.5,
                                           lookahead_s=3.8), tiny, cpu)
    with pytest.raises(ContractError, match="Nyquist"):
        TorchScriptDetector(DetectorConfig("p", "model", path="x", highpass_hz=60.0), tiny, cpu)


def test_highpass_removes_what_the_model_would_otherwise_see(tiny: Path) -> None:
    cpu = torch.device("cpu")
    det = TorchScriptDetector(DetectorConfig("p", "model", path="x", highpass_hz=2.0), tiny, cpu)
    plain = TorchScriptDetector(DetectorConfig("p", "model", path="x"), tiny, cpu)
    t = np.arange(400) / 100.0
    swell = 50.0 * np.sin(2 * np.pi * 0.2 * t)       # microseism-like, 50x the signal
    signal = np.sin(2 * np.pi * 10.0 * t)
    x = np.stack([swell + signal] * 3)[None]
    clean = plain.normalise(np.stack([signal] * 3)[None])
    assert np.abs(det.normalise(x) - clean)[..., 50:350].max() < 0.05
    assert np.abs(plain.normalise(x) - clean)[..., 50:350].max() > 0.5


async def test_shipped_picker_picks_the_same_with_a_short_lookahead() -> None:
    """ObsPy's BW.UH recordings through the shipped picker: reporting each stretch 2 s before
    a window's end (stride 1 s) instead of centred (14.5 s) finds the same P picks."""
    payloads = [p for tr in demo_stream() for p in mseed_records(tr)]

    async def p_picks(**options: float) -> list[float]:
        sink, _, _ = await run_pipeline(payloads, {
            "coincidence": {"enabled": False},
            "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                           "missing_components": "zeros", **options}]})
        return sorted(a.time_ns / 1e9 for a in sink.alerts if a.kind == "pick" and a.phase == "P")

    centred = await p_picks()
    early = await p_picks(stride_s=1.0, lookahead_s=2.0)
    assert len(centred) >= 8
    # nothing where a stream's first window's flat padding meets its first sample (the step
    # once gave a pick at every stream's start, and after every gap)
    starts = [tr.stats.starttime.timestamp for tr in demo_stream()]
    assert not [t for t in centred + early if min(abs(t - s) for s in starts) < 1.0]

    def near(a: list[float], b: list[float]) -> float:
        return sum(any(abs(x - y) <= 0.1 for y in b) for x in a) / len(a)

    assert near(centred, early) >= 0.8 and near(early, centred) >= 0.8, (centred, early)


async def test_the_end_of_a_stream_is_picked_too() -> None:
    """ObsPy's BW.UH recordings cut 4 s after each station's first P (at 16:24:33-34): the grid's
    windows own the streams up to 16:24:22.5 only (30 s windows every 15 s); the stream's last
    window, ending on its last sample, picks the four P at the times the whole recordings give."""
    import obspy

    async def p_picks(st: obspy.Stream) -> list[tuple[str, float]]:
        sink, _, _ = await run_pipeline([p for tr in st for p in mseed_records(tr)], {
            "coincidence": {"enabled": False},
            "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                           "missing_components": "zeros"}]})
        return sorted((a.station, a.time_ns / 1e9) for a in sink.alerts
                      if a.kind == "pick" and a.phase == "P")

    whole = demo_stream()
    first: dict[str, float] = {}
    for sta, t in await p_picks(whole):
        first.setdefault(sta, t)
    assert len(first) == 4
    cut = whole.copy()
    for tr in cut:
        tr.trim(endtime=obspy.UTCDateTime(first[tr.stats.station] + 4.0))
    got = await p_picks(cut)
    assert [s for s, _ in got] == sorted(first), got
    assert all(abs(t - first[s]) <= 0.02 for s, t in got), (got, first)


@pytest.mark.shared
async def test_shipped_picker_does_not_pick_where_zeros_meet_the_data(shared_data) -> None:  # type: ignore[no-untyped-def]
    """A PhaseNet record whose vertical is zeros for its first 20.08 s (an event cut padded with
    zeros) through the shipped picker: the step from the zeros into the data was a P pick
    (score 0.63); the earthquake's P (30.00 s) and S (34.62 s) are still picked."""
    import obspy

    name = "NC_GCR_1985032323281663_01"
    rec = np.load(shared_data(f"phasenet/waveform_train/{name}.npz"))
    z = np.round(rec["data"][:, 2]).astype(np.int32)
    assert np.all(z[:2008] == 0) and z[2008] != 0
    start = obspy.UTCDateTime("1985-03-23T23:28:16.63")
    tr = obspy.Trace(z, header={"network": "NC", "station": "GCR", "channel": "EHZ",
                                "starttime": start, "sampling_rate": 100.0})
    sink, _, _ = await run_pipeline(mseed_records(tr), {
        "coincidence": {"enabled": False},
        "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                       "missing_components": "zeros"}]})
    picks = sorted((round(a.time_ns / 1e9 - start.timestamp, 2), a.phase)
                   for a in sink.alerts if a.kind == "pick")
    assert not [t for t, _ in picks if abs(t - 20.08) < 1.0], picks
    assert any(ph == "P" and abs(t - 30.0) <= 0.1 for t, ph in picks), picks
    assert any(ph == "S" and abs(t - 34.62) <= 0.2 for t, ph in picks), picks
