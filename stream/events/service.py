"""The events stage inside ``geosentry run`` (``[stations]``): pick alerts in, event alerts out.

``Pipeline`` calls ``take`` with each delivered batch (windows and their alerts) and sends what
it returns with the batch; ``flush`` at the end. Here:

* every window with a Z and/or horizontal component feeds ``AmplitudeBins`` (Wood-Anderson
  amplitudes for ML, Pd and tau_c for the early-warning magnitude);
* a P or S pick of a station in the inventory goes to ``EventStage``; the window it came from
  stays *in flight* in the ``DeliveryTracker`` (its input is not committed) until the pick has
  left the stage, i.e. until every event alert it can still change has been delivered: the
  returned ``ends`` are ended by the pipeline once the batch's alerts are delivered;
* a pick of a station missing from the inventory is kept out (counted in
  ``geosentry_event_picks_total{outcome="unknown_station"}``); the first one of each station
  logs one line and raises one ``health`` alert (``station_unknown``);
* data time advances the stage (``EventStage.advance``), so events refine their magnitudes and
  become final (their picks' input then commits) even when no new picks come.

Magnitudes of each event version: ML (median of station MLs from the largest WA amplitude
between 1 s before the predicted P and 5 s, or twice S-P, after the predicted S) and Mpd
(``waveforms.pd_magnitude``, Wu & Zhao 2006: median of station values from Pd in the first 3 s
after each P pick, or what of them has arrived: ``window_s`` says how much), with tau_c's median.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from geosentry.stream.events.picks import Amplitude
from geosentry.stream.events.types import Event
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, InstrumentId, Window

if TYPE_CHECKING:
    from geosentry.stream.delivery import DeliveryTracker
    from geosentry.stream.events.settings import StationsConfig
    from geosentry.stream.metrics import Metrics

log = logging.getLogger(__name__)
PD_WINDOW_S = 3.0
PD_MIN_WINDOW_S = 1.0
#: event ids remembered as already counted at the depth bound
MAX_FLAGGED_EVENTS = 10_000
Ends = list[tuple[InstrumentId, int]]


class EventService:
    def __init__(self, cfg: StationsConfig, tracker: DeliveryTracker, metrics: Metrics) -> None:
        from prometheus_client import Counter

        from geosentry.stream.events.associate import Associator
        from geosentry.stream.events.stage import EventStage
        from geosentry.stream.events.waveforms import AmplitudeBins, GainLookup

        self.cfg = cfg
        self.tracker = tracker
        self.tt = cfg.travel_times()
        self.assoc = Associator(cfg.stations, self.tt, cfg.associator_config(), cfg.ml_scale)
        self.stage = EventStage(self.assoc, cfg.horizon_s, cfg.update_interval_s,
                                cfg.max_picks, measure=self._magnitudes,
                                settle_margin_s=cfg.settle_margin_s)
        self.bins = AmplitudeBins(GainLookup(cfg.responses, cfg.counts_per_m_s),
                                  keep_s=cfg.horizon_s + 120.0)
        self._holds: dict[str, tuple[InstrumentId, int]] = {}
        self._unknown: set[str] = set()
        self._updates_seen = 0
        r = metrics.registry
        self.picks_total = Counter("geosentry_event_picks", "Pick alerts offered to the events "
                                   "stage, by outcome (taken, unknown_station, late, future, duplicate)",
                                   ["outcome"], registry=r)
        self.events_total = Counter("geosentry_event_alerts", "Event alerts sent, by action "
                                    "(new, update, deleted)", ["action"], registry=r)
        self._late = 0
        self._sent = dict(self.stage.sent)  # the stage's counts already in events_total
        from prometheus_client import Histogram

        self.update_seconds = Histogram(
            "geosentry_event_update_seconds", "Wall time of one association update of the "
            "events stage", registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.slow_updates = Counter(
            "geosentry_event_slow_updates", "Association updates that took longer than "
            "update_interval_s, so the next one came that much data time later", registry=r)
        self.depth_at_bottom = Counter(
            "geosentry_event_depth_at_bound", "Events located on the deepest source the "
            "travel-time table holds ([stations] max_depth_km): maybe deeper, origin time and "
            "depth not to be trusted (counted once per event id)", registry=r)
        self._at_bottom: dict[str, None] = {}  # event ids counted, oldest first (bounded)
        self.stage.on_update = self._observe_update

    @property
    def held(self) -> int:
        """Picks whose input is held until their events are delivered."""
        return len(self._holds)

    def take(self, results: list[tuple[Window, list[Alert]]], alerts: list[Alert]
             ) -> tuple[list[Alert], Ends]:
        """``alerts`` plus health and event alerts, and the holds to end once they are
        delivered."""
        out = list(alerts)
        picks: list[Alert] = []
        for w, batch in results:
            self.bins.add(w)
            self.stage.data_clock.station(w.instrument.station_key, w.end_ns)
            replay = getattr(w, "replay", False)  # delivered before a restart: state only
            for a in batch:
                if a.kind is not AlertKind.PICK or a.phase not in ("P", "S") or a.station == "*":
                    continue
                if self.assoc.inventory.lookup(a.network, a.station) is None:
                    out += self._unknown_station(a)
                    continue
                if a.id not in self._holds and not replay and a.id not in self.stage.pick_ids:
                    self._holds[a.id] = (w.instrument, self.tracker.begin(w.instrument,
                                                                          w.start_ns))
                picks.append(a)
        late, future = self.stage.late_picks, self.stage.future_picks
        new = self.stage.add(picks) if picks else []
        late, future = self.stage.late_picks - late, self.stage.future_picks - future
        if late:
            self.picks_total.labels(outcome="late").inc(late)
        if future:
            self.picks_total.labels(outcome="future").inc(future)
        self.picks_total.labels(outcome="taken").inc(len(picks) - late - future)
        if results:
            new += self.stage.advance()
        self._count(new)
        return out + new, self._released()

    def flush(self) -> tuple[list[Alert], Callable[[], None]]:
        """End of input: the last update (every open event final) and the holds' release."""
        new = self.stage.flush()
        self._count(new)
        return new, self._release_all

    def _observe_update(self, took_s: float, slowed: bool) -> None:
        self.update_seconds.observe(took_s)
        if slowed:
            self.slow_updates.inc()

    def _release_all(self) -> None:
        ends, self._holds = list(self._holds.values()), {}
        self._end(ends)

    # ------------------------------------------------------------------------------------------
    def _end(self, ends: Ends) -> None:
        for inst, token in ends:
            self.tracker.end(inst, token)

    def _released(self) -> Ends:
        if self.stage.updates == self._updates_seen and len(self._holds) <= self.cfg.max_picks:
            return []
        self._updates_seen = self.stage.updates
        pool = self.stage.pick_ids
        gone = [pid for pid in self._holds if pid not in pool]
        return [self._holds.pop(pid) for pid in gone]

    def _count(self, alerts: list[Alert]) -> None:
        for action, n in self.stage.sent.items():
            if n > self._sent[action]:
                self.events_total.labels(action=action).inc(n - self._sent[action])
                self._sent[action] = n
        for a in alerts:
            if not a.details.get("deleted"):
                self._check_depth(a)

    def _check_depth(self, a: Alert) -> None:
        """Count and log once an event located on the table's bottom (its depth bounded by
        ``max_depth_km``, not by its picks)."""
        eid, depth = a.details.get("event_id"), a.details.get("origin", {}).get("depth_km")
        if eid is None or depth is None or eid in self._at_bottom \
                or not self.tt.at_bottom(float(depth)):
            return
        self._at_bottom[eid] = None
        if len(self._at_bottom) > MAX_FLAGGED_EVENTS:
            self._at_bottom.pop(next(iter(self._at_bottom)))
        self.depth_at_bottom.inc()
        log.warning("event %s located at %.1f km, the deepest source [stations] max_depth_km = "
                    "%g allows: it may be deeper (origin time and depth not to be trusted; a "
                    "deeper max_depth_km searches there; counted in "
                    "geosentry_event_depth_at_bound_total)", eid, float(depth),
                    self.cfg.max_depth_km)

    def _unknown_station(self, a: Alert) -> list[Alert]:
        self.picks_total.labels(outcome="unknown_station").inc()
        key = a.station_key
        if key in self._unknown:
            return []
        self._unknown.add(key)
        log.warning("picks of station %s: not in the inventory (%s), kept out of association "
                    "and location (counted in geosentry_event_picks_total{outcome="
                    "\"unknown_station\"})", key, self.cfg.inventory)
        from geosentry.stream.alerts import station_unknown_alert

        return [station_unknown_alert(a, self.cfg.inventory)]

    # -- magnitudes ---------------------------------------------------------------------------
    def _magnitudes(self, ev: Event) -> Event:
        depth = np.array([ev.depth_km])
        amps: list[Amplitude] = []
        pds: list[tuple[float, float, float]] = []  # (Mpd, tau_c, window_s)
        seen: set[str] = set()
        for arr in sorted(ev.arrivals, key=lambda a: (a.pick.key, a.pick.phase)):
            key = arr.pick.key
            epi = np.array([arr.distance_km])
            st = self.assoc.inventory.lookup(arr.pick.network, arr.pick.station)
            elev_km = st.elevation_m / 1000.0 if st is not None else 0.0
            hypo = math.hypot(arr.distance_km, ev.depth_km + elev_km)
            if key not in seen:
                seen.add(key)
                tp = ev.time_ns + int(float(self.tt.time("P", epi, depth)[0]) * NS_PER_S)
                ts = ev.time_ns + int(float(self.tt.time("S", epi, depth)[0]) * NS_PER_S)
                rows = self.bins.span(key, tp - NS_PER_S, ts + max(5 * NS_PER_S, 2 * (ts - tp)))
                if rows is not None and np.isfinite(rows[:, 0]).any():
                    k = int(np.nanargmax(rows[:, 0]))
                    amps.append(Amplitude(f"{ev.id}-{key}-wa", arr.pick.network,
                                          arr.pick.station, float(rows[k, 0]), None,
                                          ts))
            if arr.pick.phase.value == "P":
                pd = self._pd(key, arr.pick.time_ns, hypo)
                if pd is not None:
                    pds.append(pd)
        if amps:
            ev = self.assoc.with_magnitude(ev, amps)
        if not pds:
            return ev
        window = min(w for _, _, w in pds)
        mags: list[dict[str, Any]] = [{
            "type": "Mpd", "value": round(statistics.median(m for m, _, _ in pds), 2),
            "station_count": len(pds), "window_s": round(window, 2),
            "scale": "Pd (Wu & Zhao 2006)"}]
        taus = [t for _, t, _ in pds if t > 0]
        extra = {**ev.extra, "magnitudes": mags}
        if taus:
            mags[0]["tau_c_s"] = round(statistics.median(taus), 3)
        return replace(ev, extra=extra)

    def _pd(self, key: str, p_ns: int, hypo_km: float) -> tuple[float, float, float] | None:
        from geosentry.stream.events.waveforms import pd_magnitude

        rows = self.bins.span(key, p_ns, p_ns + int(PD_WINDOW_S * NS_PER_S))
        if rows is None:
            return None
        have = min(PD_WINDOW_S, (self.bins.measured_until_ns(key) - p_ns) / NS_PER_S)
        ok = np.isfinite(rows[:, 1])
        if have < PD_MIN_WINDOW_S or not ok.any():
            return None
        pd = float(np.nanmax(rows[:, 1]))
        if pd <= 0:
            return None
        u2, v2 = float(np.nansum(rows[:, 2])), float(np.nansum(rows[:, 3]))
        tau = 2 * math.pi * math.sqrt(u2 / v2) if v2 > 0 else 0.0
        return pd_magnitude(pd, hypo_km), tau, have
