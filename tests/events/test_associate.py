"""Association on small fixed cases: overlapping events split, false picks left out, the same
catalogue whatever the pick order, stations without metadata counted and kept out."""

from __future__ import annotations

import random

import numpy as np
import pytest

from geosentry.stream.events.associate import AssociatorConfig, Associator
from geosentry.stream.events.picks import Phase, Pick
from geosentry.stream.events.synthetic import Origin, false_picks, grid_network, picks_for
from geosentry.stream.events.velocity import TravelTimes
from geosentry.stream.records import NS_PER_S

T0 = 1_700_000_000 * NS_PER_S


def _two_overlapping(tt: TravelTimes) -> tuple[list[Pick], list[Origin]]:
    inv = grid_network(49, 15.0, seed=3)
    rng = np.random.default_rng(11)
    a = Origin(T0, 45.05, 9.95, 8.0)
    b = Origin(T0 + int(2.5 * NS_PER_S), 44.93, 10.08, 14.0)  # 2.5 s later, ~17 km away
    picks = (picks_for(a, inv, tt, noise_s=0.05, rng=rng, tag="a:")
             + picks_for(b, inv, tt, noise_s=0.05, rng=rng, tag="b:"))
    return picks, [a, b]


def test_two_overlapping_events_are_split(tt: TravelTimes) -> None:
    inv = grid_network(49, 15.0, seed=3)
    picks, (a, b) = _two_overlapping(tt)
    events, rest = Associator(inv, tt).associate(picks)
    assert len(events) == 2
    for ev, origin, tag in zip(events, (a, b), ("a:", "b:")):
        assert abs(ev.time_ns - origin.time_ns) / NS_PER_S < 0.2
        mine = sum(x.pick.id.startswith(tag) for x in ev.arrivals)
        assert mine >= 0.95 * ev.n_phases, f"event mixes picks: {mine}/{ev.n_phases} from {tag}"
    assert len(rest) <= 0.05 * len(picks)


def test_same_catalogue_whatever_the_pick_order(tt: TravelTimes) -> None:
    inv = grid_network(49, 15.0, seed=3)
    picks, _ = _two_overlapping(tt)
    rng = np.random.default_rng(5)
    picks += false_picks(inv, T0 - 30 * NS_PER_S, 90.0, 0.01, rng)
    ref = Associator(inv, tt).associate(picks)[0]
    for seed in range(3):
        shuffled = list(picks)
        random.Random(seed).shuffle(shuffled)
        got = Associator(inv, tt).associate(shuffled)[0]
        assert [(e.id, e.time_ns, e.pick_ids) for e in got] == \
            [(e.id, e.time_ns, e.pick_ids) for e in ref]


def test_false_picks_alone_make_no_event(tt: TravelTimes) -> None:
    inv = grid_network(100, 20.0, seed=4)
    noise = false_picks(inv, T0, 600.0, 0.005, np.random.default_rng(9))  # 300 false picks
    events, rest = Associator(inv, tt).associate(noise)
    assert len(noise) > 200 and events == [] and len(rest) == len(noise)


def test_min_stations_is_respected(tt: TravelTimes) -> None:
    inv = grid_network(49, 15.0, seed=3)
    origin = Origin(T0, 45.0, 10.0, 8.0)
    picks = picks_for(origin, inv, tt)
    near = sorted({p.key for p in picks})[:3]
    few = [p for p in picks if p.key in near]
    assert Associator(inv, tt).associate(few)[0] == []
    assert len(Associator(inv, tt, AssociatorConfig(min_stations=3)).associate(few)[0]) == 1


def test_unknown_station_is_counted_and_kept_out(tt: TravelTimes,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    inv = grid_network(25, 15.0, seed=1)
    picks = picks_for(Origin(T0, 45.0, 10.0, 8.0), inv, tt)
    stray = [Pick(f"x{i}", "XX", "NOPE", Phase.P, T0 + i * NS_PER_S) for i in range(3)]
    assoc = Associator(inv, tt)
    events, _ = assoc.associate(picks + stray)
    assert assoc.unknown_stations == {"XX.NOPE": 3}
    assert len(events) == 1 and all(a.pick.station != "NOPE" for a in events[0].arrivals)
    assert sum("XX.NOPE" in r.getMessage() for r in caplog.records) == 1


def test_config_is_checked() -> None:
    with pytest.raises(Exception, match="events.min_stations"):
        AssociatorConfig(min_stations=2).check()
    with pytest.raises(Exception, match="events.crossval_max_phases.*must be >= 0"):
        AssociatorConfig(crossval_max_phases=-1).check()


def test_min_phases_four_locates_from_the_first_four_p_picks(tt: TravelTimes) -> None:
    """Early warning: the first four stations' P picks alone make an event with
    ``min_phases = 4``; the default (5) waits for a fifth pick."""
    inv = grid_network(49, 15.0, seed=3)
    origin = Origin(T0, 45.01, 10.02, 8.0)
    first_p = sorted((p for p in picks_for(origin, inv, tt, noise_s=0.05,
                                           rng=np.random.default_rng(3))
                      if p.phase is Phase.P), key=lambda p: p.time_ns)[:4]
    assert Associator(inv, tt).associate(first_p)[0] == []
    events, _ = Associator(inv, tt, AssociatorConfig(min_phases=4)).associate(first_p)
    assert len(events) == 1 and events[0].n_stations == 4
    assert abs(events[0].time_ns - origin.time_ns) < 0.5 * NS_PER_S
