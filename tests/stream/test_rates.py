"""Per-channel rate handling: a channel a detector cannot run at (stride, window or STA below a
sample, a window of absurd size, a rate outside the detector's range) is refused once per
instrument and detector with a ``health`` alert and a counter: never a traceback, never an
unbounded loop on the event loop."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import obspy
import pytest

from geosentry.stream.buffer.spec import MAX_WINDOW_SAMPLES, WindowSpec
from geosentry.stream.buffer.windows import Windower
from geosentry.stream.config import BufferConfig, DetectorConfig, load_config_dict
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.detectors.stalta import StaLtaDetector
from geosentry.stream.errors import ConfigError
from geosentry.stream.records import InstrumentId, Record, Window
from geosentry.stream.testing import mseed_records, run_pipeline, synthetic_trace

#: ObsPy's own valid 0.1 Hz record (MN.TNV..VHZ, 60 samples): stride 1 s rounds to 0 samples.
VHZ_FILE = (Path(obspy.__file__).resolve().parent / "io" / "mseed" / "tests" / "data"
            / "single_record_negative_sr_fact_and_mult.mseed")
STALTA = {"name": "stalta", "type": "stalta"}  # window 10 s, stride 1 s, STA 0.5 s, LTA 10 s
POLICY = BufferConfig(max_interpolate_gap_s=0.1, reorder_tolerance_s=0.0)
STALTA_ALONE = {"detectors": [STALTA], "coincidence": {"enabled": False}}


def _records(payloads: list[bytes]) -> list[Record]:
    return [r for i, p in enumerate(payloads) for r in decode_payload(p, arrival_ns=i)]


def _vhz_payloads() -> list[bytes]:
    """ObsPy's 0.1 Hz record followed by two hours of synthetic 0.1 Hz VHZ data."""
    return [VHZ_FILE.read_bytes()] + mseed_records(
        synthetic_trace("MN.TNV..VHZ", 7200.0, rate_hz=0.1, start="1991-02-22"))


def _feed(w: Windower, records: list[Record]) -> tuple[list[Window], list[tuple[str, str, str]]]:
    windows, events = [], []
    for rec in records:
        ws, es = w.push(rec)
        windows += ws
        events += [(e.sid, e.event.kind, e.event.detail) for e in es]
    ws, es = w.flush()
    return windows + ws, events + [(e.sid, e.event.kind, e.event.detail) for e in es]


@pytest.mark.timeout(30)
def test_a_0_1_hz_channel_is_refused_by_the_windower_not_looped_on() -> None:
    assert VHZ_FILE.exists(), VHZ_FILE
    spec = StaLtaDetector(load_config_dict({"detectors": [STALTA]}).detectors[0]).spec
    t0 = time.monotonic()
    windows, events = _feed(Windower([spec], POLICY), _records(_vhz_payloads()))
    assert time.monotonic() - t0 < 5
    assert windows == []
    assert events == [("MN.TNV..VH?", "rate_unsupported",
                       "stalta: stride_s 1 s is 0 samples at 0.1 Hz (needs >= 1)")]


