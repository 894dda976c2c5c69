"""A sink seen through the restricted-stations policy of its audience (``geosentry.stream.policy``).

``PolicySink`` wraps one sink: each alert is allowed, masked, withheld or held under embargo
before the sink sees it. Embargoed alerts wait in a bounded hold (``max_held`` per sink; a full
hold makes ``send`` wait, which back-pressures the input) and are delivered when their embargo
ends (data time + ``delay_s``, against the wall clock), retried with backoff if the sink is out.
``send_held`` returns one future per held alert: the pipeline ends the windows those alerts came
from only when they are done, so their input is not committed before the embargoed alert has
been delivered. An alert still held at ``stop`` is not delivered (counted ``held_at_stop``, one
warning): its input was not committed, so a Kafka source re-reads it after a restart, the alert
is derived again (same ``id``) and released when its embargo ends.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from geosentry.stream.errors import SinkError
from geosentry.stream.metrics import Metrics
from geosentry.stream.policy import Action, Audience, Policy, apply_policy, split_audience
from geosentry.stream.records import Alert, now_ns
from geosentry.stream.sinks import Sink, open_sink

if TYPE_CHECKING:
    from geosentry.stream.config import Config

log = logging.getLogger(__name__)
BACKOFF_S = (0.5, 10.0)


@runtime_checkable
class HoldsAlerts(Protocol):
    """A sink that may hold some alerts back: ``send_held`` returns, for those, futures done
    once each is delivered (cancelled if the sink stops first)."""

    async def send_held(self, alerts: list[Alert]) -> list[asyncio.Future[None]]: ...


@dataclass(order=True)
class _Held:
    release_ns: int
    seq: int
    alert: Alert = field(compare=False)
    done: asyncio.Future[None] = field(compare=False)


class PolicySink:
    def __init__(self, inner: Sink, audience: Audience, policy: Policy,
                 metrics: Metrics | None = None, clock: Callable[[], int] = time.time_ns,
                 poll_s: float = 1.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.audience = audience
        self.policy = policy
        self.metrics = metrics or Metrics()
        self.clock = clock  # wall clock in ns (embargo ends); injectable for tests
        self.poll_s = poll_s  # longest sleep between looks at the clock
        self._heap: list[_Held] = []
        self._held: dict[str, _Held] = {}  # by alert id: a retried send does not hold twice
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._freed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._full_logged = False

    @property
    def held(self) -> int:
        return len(self._heap)

    async def start(self) -> None:
        await self.inner.start()
        if self._task is None:
            self._task = asyncio.create_task(self._release_loop(), name=f"embargo-{self.name}")

    async def send(self, alerts: list[Alert]) -> None:
        await self.send_held(alerts)

    async def send_held(self, alerts: list[Alert]) -> list[asyncio.Future[None]]:
        """Deliver what the policy allows now; hold embargoed alerts (futures returned)."""
        now = self.clock()
        deliver: list[Alert] = []
        original: dict[int, Alert] = {}
        counts: dict[Action, int] = {}
        futures: list[asyncio.Future[None]] = []
        held: list[Alert] = []
        for a in alerts:
            d = apply_policy(self.policy, self.audience, a)
            if d.alert is not None and d.release_ns > now:
                futures.append(await self._hold(d.alert, d.release_ns))
                held.append(a)
                continue
            counts[d.action] = counts.get(d.action, 0) + 1
            if d.alert is not None:
                deliver.append(d.alert)
                original[id(d.alert)] = a
        if deliver:
            try:
                await self.inner.send(deliver)
            except SinkError as exc:  # the retry (fanout) resends the originals, never copies;
                # the held ones too: holding again finds them and returns the same futures, so
                # the caller still learns when they are released
                if exc.undelivered is not None:
                    exc.undelivered = [original.get(id(x), x) for x in exc.undelivered] + held
                raise
        stamp = now_ns()
        for a in deliver:  # the pipeline's latency metric reads the originals
            o = original[id(a)]
            o.emitted_ns = o.emitted_ns or a.emitted_ns or stamp
        for action, n in counts.items():
            self._count(action.value, n)
        return futures

    async def _hold(self, alert: Alert, release_ns: int) -> asyncio.Future[None]:
        entry = self._held.get(alert.id)
        if entry is not None:
            return entry.done
        while len(self._heap) >= self.policy.max_held:
            if not self._full_logged:
                self._full_logged = True
                log.warning("sink %s (%s): embargo hold full (%d alerts, policy embargo.max_held"
                            "); input waits until alerts are released", self.name,
                            self.audience.value, self.policy.max_held)
            self._freed.clear()
            await self._freed.wait()
        entry = _Held(release_ns, next(self._seq), alert, asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, entry)
        self._held[alert.id] = entry
        self._count(Action.DELAY.value, 1)
        self.metrics.policy_held.labels(sink=self.name).set(len(self._heap))
        self._changed.set()
        return entry.done

    def _count(self, action: str, n: int) -> None:
        self.metrics.policy_alerts.labels(sink=self.name, audience=self.audience.value,
                                          action=action).inc(n)

    async def _release_loop(self) -> None:
        backoff_s, trouble = BACKOFF_S[0], False
        while True:
            self._changed.clear()
            now = self.clock()
            due: list[_Held] = []
            while self._heap and self._heap[0].release_ns <= now:
                due.append(heapq.heappop(self._heap))
            if not due:
                wait_s = (min(self.poll_s, (self._heap[0].release_ns - now) / 1e9)
                          if self._heap else None)
                try:
                    await asyncio.wait_for(self._changed.wait(), wait_s)
                except TimeoutError:
                    pass
                continue
            try:
                await self.inner.send([e.alert for e in due])
            except Exception as exc:  # anything: retried with backoff, never lost silently
                for e in due:
                    heapq.heappush(self._heap, e)
                self.metrics.sink_errors.labels(sink=self.name).inc()
                if not trouble:
                    trouble = True
                    log.warning("sink %s (%s): releasing %d embargoed alerts failed (%r); "
                                "retrying with backoff", self.name, self.audience.value,
                                len(due), exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_S[1])
                continue
            if trouble:
                log.warning("sink %s (%s): releasing embargoed alerts again", self.name,
                            self.audience.value)
            backoff_s, trouble = BACKOFF_S[0], False
            for e in due:
                self._held.pop(e.alert.id, None)
                if not e.done.done():
                    e.done.set_result(None)
            self._count("released", len(due))
            self.metrics.policy_held.labels(sink=self.name).set(len(self._heap))
            self._full_logged = False
            self._freed.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._heap:
            log.warning("sink %s (%s): %d embargoed alerts still held at stop, not delivered; "
                        "their input is not committed (a Kafka source re-reads it after a "
                        "restart and they are released when their embargo ends)", self.name,
                        self.audience.value, len(self._heap))
            self._count("held_at_stop", len(self._heap))
            for e in self._heap:
                e.done.cancel()
            self._heap.clear()
            self._held.clear()
            self.metrics.policy_held.labels(sink=self.name).set(0)
        await self.inner.stop()

    async def __aenter__(self) -> PolicySink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def open_sinks(cfg: Config, metrics: Metrics) -> list[Sink]:
    """The configured sinks, each behind its audience's policy when ``policy_file`` is set."""
    sinks: list[Sink] = []
    for uri in cfg.sinks:
        base, audience = split_audience(uri)
        sink = open_sink(base, cfg.connect_timeout_s, cfg.kafka)
        if cfg.policy is not None and audience is not None:  # config: both or neither
            sink = PolicySink(sink, audience, cfg.policy, metrics)
        sinks.append(sink)
    return sinks
