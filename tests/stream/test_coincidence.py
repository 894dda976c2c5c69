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
    out = c.add(burst)  # decided once every station is past onset + window: here at the end
    out += c.flush()
    assert len(out) == 1
    ev = out[0]
    assert ev.station == "*" and ev.kind == "detection"
    assert ev.time_ns == int(100.0 * NS_PER_S)  # the earliest trigger
    assert ev.score == 5000.0 and len(ev.details["stations"]) == 5000  # all within 5 s
    # a second, separate burst a minute later is a second event, found at its own onset
    out2 = c.add([_pick(f"S{i:04d}", 160.0 + i / 1000) for i in range(10)]) + c.flush()
    assert [a.time_ns for a in out2] == [int(160.0 * NS_PER_S)]


def test_the_result_does_not_depend_on_arrival_order() -> None:
    """What a restart (or a batch cut elsewhere) changes: the order in which stations' windows
    come in. Each station's 10 s windows (1 s stride) arrive in order, the stations interleaved
    at random; the network alerts come out the same every time."""
    import random

    import numpy as np

    from geosentry.stream.records import Window

    picks = [_pick(f"S{i}", 100.0 + 0.7 * i) for i in range(8)] + \
        [_pick(f"S{i}", 300.0 + 0.6 * i) for i in range(8)] + [_pick("S1", 200.0)]
    runs = []
    for seed in range(5):
        rng = random.Random(seed)
        queues = {}
        for sta in sorted({p.station for p in picks}):
            queue = []
            for k in range(80, 340):  # windows [k, k + 10) s: each reports its last second
                w = Window("XX", sta, "", ("HHZ",), k * NS_PER_S, 1.0, np.zeros((1, 10)), 0,
                           "picker")
                end = (k + 10) * NS_PER_S
                queue.append((w, [p for p in picks if p.station == sta
                                  and end - NS_PER_S <= p.time_ns < end]))
            queues[sta] = queue
        c = Coincidence(min_stations=3, window_s=5.0)
        out = []
        while any(queues.values()):
            sta = rng.choice(sorted(s for s, q in queues.items() if q))
            out += c.observe([queues[sta].pop(0)])
        out += c.flush()
        runs.append([(a.id, a.time_ns, tuple(a.details["stations"])) for a in out])
    assert all(sorted(r) == sorted(runs[0]) for r in runs)
    assert [t for _, t, _ in sorted(runs[0], key=lambda r: r[1])] == [100 * NS_PER_S,
                                                                       300 * NS_PER_S]
    assert sorted(runs[0], key=lambda r: r[1])[0][2] == tuple(f"S{i}" for i in range(8))


def test_networks_are_separate_and_two_stations_are_not_enough() -> None:
    c = Coincidence(min_stations=3, window_s=5.0)
    assert c.add([_pick("A", 10.0), _pick("B", 11.0, net="YY"), _pick("C", 12.0)]) == []
    assert c.flush() == []
    assert len(c.add([_pick("D", 13.0)]) + c.flush()) == 1  # A, C, D in XX within 5 s


def test_old_triggers_are_dropped() -> None:
    c = Coincidence(min_stations=3, window_s=1.0)
    for k in range(2000):  # one station every 10 s for hours: never a network event
        assert c.add([_pick(f"S{k % 7}", 10.0 * k)]) == []
    net = c._nets[("XX", "picker")]
    net.added_wall_ns[:] = [0] * len(net.added_wall_ns)  # received long ago
    c.add([_pick("S0", 10.0 * 2000)])
    assert len(net.times) <= 20 and net.times == sorted(net.times)  # about ACTIVE_LAG_S


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
