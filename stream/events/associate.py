"""Association of picks into located events: deterministic, greedy, seeded by the earliest P.

For each unused pick in time order (the seed), the unused P and S picks of stations within
``max_distance_km`` of the seed's station and close enough in time are back-projected onto a
coarse grid about the seed's station (then a fine one about the best node): the node where most
stations' implied origin times agree with the seed's within the tolerance wins. If at least
``min_stations`` agree, those picks are located (``locate.geiger``), every unused P and S pick
within ``p_residual_s`` / ``s_residual_s`` of the predicted times is gathered (one per station and
phase), the event is relocated, the worst outlier is dropped until all fit, and the event is
kept if it still has ``min_stations`` stations, at least 5 phases (more than the 4 unknowns)
an RMS under ``max_rms_s`` and, of the stations that sent picks (within ``active_window_s`` of
its origin time) within the distance of its
``min_stations``-th nearest station, at least ``min_station_ratio`` in the event. Its picks are
then used; a seed that finds no event is skipped (it may still join a later event). A small
event from a P seed is searched again with its latest P picks read as S (``relabel``: S
arrivals picked as P) and replaced where that explains more picks. Picks are sorted by (time,
station, phase, id) first, so the result depends on the pick set only.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from geosentry.stream.events import acceptance, relabel
from geosentry.stream.events.gridsearch import GridSearch, coarse_grid_depths, fine_grid_depths
from geosentry.stream.events.locate import (Hypocentre, Observations, Projection,
                                            azimuthal_gap_deg, geiger)
from geosentry.stream.events.magnitude import MLScale, event_ml
from geosentry.stream.events.picks import Amplitude, Phase, Pick, earliest
from geosentry.stream.events.pool import AssociatorConfig, Pool
from geosentry.stream.events.stations import Inventory, Station
from geosentry.stream.events.types import Arrival, Event, StationMagnitude
from geosentry.stream.events.velocity import F64, TravelTimes
from geosentry.stream.records import NS_PER_S

log = logging.getLogger(__name__)

__all__ = ["Associator", "AssociatorConfig"]


class Associator:
    """Offline and incremental (``EventStage``) association over one inventory and model."""

    def __init__(self, inventory: Inventory, tt: TravelTimes,
                 config: AssociatorConfig | None = None, ml_scale: MLScale | None = None) -> None:
        self.inventory = inventory
        self.tt = tt
        self.cfg = config or AssociatorConfig()
        self.cfg.check()
        self.ml_scale = ml_scale or MLScale()
        self.unknown_stations: dict[str, int] = {}
        self.duplicates = 0
        self._neighbours = acceptance.Neighbours(inventory, tt, self.cfg)
        self._vmin = float(min(tt.model.vs_km_s))
        self._grid = GridSearch(tt)
        self._coarse_depths = coarse_grid_depths(self.cfg.grid_depths_km,
                                                 float(tt.depth_km[0]), tt.max_depth_km)

    # -- public ------------------------------------------------------------------------------
    @property
    def seed_reach_s(self) -> float:
        """How far after a seed pick its search looks: its candidates reach distance /
        (slowest S) + 5 s after it, the picks gathered about a located origin (never after the
        seed) S residual + 2 s more. A seed that found nothing when the picks of this much
        time after it were in stays so (``EventStage``'s settled picks)."""
        cfg = self.cfg
        return cfg.max_distance_km / self._vmin + max(5.0, cfg.s_residual_s + 2.0)

    def associate(self, picks: list[Pick], amplitudes: list[Amplitude] = (),  # type: ignore[assignment]
                  settled: Mapping[str, tuple[str, ...]] | None = None,
                  fruitless: dict[str, tuple[str, ...]] | None = None
                  ) -> tuple[list[Event], list[Pick]]:
        """Events (in origin-time order) and the picks no event took.

        ``EventStage``'s settled picks: a pick in ``settled`` is not searched as a seed; at its
        turn the picks its last search marked as tried (a located set that failed the checks:
        they seed no more) are marked again, as that search would. ``fruitless``, when given,
        receives each pick that seeded no event at its turn (searched without an event, or
        not searched: marked as tried), with the picks its search marked."""
        pool = self._pool(picks)
        n = len(pool.picks)
        used = np.zeros(n, dtype=bool)
        events: list[Event] = []
        times = pool.t.tolist()
        tried = np.zeros(n, dtype=bool)  # picks of a located set that failed the checks
        row = {p.id: i for i, p in enumerate(pool.picks)} if settled else {}
        for seed in range(n):
            if used[seed]:
                continue
            if tried[seed]:  # not a seed at its turn: no search, no event from it
                if fruitless is not None:
                    fruitless.setdefault(pool.picks[seed].id, ())
                continue
            if settled and (old := settled.get(pool.picks[seed].id)) is not None:
                for pid in old:
                    if (i := row.get(pid)) is not None:
                        tried[i] = True
                continue
            marked: list[int] = []
            ev = self._from_seed(pool, seed, used, times, tried, marked)
            if ev is None:
                if fruitless is not None:
                    fruitless[pool.picks[seed].id] = tuple(pool.picks[i].id for i in marked)
                continue
            idx, hypo, proj = ev
            used[idx] = True
            events.append(self._event(pool, idx, hypo, proj))
        events.sort(key=lambda e: (e.time_ns, e.id))
        if amplitudes:
            events = [self.with_magnitude(e, amplitudes) for e in events]
        rest = [pool.picks[i] for i in range(n) if not used[i]]
        return events, rest

    def with_magnitude(self, ev: Event, amplitudes: list[Amplitude] | tuple[Amplitude, ...]
                       ) -> Event:
        """The event with its ML from the amplitudes read at its stations after its origin."""
        keys = {a.pick.key: a.distance_km for a in ev.arrivals}
        best: dict[str, StationMagnitude] = {}
        for amp in amplitudes:
            st = self.inventory.lookup(amp.network, amp.station)
            key = amp.key if amp.key in keys else st.key if st else amp.key
            if key not in keys or st is None or amp.amplitude_nm <= 0:
                continue
            epi = keys[key]
            ts = float(self.tt.time("S", np.array([epi]), np.array([ev.depth_km]))[0])
            dt = (amp.time_ns - ev.time_ns) / NS_PER_S
            if not (-1.0 <= dt <= 2.0 * ts + 10.0):
                continue
            r = math.hypot(epi, ev.depth_km + st.elevation_m / 1000.0)
            sm = StationMagnitude(amp, self.ml_scale.station_ml(amp.amplitude_nm, r), r)
            if key not in best or amp.amplitude_nm > best[key].amplitude.amplitude_nm:
                best[key] = sm
        if not best:
            return ev
        mags = tuple(best[k] for k in sorted(best))
        ml, _ = event_ml([m.ml for m in mags])
        return replace(ev, ml=ml, ml_stations=mags, ml_scale=self.ml_scale.name)

    # -- internals ---------------------------------------------------------------------------
    def _pool(self, picks: list[Pick]) -> Pool:
        known: list[tuple[Pick, Station]] = []
        last: dict[tuple[str, str], int] = {}
        dup_ns = int(self.cfg.duplicate_s * NS_PER_S)
        self.duplicates = 0
        for p in sorted(picks, key=lambda p: (p.time_ns, p.key, p.phase, p.id)):
            st = self.inventory.lookup(p.network, p.station)
            if st is None:
                n = self.unknown_stations.get(p.key, 0)
                if n == 0:
                    log.warning("picks of station %s: not in the inventory, kept out of "
                                "association", p.key)
                self.unknown_stations[p.key] = n + 1
                continue
            k = (st.key, p.phase.value)
            if k in last and p.time_ns - last[k] <= dup_ns:
                self.duplicates += 1
                continue
            last[k] = p.time_ns
            known.append((p, st))
        ref = known[0][0].time_ns if known else 0
        rows: dict[str, int] = {}
        sts: list[Station] = []
        for _, s in known:
            if s.key not in rows:
                rows[s.key] = len(sts)
                sts.append(s)
        sidx = np.array([rows[s.key] for _, s in known], dtype=np.int64)
        return Pool(
            [p for p, _ in known], [s for _, s in known],
            np.array([(p.time_ns - ref) / NS_PER_S for p, _ in known], dtype=np.float64),
            np.array([p.phase is Phase.S for p, _ in known], dtype=bool),
            np.array([s.lat_deg for _, s in known]), np.array([s.lon_deg for _, s in known]),
            np.array([s.elevation_m / 1000.0 for _, s in known]), ref,
            sidx, np.array([s.lat_deg for s in sts], dtype=np.float64),
            np.array([s.lon_deg for s in sts], dtype=np.float64))

    def _obs(self, pool: Pool, idx: np.ndarray, proj: Projection) -> Observations:
        x, y = proj.to_xy(pool.lat[idx], pool.lon[idx])
        is_s = pool.is_s[idx]
        if pool.corr_s is None:
            pool.corr_s = np.where(pool.is_s, self.tt.vertical_s("S", -pool.elev_km),
                                   self.tt.vertical_s("P", -pool.elev_km))
        corr = pool.corr_s[idx]
        w = np.where(is_s, 0.5, 1.0)
        return Observations(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                            corr, is_s, pool.t[idx], w)

    def _candidates(self, pool: Pool, seed: int, used: np.ndarray, times: list[float],
                    proj: Projection) -> np.ndarray:
        """Unused P and S picks of stations near the seed's that could share its event."""
        cfg = self.cfg
        vp = float(min(self.tt.model.vp_km_s))
        back = (cfg.max_distance_km * (1.0 / self._vmin - 1.0 / vp) if pool.is_s[seed]
                else 0.0) + 2.0 * cfg.p_residual_s
        lo = bisect.bisect_left(times, times[seed] - back)
        hi = bisect.bisect_right(times, times[seed] + cfg.max_distance_km / self._vmin + 5.0)
        idx: np.ndarray = np.arange(lo, hi)
        idx = idx[~used[idx]]
        if len(idx) == 0:
            return idx
        x, y = proj.to_xy(pool.lat[idx], pool.lon[idx])
        near: np.ndarray = idx[np.hypot(x, y) <= cfg.max_distance_km]
        return near

    def _cone(self, pool: Pool, seed: int, idx: np.ndarray, proj: Projection) -> np.ndarray:
        """For a P seed, the P picks its event could have: a first arrival at the surface is
        at most distance / (slowest P speed) later or earlier at another station (the path
        along the top), plus the pick errors; S picks are all kept."""
        if pool.is_s[seed] or len(idx) == 0:
            return idx
        x, y = proj.to_xy(pool.lat[idx], pool.lon[idx])
        vp = float(min(self.tt.model.vp_km_s))
        slack = np.hypot(x, y) / vp + 2.0 * self.cfg.p_residual_s + 0.5
        keep = pool.is_s[idx] | (np.abs(pool.t[idx] - pool.t[seed]) <= slack)
        out: np.ndarray = idx[keep]
        return out

    def _best_node(self, obs: Observations, seed_pos: int, sta_of: np.ndarray,
                   cx: float, cy: float, radius: float, n: int, depths: F64, tol: float
                   ) -> tuple[int, float, float, float, np.ndarray]:
        return self._grid.best_node(obs, seed_pos, sta_of, cx, cy, radius, n, depths, tol)

    def _from_seed(self, pool: Pool, seed: int, used: np.ndarray, times: list[float],
                   tried: np.ndarray, marked: list[int] | None = None
                   ) -> tuple[np.ndarray, Hypocentre, Projection] | None:
        cfg = self.cfg
        st = pool.sta[seed]
        proj = Projection(st.lat_deg, st.lon_deg)
        if not self._neighbours.agree(pool, seed, used):
            return None
        reach = self._reach(pool, seed, used, times, proj)
        if reach is None:
            return None
        found = self._search_robust(pool, seed, used, times, proj, *reach)
        if found is None:
            return None
        idx, hypo, ok = self._accept(pool, *found, proj, times)
        if not ok:
            # its picks would locate the same set again as seeds: they are not seeds any more
            # (still free to join another event)
            tried[idx] = True
            if marked is not None:
                marked.extend(idx.tolist())
            return None
        if len(idx) <= cfg.crossval_max_phases and not pool.is_s[seed]:
            idx, hypo = relabel.better(self, pool, seed, used, times, proj, idx, hypo)
        return idx, hypo, proj

    def _reach(self, pool: Pool, seed: int, used: np.ndarray, times: list[float],
               proj: Projection) -> tuple[np.ndarray, np.ndarray] | None:
        """The seed's candidate picks (in its cone) and their stations; None when they are on
        fewer than ``min_stations`` stations."""
        cand = self._cone(pool, seed, self._candidates(pool, seed, used, times, proj), proj)
        sta_of = pool.sidx[cand]
        return None if len(np.unique(sta_of)) < self.cfg.min_stations else (cand, sta_of)

    def _accept(self, pool: Pool, idx: np.ndarray, hypo: Hypocentre, proj: Projection,
                times: list[float]) -> tuple[np.ndarray, Hypocentre, bool]:
        """The located set after ``crossval`` and whether it passes the event checks."""
        cfg = self.cfg
        active = acceptance.active(cfg, pool, proj, hypo, times)
        ok = acceptance.station_ratio(cfg, pool, idx, active) >= cfg.min_station_ratio
        checked = False  # every pick predicted by the others (``crossval``)
        if ok and len(idx) <= cfg.crossval_max_phases:
            n = len(idx)
            idx, hypo, checked = self._crossval(pool, idx, hypo, proj)
            if len(idx) != n:
                active = acceptance.active(cfg, pool, proj, hypo, times)
                ok = (len(np.unique(pool.sidx[idx])) >= cfg.min_stations
                      and len(idx) >= cfg.min_phases and hypo.rms_s <= cfg.max_rms_s
                      and acceptance.station_ratio(cfg, pool, idx, active) >= cfg.min_station_ratio)
        ok = ok and acceptance.significant(cfg, pool, idx, proj, hypo, times, active, checked)
        return idx, hypo, ok

    def _crossval(self, pool: Pool, idx: np.ndarray, hypo: Hypocentre, proj: Projection
                  ) -> tuple[np.ndarray, Hypocentre, bool]:
        """A small event without the picks the others do not predict (``crossval``), and
        whether each pick left is predicted by the others."""
        from geosentry.stream.events.crossval import crossval_clean

        cfg = self.cfg
        h, rows, checked = crossval_clean(
            self.tt, self._obs(pool, idx, proj), hypo, cfg.p_residual_s, cfg.s_residual_s,
            cfg.min_phases, cfg.crossval_max_phases, cfg.min_sigma_s)
        return (idx, hypo, checked) if len(rows) == len(idx) else (idx[rows], h, checked)

    def _search_robust(self, pool: Pool, seed: int, used: np.ndarray, times: list[float],
                       proj: Projection, cand: np.ndarray, sta_of: np.ndarray
                       ) -> tuple[np.ndarray, Hypocentre] | None:
        """``_search`` from a P seed, and again from the earliest other P pick it can see with
        the seed left out: a false pick before an earthquake's first arrival would otherwise
        anchor the grid search, and what it finds (an early origin far off, the earthquake's
        S picks read against the false P) takes the earthquake's picks. When the search
        without the seed finds more picks (then a lower RMS), at least half of the seed's
        other picks among them (the same picks, not a neighbouring event's), the seed finds
        nothing: the
        picks are left to later seeds, which find the earthquake from its own first arrival
        (the other search's own anchor may be a false pick too). An S seed is searched as it
        is."""
        found = self._search(pool, seed, used, times, proj, cand, sta_of)
        if found is None or pool.is_s[seed]:
            return found
        others = cand[(cand != seed) & ~pool.is_s[cand]]
        if len(others) == 0:
            return found
        anchor = int(others[int(np.argmin(pool.t[others]))])  # times sorted: the first
        rest = cand[cand != seed]
        sta_rest = pool.sidx[rest]
        without = used.copy()
        without[seed] = True
        alt = self._search(pool, anchor, without, times, proj, rest, sta_rest)
        if alt is None or (len(alt[0]), -alt[1].rms_s) <= (len(found[0]), -found[1].rms_s):
            return found
        # the same picks explained better without the seed (not a neighbouring event's)
        shared = len(np.intersect1d(found[0], alt[0]))
        if 2 * shared >= len(found[0]) - 1:
            return None  # the seed biased its search: later seeds find the earthquake
        return found

    def _search(self, pool: Pool, seed: int, used: np.ndarray, times: list[float],
                proj: Projection, cand: np.ndarray, sta_of: np.ndarray
                ) -> tuple[np.ndarray, Hypocentre] | None:
        cfg = self.cfg
        obs = self._obs(pool, cand, proj)
        seed_pos = int(np.flatnonzero(cand == seed)[0])
        top = self.tt.model.top_km  # a typical crustal P speed (at 5 km) for the grid's slack
        vp0 = float(self.tt.model.vp_km_s[max(0, int(np.searchsorted(top, 5.0, "right")) - 1)])
        step = 2 * cfg.grid_radius_km / (cfg.grid_nodes - 1)
        count, bx, by, bz, _ = self._best_node(obs, seed_pos, sta_of, 0.0, 0.0,
                                               cfg.grid_radius_km, cfg.grid_nodes,
                                               self._coarse_depths,
                                               cfg.tolerance_s + 1.5 * step / vp0)
        if count < cfg.min_stations:
            return None
        fine_depths = fine_grid_depths(bz, float(self.tt.depth_km[0]), self.tt.max_depth_km)
        count, bx, by, bz, hit = self._best_node(obs, seed_pos, sta_of, bx, by, step, 11,
                                                 fine_depths, cfg.tolerance_s)
        if count < cfg.min_stations:
            return None
        idx = self._one_per_station(pool, cand[hit], None)
        hypo = geiger(self.tt, self._obs(pool, idx, proj), (bx, by, bz),
                      min_sigma_s=cfg.min_sigma_s)
        prev: set[int] = set()
        for _ in range(4):  # gather P and S near the predictions, relocate, until stable
            idx = self._gather(pool, used, times, proj, hypo)
            if len(idx) < cfg.min_stations:
                return None
            cleaned, idx = self._clean(pool, idx, proj, hypo)
            if cleaned is None:
                return None
            hypo = cleaned
            if set(idx.tolist()) == prev:
                break
            prev = set(idx.tolist())
        n_sta = len(np.unique(pool.sidx[idx]))
        if n_sta < cfg.min_stations or len(idx) < cfg.min_phases or hypo.rms_s > cfg.max_rms_s:
            return None
        return idx, hypo

    def _gather(self, pool: Pool, used: np.ndarray, times: list[float],
                proj: Projection, hypo: Hypocentre) -> np.ndarray:
        """Unused picks within ``max_distance_km`` of the located epicentre (not of the seed:
        an event's stations reach past the seed's circle) near their predicted times."""
        from geosentry.stream.events.locate import predict

        cfg = self.cfg
        lo = bisect.bisect_left(times, hypo.t0_s - cfg.p_residual_s - 1.0)
        # the latest S: along the surface at the slowest speed, or (a deep source) the table's
        last_s = max(cfg.max_distance_km / self._vmin,
                     float(self.tt.time_at_depth("S", np.array([cfg.max_distance_km]),
                                                 hypo.depth_km)[0]))
        hi = bisect.bisect_right(times, hypo.t0_s + last_s + cfg.s_residual_s + 2.0)
        idx: np.ndarray = np.arange(lo, hi)
        idx = idx[~used[idx]]
        if len(idx) == 0:
            return idx
        x, y = proj.to_xy(pool.lat[idx], pool.lon[idx])
        idx = idx[np.hypot(x - hypo.x_km, y - hypo.y_km) <= cfg.max_distance_km]
        obs = self._obs(pool, idx, proj)
        pred = predict(self.tt, obs, hypo.x_km, hypo.y_km, hypo.depth_km)[0]
        res = obs.t_s - hypo.t0_s - pred
        lim = np.where(obs.is_s, self.cfg.s_residual_s, self.cfg.p_residual_s)
        ok = np.abs(res) <= lim
        return self._one_per_station(pool, idx[ok], np.abs(res[ok]))

    def _one_per_station(self, pool: Pool, idx: np.ndarray, cost: np.ndarray | None
                         ) -> np.ndarray:
        best: dict[tuple[int, bool], tuple[float, int]] = {}
        sidx, is_s, t = pool.sidx[idx].tolist(), pool.is_s[idx].tolist(), pool.t[idx].tolist()
        costs = cost.tolist() if cost is not None else t
        for k, i in enumerate(idx.tolist()):
            key = (sidx[k], is_s[k])
            c = costs[k]
            if key not in best or c < best[key][0]:
                best[key] = (c, i)
        return np.array(sorted(i for _, i in best.values()), dtype=np.int64)

    def _clean(self, pool: Pool, idx: np.ndarray, proj: Projection, hypo: Hypocentre
               ) -> tuple[Hypocentre | None, np.ndarray]:
        cfg = self.cfg
        while len(idx) >= cfg.min_stations:
            obs = self._obs(pool, idx, proj)
            hypo = geiger(self.tt, obs, (hypo.x_km, hypo.y_km, hypo.depth_km),
                          min_sigma_s=cfg.min_sigma_s)
            lim = np.where(obs.is_s, cfg.s_residual_s, cfg.p_residual_s)
            ratio = np.abs(hypo.residuals_s) / lim
            worst = int(np.argmax(ratio))
            if ratio[worst] <= 1.0:
                return hypo, idx
            idx = np.delete(idx, worst)
        return None, idx

    def _event(self, pool: Pool, idx: np.ndarray, hypo: Hypocentre, proj: Projection) -> Event:
        lat, lon = proj.to_latlon(hypo.x_km, hypo.y_km)
        obs = self._obs(pool, idx, proj)
        az = np.degrees(np.arctan2(obs.x_km - hypo.x_km, obs.y_km - hypo.y_km)) % 360.0
        arrivals = tuple(Arrival(relabel.as_located(pool, i), round(float(r), 4), round(float(d), 3),
                                 round(float(a), 1))
                         for i, r, d, a in zip(idx.tolist(), hypo.residuals_s,
                                               hypo.distances_km, az))
        first = earliest(a.pick for a in arrivals)
        eid = hashlib.sha256(f"event|{first.id}".encode()).hexdigest()[:32]
        gap = azimuthal_gap_deg(*self._unique_xy(obs), hypo.x_km, hypo.y_km)
        return Event(eid, pool.ref_ns + int(round(hypo.t0_s * NS_PER_S)), lat, lon,
                     hypo.depth_km, hypo.err_t0_s, hypo.err_y_km, hypo.err_x_km,
                     hypo.err_depth_km, hypo.rms_s, gap, arrivals, self.tt.model.name)

    @staticmethod
    def _unique_xy(obs: Observations) -> tuple[F64, F64]:
        xy = np.unique(np.stack([obs.x_km, obs.y_km], axis=1), axis=0)
        return xy[:, 0], xy[:, 1]
