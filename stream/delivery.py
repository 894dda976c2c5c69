"""At-least-once bookkeeping: which input offsets are safe to commit.

An input record is *done* when (a) no window that can still be cut needs its samples and
(b) every window cut from them (and every health alert they raised) has had its alerts
acknowledged by all sinks. The committable offset of a partition is the first record not done,
so a restarted worker re-reads exactly what it may still need; duplicates that this causes carry
the same deterministic alert ``id``. With a ``resume_ns`` rule (``committable``) the offset
also leaves room to rebuild detector state, and ``marks`` says what a re-read may skip
(``geosentry.stream.resume``).
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from geosentry.stream.records import InstrumentId, SourceRef
from geosentry.stream.resume import ResumeMark

#: ``ResumeMark.resume_ns`` when nothing of a partition is pending: every re-read is a replay
ALL_DELIVERED_NS = 2**62


@dataclass(slots=True)
class _Entry:
    offset: int
    inst: InstrumentId | None
    end_ns: int


class DeliveryTracker:
    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], deque[_Entry]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._inflight: dict[InstrumentId, dict[int, int]] = {}
        self._tokens = itertools.count()
        self._finished: set[str] = set()
        self._members: dict[tuple[str, int], Counter[InstrumentId]] = {}  # instruments pending
        self._seen: dict[tuple[str, int], int] = {}  # next offset after the newest registered
        #: the ``ResumeMark`` of each partition's latest committable offset
        self.marks: dict[tuple[str, int], ResumeMark] = {}

    def finish(self, source: str) -> None:
        """``source`` reached the end of its data: leftover samples will never form a window."""
        self._finished.add(source)

    def record(self, ref: SourceRef | None, inst: InstrumentId | None, end_ns: int) -> None:
        """Register an input record (``inst=None``: nothing retained, done at once)."""
        if ref is None:
            return
        key = (ref.source, ref.partition)
        self._pending.setdefault(key, deque()).append(_Entry(ref.offset, inst, end_ns))
        self._seen[key] = max(self._seen.get(key, 0), ref.offset + 1)
        if inst is not None:
            self._members.setdefault(key, Counter())[inst] += 1

    def forget(self, refs: Iterable[SourceRef]) -> None:
        """These inputs were rejected after being registered (a record from the future: nothing
        of it is retained): done once the records before them are, whatever their time says.
        Cheap for the recent records it is meant for: each search runs from the newest entry."""
        for ref in refs:
            entries = self._pending.get((ref.source, ref.partition))
            if not entries:
                continue
            for e in reversed(entries):
                if e.offset <= ref.offset:
                    if e.offset == ref.offset and e.inst is not None:
                        self._leave((ref.source, ref.partition), e.inst)
                        e.inst = None
                    break

    def drop_partitions(self, source: str, partitions: Iterable[int]) -> None:
        """Partitions revoked in a rebalance: their records are the new owner's now (it re-reads
        from the commit made on revocation), so nothing of theirs is tracked here any more."""
        for partition in partitions:
            for table in (self._pending, self._next, self._members, self._seen, self.marks):
                table.pop((source, partition), None)

    def begin(self, inst: InstrumentId, start_ns: int) -> int:
        """A window (or health alert) from ``inst`` starting at ``start_ns`` is in flight."""
        token = next(self._tokens)
        self._inflight.setdefault(inst, {})[token] = start_ns
        return token

    def end(self, inst: InstrumentId, token: int) -> None:
        self._inflight.get(inst, {}).pop(token, None)

    def committable(self, needed_ns: Callable[[InstrumentId], int | None],
                    resume_ns: Callable[[InstrumentId], int] | None = None
                    ) -> dict[str, dict[int, int]]:
        """``{source: {partition: next offset to read}}`` for partitions that moved forward.

        ``resume_ns(instrument)``: data before its first undelivered window a restarted worker
        must re-read (``Windower.resume_ns``); offsets then stay that far back from the oldest
        undelivered window of *any* partition of the source (so a network coincidence across
        partitions rebuilds too), and ``marks`` holds a fresh ``ResumeMark`` for every partition
        committed so far (stored even where the offset did not move)."""
        out: dict[str, dict[int, int]] = {}
        oldest: dict[str, int | None] = {}
        if resume_ns is not None:
            for source in {k[0] for k in self._pending}:
                finished = source in self._finished
                times = [t for k in self._pending if k[0] == source
                         if (t := self._oldest_undelivered(k, needed_ns, finished)) is not None]
                oldest[source] = min(times) if times else None
        for key, entries in self._pending.items():
            moved = False
            finished = key[0] in self._finished
            oldest_ns = oldest.get(key[0])
            while entries and self._done(entries[0], needed_ns, finished, oldest_ns, resume_ns):
                e = entries.popleft()
                if e.inst is not None:
                    self._leave(key, e.inst)
                self._next[key] = e.offset + 1
                moved = True
            if moved:
                out.setdefault(key[0], {})[key[1]] = self._next[key]
            if key in self._next and resume_ns is not None:
                self.marks[key] = ResumeMark(ALL_DELIVERED_NS if oldest_ns is None else oldest_ns,
                                             self._seen.get(key, 0))
        return out

    def _leave(self, key: tuple[str, int], inst: InstrumentId) -> None:
        members = self._members.get(key)
        if members is not None:
            members[inst] -= 1
            if members[inst] <= 0:
                del members[inst]

    def _undelivered_ns(self, inst: InstrumentId, needed_ns: Callable[[InstrumentId], int | None],
                        finished: bool) -> int | None:
        """Data time of ``inst``'s oldest window not yet delivered (None: nothing pending)."""
        needed = None if finished else needed_ns(inst)
        inflight = self._inflight.get(inst)
        times = ([needed] if needed is not None else []) + (
            [min(inflight.values())] if inflight else [])
        return min(times) if times else None

    def _oldest_undelivered(self, key: tuple[str, int],
                            needed_ns: Callable[[InstrumentId], int | None],
                            finished: bool) -> int | None:
        """The partition's ``ResumeMark.resume_ns``: the oldest undelivered window of any
        instrument it holds records of (None: everything it holds was delivered)."""
        times = [t for inst in self._members.get(key, ())
                 if (t := self._undelivered_ns(inst, needed_ns, finished)) is not None]
        return min(times) if times else None

    def _done(self, e: _Entry, needed_ns: Callable[[InstrumentId], int | None],
              finished: bool, oldest_ns: int | None = None,
              resume_ns: Callable[[InstrumentId], int] | None = None) -> bool:
        if e.inst is None:
            return True
        if oldest_ns is not None and resume_ns is not None \
                and e.end_ns >= oldest_ns - resume_ns(e.inst):
            return False  # a restart needs it to warm up (geosentry.stream.resume)
        undelivered = self._undelivered_ns(e.inst, needed_ns, finished)
        return undelivered is None or undelivered > e.end_ns
