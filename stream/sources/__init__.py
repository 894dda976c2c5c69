"""Sources of raw records. Contract (bytewax-style, small):

* ``await start()`` / ``await stop()`` (safe twice); ``stop_reading()`` ends ``records()`` soon
  while keeping the connection for the final offset commit;
* ``records()`` -> async iterator of ``RawRecord`` (ends for finite sources, e.g. file replay);
* ``await commit({partition: next_offset})`` acknowledges processed input (no-op where the
  source has no offsets);
* ``finite``: ``True`` when the end of ``records()`` is the end of the data (flush windows);
* ``live``: records arrive as they are produced, so a window that waits too long for inference
  is stale and may be shed (``inference.overload = "auto"``);
* optional, as a protocol of its own: ``lag()`` (``ReportsLag``: records behind, per partition).

The sources here are also async context managers (``async with``: started on entry, stopped on
exit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from geosentry.stream.records import RawRecord
from geosentry.stream.resume import ResumeMark

if TYPE_CHECKING:
    from geosentry.stream.kafka_security import KafkaConfig


class Source(Protocol):
    name: str
    finite: bool
    live: bool

    async def start(self) -> None: ...

    def records(self) -> AsyncIterator[RawRecord]: ...

    async def commit(self, offsets: dict[int, int]) -> None: ...

    def stop_reading(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class ReportsLag(Protocol):
    """A source that knows how far behind it reads (the ``consumer_lag`` metric)."""

    async def lag(self) -> dict[int, int]:
        """Records behind the newest, per partition."""
        ...


@runtime_checkable
class Revocable(Protocol):
    """A source whose partitions a consumer-group rebalance can take away: the pipeline sets
    ``on_revoke`` to commit what it can for them first."""

    on_revoke: Callable[[set[int]], Awaitable[None]] | None


@runtime_checkable
class Resumable(Protocol):
    """A source that keeps a ``ResumeMark`` with each committed offset (Kafka commit metadata)
    and so can tell which records a restarted worker reads again (``geosentry.stream.resume``)."""

    def keep_marks(self, marks: dict[int, ResumeMark]) -> None:
        """Store these marks (by partition) with the next commit of those partitions."""
        ...

    def replay_before_ns(self, partition: int, offset: int) -> int:
        """Windows before this data time were delivered by the worker before (0: none)."""
        ...

    def delivered_before_ns(self) -> int:
        """The oldest ``resume_ns`` among the marks found with the offsets read (0: none)."""
        ...


@dataclass(frozen=True, slots=True)
class SourceGap:
    """Data of channel ``sid`` (``NET.STA.LOC.CHA``) a source could not get: nothing from just
    after ``after_ns`` (the last sample held) to ``until_ns`` (the first one received again)."""

    sid: str
    after_ns: int
    until_ns: int
    cause: str  # e.g. "resume"


@runtime_checkable
class ReportsGaps(Protocol):
    """A source that resumes from a server's buffer (SeedLink): the pipeline sets ``on_gap``
    (a health alert and a metric for data it could not get back) and ``on_duplicate`` (records
    dropped because they were handed on already, counted)."""

    on_gap: Callable[[SourceGap], Awaitable[None]] | None
    on_duplicate: Callable[[int], None] | None


class FiniteSource:
    """Shared plumbing of sources that replay data they already hold (files, memory): no
    offsets to commit, ``finite = True``, stopping just ends ``records()`` at the next record.
    Subclasses set ``name``, implement ``records()`` and check ``self._stopping`` there."""

    finite = True
    live = False
    _stopping = False

    async def start(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def commit(self, offsets: dict[int, int]) -> None:
        return None

    def stop_reading(self) -> None:
        self._stopping = True

    async def stop(self) -> None:
        self._stopping = True


def open_source(uri: str, speed: float = 0.0, connect_timeout_s: float = 30.0,
                kafka: KafkaConfig | None = None) -> Source:
    """A path (file or directory of miniSEED), ``kafka://HOST:PORT/TOPIC[?group=G]`` or
    ``seedlink[s]://HOST:PORT?streams=NET_STA[:SELECTORS],...`` (see
    ``geosentry.stream.sources.seedlink``; ``seedlinks`` is SeedLink over TLS). ``kafka``: the
    ``[kafka]`` security settings (a URI's ``?profile=NAME`` picks one of its profiles)."""
    if uri.startswith("kafka://"):
        from geosentry.stream.kafka_security import KafkaConfig
        from geosentry.stream.sources.kafka import KafkaSource

        security = (kafka or KafkaConfig()).for_uri(uri, "--source")
        return KafkaSource(uri, connect_timeout_s=connect_timeout_s, security=security)
    if uri.startswith(("seedlink://", "seedlinks://")):
        from geosentry.stream.sources.seedlink import SeedLinkSource

        return SeedLinkSource(uri)
    if "://" in uri.split("?")[0][:16]:
        from geosentry.stream.errors import ConfigError

        raise ConfigError("--source", f"unknown source scheme in {uri!r} (a miniSEED or "
                          "IAGA-2002 path, kafka://, seedlink:// or seedlinks://)")
    from geosentry.stream.sources.files import FileSource

    return FileSource(uri, speed=speed)


def is_live(src: Source) -> bool:
    """Whether ``src`` delivers live data (see ``live`` in the module docs)."""
    return bool(src.live)
