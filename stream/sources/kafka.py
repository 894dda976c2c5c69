"""Raw miniSEED records from a Kafka topic (value = one record, key = ``NET.STA``).

Offsets are committed only when the pipeline says so (``commit``), i.e. after every alert
derived from the records before that offset has been acknowledged by the sinks: at-least-once.
Consumer groups give scale-out: partitions (by station key) are spread over workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from geosentry.stream.errors import NotStartedError, SourceError
from geosentry.stream.kafka_connect import start_client
from geosentry.stream.kafka_security import KafkaSecurity
from geosentry.stream.records import RawRecord, SourceRef, now_ns, ns_to_iso
from geosentry.stream.resume import ResumeMark
from geosentry.stream.uris import parse_kafka

log = logging.getLogger(__name__)
DEFAULT_GROUP = "geosentry"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Commit what this worker owns before a rebalance takes partitions away, so the new owner
    starts where this one stopped instead of at an older commit (or none: offset -1001)."""

    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer) -> None:
        self.source = source
        self.consumer = consumer  # the first assignment comes before start() returns it

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked}
        if not parts:
            return
        log.info("kafka source %s: partitions %s revoked; committing what they reached",
                 self.source.name, sorted(parts))
        if self.source.on_revoke is not None:
            try:
                await self.source.on_revoke(parts)
            except Exception as exc:  # the new owner re-reads from the last commit: no loss
                log.warning("kafka source %s: commit on revocation failed (%r)",
                            self.source.name, exc)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("kafka source %s: assigned partitions %s", self.source.name,
                 sorted(tp.partition for tp in assigned))
        await self.source.load_marks(self.consumer, assigned)


