"""The associator's back-projection grid search, vectorised (``GridSearch.best_node``).

For a seed pick and its candidate picks, every node of an ``n x n x depths`` grid gets the
number of stations whose implied origin time (pick time - predicted travel time) is within
``tol`` of the seed's, and a score ``1000 count - sum(min(deviation, tol))``; the best node wins
(the first in node order on ties).

Two things make it cheap without changing what it finds:

* travel times come from one table row per depth (P and S rows side by side, so one gather
  serves both phases) at distances computed once per (x, y) node, not once per depth;
* a candidate whose implied origin time cannot come within ``tol`` of the seed's at any node
  (bounded by its travel times to the nearest and farthest point of the grid's box; first
  arrivals grow with distance) is left out: it adds ``tol`` to every node's penalty alike, so
  the ranking of the nodes does not depend on it.
"""

from __future__ import annotations

import numpy as np

from geosentry.stream.events.locate import Observations
from geosentry.stream.events.velocity import F64, TravelTimes

#: below the crust the coarse grid has a node every this many km, from ``DEEP_FROM_KM`` to the
#: travel-time table's bottom (``[stations] max_depth_km``): intermediate and deep earthquakes
#: are searched where the table reaches them; the crustal nodes stay the associator's
#: ``grid_depths_km``, the fine grid's crustal depths every 3 km to ``CRUST_FINE_KM``
DEEP_STEP_KM = 20.0
DEEP_FROM_KM = 65.0
CRUST_FINE_KM = 45.0
MARGIN_S = 1e-6  # on the pruning bound (rounding of the interpolated times)