@pytest.mark.timeout(30)
def test_the_cut_loop_never_spins_on_a_stride_of_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with the refusal bypassed, a stride that rounds to no time cannot loop."""
    monkeypatch.setattr(WindowSpec, "refusal", lambda self, rate_hz: None)
    spec = WindowSpec("d", ("Z",), 10.0, 1.0)
    windows, _ = _feed(Windower([spec], POLICY), _records(_vhz_payloads()))
    assert windows == []


@pytest.mark.timeout(60)
async def test_a_0_1_hz_channel_through_the_pipeline_is_one_health_alert() -> None:
    t0 = time.monotonic()
    sink, summary, metrics = await run_pipeline(_vhz_payloads(), STALTA_ALONE, timeout_s=30)
    assert time.monotonic() - t0 < 30
    assert [(a.kind, a.details["event"], a.station, a.channel) for a in sink.alerts] == [
        ("health", "rate_unsupported", "TNV", "VH?")]
    assert metrics.value("geosentry_records_rejected_total", reason="rate_unsupported") == 1
    assert summary.windows == 0


def _lhz(seconds: float = 1800.0) -> list[bytes]:
    return mseed_records(synthetic_trace("XX.LP..LHZ", seconds, rate_hz=1.0, events_s=[900.0]))


def test_a_1_hz_channel_is_refused_by_sta_lta_once() -> None:
    """STA 0.5 s is 0 samples at 1 Hz (was a ZeroDivisionError on every batch)."""
    det = StaLtaDetector(load_config_dict({"detectors": [STALTA]}).detectors[0])
    windows, events = _feed(Windower([det.spec], POLICY), _records(_lhz()))
    assert windows == []
    assert events == [("XX.LP..LH?", "rate_unsupported",
                       "stalta: sta_s 0.5 s is 0 samples at 1 Hz (needs >= 1)")]
    # called directly with such a window, the detector still does not divide by zero
    x = np.random.default_rng(0).normal(size=(1, 10)).astype(np.float32)
    w = Window("XX", "LP", "", ("LHZ",), 0, 1.0, x, 0, "stalta", True)
    assert det.process([w]) == [(w, [])]


async def test_a_1_hz_channel_through_the_pipeline_is_one_health_alert() -> None:
    sink, _, metrics = await run_pipeline(_lhz(), STALTA_ALONE, timeout_s=30)
    assert [(a.kind, a.details["event"]) for a in sink.alerts] == [("health", "rate_unsupported")]
    assert "sta_s 0.5 s is 0 samples at 1 Hz" in sink.alerts[0].details["detail"]
    assert metrics.value("geosentry_records_rejected_total", reason="rate_unsupported") == 1


def test_sta_lta_band_must_fit_below_nyquist() -> None:
    """A 1-20 Hz band-pass needs more than 2.2 Hz: a 2 Hz channel is refused, not run unfiltered."""
    cfg = DetectorConfig("s", "stalta", window_s=10.0, stride_s=1.0, bandpass_hz=(1.0, 20.0))
    spec = StaLtaDetector(cfg).spec
    refused = spec.refusal(2.0)
    assert refused is not None and refused[0] == "rate_unsupported" and "2.222 Hz" in refused[1]
    assert spec.refusal(2.5) is None and spec.refusal(100.0) is None


def test_every_rule_of_the_refusal() -> None:
    spec = WindowSpec("m", ("Z",), 30.0, 10.0, rate_hz=100.0)
    assert spec.refusal(20.0) is None and spec.refusal(1000.0) is None
    assert spec.refusal(10.0) == ("rate_too_low", "m: needs 100 Hz, channel has 10 Hz "
                                                  "(more than 5x upsampling refused)")
    big = WindowSpec("big", ("H",), 3600.0, 60.0)
    refused = big.refusal(1000.0)
    assert refused is not None and f"more than {MAX_WINDOW_SAMPLES}" in refused[1]
    assert big.refusal(1.0) is None
    ranged = WindowSpec("g", ("H",), 600.0, 60.0, min_rate_hz=1 / 60, max_rate_hz=10.0)
    assert ranged.refusal(100.0) is not None and ranged.refusal(1.0) is None
    for bad in (0.0, -1.0, math.nan, math.inf):
        assert WindowSpec("d", ("Z",), 10.0, 1.0).refusal(bad) is not None


def test_a_refused_rate_that_changes_to_a_runnable_one_runs() -> None:
    """Refused once per instrument and detector, but only while the rate is unusable."""
    spec = WindowSpec("d", ("Z",), 10.0, 1.0, lengths_s=(("sta_s", 0.5),))
    slow = _records(mseed_records(synthetic_trace("XX.A..HHZ", 600.0, rate_hz=1.0)))
    fast = _records(mseed_records(synthetic_trace("XX.A..HHZ", 60.0, rate_hz=100.0,
                                                  start="2024-01-01T00:10:00")))
    windows, events = _feed(Windower([spec], POLICY), slow + fast)
    assert [k for _, k, _ in events].count("rate_unsupported") == 1 and len(windows) > 40
    assert {w.sampling_rate_hz for w in windows} == {100.0}


@pytest.mark.parametrize("value", ["seismc", ["HHZ"], [], 3])
def test_bad_channels_name_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"detectors\[0\]\.channels"):
        load_config_dict({"detectors": [{**STALTA, "channels": value}]})


def test_an_instrument_no_detector_can_run_holds_no_data() -> None:
    """Refused everywhere: nothing is buffered for it, so it pins no input offset."""
    w = Windower([WindowSpec("d", ("Z",), 10.0, 1.0, lengths_s=(("sta_s", 0.5),))], POLICY)
    for rec in _records(_lhz(600.0)):
        w.push(rec)
    key = InstrumentId("XX", "LP", "", "LH")
    assert w.needed_ns(key) is None
    assert all(b.n_samples == 0 for b in w.instruments[key].buffers.values())
