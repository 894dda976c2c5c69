"""Micro-batching of windows across stations, one worker thread per detector.

Windows queue up per detector (bounded: a full queue makes ingestion wait, i.e. backpressure,
never loss). A batch closes at ``max_batch`` windows or ``max_wait_s`` after its first window,
whichever comes first, and runs in the detector's own thread so the event loop keeps ingesting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from stream.detectors.base import Detector
from stream.metrics import Metrics
from stream.records import Alert, Window

log = logging.getLogger(__name__)
Handler = Callable[[list[tuple[Window, list[Alert]]], list[int]], Awaitable[None]]


class BatchRunner:
    def __init__(self, detector: Detector, handler: Handler, metrics: Metrics, max_batch: int,
                 max_wait_s: float, max_pending: int) -> None:
        self.detector = detector
        self.handler = handler
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[tuple[Window, int]] = asyncio.Queue(max_pending)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{detector.name}")
        self._task: asyncio.Task[None] | None = None
        self._depth = metrics.queue_depth.labels(stage=f"inference:{detector.name}")

    async def put(self, window: Window, token: int) -> None:
        await self.queue.put((window, token))
        self._depth.set(self.queue.qsize())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"runner-{self.detector.name}")

    async def drain(self) -> None:
        """Wait until every queued window has been processed and its alerts delivered."""
        await self.queue.join()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[tuple[Window, int]]:
        batch = [await self.queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        name = self.detector.name
        while True:
            batch = await self._next_batch()
            self._depth.set(self.queue.qsize())
            try:
                windows = [w for w, _ in batch]
                t0 = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._executor, self.detector.process,
                                                         windows)
                except Exception:  # a failing batch must not stop the stream
                    self.metrics.inference_errors.labels(detector=name).inc()
                    log.exception("detector %s failed on a batch of %d windows (first: %s)",
                                  name, len(windows), windows[0].station_key)
                    results = [(w, []) for w in windows]
                self.metrics.batch_latency.labels(detector=name).observe(time.perf_counter() - t0)
                self.metrics.batch_size.labels(detector=name).observe(len(batch))
                await self.handler(results, [token for _, token in batch])
            finally:
                for _ in batch:
                    self.queue.task_done()
