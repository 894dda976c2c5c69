"""One benchmark case = one Pipeline run (real decode -> windows -> inference -> alerts path)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import numpy as np

from bench.common import bench_precision
from bench.data import Load
from geosentry.stream.config import Config, load_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.metrics import Metrics
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.records import NS_PER_S, RawRecord, now_ns
from geosentry.stream.sources import FiniteSource
from geosentry.stream.testing import MemorySink, MemorySource

PICKER: dict[str, Any] = {"name": "picker", "type": "model", "path": "builtin:picker",
          "missing_components": "zeros"}
STALTA: dict[str, Any] = {"name": "stalta", "type": "stalta", "components": ["Z"], "window_s": 10.0,
          "stride_s": 1.0, "sta_s": 0.5, "lta_s": 10.0, "trigger_on": 3.5, "trigger_off": 1.0,
          "bandpass_hz": [1.0, 20.0]}


ANOMALY: dict[str, Any] = {"name": "anomaly", "type": "model", "path": "builtin:anomaly",
           "missing_components": "zeros"}


def config(detector: str, stride_s: float | None = None, **inference: Any) -> Config:
    """``picker`` (default stride: the contract's half window, 15 s), ``picker+anomaly`` (the
    seismic autoencoder beside it, at its contract's stride) or ``stalta`` (1 s)."""
    dets = [dict(d) for d in {"picker": [PICKER], "picker+anomaly": [PICKER, ANOMALY],
                              "stalta": [STALTA]}[detector]]
    if stride_s is not None:
        dets[0]["stride_s"] = stride_s
    raw: dict[str, Any] = {"detectors": dets, "sinks": ["jsonl:-"],
                           "inference": {"precision": bench_precision(), **inference}}
    return load_config_dict(raw)


class Pacing(TypedDict):
    """``run_case``'s ``paced``: the keyword arguments of :class:`PacedSource` after ``load``."""

    speed: float
    prefill_s: float
    deadline_s: NotRequired[float | None]


class PacedSource(FiniteSource):
    """Releases each record when its end time is due on the wall clock (``speed`` x real time).

    Records ending within the first ``prefill_s`` seconds of data are released at once (the
    buffers fill up to the first window without waiting 30 s of wall time). A paced record's
    ``arrival_ns`` is its due time, not the time the pipeline got round to reading it. ``lag_s``
    collects how late each record left the source relative to its due time: a growing lag means
    the pipeline does not keep up.
    """

    live = True  # the service treats it as a live feed (overload shedding applies)

    def __init__(self, load: Load, speed: float = 1.0, prefill_s: float = 0.0,
                 deadline_s: float | None = None, name: str = "paced") -> None:
        self.load = load
        self.deadline_s = deadline_s  # stop feeding this long (wall) after pacing started
        self.cut_short = False
        self.speed = speed
        self.prefill_s = prefill_s
        self.name = name
        self.lags: list[float] = []
        self.paced_from_ns = 0
        self.t_last = 0.0

    async def records(self) -> AsyncIterator[RawRecord]:
        due = np.maximum(self.load.rel_end_s - self.prefill_s, 0.0) / self.speed
        t0: float | None = None
        for p, d in zip(self.load.payloads, due):
            if self._stopping:
                return
            if d > 0:
                if t0 is None:  # pacing starts once the prefill has been handed over
                    t0 = time.monotonic()
                    self.paced_from_ns = now_ns()
                now = time.monotonic() - t0
                if self.deadline_s is not None and now > self.deadline_s:
                    self.cut_short = True  # fell behind: the rest would only grow the backlog
                    break
                if d > now:
                    await asyncio.sleep(d - now)
                    now = time.monotonic() - t0
                self.lags.append(now - d)
                # stamped when it was due, as a live feed's socket would have received it: a
                # backlog the service builds before reading counts as latency (and can be shed)
                yield RawRecord(p, self.paced_from_ns + round(d * NS_PER_S))
                continue
            yield RawRecord(p, now_ns())
        self.t_last = time.perf_counter()



@dataclass
class CaseResult:
    wall_s: float
    cpu_s: float
    records: int
    samples: int
    windows: int
    alerts: dict[str, int]
    latencies_s: list[float] = field(default_factory=list)
    latency_arrivals_ns: list[int] = field(default_factory=list)  # newest arrival, same order
    source_lag_s: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    since_ns: int = 0  # alerts counted for latency: newest sample arrived after this
    cut_short: bool = False
    shed: int = 0  # windows shed by the overload policy
    inference_s: float = 0.0  # summed wall time of inference batches (all workers)
    health_events: list[str] = field(default_factory=list)  # service-wide health alerts
    health_at_ns: list[int] = field(default_factory=list)  # when each was handed to the sink
    paced_from_ns: int = 0  # wall clock when pacing started (paced runs)


def fresh_state(detectors: list[Any]) -> None:
    """Forget per-station detector state between repeats (models stay loaded: loading is not
    what the benchmark measures)."""
    for d in detectors:
        if hasattr(d, "_state"):
            d._state.clear()
        if hasattr(d, "reset"):
            d.reset()


def run_case(load: Load, cfg: Config, paced: Pacing | None = None,
             sink: Any = None, detectors: list[Any] | None = None) -> CaseResult:
    """Run ``load`` through a fresh Pipeline; fed as fast as possible, or paced."""
    logging.getLogger("geosentry.stream").setLevel(logging.ERROR)
    dets = detectors if detectors is not None else build_detectors(cfg)
    sink = sink or MemorySink()
    src: Any = PacedSource(load, **paced) if paced else MemorySource(load.payloads)
    pipe = Pipeline(cfg, [src], [sink], dets, Metrics())

    async def go() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        await pipe.run()
        return time.perf_counter() - t0, time.process_time() - c0

    wall, cpu = asyncio.run(go())
    t_done = time.perf_counter()
    alerts = getattr(sink, "alerts", [])
    paced_from_ns = getattr(src, "paced_from_ns", 0)
    since = paced_from_ns + NS_PER_S  # paced alerts only (not the prefill's)
    timed = [a for a in alerts if a.kind != "health" and a.newest_arrival_ns >= since]
    lat = [(a.emitted_ns - a.newest_arrival_ns) / NS_PER_S for a in timed]
    res = CaseResult(wall, cpu, pipe.summary.records, load.samples, pipe.summary.windows,
                     dict(pipe.summary.alerts), lat)
    res.since_ns = since
    res.latency_arrivals_ns = [a.newest_arrival_ns for a in timed]
    res.shed = int(sum(pipe.metrics.value("geosentry_windows_shed_total", detector=d.name) or 0
                       for d in dets))
    res.inference_s = sum(pipe.metrics.value("geosentry_inference_batch_seconds_sum",
                                             detector=d.name) for d in dets)
    service_health = [a for a in alerts if a.kind == "health" and a.station == "*"]
    res.health_events = [str(a.details.get("event")) for a in service_health]
    res.health_at_ns = [a.emitted_ns for a in service_health]
    res.paced_from_ns = paced_from_ns
    if paced:
        res.source_lag_s = src.lags
        res.drain_s = t_done - src.t_last if src.t_last else 0.0
        res.cut_short = src.cut_short
    return res
