"""Starting an aiokafka client at start-up, one rule for sources and sinks: an unreachable
broker is retried with bounded backoff (one warning) for ``timeout_s``, then ``fail(message)``
is raised: a one-line start-up error (exit status 2). Outages once running are the caller's
(retried for as long as the service runs)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaError

from geosentry.stream.errors import GeosentryError

log = logging.getLogger(__name__)


class _Client(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Client)


async def start_client(make: Callable[[], C], what: str, timeout_s: float,
                       fail: Callable[[str], GeosentryError], max_backoff_s: float = 5.0) -> C:
    """A started client from ``make()``; ``what`` names it in the log and the error."""
    backoff_s, warned = 0.5, False
    deadline = time.monotonic() + timeout_s
    while True:
        client = make()
        try:
            await client.start()
            return client
        except KafkaError as exc:
            await client.stop()
            if time.monotonic() + backoff_s > deadline:
                raise fail(f"{what}: broker not reachable within {timeout_s:g} s ({exc})") \
                    from exc
            if not warned:
                log.warning("%s: cannot connect (%s); retrying for up to %g s", what, exc,
                            timeout_s)
                warned = True
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, max_backoff_s)
