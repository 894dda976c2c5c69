"""1-D layered velocity model and first-arrival travel-time tables.

A model is a list of layers (depth of the top in km below sea level, Vp, Vs in km/s); the last
layer is a half-space. The default (``DEFAULT_MODEL``) is the IASP91 crust and uppermost
mantle: 0-20 km Vp 5.80 / Vs 3.36, 20-35 km 6.50 / 3.75, below 35 km 8.04 / 4.47.

First arrivals for a receiver at the model's top are the faster of the direct ray (shot through
the layers above the source over a dense set of ray parameters) and the head waves along every
interface below the source that is faster than everything above it; tabulated on a distance x
depth grid and interpolated bilinearly (with the cell's gradients, for location). A receiver
below or above the model top gets a vertical-ray correction through the layers in between.

>>> tt = TravelTimes(DEFAULT_MODEL, max_distance_km=200.0)
>>> round(float(tt.time("P", np.array([0.0]), np.array([10.0]))[0]), 3)  # 10 km / 5.8 km/s
1.724
>>> round(float(tt.time("P", np.array([150.0]), np.array([10.0]))[0]), 2)  # Pn beats Pg, Pb
24.96
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from geosentry.stream.errors import GeosentryError

F64 = NDArray[np.float64]


class VelocityModelError(GeosentryError):
    """A velocity model file that cannot be used (one line, names the file)."""


@dataclass(frozen=True)
class VelocityModel:
    top_km: tuple[float, ...]
    vp_km_s: tuple[float, ...]
    vs_km_s: tuple[float, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        n = len(self.top_km)
        if n == 0 or len(self.vp_km_s) != n or len(self.vs_km_s) != n:
            raise VelocityModelError(f"velocity model {self.name}: needs depth, Vp and Vs rows")
        if any(b <= a for a, b in zip(self.top_km, self.top_km[1:])):
            raise VelocityModelError(f"velocity model {self.name}: depths must increase")
        if min(self.vp_km_s) <= 0 or min(self.vs_km_s) <= 0:
            raise VelocityModelError(f"velocity model {self.name}: velocities must be > 0")

    def velocities(self, phase: str) -> F64:
        return np.asarray(self.vp_km_s if phase == "P" else self.vs_km_s, dtype=np.float64)


DEFAULT_MODEL = VelocityModel((0.0, 20.0, 35.0), (5.8, 6.5, 8.04), (3.36, 3.75, 4.47),
                              name="IASP91 crust")


def read_velocity_model(path: str | Path) -> VelocityModel:
    """CSV or whitespace table ``depth_km, vp_km_s, vs_km_s`` (a header line naming the
    columns may give another order), a NonLinLoc ``LAYER`` model, or the model section of a
    SEISAN ``STATION0.HYP``."""
    p = Path(path)
    try:
        text = p.read_text(errors="replace")
    except OSError as exc:
        raise VelocityModelError(f"velocity model {p}: {exc.strerror or exc}") from exc
    if "RESET TEST" in text or p.suffix.lower() == ".hyp":
        from geosentry.stream.events.seisan import read_station0

        return read_station0(p).model
    if any(ln.split()[:1] == ["LAYER"] for ln in text.splitlines()):
        rows = _nonlinloc(p, text)
    else:
        rows = _table(p, text)
    if not rows:
        raise VelocityModelError(f"velocity model {p}: no layers")
    return VelocityModel(tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                         tuple(r[2] for r in rows), name=p.name)


#: column names a table's header may give (any order); without a header: depth, vp, vs
_COLUMNS = {"depth": ("depth_km", "depth", "top_km", "top", "z", "z_km"),
            "vp": ("vp_km_s", "vp", "p"), "vs": ("vs_km_s", "vs", "s")}
#: sublayer thickness for NonLinLoc layers with a velocity gradient
GRADIENT_STEP_KM = 0.5


def _table(p: Path, text: str) -> list[tuple[float, float, float]]:
    """``depth_km, vp, vs`` rows (comma or whitespace separated); a header may name the
    columns in another order (``depth,vs,vp``)."""
    rows: list[tuple[float, float, float]] = []
    delim = "," if "," in text else None
    lines = list(csv.reader(text.splitlines())) if delim else [ln.split() for ln in
                                                                text.splitlines()]
    cols: tuple[int, ...] = (0, 1, 2)
    for n, parts in enumerate(lines, start=1):
        if not parts or parts[0].startswith("#"):
            continue
        try:
            rows.append(tuple(float(parts[c]) for c in cols))  # type: ignore[arg-type]
        except (ValueError, IndexError) as exc:
            if not rows:  # a header
                names = [x.strip().lower() for x in parts]
                found = [next((names.index(a) for a in _COLUMNS[k] if a in names), None)
                         for k in ("depth", "vp", "vs")]
                if all(c is not None for c in found):
                    cols = tuple(c for c in found if c is not None)
                continue
            raise VelocityModelError(f"velocity model {p} line {n}: need depth_km, vp, vs "
                                     f"({exc})") from exc
    return rows


def _nonlinloc(p: Path, text: str) -> list[tuple[float, float, float]]:
    """NonLinLoc ``LAYER depth VpTop VpGrad VsTop VsGrad [rhoTop rhoGrad]`` lines (km, km/s,
    1/s); a layer with a gradient is cut into ``GRADIENT_STEP_KM`` sublayers at its mid-depth
    speeds (the last layer keeps its top speeds: it has no bottom)."""
    layers: list[tuple[float, float, float, float, float]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if parts[:1] != ["LAYER"]:
            continue
        try:
            layers.append(tuple(float(x) for x in parts[1:6]))  # type: ignore[arg-type]
            if len(layers[-1]) != 5:
                raise ValueError("fewer than 5 numbers")
        except ValueError as exc:
            raise VelocityModelError(f"velocity model {p} line {n}: need LAYER depth VpTop "
                                     f"VpGrad VsTop VsGrad ({exc})") from exc
    layers.sort(key=lambda r: r[0])
    rows: list[tuple[float, float, float]] = []
    for i, (z, vp, gp, vs, gs) in enumerate(layers):
        bottom = layers[i + 1][0] if i + 1 < len(layers) else z
        steps = max(1, math.ceil((bottom - z) / GRADIENT_STEP_KM - 1e-9)) if (gp or gs) else 1
        h = (bottom - z) / steps
        for k in range(steps):
            mid = (k + 0.5) * h
            rows.append((z + k * h, vp + gp * mid, vs + gs * mid))
    return rows


def _first_arrivals(top: F64, v: F64, zs: float, x: F64) -> F64:
    """First-arrival times at the surface (``top[0]``) at distances ``x`` from a source at ``zs``."""
    k = int(np.searchsorted(top, zs, side="right") - 1)
    if k > 0 and zs - top[k] < 1e-9:
        # on an interface: at the bottom of the layer above (a source layer of no thickness
        # has no rays that reach far; the head wave along this interface is then counted)
        k -= 1
    h = np.diff(top)[:k].tolist() + [zs - top[k]]
    hk = np.asarray(h, dtype=np.float64)
    vk = v[: k + 1]
    best = np.full(x.shape, np.inf)
    # direct ray: p from 0 towards 1 / max(v above the source)
    vmax = float(vk.max())
    theta = np.concatenate([np.linspace(0.0, 1.5, 600), 1.5 + (np.pi / 2 - 1.5)
                            * (1.0 - np.logspace(-7, 0, 600)[::-1])])[:-1]
    p = np.sin(theta)[:, None] / vmax
    cos = np.sqrt(np.maximum(1.0 - (p * vk) ** 2, 1e-300))
    xs = (hk * p * vk / cos).sum(axis=1)
    ts = (hk / (vk * cos)).sum(axis=1)
    order = np.argsort(xs)
    xs, ts = xs[order], ts[order]
    ok = x <= xs[-1]
    best[ok] = np.interp(x[ok], xs, ts)
    if hk[-1] <= 0.0:  # a source at the model top: the wave along it
        best = np.minimum(best, x / float(vk[-1]))
    # head waves along the top of each faster layer below the source
    thick = np.diff(top)
    for m in range(k + 1, len(top)):
        vm = v[m]
        if vm <= v[:m].max():
            continue
        n = np.ones(m)
        n[k + 1: m] = 2.0
        hh = thick[:m] * n
        hh[k] = thick[k] + (top[k + 1] - zs)
        q = np.sqrt(1.0 / v[:m] ** 2 - 1.0 / vm**2)
        t = x / vm + float((hh * q).sum())
        xmin = float((hh * v[:m] / vm / np.sqrt(1.0 - (v[:m] / vm) ** 2)).sum())
        best = np.where(x >= xmin, np.minimum(best, t), best)
    bad = ~np.isfinite(best)
    if bad.any():  # nothing reaches (a low-velocity zone): straight ray at the slowest speed
        best[bad] = np.hypot(x[bad], zs - top[0]) / float(vk.min())
    return best


class TravelTimes:
    """P and S first-arrival tables for one model: ``time`` and ``time_and_gradient``."""

    def __init__(self, model: VelocityModel = DEFAULT_MODEL, max_distance_km: float = 400.0,
                 max_depth_km: float = 60.0, step_km: float = 0.5) -> None:
        self.model = model
        self.top_km = model.top_km[0]
        self.step_km = step_km
        self.dist_km = np.arange(0.0, max_distance_km + step_km, step_km)
        self.depth_km = np.arange(self.top_km, max(max_depth_km, self.top_km + 2 * step_km)
                                  + step_km, step_km)
        top = np.asarray(model.top_km, dtype=np.float64)
        self.tables: dict[str, F64] = {}
        for phase in ("P", "S"):
            v = model.velocities(phase)
            self.tables[phase] = np.stack([_first_arrivals(top, v, float(z), self.dist_km)
                                           for z in self.depth_km])
        self._top = top
        self._both: NDArray[np.float64] | None = None

    @property
    def max_depth_km(self) -> float:
        """The table's deepest source: location keeps depths at or above it."""
        return float(self.depth_km[-1])

    def at_bottom(self, depth_km: float) -> bool:
        """Whether a located depth sits on the table's bottom (within half a step): the
        source may be deeper than the table reaches (``[stations] max_depth_km``), so its
        origin time and depth are not to be trusted.

        >>> tt = TravelTimes(max_distance_km=10.0, max_depth_km=60.0)
        >>> tt.at_bottom(59.8), tt.at_bottom(55.0)
        (True, False)
        """
        return depth_km >= self.max_depth_km - self.step_km / 2

    def vertical_s(self, phase: str, depth_km: F64) -> F64:
        """Vertical one-way time from the model top down to ``depth_km`` (negative above it)."""
        v = self.model.velocities(phase)
        top = self._top
        edges = np.append(top, np.inf)
        out = np.zeros_like(depth_km, dtype=np.float64)
        for i in range(len(top)):
            seg = np.clip(depth_km, edges[i], edges[i + 1]) - edges[i]
            out += np.maximum(seg, 0.0) / v[i]
        above = depth_km < top[0]
        out[above] = (depth_km[above] - top[0]) / v[0]
        return out

    def time_and_gradient(self, phase: str, dist_km: F64, depth_km: F64
                          ) -> tuple[F64, F64, F64]:
        """Travel time (s) and its derivatives by distance and by source depth (s/km)."""
        tab = self.tables[phase]
        nd, nz = len(self.dist_km), len(self.depth_km)
        fx = np.asarray(dist_km, dtype=np.float64) / self.step_km
        fz = (np.clip(depth_km, self.depth_km[0], self.depth_km[-1]) - self.top_km) / self.step_km
        ix = np.clip(np.floor(fx).astype(np.int64), 0, nd - 2)
        iz = np.clip(np.floor(fz).astype(np.int64), 0, nz - 2)
        ax, az = fx - ix, fz - iz  # ax > 1 past the table: linear extrapolation in distance
        return _bilinear(tab[iz, ix], tab[iz, ix + 1], tab[iz + 1, ix], tab[iz + 1, ix + 1],
                         ax, az, self.step_km)

    def _flat_tables(self) -> F64:
        """The P and S tables, flat (built once): the mixed-phase lookups index both."""
        if self._both is None:
            self._both = np.stack([self.tables["P"], self.tables["S"]]).ravel()
        return self._both

    def time_and_gradient_mixed(self, is_s: NDArray[np.bool_], dist_km: F64, depth_km: float
                                ) -> tuple[F64, F64, F64]:
        """``time_and_gradient`` for picks of both phases (``is_s``) and one source depth, in
        one pass (the same values; location calls this a dozen times per event)."""
        both = self._flat_tables()
        nd, nz = len(self.dist_km), len(self.depth_km)
        fx = np.asarray(dist_km, dtype=np.float64) / self.step_km
        fz = (min(max(depth_km, float(self.depth_km[0])), float(self.depth_km[-1]))
              - self.top_km) / self.step_km
        ix = np.minimum(np.maximum(np.floor(fx).astype(np.int64), 0), nd - 2)
        iz = min(max(int(np.floor(fz)), 0), nz - 2)
        ax, az = fx - ix, fz - iz
        at = ix + np.where(is_s, nz * nd + iz * nd, iz * nd)
        return _bilinear(both.take(at), both.take(at + 1), both.take(at + nd),
                         both.take(at + nd + 1), ax, az, self.step_km)

    def time_and_gradient_rows(self, is_s: NDArray[np.bool_], dist_km: F64, depth_km: F64
                               ) -> tuple[F64, F64, F64]:
        """``time_and_gradient_mixed`` for many trial sources at once: ``dist_km`` ``(K, n)``
        (source k to pick i), ``depth_km`` ``(K,)``; the same values row by row (the
        leave-one-out locations of ``crossval`` in one pass)."""
        both = self._flat_tables()
        nd, nz = len(self.dist_km), len(self.depth_km)
        fx = np.asarray(dist_km, dtype=np.float64) / self.step_km
        fz = (np.clip(np.asarray(depth_km, dtype=np.float64), float(self.depth_km[0]),
                      float(self.depth_km[-1])) - self.top_km) / self.step_km
        ix = np.minimum(np.maximum(np.floor(fx).astype(np.int64), 0), nd - 2)
        iz = np.minimum(np.maximum(np.floor(fz).astype(np.int64), 0), nz - 2)
        ax, az = fx - ix, (fz - iz)[:, None]
        at = ix + np.where(is_s[None, :], nz * nd + iz[:, None] * nd, iz[:, None] * nd)
        return _bilinear(both.take(at), both.take(at + 1), both.take(at + nd),
                         both.take(at + nd + 1), ax, az, self.step_km)

    def time(self, phase: str, dist_km: F64, depth_km: F64) -> F64:
        return self.time_and_gradient(phase, dist_km, depth_km)[0]

    def time_at_depth(self, phase: str, dist_km: F64, depth_km: float) -> F64:
        """``time`` for one source depth and many distances (the grid searches' fast path):
        linear in distance along the two table rows about the depth, as ``time`` is."""
        tab = self.tables[phase]
        fz = (min(max(depth_km, float(self.depth_km[0])), float(self.depth_km[-1]))
              - self.top_km) / self.step_km
        iz = min(int(fz), len(self.depth_km) - 2)
        az = fz - iz
        row = tab[iz] if az == 0.0 else tab[iz] * (1.0 - az) + tab[iz + 1] * az
        fx = np.asarray(dist_km, dtype=np.float64) * (1.0 / self.step_km)
        ix = np.minimum(fx.astype(np.int64), len(row) - 2)  # distances are >= 0
        t0 = row[ix]
        # linear in distance within a cell; past the table extrapolated, as ``time`` does
        out: F64 = t0 + (row[ix + 1] - t0) * (fx - ix)
        return out


def _bilinear(t00: F64, t01: F64, t10: F64, t11: F64, ax: F64, az: F64 | float, step_km: float
              ) -> tuple[F64, F64, F64]:
    """Times between four table nodes (distance ``ax``, depth ``az`` fractions of a step) and
    their gradients in distance and depth (per km)."""
    top = t00 + (t01 - t00) * ax
    bot = t10 + (t11 - t10) * ax
    t = top + (bot - top) * az
    dtdx = ((t01 - t00) * (1 - az) + (t11 - t10) * az) / step_km
    dtdz = (bot - top) / step_km
    return t, dtdx, dtdz
