"""A false P pick before an earthquake's first arrival must not split it.

The associator seeds with the earliest unused pick. A false pick a few seconds before the first
arrival (a noise burst, a small earlier event) used to anchor the grid search: it found a
phantom origin seconds early, made of the earthquake's S picks read against the false P, and
the rest of the picks formed a second, thinner event. The search from a P seed is now also run
from the earliest other P pick with the seed left out, and the result with more picks is kept.
"""

from __future__ import annotations

import numpy as np
import pytest

from geosentry.stream.events.associate import Associator
from geosentry.stream.events.picks import Phase, Pick
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.velocity import TravelTimes
from geosentry.stream.records import NS_PER_S

T0 = 1_700_000_000 * NS_PER_S


# (station of the false pick, seconds before its true P): each of these split the event in two
# before (e.g. station 12, 4 s early: a phantom 4.8 s before the origin with 16 phases and the
# earthquake with 17 of its 32)
@pytest.mark.parametrize("station, early_s", [(0, 3.0), (5, 2.0), (7, 5.0), (12, 4.0),
                                              (13, 6.0), (15, 3.0)])
def test_a_false_p_before_the_first_arrival_does_not_split_the_event(
        tt: TravelTimes, station: int, early_s: float) -> None:
    inv = grid_network(16, 12.0, seed=3)  # 4 x 4 stations 12 km apart
    origin = Origin(T0, 45.0, 10.0, 6.0)
    picks = picks_for(origin, inv, tt, noise_s=0.05, rng=np.random.default_rng(1), tag="e:")
    assert len(picks) == 32
    st = list(inv.stations.values())[station]
    tp = min(p.time_ns for p in picks if p.station == st.station and p.phase is Phase.P)
    false = Pick(f"false:{st.key}", st.network, st.station, Phase.P, tp - int(early_s * NS_PER_S))
    events, rest = Associator(inv, tt).associate(picks + [false])
    assert len(events) == 1, [((e.time_ns - T0) / NS_PER_S, e.n_phases) for e in events]
    ev = events[0]
    assert abs(ev.time_ns - T0) / NS_PER_S < 0.3
    assert ev.n_phases >= 30 and false.id not in ev.pick_ids
    assert [p.id for p in rest] == [false.id]
