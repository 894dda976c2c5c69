"""Network coincidence: one event per network-wide trigger burst, however many stations see it,
and bounded state over a long run."""

from __future__ import annotations

from geosentry.stream.alerts import Coincidence
from geosentry.stream.records import NS_PER_S, Alert, ModelRef

M = ModelRef("picker", "1", "0" * 64)


def _pick(sta: str, t_s: float, net: str = "XX") -> Alert:
    return Alert("pick", net, sta, "", "HHZ", int(t_s * NS_PER_S), 0.9, 0.3, M, 0, phase="P")


def test_thousands_of_stations_at_once_make_one_event() -> None:
    c = Coincidence(min_stations=3, window_s=5.0)
    burst = [_pick(f"S{i:04d}", 100.0 + (i % 400) / 100) for i in range(5000)]
    out = c.add(burst)
    assert len(out) == 1
    ev = out[0]
    assert ev.station == "*" and ev.kind == "detection"
    assert ev.time_ns == int(100.0 * NS_PER_S)  # the earliest trigger among the first three
    assert ev.score == 3.0 and ev.details["stations"] == ["S0000", "S0001", "S0002"]
    # a second, separate burst a minute later is a second event, found at its own onset
    out2 = c.add([_pick(f"S{i:04d}", 160.0 + i / 1000) for i in range(10)])
    assert [a.time_ns for a in out2] == [int(160.0 * NS_PER_S)]


def test_networks_are_separate_and_two_stations_are_not_enough() -> None:
    c = Coincidence(min_stations=3, window_s=5.0)
    assert c.add([_pick("A", 10.0), _pick("B", 11.0, net="YY"), _pick("C", 12.0)]) == []
    assert len(c.add([_pick("D", 13.0)])) == 1  # A, C, D in XX within 5 s


def test_old_triggers_are_dropped() -> None:
    c = Coincidence(min_stations=3, window_s=1.0)
    for k in range(2000):  # one station every 10 s for hours: never a network event
        assert c.add([_pick(f"S{k % 7}", 10.0 * k)]) == []
    kept = c._times[("XX", "picker")]
    assert len(kept) <= Coincidence.HORIZON_WINDOWS // 10 + 2 and kept == sorted(kept)


def test_a_partition_far_ahead_does_not_drop_recent_triggers() -> None:
    """Kafka partitions read one after another: stations of one run minutes ahead in data
    time; triggers received just now are kept, so the lagging stations still complete events."""
    import time

    now = time.time_ns()

    def recent(sta: str, t_s: float) -> Alert:
        return Alert("pick", "XX", sta, "", "HHZ", int(t_s * NS_PER_S), 0.9, 0.3, M, now, phase="P")

    c = Coincidence(min_stations=3, window_s=5.0)
    assert c.add([recent("A", 100.0), recent("B", 101.0)]) == []
    assert c.add([recent("A", 5000.0)]) == []  # partition 1 has run far ahead
    assert [a.time_ns for a in c.add([recent("C", 102.0)])] == [int(100.0 * NS_PER_S)]
