"""Clock policy (stream/buffer/clock.py): a record dated far in the future must never poison its
channel. Before the policy, one UH1 record stamped a year ahead reset the channel to that time
and every later (correct) UH1 record was dropped as a duplicate: the station went silent for
good. Real ObsPy recordings through the whole in-process pipeline (STA/LTA), in a replay and in
a live-mode stream."""

from __future__ import annotations

import io
import time

import numpy as np
import obspy
import pytest

from geosentry.stream.buffer.windows import Windower, WindowSpec
from geosentry.stream.config import BufferConfig, load_config_dict
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.demo import DEMO_BAND_HZ
from geosentry.stream.errors import ConfigError
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import NS_PER_S, Alert
from geosentry.stream.testing import MemorySink, mseed_records, run_pipeline, synthetic_trace, interleaved

YEAR_S = 365 * 86400


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return interleaved()


def _shifted(payload: bytes, seconds: float) -> bytes:
    """The same record (samples, channel) stamped ``seconds`` later."""
    tr = obspy.read(io.BytesIO(payload))[0]
    tr.stats.starttime += seconds
    out = mseed_records(tr)
    assert len(out) == 1
    return out[0]


def _uh1(payloads: list[bytes]) -> list[int]:
    return [i for i, p in enumerate(payloads) if b"UH1" in p[:20]]


async def _run(stream: list[bytes], live: bool = False) -> tuple[MemorySink, Metrics]:
    cfg = load_config_dict({"detectors": [{"name": "stalta", "type": "stalta",
                                           "bandpass_hz": list(DEMO_BAND_HZ)}]})
    sink, _, metrics = await run_pipeline(stream, cfg, live=live)
    return sink, metrics


def _station_ids(sink: MemorySink, station: str) -> set[str]:
    return {a.id for a in sink.alerts if a.station == station and a.kind != "health"}


def _health(sink: MemorySink) -> list[Alert]:
    return [a for a in sink.alerts
            if a.kind == "health" and a.details["event"] != "missing_component"]


