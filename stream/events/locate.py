"""Hypocentre location on a 1-D model: a grid search for a start, then damped Gauss-Newton
(Geiger's method) on the origin time, the epicentre and the depth.

Coordinates are local: an equirectangular projection about a reference point (km east, km
north), good to a fraction of a percent within a few hundred km. Depth is km below sea level,
kept within the travel-time table. Uncertainties are the 1-sigma square roots of the
covariance ``s^2 (J^T W J)^-1`` with ``s`` the weighted RMS (at least ``min_sigma_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from geosentry.stream.events.velocity import F64, TravelTimes

KM_PER_DEG = 111.195


@dataclass(frozen=True)
class Projection:
    lat0_deg: float
    lon0_deg: float

    @property
    def _kx(self) -> float:
        return KM_PER_DEG * math.cos(math.radians(self.lat0_deg))

    def to_xy(self, lat: F64, lon: F64) -> tuple[F64, F64]:
        dlon = (np.asarray(lon) - self.lon0_deg + 180.0) % 360.0 - 180.0
        return dlon * self._kx, (np.asarray(lat) - self.lat0_deg) * KM_PER_DEG

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        lon = (self.lon0_deg + x / self._kx + 180.0) % 360.0 - 180.0
        return self.lat0_deg + y / KM_PER_DEG, lon


@dataclass
class Observations:
    """One row per pick: station position (km), elevation correction (s), phase, time (s after
    ``ref_s``), weight."""

    x_km: F64
    y_km: F64
    corr_s: F64
    is_s: NDArray[np.bool_]
    t_s: F64
    weight: F64

    def __len__(self) -> int:
        return len(self.t_s)

    def subset(self, mask: NDArray[np.bool_] | NDArray[np.int64]) -> Observations:
        return Observations(self.x_km[mask], self.y_km[mask], self.corr_s[mask],
                            self.is_s[mask], self.t_s[mask], self.weight[mask])


@dataclass(frozen=True)
class Hypocentre:
    x_km: float
    y_km: float
    depth_km: float
    t0_s: float
    err_x_km: float
    err_y_km: float
    err_depth_km: float
    err_t0_s: float
    rms_s: float
    residuals_s: F64
    distances_km: F64
    converged: bool


def predict(tt: TravelTimes, obs: Observations, x: float, y: float, z: float
            ) -> tuple[F64, F64, F64, F64]:
    """Predicted travel times and their gradients by x, y, z at one trial hypocentre."""
    dx, dy = obs.x_km - x, obs.y_km - y
    d = np.hypot(dx, dy)
    t, gx, gz = tt.time_and_gradient_mixed(obs.is_s, d, float(z))
    t -= obs.corr_s
    safe = np.maximum(d, 1e-6)
    return t, -gx * dx / safe, -gx * dy / safe, gz


def grid_times(tt: TravelTimes, obs: Observations, gx: F64, gy: F64, gz: F64) -> F64:
    """Predicted times, nodes x picks, for many trial hypocentres (vectorised)."""
    d = np.hypot(obs.x_km[None, :] - gx[:, None], obs.y_km[None, :] - gy[:, None])
    out = np.empty_like(d)
    for depth in np.unique(gz):  # grids have few depths: one table row pair each
        rows = gz == depth
        for phase, m in (("P", ~obs.is_s), ("S", obs.is_s)):
            if m.any():
                sub = d[np.ix_(rows, m)]
                out[np.ix_(rows, m)] = tt.time_at_depth(phase, sub.ravel(), float(depth)
                                                        ).reshape(sub.shape)
    return out - obs.corr_s[None, :]


def grid_start(tt: TravelTimes, obs: Observations, cx: float, cy: float, radius_km: float,
               depths_km: F64, n: int = 15) -> tuple[float, float, float]:
    """Best node of an n x n x depths grid about (cx, cy) by robust (L1) misfit."""
    g = np.linspace(-radius_km, radius_km, n)
    X, Y, Z = np.meshgrid(cx + g, cy + g, depths_km, indexing="ij")
    gx, gy, gz = X.ravel(), Y.ravel(), Z.ravel()
    pred = grid_times(tt, obs, gx, gy, gz)
    o = obs.t_s[None, :] - pred
    t0 = np.median(o, axis=1)
    mis = (np.abs(o - t0[:, None]) * obs.weight[None, :]).sum(axis=1)
    i = int(np.argmin(mis))
    return float(gx[i]), float(gy[i]), float(gz[i])


def geiger(tt: TravelTimes, obs: Observations, start: tuple[float, float, float],
           iterations: int = 12, min_sigma_s: float = 0.05, fix_depth: bool = False,
           damping: float = 0.01) -> Hypocentre:
    x, y, z = start
    zmin, zmax = float(tt.depth_km[0]), float(tt.depth_km[-1])
    pred = predict(tt, obs, x, y, z)[0]
    t0 = float(np.average(obs.t_s - pred, weights=obs.weight))
    w = obs.weight
    converged = False
    n_par = 3 if fix_depth else 4
    sw = np.sqrt(w)
    damp = damping * np.eye(n_par)
    ones = np.ones(len(obs))
    for _ in range(iterations):
        t, ax, ay, az = predict(tt, obs, x, y, z)
        r = obs.t_s - (t0 + t)
        cols = [ones, ax, ay] + ([] if fix_depth else [az])
        J = np.stack(cols, axis=1)
        A, b = J * sw[:, None], r * sw
        scale = np.maximum(np.linalg.norm(A, axis=0), 1e-12)
        An = A / scale
        lhs = An.T @ An + damp
        step = np.linalg.solve(lhs, An.T @ b) / scale
        dx, dy = min(max(float(step[1]), -20.0), 20.0), min(max(float(step[2]), -20.0), 20.0)
        dz = 0.0 if fix_depth else min(max(float(step[3]), -10.0), 10.0)
        t0 += float(step[0])
        x, y = x + dx, y + dy
        z = min(max(z + dz, zmin), zmax)
        if math.hypot(dx, dy) < 0.01 and abs(dz) < 0.01:
            converged = True
            break
    t, ax, ay, az = predict(tt, obs, x, y, z)
    r = obs.t_s - (t0 + t)
    t0 += float(np.average(r, weights=w))
    r = obs.t_s - (t0 + t)
    rms = float(math.sqrt(np.average(r**2, weights=w)))
    J = np.stack([np.ones_like(t), ax, ay, az], axis=1) * np.sqrt(w)[:, None]
    sigma = max(rms, min_sigma_s)
    try:
        cov = np.linalg.pinv(J.T @ J) * sigma**2
        err = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        err = np.full(4, np.inf)
    d = np.hypot(obs.x_km - x, obs.y_km - y)
    return Hypocentre(x, y, z, t0, float(err[1]), float(err[2]), float(err[3]), float(err[0]),
                      rms, r, d, converged)


def predict_rows(tt: TravelTimes, obs: Observations, x: F64, y: F64, z: F64
                 ) -> tuple[F64, F64, F64, F64]:
    """``predict`` at K trial hypocentres at once: ``(K, n)`` times and gradients."""
    dx, dy = obs.x_km[None, :] - x[:, None], obs.y_km[None, :] - y[:, None]
    d = np.hypot(dx, dy)
    t, gx, gz = tt.time_and_gradient_rows(obs.is_s, d, z)
    t = t - obs.corr_s[None, :]
    safe = np.maximum(d, 1e-6)
    return t, -gx * dx / safe, -gx * dy / safe, gz


def geiger_rows(tt: TravelTimes, obs: Observations, keep: NDArray[np.bool_],
                start: tuple[float, float, float], iterations: int = 12,
                damping: float = 0.01) -> tuple[F64, F64, F64, F64]:
    """``geiger`` (free depth) of K subsets of ``obs`` at once, subset k the picks where
    ``keep[k]`` (``(K, n)``), each from ``start``: their (x, y, depth, origin time), the same
    steps as ``geiger`` on ``obs.subset(keep[k])`` (a dropped pick weighs nothing; each subset
    stops when its own step is below 0.01 km). Uncertainties are not computed."""
    k_n = keep.shape[0]
    x, y, z = (np.full(k_n, float(v)) for v in start)
    zmin, zmax = float(tt.depth_km[0]), float(tt.depth_km[-1])
    w = obs.weight[None, :] * keep
    wsum = w.sum(axis=1)
    pred = predict_rows(tt, obs, x, y, z)[0]
    t0 = (w * (obs.t_s[None, :] - pred)).sum(axis=1) / wsum
    sw = np.sqrt(w)
    damp = damping * np.eye(4)
    active = np.ones(k_n, dtype=bool)
    for _ in range(iterations):
        a = np.flatnonzero(active)
        if len(a) == 0:
            break
        t, ax, ay, az = predict_rows(tt, obs, x[a], y[a], z[a])
        r = obs.t_s[None, :] - (t0[a, None] + t)
        jac = np.stack([np.ones_like(t), ax, ay, az], axis=2)
        big_a, b = jac * sw[a, :, None], r * sw[a]
        scale = np.maximum(np.linalg.norm(big_a, axis=1), 1e-12)
        an = big_a / scale[:, None, :]
        lhs = np.einsum("kni,knj->kij", an, an) + damp
        step = np.linalg.solve(lhs, np.einsum("kni,kn->ki", an, b)[..., None])[..., 0] / scale
        dx, dy = np.clip(step[:, 1], -20.0, 20.0), np.clip(step[:, 2], -20.0, 20.0)
        dz = np.clip(step[:, 3], -10.0, 10.0)
        t0[a] += step[:, 0]
        x[a] += dx
        y[a] += dy
        z[a] = np.clip(z[a] + dz, zmin, zmax)
        active[a[(np.hypot(dx, dy) < 0.01) & (np.abs(dz) < 0.01)]] = False
    t = predict_rows(tt, obs, x, y, z)[0]
    t0 = t0 + (w * (obs.t_s[None, :] - (t0[:, None] + t))).sum(axis=1) / wsum
    return x, y, z, t0


def azimuthal_gap_deg(x_km: F64, y_km: F64, ex: float, ey: float) -> float:
    """Largest gap in azimuth (degrees) between stations seen from the epicentre."""
    az = np.sort(np.degrees(np.arctan2(x_km - ex, y_km - ey)) % 360.0)
    if len(az) < 2:
        return 360.0
    gaps = np.diff(np.append(az, az[0] + 360.0))
    return float(gaps.max())
