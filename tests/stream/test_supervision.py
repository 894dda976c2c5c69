"""Hardening of the delivery path: no task dies silently, a failing sink is retried or stops
the run in order, shutdown is bounded in every state, a failing window costs only its own
alerts, and the exit status tells what happened. Real ObsPy recordings through the real
pipeline; faults injected with ``geosentry.stream.testing`` doubles only where a real sink cannot fail on
demand."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import pytest

from geosentry.stream.config import Config, load_config_dict
from geosentry.stream.demo import demo_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.errors import SinkError, SourceError
from geosentry.stream.metrics import Metrics
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.records import Window
from geosentry.stream.sinks.jsonl import JsonlSink
from geosentry.stream.supervision import ExitCode
from geosentry.stream.testing import (FailingSource, FaultySink, MemorySource, demo_stream,
                                       mseed_records, run_pipeline)


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return [p for tr in demo_stream() for p in mseed_records(tr)]


def _cfg(stalta_only: bool = False, **top: object) -> Config:
    raw = demo_config_dict()
    if stalta_only:
        raw["detectors"] = [d for d in raw["detectors"] if d["type"] == "stalta"]
    return replace(load_config_dict(raw), **top)


async def _reference(payloads: list[bytes], stalta_only: bool = False) -> list[str]:
    sink, summary, _ = await run_pipeline(payloads, _cfg(stalta_only))
    assert summary.exit_code == ExitCode.OK
    return sorted(a.id for a in sink.alerts)


async def test_jsonl_to_dev_null_delivers_and_exits_ok(payloads: list[bytes]) -> None:
    # fsync on /dev/null raises EINVAL: it used to kill the delivery task and wedge the run
    cfg = _cfg()
    summary = await asyncio.wait_for(Pipeline(
        cfg, [MemorySource(payloads)], [JsonlSink("/dev/null")], build_detectors(cfg)).run(), 60)
    assert summary.exit_code == ExitCode.OK
    assert summary.alerts["detection"] > 0


async def test_missing_sink_folder_is_a_one_line_start_up_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink = JsonlSink(str(tmp_path / "no" / "such" / "alerts.jsonl"))
    with pytest.raises(SinkError, match="cannot open") as info:
        await sink.start()
    assert not info.value.retriable


async def test_sink_outage_is_retried_and_nothing_is_lost(payloads: list[bytes]) -> None:
    want = await _reference(payloads, stalta_only=True)
    cfg = _cfg(stalta_only=True)
    sink, summary, metrics = await run_pipeline(payloads, cfg, sink=FaultySink(fail_first=3),
                                                timeout_s=120)
    assert summary.exit_code == ExitCode.OK
    assert sorted({a.id for a in sink.alerts}) == sorted(set(want))
    assert metrics.value("geosentry_sink_errors_total", sink="faulty") == 3


async def test_broken_sink_stops_the_run_with_a_failure_status(
        payloads: list[bytes], caplog: pytest.LogCaptureFixture) -> None:
    # an exception outside the retry policy used to end the deliver task without a word, and
    # the drain then waited for ever
    cfg = _cfg(shutdown_timeout_s=5.0)
    sink = FaultySink(error=RuntimeError("sink bug"))
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR):
        _, summary, _ = await run_pipeline(payloads, cfg, sink=sink, timeout_s=60)
    assert time.monotonic() - t0 < 30
    assert summary.exit_code != ExitCode.OK
    assert any("sink bug" in f for f in summary.failures)
    assert "sink bug" in caplog.text


async def test_stop_with_a_sink_that_never_recovers_is_bounded(payloads: list[bytes]) -> None:
    cfg = _cfg(shutdown_timeout_s=2.0)
    sink = FaultySink(fail_first=10**9)
    pipeline = Pipeline(cfg, [MemorySource(payloads, delay_s=0.01)], [sink],
                        build_detectors(cfg))
    run = asyncio.ensure_future(pipeline.run())
    await asyncio.sleep(3.0)
    pipeline.request_stop()
    t0 = time.monotonic()
    summary = await asyncio.wait_for(run, 30)
    assert time.monotonic() - t0 < 2.0 + 5.0
    assert summary.exit_code == ExitCode.UNDELIVERED
    assert summary.undelivered_windows > 0


async def test_stop_while_a_sink_hangs_is_bounded_and_the_watchdog_reports(
        payloads: list[bytes], caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(shutdown_timeout_s=2.0, watchdog_s=1.5)
    metrics = Metrics()
    pipeline = Pipeline(cfg, [MemorySource(payloads)], [FaultySink(hang=True)],
                        build_detectors(cfg), metrics)
    run = asyncio.ensure_future(pipeline.run())
    with caplog.at_level(logging.ERROR):
        for _ in range(100):
            await asyncio.sleep(0.1)
            if metrics.value("geosentry_watchdog_stalls_total"):
                break
    assert metrics.value("geosentry_watchdog_stalls_total") == 1
    assert "watchdog:" in caplog.text and "--- task deliver-" in caplog.text
    pipeline.request_stop()
    summary = await asyncio.wait_for(run, 30)
    assert summary.exit_code == ExitCode.UNDELIVERED


async def test_failing_source_ends_with_a_failure_status(payloads: list[bytes]) -> None:
    sink, summary, _ = await run_pipeline(
        [FailingSource(payloads[:20], SourceError("feed broke")), MemorySource(payloads)],
        _cfg(), timeout_s=60)
    assert summary.exit_code == ExitCode.FAILED
    assert any("feed broke" in f for f in summary.failures)
    assert sink.alerts  # the other source kept flowing


class _Poisoned:
    """Wraps a detector; raises on any batch holding a window of ``station``."""

    def __init__(self, inner, station: str | None) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.station = inner, station
        self.name, self.spec, self.model = inner.name, inner.spec, inner.model

    def process(self, windows: list[Window]):  # type: ignore[no-untyped-def]
        if self.station is None or any(w.station == self.station for w in windows):
            raise FloatingPointError(f"poisoned window of {self.station}")
        return self.inner.process(windows)


async def test_failing_window_costs_only_its_own_alerts(payloads: list[bytes]) -> None:
    want = await _reference(payloads, stalta_only=True)
    cfg = _cfg(stalta_only=True)
    cfg = replace(cfg, inference=replace(cfg.inference, max_batch=64, max_wait_s=0.2))
    dets = [_Poisoned(d, "UH1") for d in build_detectors(cfg)]
    sink, summary, metrics = await run_pipeline(payloads, cfg, detectors=dets)  # type: ignore[arg-type]
    got = {a.id for a in sink.alerts if a.station not in ("UH1", "*")}
    assert got and got <= set(want)  # the other stations' alerts, exactly as without the fault
    others = [a for a in sink.alerts if a.kind == "detection" and a.station != "*"]
    assert {a.station for a in others} >= {"UH2", "UH3", "UH4"}
    assert metrics.value("geosentry_inference_errors_total", detector="stalta") > 0
    assert summary.exit_code == ExitCode.OK  # one station failing is counted, not fatal


async def test_detector_failing_on_every_window_is_a_failure(payloads: list[bytes]) -> None:
    cfg = _cfg()
    dets = [_Poisoned(d, None) for d in build_detectors(cfg)]
    _, summary, _ = await run_pipeline(payloads, cfg, detectors=dets)  # type: ignore[arg-type]
    assert summary.exit_code == ExitCode.FAILED
    assert any("failed on every window" in f for f in summary.failures)


async def test_sink_outage_on_a_live_feed_sheds_nothing(payloads: list[bytes]) -> None:
    # windows that waited for a sink used to be shed as overload (alerts lost for good)
    want = await _reference(payloads, stalta_only=True)
    cfg = _cfg(stalta_only=True)
    cfg = replace(cfg, inference=replace(cfg.inference, overload="shed", max_lag_s=0.3))
    sink, summary, metrics = await run_pipeline(  # ~3.5 s of outage, > max_lag_s
        [MemorySource(payloads, delay_s=0.002, live=True)], cfg, sink=FaultySink(fail_first=3),
        timeout_s=120)
    assert metrics.value("geosentry_windows_shed_total", detector="stalta") == 0
    assert summary.exit_code == ExitCode.OK
    assert {a.id for a in sink.alerts} == set(want)
