"""Inference under load: batches inferred side by side give the same alerts as one worker, and
input beyond capacity is shed (counted, reported by health alerts), not queued without bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from geosentry.stream.config import load_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.metrics import Metrics
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.records import RawRecord, Window, now_ns
from geosentry.stream.supervision import ExitCode
from geosentry.stream.testing import (MemorySink, MemorySource, mseed_records, run_pipeline,
                                       synthetic_trace)


def _payloads(stations: int, seconds: float) -> list[bytes]:
    traces = [synthetic_trace(f"XX.S{i}..HH{c}", seconds, seed=10 * i + j, events_s=[12.0, 41.0])
              for i in range(stations) for j, c in enumerate("ZNE")]
    per_trace = [mseed_records(tr) for tr in traces]  # interleaved, as a live feed sends them
    return [recs[k] for k in range(max(map(len, per_trace))) for recs in per_trace if k < len(recs)]


async def _picks(workers: int, payloads: list[bytes]) -> tuple[list[tuple], Metrics]:
    sink, _, metrics = await run_pipeline(payloads, {
        "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                       "stride_s": 2.0}],
        "inference": {"max_batch": 4, "max_wait_s": 0.0, "workers": workers},
        "coincidence": {"enabled": False}})
    return [(a.station, a.phase, a.time_ns, round(a.score, 5)) for a in sink.alerts], metrics


async def test_parallel_workers_give_the_same_alerts_in_the_same_order() -> None:
    payloads = _payloads(stations=3, seconds=60)
    one, _ = await _picks(1, payloads)
    two, metrics = await _picks(2, payloads)
    assert one, "the picker should find the synthetic events"
    assert two == one
    batches = metrics.value("geosentry_inference_batch_size_count", detector="picker")
    assert batches > 4  # several batches, so two were in flight at once at some point


class SlowStaLta:
    """Fault injection: a real STA/LTA detector whose batches take ``delay_s`` longer."""

    def __init__(self, inner: object, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.name, self.spec, self.model = inner.name, inner.spec, inner.model  # type: ignore[attr-defined]
        self.ran = 0

    def process(self, windows: list[Window]) -> list:
        time.sleep(self.delay_s)
        self.ran += len(windows)
        return self.inner.process(windows)  # type: ignore[attr-defined]


class BurstThenTrickle(MemorySource):
    """A live feed: the first ``burst`` records at once, then one every ``gap_s``."""

    def __init__(self, payloads: list[bytes], burst: int, gap_s: float) -> None:
        super().__init__(payloads, live=True)
        self.burst, self.gap_s = burst, gap_s

    async def records(self) -> AsyncIterator[RawRecord]:
        for i, p in enumerate(self.payloads):
            if i >= self.burst:
                await asyncio.sleep(self.gap_s)
            yield RawRecord(p, now_ns())


async def test_overload_sheds_stale_windows_and_says_so() -> None:
    trace = synthetic_trace("XX.OVL..HHZ", 400, seed=3)
    payloads = mseed_records(trace)
    cfg = load_config_dict({"detectors": [{"name": "sta", "type": "stalta", "window_s": 20.0,
                                           "stride_s": 1.0, "lta_s": 5.0}],
                            "inference": {"max_batch": 1, "max_wait_s": 0.0, "max_lag_s": 0.3,
                                          "overload": "auto"}})
    slow = SlowStaLta(build_detectors(cfg)[0], delay_s=0.02)
    # ~50 windows/s of capacity; the burst cuts hundreds of windows at once, the trickle few
    source = BurstThenTrickle(payloads, burst=len(payloads) - 6, gap_s=0.4)
    sink, _, metrics = await run_pipeline([source], cfg, detectors=[slow])
    events = [a.details["event"] for a in sink.alerts if a.kind == "health" and a.station == "*"]
    assert events[:2] == ["overload_started", "overload_stopped"]
    shed = metrics.value("geosentry_windows_shed_total", detector="sta")
    windows = metrics.value("geosentry_windows_total", detector="sta")
    assert shed > 0 and slow.ran > 0
    assert shed + slow.ran == windows  # every window either ran or was counted as shed
    assert metrics.value("geosentry_overloaded", detector="sta") == 0


async def test_replays_are_never_shed() -> None:
    payloads = mseed_records(synthetic_trace("XX.RPL..HHZ", 200, seed=4))
    cfg = load_config_dict({"detectors": [{"name": "sta", "type": "stalta", "window_s": 20.0,
                                           "stride_s": 1.0, "lta_s": 5.0}],
                            "inference": {"max_batch": 1, "max_wait_s": 0.0, "max_lag_s": 0.05}})
    slow = SlowStaLta(build_detectors(cfg)[0], delay_s=0.005)
    _, _, metrics = await run_pipeline(payloads, cfg, detectors=[slow])
    windows = metrics.value("geosentry_windows_total", detector="sta")
    assert slow.ran == windows > 100
    assert metrics.value("geosentry_windows_shed_total", detector="sta") == 0


def _slow_replay(delay_s: float, shutdown_timeout_s: float) -> tuple[list[bytes], object,
                                                                     SlowStaLta]:
    payloads = mseed_records(synthetic_trace("XX.END..HHZ", 200, seed=8))
    cfg = replace(load_config_dict({
        "detectors": [{"name": "sta", "type": "stalta", "window_s": 20.0, "stride_s": 1.0,
                       "lta_s": 5.0}],
        "inference": {"max_batch": 1, "max_wait_s": 0.0}}), shutdown_timeout_s=shutdown_timeout_s)
    return payloads, cfg, SlowStaLta(build_detectors(cfg)[0], delay_s=delay_s)


async def test_a_replay_drains_its_whole_queue_after_the_input_ends() -> None:
    """An archive read at full speed ends with its windows still queued (up to
    ``max_pending_windows``): the drain takes as long as they need while they move. It used to
    stop ``shutdown_timeout_s`` after the input ended, with exit status 3 and the tail of the
    archive not processed (a stride-0.5 s picker over the Iceland swarm: 1435 of 9480 windows)."""
    payloads, cfg, slow = _slow_replay(delay_s=0.02, shutdown_timeout_s=0.5)
    t0 = time.monotonic()
    _, summary, metrics = await run_pipeline(payloads, cfg, detectors=[slow], timeout_s=120)
    assert summary.exit_code == ExitCode.OK and summary.undelivered_windows == 0
    assert slow.ran == metrics.value("geosentry_windows_total", detector="sta") > 150
    assert time.monotonic() - t0 > 4 * 0.5  # far longer than shutdown_timeout_s


async def test_a_stop_during_that_drain_is_still_bounded() -> None:
    payloads, cfg, slow = _slow_replay(delay_s=0.05, shutdown_timeout_s=1.0)
    pipeline = Pipeline(cfg, [MemorySource(payloads)], [MemorySink()], [slow])
    run = asyncio.ensure_future(pipeline.run())
    await asyncio.sleep(2.0)  # the input (read at once) has ended; ~9 s of windows queued
    assert pipeline._deadline.armed and not pipeline._deadline.requested
    pipeline.request_stop()
    t0 = time.monotonic()
    summary = await asyncio.wait_for(run, 30)
    assert time.monotonic() - t0 < 1.0 + 2.0
    assert summary.exit_code == ExitCode.UNDELIVERED and summary.undelivered_windows > 0


@pytest.mark.parametrize("bad", [{"overload": "drop"}, {"max_lag_s": 0}, {"workers": -1},
                                 {"max_data_latency_s": -1}])
def test_overload_settings_are_validated(bad: dict) -> None:
    from geosentry.stream.errors import ConfigError

    with pytest.raises(ConfigError, match="inference"):
        load_config_dict({"inference": bad})


async def test_data_latency_sheds_a_backlog_the_queue_cannot_see() -> None:
    """On a live feed, windows whose newest sample is older than ``max_data_latency_s`` on the
    wall clock are shed even when they waited in no queue (a station 2 hours behind here); the
    station with current data runs. Without the setting nothing is shed."""
    from obspy import UTCDateTime

    now = UTCDateTime(time.time())
    fresh = mseed_records(synthetic_trace("XX.NOW..HHZ", 60, start=str(now - 70), seed=5))
    behind = mseed_records(synthetic_trace("XX.OLD..HHZ", 60, start=str(now - 7270), seed=6))
    payloads = [p for pair in zip(fresh, behind) for p in pair]

    async def run(max_data_latency_s: float) -> tuple[Metrics, MemorySink, SlowStaLta]:
        cfg = load_config_dict({
            "detectors": [{"name": "sta", "type": "stalta", "window_s": 20.0, "stride_s": 5.0,
                           "lta_s": 5.0}],
            "inference": {"max_lag_s": 30.0, "overload": "shed",
                          "max_data_latency_s": max_data_latency_s}})
        det = SlowStaLta(build_detectors(cfg)[0], delay_s=0.0)
        sink, _, metrics = await run_pipeline(payloads, cfg, detectors=[det], live=True)
        return metrics, sink, det

    metrics, sink, det = await run(600.0)
    shed = metrics.value("geosentry_windows_shed_total", detector="sta")
    windows = metrics.value("geosentry_windows_total", detector="sta")
    assert shed == windows / 2 and det.ran == windows / 2  # every OLD window, no NOW window
    started = [a for a in sink.alerts if a.kind == "health" and a.station == "*"]
    assert started and started[0].details["event"] == "overload_started"
    assert started[0].details["data_latency_s"] > 7000
    assert started[0].details["max_data_latency_s"] == 600.0

    metrics, _, det = await run(0.0)  # off: the same feed is not shed
    assert metrics.value("geosentry_windows_shed_total", detector="sta") == 0
    assert det.ran == metrics.value("geosentry_windows_total", detector="sta")


async def test_a_stalled_sink_is_an_outage_not_overload() -> None:
    """A sink whose send hangs without failing (a SIGSTOPped broker: requests wait until it
    wakes) holds the windows that queued meanwhile: when it returns none of them is shed,
    though they waited far longer than ``max_lag_s`` (#16's frozen-broker case)."""
    from geosentry.stream.testing import FaultySink

    payloads = mseed_records(synthetic_trace("XX.STL..HHZ", 240, seed=7, events_s=[30.0]))
    cfg = load_config_dict({"detectors": [{"name": "sta", "type": "stalta", "window_s": 20.0,
                                           "stride_s": 1.0, "lta_s": 5.0}],
                            "inference": {"max_batch": 1, "max_wait_s": 0.0, "max_lag_s": 0.3,
                                          "overload": "shed"}})
    det = SlowStaLta(build_detectors(cfg)[0], delay_s=0.0)
    source = BurstThenTrickle(payloads, burst=len(payloads) // 3, gap_s=0.05)
    sink = FaultySink(stall_s=2.0)
    _, _, metrics = await run_pipeline([source], cfg, detectors=[det], sink=sink)
    assert sink.attempts >= 1 and sink.alerts, "the stalled send delivered"
    windows = metrics.value("geosentry_windows_total", detector="sta")
    assert metrics.value("geosentry_windows_shed_total", detector="sta") == 0
    assert det.ran == windows > 100
    assert metrics.value("geosentry_sink_stalls_total", sink="faulty") == 1
