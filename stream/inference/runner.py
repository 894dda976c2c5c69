"""Micro-batching of windows across stations, with overload shedding.

Windows queue up per detector (bounded: a full queue makes ingestion wait, i.e. backpressure).
A batch closes at ``max_batch`` windows or ``max_wait_s`` after its first window, whichever comes
first. A detector that splits its work into ``infer`` (thread-safe, e.g. a TorchScript forward
pass) and ``score`` (stateful, per station) gets up to ``workers`` batches inferred side by side
in worker threads; scoring and delivery then happen strictly in batch order, so per-station
state and alert order are the same as with one worker. The worker threads can be one pool
shared by every detector (``executor``: the pipeline passes one with a thread per core), so two
models on two cores run two forward passes at a time, not four fighting for the cores. Other detectors run ``process`` one batch
at a time in their own thread.

Overload (``shed_after_s`` set): a window that waited longer than that for inference is *shed*,
oldest first (with ``max_data_latency_s`` also one whose newest sample is older than that on the
wall clock: on a live feed that is a backlog building up before the queue, in decoding or in the
network, which the wait in the queue cannot see): it is not run, it is counted in
``geosentry_windows_shed_total``, and the first shed window and, once no window has gone stale
for ``shed_after_s`` (hysteresis), the next on-time window each produce a ``health`` alert
(``overload_started`` / ``overload_stopped``). Shedding keeps latency bounded when input exceeds
capacity; without it (replays) the queue bound throttles the source instead and nothing is shed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from geosentry.stream.detectors.base import Detector, SplitDetector
from geosentry.stream.errors import GeosentryError
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import NS_PER_S, Alert, Window
from geosentry.stream.supervision import supervise

log = logging.getLogger(__name__)
Results = list[tuple[Window, list[Alert]]]
Handler = Callable[[Results, list[int]], Awaitable[None]]
OverloadHandler = Callable[[str, bool, dict[str, Any]], Awaitable[None]]


def inference_workers(configured: int) -> int:
    """``inference.workers``, with 0 meaning one per usable core (at most 4)."""
    if configured:
        return configured
    return max(1, min(4, len(os.sched_getaffinity(0))))


def splits_inference(detector: Detector) -> bool:
    """True when ``detector`` has a thread-safe ``infer`` and an ordered ``score`` step."""
    return isinstance(detector, SplitDetector)


class BatchRunner:
    def __init__(self, detector: Detector, handler: Handler, metrics: Metrics, max_batch: int,
                 max_wait_s: float, max_pending: int, workers: int = 1,
                 shed_after_s: float | None = None, max_data_latency_s: float | None = None,
                 on_overload: OverloadHandler | None = None,
                 executor: ThreadPoolExecutor | None = None) -> None:
        self.detector = detector
        self.handler = handler
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        #: the detector when it splits its work into ``infer`` + ``score`` (else None)
        self._splitter = detector if isinstance(detector, SplitDetector) else None
        self._split = self._splitter is not None
        self.workers = max(1, workers) if self._split else 1
        self.shed_after_ns = None if shed_after_s is None else int(shed_after_s * NS_PER_S)
        self.max_age_ns = (int(max_data_latency_s * NS_PER_S)
                           if self.shed_after_ns is not None and max_data_latency_s else None)
        self.on_overload = on_overload
        self.queue: asyncio.Queue[tuple[Window, int]] = asyncio.Queue(max_pending)
        name = detector.name
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(self.workers,
                                                        thread_name_prefix=f"infer-{name}")
        self._scorer = ThreadPoolExecutor(1, thread_name_prefix=f"score-{name}")
        self._slots = asyncio.Semaphore(self.workers)
        self._inflight: asyncio.Queue[tuple[list[tuple[Window, int]], asyncio.Future[Any]]]
        self._inflight = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._depth = metrics.queue_depth.labels(stage=f"inference:{name}")
        self._shed = metrics.windows_shed.labels(detector=name)
        self._overloaded = metrics.overloaded.labels(detector=name)
        self._shedding = False
        self._shed_count = 0
        #: accounting for the exit status: batches (or lone windows) that ran, windows that
        #: failed even alone, windows whose results went to the handler
        self.batches_ok = 0
        self.windows_failed = 0
        self.delivered = 0
        self.undelivered = 0
        self.on_failure: Callable[[str, BaseException], None] | None = None
        #: windows that must not be shed whatever they waited (set by the pipeline: those that
        #: arrived before a sink outage ended — an outage is not overload)
        self.held: Callable[[Window], bool] | None = None
        self._failed_stations: set[str] = set()
        self._last_shed_ns = 0

    async def put(self, window: Window, token: int) -> None:
        await self.queue.put((window, token))
        self._depth.set(self.queue.qsize())

    def start(self, on_failure: Callable[[str, BaseException], None] | None = None) -> None:
        """Start the loops; an unexpected end of either is logged and given to ``on_failure``
        (the pipeline then stops in order, with a failure exit status)."""
        if not self._tasks:
            name = self.detector.name
            self.on_failure = on_failure
            report = on_failure or (lambda _n, _e: None)
            self._tasks = [supervise(self._batch_loop(), f"batch-{name}", report),
                           supervise(self._deliver_loop(), f"deliver-{name}", report)]

    async def drain(self) -> None:
        """Wait until every queued window has been processed and its alerts delivered."""
        await self.queue.join()

    @property
    def pending(self) -> int:
        """Windows queued or in flight (not yet handed to the handler)."""
        return self.queue._unfinished_tasks  # type: ignore[attr-defined, no-any-return]

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    @property
    def failing(self) -> bool:
        """True when windows failed and none ever ran: the detector cannot run this input."""
        return self.windows_failed > 0 and self.batches_ok == 0

    async def stop(self) -> None:
        """Cancel the loops and release the threads; safe to call twice."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        # never wait for a thread here: a stuck forward pass must not hold up the shutdown
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._scorer.shutdown(wait=False, cancel_futures=True)

    # ---- batching and shedding ---------------------------------------------------------------
    async def _next_batch(self) -> list[tuple[Window, int]]:
        batch: list[tuple[Window, int]] = []
        while not batch:
            batch = await self._admit([await self.queue.get()])
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch += await self._admit([self.queue.get_nowait()])
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                break
            batch += await self._admit([item])
        return batch

    async def _admit(self, items: list[tuple[Window, int]]) -> list[tuple[Window, int]]:
        """Items still worth running; stale ones are shed (counted, delivered empty)."""
        if self.shed_after_ns is None:
            return items
        now = time.time_ns()
        keep = [it for it in items if not self._stale(it[0], now)]
        stale = [it for it in items if self._stale(it[0], now)]
        if stale:
            self._shed.inc(len(stale))
            self._shed_count += len(stale)
            self._last_shed_ns = now
            if not self._shedding:
                await self._set_overload(True, stale[0][0], now)
            # a shed window yields no alert; its input still counts as handled for offsets
            await self.handler([(w, []) for w, _ in stale], [tok for _, tok in stale])
            for _ in stale:
                self.queue.task_done()
        elif keep and self._shedding and self._recovered(keep[0][0], now):
            # (held windows count as on time: an outage ends shedding like a calm input)
            await self._set_overload(False, keep[0][0], now)
        return keep

    def _stale(self, w: Window, now_ns: int, share: float = 1.0) -> bool:
        """Waited more than ``share`` of ``max_lag_s``, or its data are older than ``share`` of
        ``max_data_latency_s``; never a window ``held`` (it waited for a sink, not for us)."""
        if self.shed_after_ns is None or (self.held is not None and self.held(w)):
            return False
        if now_ns - w.newest_arrival_ns > self.shed_after_ns * share:
            return True
        return self.max_age_ns is not None and now_ns - w.end_ns > self.max_age_ns * share

    def _recovered(self, w: Window, now_ns: int) -> bool:
        """Hysteresis: shedding ends only after ``max_lag_s`` without a stale window and with
        windows within half the budgets, so one episode gives one pair of alerts."""
        if self.shed_after_ns is None:  # never sheds, so never needs to recover
            return True
        return (now_ns - self._last_shed_ns >= self.shed_after_ns
                and not self._stale(w, now_ns, share=0.5))

    async def _set_overload(self, on: bool, w: Window, now_ns: int) -> None:
        self._shedding = on
        self._overloaded.set(1 if on else 0)
        assert self.shed_after_ns is not None
        info: dict[str, Any] = {"detector": self.detector.name,
                                "max_lag_s": self.shed_after_ns / NS_PER_S,
                                "queue_depth": self.queue.qsize(),
                                "waited_s": round((now_ns - w.newest_arrival_ns) / NS_PER_S, 3),
                                "data_latency_s": round((now_ns - w.end_ns) / NS_PER_S, 3),
                                "shed_windows_total": self._shed_count}
        if self.max_age_ns is not None:
            info["max_data_latency_s"] = self.max_age_ns / NS_PER_S
        if on:
            log.warning("detector %s overloaded: shedding windows that waited more than %g s "
                        "for inference (queue %d)", self.detector.name, info["max_lag_s"],
                        info["queue_depth"])
        else:
            log.warning("detector %s caught up: %d windows shed so far", self.detector.name,
                        self._shed_count)
        if self.on_overload is not None:
            await self.on_overload(self.detector.name, on, info)

    # ---- inference and in-order delivery -------------------------------------------------------
    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        det = self.detector
        while True:
            batch = await self._next_batch()
            self._depth.set(self.queue.qsize())
            await self._slots.acquire()
            windows = [w for w, _ in batch]
            fn = self._splitter.infer if self._splitter is not None else det.process
            future = loop.run_in_executor(self._executor, self._timed, fn, windows)
            await self._inflight.put((batch, future))

    def _timed(self, fn: Callable[[list[Window]], Any], windows: list[Window]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(windows)
        finally:
            name = self.detector.name
            self.metrics.batch_latency.labels(detector=name).observe(time.perf_counter() - t0)
            self.metrics.batch_size.labels(detector=name).observe(len(windows))

    async def _deliver_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, future = await self._inflight.get()
            windows = [w for w, _ in batch]
            results: Results
            held = True  # this batch's inference slot
            try:
                out = await future
                if self._split:  # inference done: the next batch may start while this scores
                    self._slots.release()
                    held = False
                    out = await loop.run_in_executor(self._scorer, self._score, windows, out)
                results = out
                self.batches_ok += 1
            except Exception as exc:  # a failing batch must not stop the stream
                # a stateful ``process`` keeps its slot while its windows are rerun one by one,
                # so the next batch cannot overtake them (per-station state stays in order)
                results = await self._isolate(windows, exc)
            finally:
                if held:
                    self._slots.release()
            try:
                await self.handler(results, [token for _, token in batch])
                self.delivered += len(batch)
            except Exception as exc:
                # delivery cannot go on (a sink refused for good, or a bug): keep consuming so
                # the drain ends, count what was not delivered (its input is never committed)
                self.undelivered += len(batch)
                if self.undelivered == len(batch):
                    # a GeosentryError says what went wrong in its line (e.g. an ACL refused
                    # the alerts); anything else is a bug: its traceback is logged
                    log.error("detector %s: delivering alerts failed: %r", self.detector.name,
                              exc, exc_info=None if isinstance(exc, GeosentryError) else exc)
                    if self.on_failure is not None:
                        self.on_failure(f"deliver-{self.detector.name}", exc)
            finally:
                for _ in batch:
                    self.queue.task_done()

    def _score(self, windows: list[Window], out: Any) -> Results:
        if self._splitter is None:  # only a split detector's outputs are scored apart
            raise TypeError(f"detector {self.detector.name} does not score separately")
        return self._splitter.score(windows, out)

    def _one(self, window: Window) -> Results:
        """Run one window alone (infer + score, or process) in the scorer thread."""
        if self._splitter is not None:
            return self._splitter.score([window], self._timed(self._splitter.infer, [window]))
        return self.detector.process([window])

    async def _isolate(self, windows: list[Window], exc: Exception) -> Results:
        """A batch raised: run its windows one at a time so one bad window costs only its own
        alerts, never those of the other stations in the batch. Each failing window is counted
        (``geosentry_inference_errors_total``) and logged once per station."""
        name = self.detector.name
        if len(windows) == 1:
            return self._failed(windows[0], exc)
        loop = asyncio.get_running_loop()
        results: Results = []
        for w in windows:
            try:
                results += await loop.run_in_executor(self._scorer, self._one, w)
                self.batches_ok += 1
            except Exception as one_exc:
                results += self._failed(w, one_exc)
        log.debug("detector %s: batch of %d failed (%r); retried window by window", name,
                  len(windows), exc)
        return results

    def _failed(self, w: Window, exc: Exception) -> Results:
        name = self.detector.name
        self.metrics.inference_errors.labels(detector=name).inc()
        self.windows_failed += 1
        if w.site_key not in self._failed_stations:
            self._failed_stations.add(w.site_key)
            log.error("detector %s failed on a window of %s at %s (%d Hz, %s samples): %r "
                      "(further failures of this station are only counted)", name,
                      w.site_key, w.start_ns, w.sampling_rate_hz, w.data.shape[-1], exc,
                      exc_info=exc)
        return [(w, [])]