class KafkaSource:
    """``?idle_exit_s=N`` ends the stream after N s without new records (replay/test use):
    the topic is then treated as finished, so windows are flushed and every offset committed."""

    def __init__(self, uri: str, idle_exit_s: float | None = None,
                 connect_timeout_s: float = 30.0, security: KafkaSecurity | None = None) -> None:
        self.uri = parse_kafka(uri, "--source")
        self.security = security or KafkaSecurity()
        self.connect_timeout_s = connect_timeout_s
        self._uncommitted: dict[int, int] = {}  # partition -> offset not yet committed
        #: ``ResumeMark``s: to store with the next commits, and found with the assigned offsets
        self._marks_out: dict[int, ResumeMark] = {}
        self._marks_in: dict[int, ResumeMark] = {}
        self._offset_of: dict[int, int] = {}  # partition -> latest offset handed to commit()
        #: called with the partitions about to be revoked in a rebalance, before they go: the
        #: pipeline commits everything it can then (see ``_Rebalance``)
        self.on_revoke: Callable[[set[int]], Awaitable[None]] | None = None
        self._commit_failing = self._read_failing = False
        self.name = f"kafka:{self.uri.topic}"
        self.idle_exit_s = idle_exit_s if idle_exit_s is not None else (
            float(self.uri.params["idle_exit_s"]) if "idle_exit_s" in self.uri.params else None)
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self.finite = False  # becomes True when the idle timeout says the data has ended
        self.live = self.idle_exit_s is None  # an idle-exit read is a replay of the topic

    async def start(self) -> None:
        """Connect; an unreachable broker is retried for ``connect_timeout_s`` (one warning),
        then a ``SourceError`` (start-up: one line, exit status 2)."""
        if self._consumer is not None:
            return
        self._consumer = await start_client(
            self._make_consumer, f"kafka source {self.uri.bootstrap}/{self.uri.topic}",
            self.connect_timeout_s, SourceError, security=self.security, action=self._action)

    @property
    def _action(self) -> str:
        return f"read topic {self.uri.topic!r} in group {self.uri.group or DEFAULT_GROUP!r}"

    def _make_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.uri.bootstrap, group_id=self.uri.group or DEFAULT_GROUP,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=1 << 20, **self.security.client_kwargs())
        consumer.subscribe([self.uri.topic], listener=_Rebalance(self, consumer))
        return consumer

    async def __aenter__(self) -> KafkaSource:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def records(self) -> AsyncIterator[RawRecord]:
        if self._consumer is None:
            raise NotStartedError("kafka source: start() it first")
        idle_s = 0.0
        while not self._stopping.is_set():
            try:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            except KafkaError as exc:
                denial = self.security.denial(exc, self._action)
                if denial is not None:  # an ACL or the credentials: retrying cannot mend it
                    raise SourceError(f"kafka source {self.uri.bootstrap}/{self.uri.topic}: "
                                      f"{denial}") from None
                if not self._read_failing:
                    log.warning("kafka source %s: %s; retrying every second", self.name, exc)
                self._read_failing = True
                await asyncio.sleep(1.0)
                continue
            if self._read_failing:
                log.warning("kafka source %s: reading again", self.name)
                self._read_failing = False
            if not batch:
                idle_s += 0.2
                if self.idle_exit_s is not None and idle_s >= self.idle_exit_s:
                    self.finite = True
                    return
                continue
            idle_s = 0.0
            for tp, messages in batch.items():
                for m in messages:
                    yield RawRecord(m.value or b"", now_ns(),
                                    key=m.key.decode(errors="replace") if m.key else None,
                                    ref=SourceRef(self.name, tp.partition, m.offset))

    async def lag(self) -> dict[int, int]:
        """Records behind the high-water mark, per assigned partition."""
        if self._consumer is None:
            return {}
        out: dict[int, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                out[tp.partition] = max(0, high - await self._consumer.position(tp))
        return out

    async def commit(self, offsets: dict[int, int]) -> None:
        """Commit ``offsets``; what fails (broker away) is kept and retried with the next call,
        so the last position reached during an outage is committed once the broker is back.
        A failure is logged once per outage, not once a second."""
        self._uncommitted.update(offsets)
        self._offset_of.update(offsets)
        if self._consumer is None or not self._uncommitted:
            return
        assigned = {tp.partition for tp in self._consumer.assignment()}
        todo: dict[TopicPartition, int | tuple[int, str]] = {
            TopicPartition(self.uri.topic, p): (o, self._marks_out[p].encode())
            if p in self._marks_out else o
            for p, o in self._uncommitted.items() if p in assigned}
        for p in [p for p in self._uncommitted if p not in assigned]:
            del self._uncommitted[p]  # revoked: the new owner re-reads from the last commit
            self._offset_of.pop(p, None)
        if not todo:
            return
        try:
            await self._consumer.commit(todo)
        except (CommitFailedError, KafkaError) as exc:
            if not self._commit_failing:
                log.warning("kafka source %s: commit failed (%s); retrying with the next commit "
                            "(a restart meanwhile re-reads from the last one)", self.name, exc)
            self._commit_failing = True
            return
        if self._commit_failing:
            log.warning("kafka source %s: commits work again", self.name)
        self._commit_failing = False
        for tp, done in todo.items():
            if self._uncommitted.get(tp.partition) == (done[0] if isinstance(done, tuple) else done):
                del self._uncommitted[tp.partition]

    def keep_marks(self, marks: dict[int, ResumeMark]) -> None:
        """Store ``marks`` with the next commit of their partitions (``Resumable``); a new mark
        for a partition whose offset did not move is committed with that offset again."""
        for p, mark in marks.items():
            if self._marks_out.get(p) != mark:
                self._marks_out[p] = mark
                if p not in self._uncommitted and p in self._offset_of:
                    self._uncommitted[p] = self._offset_of[p]

    def delivered_before_ns(self) -> int:
        """The oldest ``resume_ns`` of the marks found with the assigned offsets (0: none)."""
        return min((m.resume_ns for m in self._marks_in.values()), default=0)

    def replay_before_ns(self, partition: int, offset: int) -> int:
        """Windows before this data time were delivered by the worker that committed the
        partition last, if it had read ``offset`` (``geosentry.stream.resume``)."""
        mark = self._marks_in.get(partition)
        return 0 if mark is None else mark.replay_before_ns(offset)

    async def load_marks(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Read the ``ResumeMark``s committed with the offsets of newly assigned partitions.
        aiokafka's public ``committed()`` drops commit metadata, so this asks its group
        coordinator directly; if that fails the re-read sends all it cuts (at-least-once holds,
        but alerts of the warm-up stretch may differ from those sent before)."""
        if not assigned:
            return
        for tp in assigned:
            self._marks_in.pop(tp.partition, None)
            self._marks_out.pop(tp.partition, None)
        try:
            committed = await consumer._coordinator.fetch_committed_offsets(list(assigned))
        except Exception as exc:
            log.warning("kafka source %s: could not read resume marks (%r): windows re-read "
                        "after the restart are all sent again", self.name, exc)
            return
        for tp, found in committed.items():
            mark = ResumeMark.decode(getattr(found, "metadata", None))
            if mark is not None:
                self._marks_in[tp.partition] = mark
                log.info("kafka source %s: partition %d resumes at offset %s; windows before %s "
                         "up to offset %d were delivered before", self.name, tp.partition,
                         getattr(found, "offset", "?"), ns_to_iso(mark.resume_ns),
                         mark.seen_offset)

    def stop_reading(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