class GridSearch:
    def __init__(self, tt: TravelTimes) -> None:
        self.tt = tt
        self._rows: dict[float, F64] = {}  # depth -> P row ++ S row (interpolated in depth)
        self._n = len(tt.dist_km)
        # first arrivals grow with distance in every row: the pruning bounds hold
        self.monotonic = all(bool((np.diff(tt.tables[p], axis=1) >= 0).all()) for p in "PS")

    def _row(self, depth: float) -> F64:
        """``TravelTimes.time_at_depth``'s row for this depth, P then S."""
        row = self._rows.get(depth)
        if row is None:
            tt = self.tt
            fz = (min(max(depth, float(tt.depth_km[0])), float(tt.depth_km[-1]))
                  - tt.top_km) / tt.step_km
            iz = min(int(fz), len(tt.depth_km) - 2)
            az = fz - iz
            parts = []
            for phase in ("P", "S"):
                tab = tt.tables[phase]
                parts.append(tab[iz] if az == 0.0 else tab[iz] * (1.0 - az) + tab[iz + 1] * az)
            row = self._rows[depth] = np.concatenate(parts)
            if len(self._rows) > 256:
                self._rows.pop(next(iter(self._rows)))
        return row

    def _at(self, is_s: np.ndarray, d: F64, depths: F64) -> F64:
        """Travel times ``(*d.shape[:-1], depth, pick)`` at distances ``d`` (picks along the
        last axis), as ``TravelTimes.time_at_depth`` computes them."""
        fx = d * (1.0 / self.tt.step_km)
        ix = np.minimum(fx.astype(np.int64), self._n - 2)  # distances are >= 0
        frac = fx - ix
        ix += np.where(is_s, self._n, 0)
        ix1 = ix + 1
        out = np.empty((*d.shape[:-1], len(depths), d.shape[-1]), dtype=np.float64)
        for k, depth in enumerate(depths.tolist()):
            row = self._row(depth)
            t0 = row.take(ix)
            t1 = row.take(ix1)
            t1 -= t0
            t1 *= frac
            t1 += t0  # t0 + (t1 - t0) frac, as TravelTimes.time_at_depth
            out[..., k, :] = t1
        return out

    def times(self, obs: Observations, xs: F64, ys: F64, depths: F64) -> F64:
        """Predicted times (minus the elevation corrections), ``(len(xs) * len(depths), picks)``
        in node order (x, y) major, depth minor: the values ``locate.grid_times`` gives."""
        d = np.hypot(obs.x_km[None, :] - xs[:, None], obs.y_km[None, :] - ys[:, None])
        out = self._at(obs.is_s, d, depths)
        out -= obs.corr_s[None, None, :]
        return out.reshape(len(xs) * len(depths), len(obs))

    def _reachable(self, obs: Observations, seed_pos: int, cx: float, cy: float,
                   radius: float, depths: F64, tol: float) -> np.ndarray:
        """Picks whose implied origin time can come within ``tol`` of the seed's somewhere in
        the box (the seed itself included)."""
        keep = np.ones(len(obs), dtype=bool)
        if not self.monotonic:
            return keep
        r = radius + 1e-6
        ex = np.maximum(np.abs(obs.x_km - cx) - r, 0.0)
        ey = np.maximum(np.abs(obs.y_km - cy) - r, 0.0)
        dmin = np.hypot(ex, ey)
        dmax = np.hypot(np.abs(obs.x_km - cx) + r, np.abs(obs.y_km - cy) + r)
        t = self._at(obs.is_s, np.stack([dmin, dmax]), depths)  # (min, max), depth, pick
        lo, hi = t[0].min(axis=0), t[1].max(axis=0)
        base = obs.t_s + obs.corr_s  # implied origin = base - travel time
        o_lo, o_hi = base - hi - MARGIN_S, base - lo + MARGIN_S
        out: np.ndarray = (o_lo <= o_hi[seed_pos] + tol) & (o_hi >= o_lo[seed_pos] - tol)
        out[seed_pos] = True
        return out

    def best_node(self, obs: Observations, seed_pos: int, sta_of: np.ndarray,
                  cx: float, cy: float, radius: float, n: int, depths: F64, tol: float
                  ) -> tuple[int, float, float, float, np.ndarray]:
        """(count, x, y, depth, hit) of the best node; ``hit`` marks the picks agreeing there."""
        keep = self._reachable(obs, seed_pos, cx, cy, radius, depths, tol)
        cols = np.flatnonzero(keep)
        sub = obs.subset(cols)
        pos = int(np.searchsorted(cols, seed_pos))
        g = np.linspace(-radius, radius, n)
        X, Y = np.meshgrid(cx + g, cy + g, indexing="ij")
        xs, ys = X.ravel(), Y.ravel()
        dev = self.times(sub, xs, ys, depths)
        np.subtract(sub.t_s[None, :], dev, out=dev)  # implied origin times
        dev -= dev[:, pos: pos + 1].copy()
        np.abs(dev, out=dev)
        hit = dev <= tol
        count = _stations_hit(hit, sta_of[cols])
        np.minimum(dev, tol, out=dev)  # a miss costs tol
        score = count * 1000.0 - dev.sum(axis=1)
        i = int(np.argmax(score))
        nz = len(depths)
        full = np.zeros(len(obs), dtype=bool)
        full[cols] = hit[i]
        return (int(count[i]), float(xs[i // nz]), float(ys[i // nz]), float(depths[i % nz]),
                full)


def _stations_hit(hit: np.ndarray, sta: np.ndarray) -> np.ndarray:
    """Per node (row), the number of stations with at least one hit pick (column): a station
    with one pick counts its column, one with two (P and S) their OR, more by ``reduceat``."""
    order = np.argsort(sta, kind="stable")
    s = sta[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, len(s)])
    first = order[starts]
    count: np.ndarray = hit[:, first[sizes == 1]].sum(axis=1)
    two = starts[sizes == 2]
    if len(two):
        count += (hit[:, order[two]] | hit[:, order[two + 1]]).sum(axis=1)
    more = np.flatnonzero(sizes > 2)
    if len(more):
        cols = np.concatenate([order[starts[g]: starts[g] + sizes[g]] for g in more.tolist()])
        bounds = np.r_[0, np.cumsum(sizes[more])[:-1]]
        count += np.logical_or.reduceat(hit[:, cols], bounds, axis=1).sum(axis=1)
    return count


def coarse_grid_depths(crust_km: tuple[float, ...], top_km: float, bottom_km: float) -> F64:
    """The coarse grid's depths within the table: the crustal ones
    (``AssociatorConfig.grid_depths_km``) and, where the table reaches below ``DEEP_FROM_KM``,
    one every ``DEEP_STEP_KM`` down to it.

    >>> coarse_grid_depths((3.0, 10.0, 20.0, 35.0), 0.0, 60.0).tolist()   # the default table
    [3.0, 10.0, 20.0, 35.0]
    >>> coarse_grid_depths((3.0, 10.0, 20.0, 35.0), 0.0, 150.0).tolist()
    [3.0, 10.0, 20.0, 35.0, 65.0, 85.0, 105.0, 125.0, 145.0]
    >>> coarse_grid_depths((3.0, 10.0, 20.0, 35.0), -3.0, 20.0).tolist()  # a shallow table
    [3.0, 10.0, 20.0]
    """
    deep = np.arange(DEEP_FROM_KM, bottom_km + 1e-9, DEEP_STEP_KM)
    both = np.concatenate([np.asarray(crust_km, dtype=np.float64), deep])
    out: F64 = np.unique(np.clip(both, top_km, bottom_km))
    return out


def fine_grid_depths(coarse_km: float, top_km: float, bottom_km: float) -> F64:
    """The fine grid's depths about the coarse grid's best node ``coarse_km``, within the
    table: the crust every 3 km within 10 km of a crustal node, else every 3 km within 9 km of
    the deep node (just under half of ``DEEP_STEP_KM``; Geiger's method refines depth
    afterwards).

    >>> fine_grid_depths(20.0, 0.0, 60.0).tolist()
    [12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0]
    >>> fine_grid_depths(105.0, 0.0, 150.0).tolist()
    [96.0, 99.0, 102.0, 105.0, 108.0, 111.0, 114.0]
    """
    if coarse_km < DEEP_FROM_KM:
        grid = np.arange(0.0, CRUST_FINE_KM, 3.0)
        near = grid[np.abs(grid - coarse_km) <= 10.0]
    else:
        near = coarse_km + np.arange(-9.0, 9.0 + 1e-9, 3.0)
    out: F64 = np.unique(np.clip(near, top_km, bottom_km))
    return out