@pytest.mark.parametrize("live", [False, True], ids=["replay", "live"])
async def test_a_record_a_year_ahead_is_rejected_and_the_station_keeps_flowing(
        payloads: list[bytes], live: bool) -> None:
    clean, clean_metrics = await _run(payloads, live)
    uh1 = _uh1(payloads)
    stream = list(payloads)
    # a year past the data (replay) / past the wall clock (live: the data is from 2010)
    t0 = obspy.read(io.BytesIO(payloads[uh1[5]]))[0].stats.starttime
    ahead = YEAR_S if not live else (time.time() - t0.timestamp) + YEAR_S
    for k in (5, len(uh1) // 2):  # twice: one health alert, two rejections counted
        stream.insert(uh1[k] + 1, _shifted(payloads[uh1[k]], ahead))
    sink, metrics = await _run(stream, live)

    health = _health(sink)
    assert [(a.station, a.details["event"]) for a in health] == [("UH1", "future")], health
    assert metrics.value("geosentry_records_rejected_total", reason="future") == 2
    assert metrics.value("geosentry_records_rejected_total", reason="duplicate") == 0
    # UH1 goes on exactly as without the bad records: every later window, every trigger
    assert _station_ids(sink, "UH1") == _station_ids(clean, "UH1") != set()
    assert (metrics.value("geosentry_windows_total", detector="stalta")
            == clean_metrics.value("geosentry_windows_total", detector="stalta"))
    assert sorted(a.id for a in sink.alerts if a.station == "*") == sorted(
        a.id for a in clean.alerts if a.station == "*")


async def test_replay_adopts_a_jump_that_later_records_confirm(payloads: list[bytes]) -> None:
    """A genuine long outage (or clock change) in a replay: every UH1 record from some point on
    is a day later. It is held for confirmation, then adopted (one reset_gap), never rejected:
    UH1 keeps producing windows after the jump."""
    uh1 = set(_uh1(payloads))
    cut = sorted(uh1)[len(uh1) // 2]
    stream = [(_shifted(p, 86400.0) if i in uh1 and i >= cut else p)
              for i, p in enumerate(payloads)]
    sink, metrics = await _run(stream)
    assert [(a.station, a.details["event"]) for a in _health(sink)] == [("UH1", "reset_gap")]
    assert metrics.value("geosentry_records_rejected_total", reason="future") == 0
    jump = _health(sink)[0]
    assert jump.score == pytest.approx(86400.0, abs=1.0)  # the gap, in seconds


async def test_replay_recovers_when_the_first_record_is_the_bad_one(payloads: list[bytes]) -> None:
    """Nothing to compare the first record with: the correct records after it are a jump back
    in time that they confirm themselves; the channel resets to them."""
    clean, _ = await _run(payloads)
    first = _uh1(payloads)[0]
    stream = list(payloads)
    stream[first] = _shifted(payloads[first], YEAR_S)
    stream.insert(first + 1, payloads[first])
    sink, metrics = await _run(stream)
    assert [(a.station, a.details["event"]) for a in _health(sink)] == [("UH1", "reset_gap")]
    assert "clock moved back" in _health(sink)[0].details["detail"]
    assert _station_ids(sink, "UH1") == _station_ids(clean, "UH1") != set()


def _records(start: str = "2024-01-01", seconds: float = 120.0) -> list:
    payloads = mseed_records(synthetic_trace("XX.A..HHZ", seconds, 100.0, start=start))
    return [r for p in payloads for r in decode_payload(p, arrival_ns=time.time_ns())]


def test_live_tolerance_is_against_the_wall_clock() -> None:
    """Live: a record up to max_future_s past the wall clock is accepted (clock skew), one
    further ahead is rejected; replays of future-dated data (simulations) are not judged by
    the wall clock."""
    now = obspy.UTCDateTime()
    policy = BufferConfig(max_future_s=60.0)
    spec = [WindowSpec("d", ("Z",), 10.0, 5.0)]
    for offset_s, live, rejected in ((30, True, False), (600, True, True), (600, False, False)):
        w = Windower(spec, policy, live=live)
        events = [e.event.kind for r in _records(str(now + offset_s), 10.0) for e in w.push(r)[1]]
        assert ("future" in events) == rejected, (offset_s, live, events)


def test_policy_off_and_config_validation() -> None:
    recs = _records()
    bad = recs[3]
    bad = type(bad)(bad.network, bad.station, bad.location, bad.channel,
                    bad.start_ns + YEAR_S * NS_PER_S, bad.sampling_rate_hz, bad.data,
                    bad.arrival_ns)
    spec = [WindowSpec("d", ("Z",), 10.0, 5.0)]
    off = Windower(spec, BufferConfig(reorder_tolerance_s=0.0, max_future_s=0.0))
    kinds = [e.event.kind for r in recs[:5] + [bad] + recs[5:] for e in off.push(r)[1]]
    assert kinds[0] == "reset_gap" and set(kinds[1:]) == {"duplicate"}  # the old poisoning
    on = Windower(spec, BufferConfig(reorder_tolerance_s=0.0))
    kinds = [e.event.kind for r in recs[:5] + [bad] + recs[5:] for e in on.push(r)[1]]
    assert kinds == ["future"]
    assert on.take_dropped() == []  # no SourceRef on these records
    assert np.isclose(load_config_dict({}).buffer.max_future_s, 60.0)
    for key, value in (("max_future_s", -1), ("clock_confirm_records", 0),
                       ("release_silent_s", "x")):
        with pytest.raises(ConfigError, match=f"buffer.{key}"):
            load_config_dict({"buffer": {key: value}})


def test_rejected_records_do_not_pin_the_committed_offset() -> None:
    """A record from the future is registered with the DeliveryTracker like any other (its
    end a year ahead would never be 'done'); once rejected it is forgotten, so the partition's
    offset moves past it as soon as the records before it are done."""
    from dataclasses import replace

    from geosentry.stream.delivery import DeliveryTracker
    from geosentry.stream.records import SourceRef

    recs = _records(seconds=60.0)
    bad = replace(recs[3], start_ns=recs[3].start_ns + YEAR_S * NS_PER_S)
    feed = [replace(r, ref=SourceRef("k", 0, i)) for i, r in enumerate(recs[:5] + [bad] + recs[5:])]
    w = Windower([WindowSpec("d", ("Z",), 10.0, 5.0)], BufferConfig())  # a replay
    tracker = DeliveryTracker()
    for r in feed:
        w.push(r)
        tracker.record(r.ref, Windower.instrument_key(r), r.end_ns)
    assert tracker.committable(w.needed_ns) == {"k": {0: 5}}  # held at the rejected record
    tracker.forget(w.take_dropped())
    # past it, up to the records the next window still needs (the last 10 s or so)
    assert 5 + 1 < tracker.committable(w.needed_ns)["k"][0] < len(feed)
