"""The checks a located pick set must pass to be an event (``Associator``): the seed's
neighbours, the station ratio and the significance against random picks.

Each takes the associator's settings and pool; ``active`` is computed once per location and
shared by the last two.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from geosentry.stream.events.locate import Hypocentre, Projection
from geosentry.stream.events.pool import AssociatorConfig, Pool
from geosentry.stream.events.stations import Inventory, Station
from geosentry.stream.events.velocity import F64, TravelTimes

#: stations that sent picks near the origin time (pool station rows), their distances from the
#: epicentre (km), how many picks, and the seconds of gathering window they could fall into
Active = tuple[np.ndarray, F64, int, float]


class Neighbours:
    """The seed's nearest stations by the inventory (cached per station)."""

    def __init__(self, inventory: Inventory, tt: TravelTimes, cfg: AssociatorConfig) -> None:
        self.inventory, self.tt, self.cfg = inventory, tt, cfg
        self._near: dict[str, list[tuple[str, float]]] = {}
        self._xy: tuple[list[str], F64, F64, Projection] | None = None

    def agree(self, pool: Pool, seed: int, used: np.ndarray) -> bool:
        """A cheap test before the grid search of a P seed: of the ``2 min_stations`` stations
        nearest the seed's (by the inventory), at least ``min_stations - 1`` have an unused P
        pick within their distance / (slowest P speed) + 2 ``p_residual_s`` of it. An
        earthquake's first stations have neighbours that pick it; a false pick's neighbours
        have only random picks (most false seeds end here)."""
        if pool.is_s[seed]:
            return True
        cfg = self.cfg
        st = pool.sta[seed]
        if pool.p_times is None:
            by: dict[str, list[int]] = {}
            for i in np.flatnonzero(~pool.is_s).tolist():
                by.setdefault(pool.sta[i].key, []).append(i)
            pool.p_times = {k: np.array(v, dtype=np.int64) for k, v in by.items()}
        vp = float(min(self.tt.model.vp_km_s))
        t = pool.t[seed]
        hits = 0
        for key, dist in self.nearest(st):
            rows = pool.p_times.get(key)
            if rows is None:
                continue
            rows = rows[~used[rows]]
            if len(rows) and bool((np.abs(pool.t[rows] - t) <= dist / vp
                                   + 2.0 * cfg.p_residual_s).any()):
                hits += 1
                if hits >= cfg.min_stations - 1:
                    return True
        return False

    def nearest(self, st: Station) -> list[tuple[str, float]]:
        got = self._near.get(st.key)
        if got is None:
            if self._xy is None:
                stations = list(self.inventory.stations.values())
                lat0 = float(np.mean([s.lat_deg for s in stations]))
                lon0 = float(np.mean([s.lon_deg for s in stations]))
                proj = Projection(lat0, lon0)
                x, y = proj.to_xy(np.array([s.lat_deg for s in stations]),
                                  np.array([s.lon_deg for s in stations]))
                self._xy = ([s.key for s in stations], np.asarray(x), np.asarray(y), proj)
            keys, xs, ys, proj = self._xy
            sx, sy = proj.to_xy(np.array([st.lat_deg]), np.array([st.lon_deg]))
            d = np.hypot(xs - float(sx[0]), ys - float(sy[0]))
            order = np.argsort(d, kind="stable")
            got = [(keys[i], float(d[i])) for i in order.tolist()
                   if keys[i] != st.key][:2 * self.cfg.min_stations]
            self._near[st.key] = got
        return got


def active(cfg: AssociatorConfig, pool: Pool, proj: Projection, hypo: Hypocentre,
           times: list[float]) -> Active:
    """Stations that sent picks within ``active_window_s`` of the origin time (pool rows of
    their positions), their distances from the epicentre, the number of those picks and
    the seconds of gathering window they could fall into by chance (a P pick only the P
    window, +-``p_residual_s``; an S pick only the S window)."""
    w = cfg.active_window_s
    lo = bisect.bisect_left(times, hypo.t0_s - w)
    hi = bisect.bisect_right(times, hypo.t0_s + w)
    act = np.unique(pool.sidx[lo:hi])
    ax, ay = proj.to_xy(pool.st_lat[act], pool.st_lon[act])
    n_s = int(pool.is_s[lo:hi].sum())
    window_s = 2.0 * (cfg.p_residual_s * (hi - lo - n_s) + cfg.s_residual_s * n_s)
    return act, np.hypot(ax - hypo.x_km, ay - hypo.y_km), hi - lo, window_s

def station_ratio(cfg: AssociatorConfig, pool: Pool, idx: np.ndarray, active: Active
                  ) -> float:
    act, d_all, _, _ = active
    d_mine = np.sort(d_all[np.isin(act, pool.sidx[idx])])
    # out to the k-th nearest station of the event and at least to its median distance:
    # a real event is picked at most stations nearer than half of its own
    k = max(min(cfg.min_stations, len(d_mine)), (len(d_mine) + 1) // 2)
    radius = float(d_mine[k - 1]) + 1e-6
    return float((d_mine <= radius).sum()) / float((d_all <= radius).sum())

def significant(cfg: AssociatorConfig, pool: Pool, idx: np.ndarray, proj: Projection,
                hypo: Hypocentre, times: list[float], active: Active,
                cross_validated: bool = False) -> bool:
    """More stations than random picks would give: with picks arriving at r per active
    station and second (the pool within ``active_window_s``), a station falls into the
    gathering windows by chance with p = 1 - exp(-r w); of the N
    active stations within the event's farthest station, N p +- sqrt(N p (1 - p)) would.
    The event needs ``min_significance`` standard deviations above that.

    The window: where the location was fitted to the picks it tests, each pick counts in
    both windows, w = 2 (``p_residual_s`` + ``s_residual_s``) (a fitted location draws
    picks to it); where every pick was predicted by a location of the others
    (``cross_validated``, ``crossval``), a P pick counts in the P window only and an S
    pick in the S window: r w = r_P 2 ``p_residual_s`` + r_S 2 ``s_residual_s``."""
    act, d_all, n_picks, window_s = active
    if n_picks < 2:
        return True
    # the window, or the whole pool where it is shorter (not the picks' own spread: one
    # event's picks alone would look like a dense stream)
    span = max(min(2.0 * cfg.active_window_s, times[-1] - times[0]), 60.0)
    if not cross_validated:
        window_s = 2.0 * n_picks * (cfg.p_residual_s + cfg.s_residual_s)
    p = 1.0 - math.exp(-window_s / (len(act) * span))
    mx, my = proj.to_xy(pool.lat[idx], pool.lon[idx])
    far = float(np.hypot(mx - hypo.x_km, my - hypo.y_km).max()) + 1e-6
    n = float((d_all <= far).sum())
    n_sta = len(np.unique(pool.sidx[idx]))
    return n_sta >= n * p + cfg.min_significance * math.sqrt(n * p * (1.0 - p))
