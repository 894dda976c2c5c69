"""S arrivals picked as P in a small event (``events/relabel.py``): the event is searched again
with its latest P picks read as S and kept when that explains more picks.

Iceland 2014 paced replay (README, Early-warning latency): 20140824000728280's first 4
stations' P and, at 2-3 stations whose P the picker missed, the S picked as P located 79 km
off (RMS 0.16-0.29 s, each pick predicted by the others) for 8 s. Each test also runs with
relabelling off (``MAX_FLIPS = 0``: the associator before) to show it fails there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geosentry.stream.events import relabel
from geosentry.stream.events.associate import Associator
from geosentry.stream.events.picks import Phase, Pick
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.types import Event
from geosentry.stream.events.velocity import TravelTimes
from geosentry.stream.records import NS_PER_S

T0 = 1_700_000_000 * NS_PER_S


def _error(ev: Event, o: Origin) -> tuple[float, float]:
    return o.error(ev.lat_deg, ev.lon_deg, ev.time_ns)


def _s_as_p(tt: TravelTimes, o: Origin, n_p: int, n_s_as_p: int) -> list[Pick]:
    """12 stations 12 km apart: the first ``n_p`` stations' P picks, and at the next
    ``n_s_as_p`` (their P missed) the S picked as P."""
    inv = grid_network(12, 12.0, seed=3)
    ps = picks_for(o, inv, tt, noise_s=0.05, rng=np.random.default_rng(1), tag="q:")
    p = sorted((x for x in ps if x.phase is Phase.P), key=lambda x: x.time_ns)
    late = {x.station for x in p[n_p:n_p + n_s_as_p]}
    return p[:n_p] + [replace(x, phase=Phase.P) for x in ps
                      if x.phase is Phase.S and x.station in late]


def test_s_picked_as_p_is_read_as_s(tt: TravelTimes, monkeypatch: pytest.MonkeyPatch) -> None:
    o = Origin(T0 + 100 * NS_PER_S, 44.98, 10.02, 6.0)
    picks = _s_as_p(tt, o, 4, 3)
    inv = grid_network(12, 12.0, seed=3)
    events, rest = Associator(inv, tt).associate(picks)
    assert len(events) == 1 and all(".S." in x.id for x in rest), rest
    ev = events[0]
    km, dt = _error(ev, o)
    assert km < 1.0 and abs(dt) < 0.3, (km, dt)
    # the S picked as P are reported as S (same pick ids; 2 of the 3 fit), the 4 P as P
    assert sum(a.pick.phase is Phase.S for a in ev.arrivals) >= 2
    assert {a.pick.id for a in ev.arrivals} | {x.id for x in rest} == {x.id for x in picks}
    for a in ev.arrivals:
        assert (a.pick.phase is Phase.S) == (".S." in a.pick.id), a.pick
    # before (no relabelling): the S read as P pull the location 4 km and 1.4 s off
    monkeypatch.setattr(relabel, "MAX_FLIPS", 0)
    before, _ = Associator(inv, tt).associate(picks)
    assert len(before) == 1
    km, dt = _error(before[0], o)
    assert km > 3.0 and dt > 1.0, (km, dt)
    assert all(a.pick.phase is Phase.P for a in before[0].arrivals)


def test_true_p_picks_stay_p(tt: TravelTimes) -> None:
    """An event of P picks only (no S read as P): no trial explains more, nothing is
    relabelled."""
    o = Origin(T0 + 100 * NS_PER_S, 45.01, 10.03, 6.0)
    inv = grid_network(12, 12.0, seed=3)
    ps = sorted(picks_for(o, inv, tt, noise_s=0.05, rng=np.random.default_rng(2), tag="q:",
                          s_picks=False), key=lambda x: x.time_ns)[:7]
    events, rest = Associator(inv, tt).associate(ps)
    assert len(events) == 1 and rest == []
    assert all(a.pick.phase is Phase.P for a in events[0].arrivals)
    km, dt = _error(events[0], o)
    assert km < 1.0 and abs(dt) < 0.3, (km, dt)
