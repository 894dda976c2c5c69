"""Phase relabelling of a small event's late P picks (``Associator``).

A picker that labels an S arrival P (Iceland 2014 paced replay: a swarm earthquake's first 4
stations' P and, at 2-3 stations whose P it missed, the S picked as P) gives a small event
whose picks a location far away fits as all P (79 km off, RMS 0.16-0.29 s, each pick predicted
by the others): its residuals and ``crossval`` cannot tell. The earthquake's own location,
with those picks read as S, explains more of the picks around it (its other S picks).

So for an accepted event of at most ``crossval_max_phases`` phases from a P seed, the search
from the same seed is tried again with the last 1, 2, ... of its P picks (not the
seed, and only at stations without an S pick in the event: an S arrives after the P) read
as S, at most ``MAX_FLIPS``, keeping at least ``KEEP_P`` P picks; "last" by the apparent
slowness from the seed's station (time after the seed over the distance, at least ``MIN_KM``:
an S comes late for its distance). A trial replaces the event
when it passes the same checks with more phases and at least as many stations; the best
trial wins (most phases, then lowest RMS; the fewest relabelled on ties). Picks of the
replacement that were relabelled carry phase S in the event's arrivals (``as_located``);
the pool reads them as S for the rest of the association.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from geosentry.stream.events.locate import Hypocentre, Projection
from geosentry.stream.events.picks import Phase, Pick
from geosentry.stream.events.pool import Pool

if TYPE_CHECKING:
    from geosentry.stream.events.associate import Associator

#: at most this many of an event's P picks are read as S in one trial
MAX_FLIPS = 4
#: P picks (the seed's included) a trial keeps
KEEP_P = 3
#: distances from the seed's station below this count as this in the apparent slowness
#: (the picks' errors over a short distance)
MIN_KM = 5.0


def as_located(pool: Pool, i: int) -> Pick:
    """Pool pick ``i`` with the phase the association read it as."""
    p = pool.picks[i]
    if bool(pool.is_s[i]) != (p.phase is Phase.S):
        return replace(p, phase=Phase.S if pool.is_s[i] else Phase.P)
    return p


def _flip(assoc: Associator, pool: Pool, rows: np.ndarray, to_s: bool) -> None:
    pool.is_s[rows] = to_s
    if pool.corr_s is not None:
        elev = -pool.elev_km[rows]
        pool.corr_s[rows] = assoc.tt.vertical_s("S" if to_s else "P", elev)


def better(assoc: Associator, pool: Pool, seed: int, used: np.ndarray, times: list[float],
           proj: Projection, idx: np.ndarray, hypo: Hypocentre
           ) -> tuple[np.ndarray, Hypocentre]:
    """The event (``idx``, ``hypo``) or the best relabelled trial that beats it (its flips
    left in ``pool``; see the module doc)."""
    s_sta = set(pool.sidx[idx[pool.is_s[idx]]].tolist())
    late = [i for i in idx.tolist()
            if i != seed and not pool.is_s[i] and int(pool.sidx[i]) not in s_sta]
    # an S read as P comes late for its distance from the seed's station: rank by the
    # apparent slowness from there (an S's is about vp / vs times a P's)
    x, y = proj.to_xy(pool.lat[late], pool.lon[late])
    slow = {i: (times[i] - times[seed]) / max(float(d), MIN_KM)
            for i, d in zip(late, np.hypot(x, y).tolist())}
    late.sort(key=lambda i: (slow[i], i))
    n_flip = min(MAX_FLIPS, len(late) + 1 - KEEP_P)
    if n_flip <= 0:
        return idx, hypo
    n_sta = len(np.unique(pool.sidx[idx]))
    best: tuple[tuple[int, float, int], np.ndarray, Hypocentre, np.ndarray] | None = None
    for k in range(1, n_flip + 1):
        rows = np.array(late[-k:], dtype=np.int64)
        _flip(assoc, pool, rows, True)
        try:
            got = _trial(assoc, pool, seed, used, times, proj)
        finally:
            _flip(assoc, pool, rows, False)
        if got is None:
            continue
        idx2, hypo2 = got
        if len(idx2) <= len(idx) or len(np.unique(pool.sidx[idx2])) < n_sta:
            continue
        rank = (-len(idx2), hypo2.rms_s, k)
        if best is None or rank < best[0]:
            best = (rank, idx2, hypo2, rows)
    if best is None:
        return idx, hypo
    _, idx2, hypo2, rows = best
    _flip(assoc, pool, np.intersect1d(rows, idx2), True)  # read as S from now on
    return idx2, hypo2


def _trial(assoc: Associator, pool: Pool, seed: int, used: np.ndarray, times: list[float],
           proj: Projection) -> tuple[np.ndarray, Hypocentre] | None:
    """The seed's search and checks with the pool's current labels."""
    reach = assoc._reach(pool, seed, used, times, proj)
    if reach is None:
        return None
    found = assoc._search(pool, seed, used, times, proj, *reach)
    if found is None:
        return None
    idx, hypo, ok = assoc._accept(pool, *found, proj, times)
    return (idx, hypo) if ok else None
