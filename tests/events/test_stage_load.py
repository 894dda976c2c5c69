"""The events stage under load: settled picks are not searched as seeds again (the same events
as a stage that searches everything every time), and updates slower than their interval space
the next ones out instead of falling behind the stream (counted, logged once)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest

from geosentry.stream.events.associate import Associator
from geosentry.stream.events.picks import Pick
from geosentry.stream.events.stage import EventStage
from geosentry.stream.events.synthetic import Origin, false_picks, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef

T0 = 1_700_000_000 * NS_PER_S
PICKER = ModelRef("picker", "1", "0" * 64)


class CountingAssociator(Associator):
    """A real ``Associator`` that counts how often each pick is searched as a seed, and how
    far behind the newest pick each search that found nothing was (s)."""

    seeded: Counter[str]
    behind_s: list[float]

    def _from_seed(self, pool, seed, used, times, tried, marked=None):  # type: ignore[no-untyped-def]
        pid = pool.picks[seed].id
        self.seeded[pid] += 1
        found = super()._from_seed(pool, seed, used, times, tried, marked)
        if found is None:
            self.behind_s.append(times[-1] - times[seed])
        return found


class SlowMachine:
    """Fault injection: a wall clock on which every association takes ``took_s``."""

    def __init__(self, took_s: float) -> None:
        self.now_s, self.took_s = 0.0, took_s

    def __call__(self) -> float:
        self.now_s += self.took_s  # read before and after each update: took_s apart
        return self.now_s


@pytest.fixture(scope="module")
def stream() -> tuple[object, TravelTimes, list[Pick], list[Origin]]:
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
    inv = grid_network(36, 15.0, seed=5)
    rng = np.random.default_rng(4)
    origins = [Origin(T0 + int((20 + 45 * k) * NS_PER_S), 45.0 + 0.05 * k, 10.0 - 0.04 * k,
                      6.0 + 2 * k) for k in range(3)]
    picks = [p for o in origins for p in picks_for(o, inv, tt, noise_s=0.05, rng=rng)]
    picks += false_picks(inv, T0, 170.0, 1.0 / 60.0, rng)  # 1 false pick per station-minute
    picks.sort(key=lambda p: p.time_ns)
    return inv, tt, picks, origins


def _alert(p: Pick) -> Alert:
    return Alert(AlertKind.PICK, p.network, p.station, "", "HHZ", p.time_ns, 0.9, 0.3, PICKER,
                 p.time_ns, phase=p.phase.value)


def _feed(stage: EventStage, picks: list[Pick], step_s: float = 1.0) -> list[Alert]:
    out: list[Alert] = []
    batch: list[Pick] = []
    edge = picks[0].time_ns + int(step_s * NS_PER_S)
    for p in picks + [None]:  # type: ignore[list-item]
        if p is None or p.time_ns >= edge:
            out += stage.add([_alert(q) for q in batch])
            batch = []
            if p is None:
                break
            while p.time_ns >= edge:
                edge += int(step_s * NS_PER_S)
        batch.append(p)
    return out + stage.flush()


def _events(alerts: list[Alert]) -> list[tuple[int, tuple[str, ...]]]:
    last: dict[str, Alert] = {}
    for a in alerts:
        last[a.details["event_id"]] = a
    return sorted((round(a.time_ns / 1e8), tuple(sorted(a.details["pick_ids"])))
                  for a in last.values() if not a.details["deleted"])


def test_settled_picks_are_not_seeds_again_and_events_are_the_same(stream) -> None:  # type: ignore[no-untyped-def]
    inv, tt, picks, origins = stream
    runs = {}
    for margin_s in (10.0, 1e6):  # settled after reach + 10 s; never (every pick every time)
        assoc = CountingAssociator(inv, tt)
        assoc.seeded, assoc.behind_s = Counter(), []
        stage = EventStage(assoc, horizon_s=120.0, update_interval_s=1.0,
                           settle_margin_s=margin_s, adaptive=False)
        runs[margin_s] = (_events(_feed(stage, picks)), assoc.seeded, assoc.behind_s)
    (settled, seeded, behind), (everything, seeded_all, behind_all) = runs[10.0], runs[1e6]
    found = [t for t, _ in settled]
    assert all(any(abs(t - o.time_ns / 1e8) <= 20 for t in found) for o in origins)
    assert settled == everything
    settle_s = Associator(inv, tt).seed_reach_s + 10.0
    # a pick's fruitless searches end once the picks of settle_s after it are in (plus the
    # time between updates; the few later ones are event seeds whose picks aged out); without
    # settling they go on while it is in the pool
    late = sum(b > settle_s + 5.0 for b in behind)
    late_all = sum(b > settle_s + 5.0 for b in behind_all)
    assert late <= 3 and late_all > 300, (late, late_all)
    assert sum(seeded.values()) < 0.75 * sum(seeded_all.values())


def test_slow_updates_space_out_and_are_counted(stream, caplog) -> None:  # type: ignore[no-untyped-def]
    inv, tt, picks, origins = stream
    fast = EventStage(Associator(inv, tt), update_interval_s=0.5, adaptive=False)
    fast_events = _events(_feed(fast, picks, step_s=0.5))
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.events.stage"):
        slow = EventStage(Associator(inv, tt), update_interval_s=0.5, clock=SlowMachine(4.0))
        slow_events = _events(_feed(slow, picks, step_s=0.5))
    # a 4-s update every 4 s of data at most (and the last one, at the end of the input)
    span_s = (picks[-1].time_ns - picks[0].time_ns) / NS_PER_S
    assert slow.slow_updates > 0 and slow.updates <= span_s / 4.0 + 2 < fast.updates
    assert [m for m in caplog.messages if "updates every" in m][:1], "one line says so"
    assert len([m for m in caplog.messages if "updates every" in m]) < slow.slow_updates
    # every event still found (later, by fewer updates)
    assert [t for t, _ in slow_events] == [t for t, _ in fast_events] and len(slow_events) >= 3
