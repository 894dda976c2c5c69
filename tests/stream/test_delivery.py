"""At-least-once bookkeeping: offsets move only past records nothing still needs."""

from __future__ import annotations

from geosentry.stream.delivery import DeliveryTracker
from geosentry.stream.records import SourceRef


def _ref(offset: int, partition: int = 0) -> SourceRef:
    return SourceRef("k", partition, offset)


def test_offsets_wait_for_buffered_samples_and_inflight_windows() -> None:
    t = DeliveryTracker()
    needed = {"XX.A..HH": 100}
    for off, end in ((0, 50), (1, 150), (2, 250)):
        t.record(_ref(off), "XX.A..HH", end)
    token = t.begin("XX.A..HH", 120)  # a window starting at 120 is being scored
    assert t.committable(needed.get) == {"k": {0: 1}}  # record 0 ends before anything needed
    needed["XX.A..HH"] = 300  # windower moved on: nothing before 300 will be cut again
    assert t.committable(needed.get) == {}  # but the in-flight window still covers record 1
    t.end("XX.A..HH", token)  # its alerts were acknowledged by every sink
    assert t.committable(needed.get) == {"k": {0: 3}}


def test_undecodable_records_do_not_block_and_partitions_are_independent() -> None:
    t = DeliveryTracker()
    t.record(_ref(0, 0), None, 0)
    t.record(_ref(0, 1), "XX.B..HH", 500)
    assert t.committable(lambda key: 100) == {"k": {0: 1}}


def test_finished_source_releases_buffered_tail() -> None:
    t = DeliveryTracker()
    t.record(_ref(0), "XX.A..HH", 500)
    assert t.committable(lambda key: 100) == {}
    t.finish("k")
    assert t.committable(lambda key: 100) == {"k": {0: 1}}
