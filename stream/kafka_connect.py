"""Starting an aiokafka client at start-up, one rule for sources and sinks: an unreachable
broker is retried with bounded backoff (one warning) for ``timeout_s``, then ``fail(message)``
is raised: a one-line start-up error (exit status 2). Outages once running are the caller's
(retried for as long as the service runs).

Failures that retrying cannot mend fail at once, with one line naming them (``security``:
``KafkaSecurity.denial``): authentication refused, an ACL that does not allow the request, a
broker certificate that is not trusted. aiokafka reports the cause of a failed bootstrap only in
a log record of its own ("Unable connect to ...") and raises a bare ``KafkaConnectionError``;
``_Cause`` takes the cause from that record while a client starts (and drops the record when it
is such a failure: the one line says it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaError

from geosentry.stream.errors import GeosentryError
from geosentry.stream.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)
_AIOKAFKA_CLIENT_LOG = logging.getLogger("aiokafka")  # aiokafka/client.py's logger


class _Cause(logging.Filter):
    """While installed: remembers the exceptions in aiokafka's connect-failure records, and
    drops those that ``security.denial`` names (auth, ACL, TLS)."""

    def __init__(self, security: KafkaSecurity) -> None:
        super().__init__()
        self.security = security
        self.denial: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException):
                why = self.security.denial(arg, "connect")
                if why is not None:
                    self.denial = self.denial or why
                    return False
        return True


class _Client(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Client)


async def start_client(make: Callable[[], C], what: str, timeout_s: float,
                       fail: Callable[[str], GeosentryError], max_backoff_s: float = 5.0,
                       security: KafkaSecurity | None = None, action: str = "connect") -> C:
    """A started client from ``make()``; ``what`` names it in the log and the error, ``action``
    what it must be allowed to do (for an authorization failure: ``"read topic 'x'"``)."""
    backoff_s, warned = 0.5, False
    deadline = time.monotonic() + timeout_s
    security = security or KafkaSecurity()
    while True:
        client = make()
        cause = _Cause(security)
        _AIOKAFKA_CLIENT_LOG.addFilter(cause)
        try:
            await client.start()
            return client
        except KafkaError as exc:
            await client.stop()
            denial = security.denial(exc, action) or cause.denial
            if denial is not None:
                raise fail(f"{what}: {denial}") from None
            if time.monotonic() + backoff_s > deadline:
                raise fail(f"{what}: broker not reachable within {timeout_s:g} s ({exc})") \
                    from exc
            if not warned:
                log.warning("%s: cannot connect (%s); retrying for up to %g s", what, exc,
                            timeout_s)
                warned = True
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, max_backoff_s)
        finally:
            _AIOKAFKA_CLIENT_LOG.removeFilter(cause)
