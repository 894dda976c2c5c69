"""Input offsets: what may be committed (with the resume marks that make restarts repeat
themselves, ``geosentry.stream.resume``), consumer lag, and the instruments a rebalance takes
away. The rules of *what* is done live in ``geosentry.stream.delivery``."""

from __future__ import annotations

from geosentry.stream.buffer.windows import Windower
from geosentry.stream.delivery import DeliveryTracker
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import InstrumentId, Record
from geosentry.stream.sources import ReportsLag, Resumable, Source


class Offsets:
    def __init__(self, windower: Windower, tracker: DeliveryTracker, sources: list[Source],
                 metrics: Metrics) -> None:
        self.windower = windower
        self.tracker = tracker
        self.sources = sources
        self.metrics = metrics
        self._resumable = {s.name: s for s in sources if isinstance(s, Resumable)}
        #: instrument -> (source, partition) of its records: whose state a rebalance takes away
        self._partition_of: dict[InstrumentId, tuple[str, int]] = {}

    def replay_before_ns(self, source: str, rec: Record) -> int:
        """For ``Windower.push``: windows before this time were delivered before a restart
        (0: none, or the source keeps no resume marks)."""
        src = self._resumable.get(source)
        if src is None or rec.ref is None:
            return 0
        self._partition_of[Windower.instrument_key(rec)] = (source, rec.ref.partition)
        return src.replay_before_ns(rec.ref.partition, rec.ref.offset)

    async def commit(self) -> None:
        """Commit what is done (with resume marks where the source keeps them); report lag."""
        self.tracker.forget(self.windower.take_dropped())  # rejected by the clock policy: done
        offsets = self.tracker.committable(self.windower.needed_ns, self.windower.resume_ns)
        for src in self.sources:
            if isinstance(src, Resumable):  # every partition's mark, moved or not
                src.keep_marks({p: m for (name, p), m in self.tracker.marks.items()
                                if name == src.name})
                await src.commit(offsets.get(src.name, {}))
            elif src.name in offsets:
                await src.commit(offsets[src.name])
            if isinstance(src, ReportsLag):
                for partition, behind in (await src.lag()).items():
                    self.metrics.consumer_lag.labels(
                        topic=src.name, partition=str(partition)).set(behind)

    def delivered_before_ns(self) -> int:
        """Every window before this data time was delivered before a restart (or takeover),
        by what the resumable sources found with their offsets (0: nothing known)."""
        times = [t for s in self._resumable.values() if (t := s.delivered_before_ns())]
        return min(times) if times else 0

    def revoke(self, source: str, partitions: set[int]) -> None:
        """Partitions a rebalance took away (after their last commit): their records and their
        instruments' state are the new owner's, which rebuilds it from that commit."""
        self.tracker.drop_partitions(source, partitions)
        gone = [k for k, where in self._partition_of.items()
                if where[0] == source and where[1] in partitions]
        self.windower.forget(gone)
        for key in gone:
            del self._partition_of[key]
