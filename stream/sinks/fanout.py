"""Delivery to every sink, with the retry rule in one place.

Transient sink trouble (a retriable ``SinkError``, an ``OSError``: broker away, disk full) is
retried with backoff (``BACKOFF_S``: first and longest wait) for as long as the service runs;
the caller waits meanwhile, which back-pressures the input, and nothing is shed (``held``: a
window that arrived before an outage ended waited for a sink, not for inference). A send that
neither fails nor returns for ``STALL_S`` (a frozen broker: requests hang until it wakes) is an
outage too, from when it began until it returns. A sink that
raises a non-retriable error fails the send (orderly stop, exit status 1). At shutdown the
pipeline's deadline cancels a send still retrying."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable

from geosentry.stream.errors import SinkError
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import Alert, Window
from geosentry.stream.sinks import Sink
from geosentry.stream.sinks.policy import HoldsAlerts

log = logging.getLogger(__name__)
BACKOFF_S = (0.5, 10.0)
STALL_S = 1.0  # a healthy sink acknowledges in milliseconds; a send this long is an outage


class Fanout:
    def __init__(self, sinks: list[Sink], metrics: Metrics) -> None:
        self.sinks = sinks
        self.metrics = metrics
        self._trouble: dict[str, float] = {}  # sink -> when its current outage began
        self._outage_end_ns = 0  # wall clock when the last outage ended
        self._sending: dict[int, float] = {}  # send in flight -> when it began (monotonic)
        self._send_ids = itertools.count()

    def held(self, w: Window) -> bool:
        """True while a sink is out or a send has hung for ``STALL_S``, and for windows that
        arrived before the last outage ended: they waited for a sink, so overload shedding
        must not take them."""
        if self._trouble or w.newest_arrival_ns <= self._outage_end_ns:
            return True
        now = time.monotonic()
        return any(now - began >= STALL_S for began in self._sending.values())

    async def send(self, alerts: list[Alert], then: Callable[[], None] | None = None) -> None:
        """Return once every sink has acknowledged ``alerts``, or holds them under embargo
        (``PolicySink``). ``then`` runs once every alert is delivered everywhere: at once, or
        when the last embargo ends; never if a sink stops with one still held (its input must
        not be committed)."""
        held = await asyncio.gather(*(self._send_to(sink, alerts) for sink in self.sinks))
        if then is None:
            return
        futures = [f for fs in held for f in fs]
        if not futures:
            then()
            return
        asyncio.gather(*futures).add_done_callback(
            lambda f: then() if not f.cancelled() and f.exception() is None else None)

    async def _send_to(self, sink: Sink, alerts: list[Alert]) -> list[asyncio.Future[None]]:
        pending, backoff_s = alerts, BACKOFF_S[0]
        held: list[asyncio.Future[None]] = []
        while pending:
            try:
                held += await self._timed(sink, pending)
                break
            except (SinkError, OSError) as exc:
                if not getattr(exc, "retriable", True):
                    raise
                self.metrics.sink_errors.labels(sink=sink.name).inc()
                if sink.name not in self._trouble:
                    self._trouble[sink.name] = time.monotonic()
                    log.warning("sink %s: %s; retrying with backoff (up to %g s) until it "
                                "works; input waits meanwhile", sink.name, exc, BACKOFF_S[1])
                pending = getattr(exc, "undelivered", None) or pending
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_S[1])
        began = self._trouble.pop(sink.name, None)
        if began is not None:
            self._outage_end_ns = time.time_ns()
            log.warning("sink %s: delivering again after %.1f s", sink.name,
                        time.monotonic() - began)
        return held

    async def _timed(self, sink: Sink, alerts: list[Alert]) -> list[asyncio.Future[None]]:
        """One send, watched: one that took ``STALL_S`` or more ends an outage when it
        returns or fails (logged once, with how long it hung)."""
        key, began = next(self._send_ids), time.monotonic()
        self._sending[key] = began
        try:
            if isinstance(sink, HoldsAlerts):
                return await sink.send_held(alerts)
            await sink.send(alerts)
            return []
        finally:
            del self._sending[key]
            took_s = time.monotonic() - began
            if took_s >= STALL_S:
                self._outage_end_ns = time.time_ns()
                self.metrics.sink_stalls.labels(sink=sink.name).inc()
                log.warning("sink %s: a send of %d alerts hung for %.1f s (sink stalled); "
                            "windows that waited meanwhile are not shed", sink.name,
                            len(alerts), took_s)
