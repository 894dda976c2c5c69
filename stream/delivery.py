"""At-least-once bookkeeping: which input offsets are safe to commit.

An input record is *done* when (a) no window that can still be cut needs its samples and
(b) every window cut from them (and every health alert they raised) has had its alerts
acknowledged by all sinks. The committable offset of a partition is the first record not done,
so a restarted worker re-reads exactly what it may still need; duplicates that this causes carry
the same deterministic alert ``id``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from geosentry.stream.records import InstrumentId, SourceRef


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

    def finish(self, source: str) -> None:
        """``source`` reached the end of its data: leftover samples will never form a window."""
        self._finished.add(source)

    def record(self, ref: SourceRef | None, inst: InstrumentId | None, end_ns: int) -> None:
        """Register an input record (``inst=None``: nothing retained, done at once)."""
        if ref is None:
            return
        self._pending.setdefault((ref.source, ref.partition), deque()).append(
            _Entry(ref.offset, inst, end_ns))

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
                    if e.offset == ref.offset:
                        e.inst = None
                    break

    def drop_partitions(self, source: str, partitions: Iterable[int]) -> None:
        """Partitions revoked in a rebalance: their records are the new owner's now (it re-reads
        from the commit made on revocation), so nothing of theirs is tracked here any more."""
        for partition in partitions:
            self._pending.pop((source, partition), None)
            self._next.pop((source, partition), None)

    def begin(self, inst: InstrumentId, start_ns: int) -> int:
        """A window (or health alert) from ``inst`` starting at ``start_ns`` is in flight."""
        token = next(self._tokens)
        self._inflight.setdefault(inst, {})[token] = start_ns
        return token

    def end(self, inst: InstrumentId, token: int) -> None:
        self._inflight.get(inst, {}).pop(token, None)

    def committable(self, needed_ns: Callable[[InstrumentId], int | None]
                    ) -> dict[str, dict[int, int]]:
        """``{source: {partition: next offset to read}}`` for partitions that moved forward."""
        out: dict[str, dict[int, int]] = {}
        for key, entries in self._pending.items():
            moved = False
            finished = key[0] in self._finished
            while entries and self._done(entries[0], needed_ns, finished):
                self._next[key] = entries.popleft().offset + 1
                moved = True
            if moved:
                out.setdefault(key[0], {})[key[1]] = self._next[key]
        return out

    def _done(self, e: _Entry, needed_ns: Callable[[InstrumentId], int | None],
              finished: bool) -> bool:
        if e.inst is None:
            return True
        needed = None if finished else needed_ns(e.inst)
        if needed is not None and needed <= e.end_ns:
            return False
        inflight = self._inflight.get(e.inst)
        return not inflight or min(inflight.values()) > e.end_ns
