"""``EventStage``: the associator fed incrementally by pick alerts, emitting ``event`` alerts.

Pick alerts (``kind: "pick"``, phase P or S) are kept while their data time is within
``horizon_s`` of the newest pick; every ``update_interval_s`` of data time the open picks are
associated afresh (``Associator``: the result depends on the pick set only, so late and
out-of-order picks change nothing once they are in). Each event found is matched to the open
event it shares most picks with and keeps that event's id (the first event's id is derived from
its earliest pick's id); an event whose origin or picks changed is emitted again with a
higher ``update`` (its data time in ms after the event's first pick: ``_version``); an open
event no longer found is emitted once with ``details.deleted = true`` and its id is not used
again while its earliest pick can be. An event whose newest pick is more than ``horizon_s`` behind the
newest pick is final: its picks leave the pool. Picks older than the horizon when they arrive
are counted (``late_picks``) and logged once; the pool is bounded (``max_picks``).

Settled picks: a pick that no event took, older than the newest by the associator's
``seed_reach_s`` (what a search from it can see after it) plus ``settle_margin_s`` (for picks
arriving late), found nothing with every pick it could use already in; it stays a candidate for
later seeds but is not searched as a seed again. Without this every update searched every
false pick in the horizon again (most of the stage's time on a dense network).

Cadence under load: an update that took longer in wall time than ``update_interval_s`` puts the
next one that much data time later (counted in ``slow_updates``, logged once per episode), so
the stage keeps up with a dense network at the cost of update latency instead of falling
behind the stream.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, KeysView
from dataclasses import replace

from geosentry.stream.events.associate import Associator
from geosentry.stream.events.clock import DataClock
from geosentry.stream.events.picks import Amplitude, Phase, Pick, earliest
from geosentry.stream.events.types import Event
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef

log = logging.getLogger(__name__)


class EventStage:
    def __init__(self, associator: Associator, horizon_s: float = 120.0,
                 update_interval_s: float = 1.0, max_picks: int = 200_000,
                 measure: Callable[[Event], Event] | None = None,
                 settle_margin_s: float = 10.0, adaptive: bool = True,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.assoc = associator
        #: magnitudes from waveforms (``geosentry.stream.events.service``), run at each update
        self.measure = measure
        self.horizon_ns = int(horizon_s * NS_PER_S)
        self.interval_ns = int(update_interval_s * NS_PER_S)
        self.settle_ns = (int((associator.seed_reach_s + settle_margin_s) * NS_PER_S)
                          if math.isfinite(settle_margin_s) else 2**62)  # inf: never
        self.adaptive = adaptive
        self.clock = clock  # wall seconds, for the cadence under load
        #: called after each update with its wall time and whether the next one is put off
        self.on_update: Callable[[float, bool], None] | None = None
        self._gap_ns = self.interval_ns  # data time to the next update (longer under load)
        # picks that no longer seed (see the module doc) -> the picks their last search marked
        self._settled: dict[str, tuple[str, ...]] = {}
        self.max_picks = max_picks
        c = associator.cfg
        params = (f"min_stations={c.min_stations},p_res={c.p_residual_s:g},"
                  f"s_res={c.s_residual_s:g},model={associator.tt.model.name}")
        self.model = ModelRef("associator", "1", hashlib.sha256(params.encode()).hexdigest())
        self._picks: dict[str, Pick] = {}
        self._arrival: dict[str, int] = {}
        self._amps: dict[str, Amplitude] = {}
        self._open: dict[str, Event] = {}
        #: ids of deleted events -> (data time of the deletion, the event's earliest pick): a
        #: later event is never given one (the same earliest pick re-forming an event would
        #: repeat its alert ids: consumers that drop repeated ids would lose it)
        self._retired: dict[str, tuple[int, str]] = {}
        #: open event id -> the data time its ``update`` numbers count from (its first
        #: version's earliest pick: the pick its id derives from)
        self._ref: dict[str, int] = {}
        self._newest_ns: int | None = None
        self._last_run_ns: int | None = None
        self.late_picks = 0
        #: picks dated past data time by more than the horizon, and their stations (logged)
        self.future_picks = 0
        self._future_logged: set[str] = set()
        #: data time: the stations' progress, robust to one whose clock is wrong
        self.data_clock = DataClock(self.horizon_ns, associator.cfg.min_stations - 1)
        self.dropped_picks = 0
        self.updates = 0
        self.final_events = 0
        self.slow_updates = 0
        #: event alerts sent, by action: a new event, an update, a deletion
        self.sent: dict[str, int] = {"new": 0, "update": 0, "deleted": 0}

    def add(self, alerts: list[Alert]) -> list[Alert]:
        """Take the pick alerts of a batch; event alerts when an update is due."""
        changed = False
        for a in alerts:
            if a.kind is not AlertKind.PICK or a.phase not in ("P", "S") or a.station == "*":
                continue
            if self.data_clock.ahead(a.time_ns):
                self._future(a)
                continue
            if self._newest_ns is not None and a.time_ns < self._newest_ns - self.horizon_ns:
                if self.late_picks == 0:
                    log.warning("pick %s.%s %s arrived %.1f s behind the newest pick (horizon "
                                "%.0f s): not associated (counted as late_picks)", a.network,
                                a.station, a.phase, (self._newest_ns - a.time_ns) / NS_PER_S,
                                self.horizon_ns / NS_PER_S)
                self.late_picks += 1
                continue
            pid = a.id
            if pid in self._picks:
                continue
            self._picks[pid] = Pick(pid, a.network, a.station, Phase(a.phase), a.time_ns,
                                    a.location, a.channel)
            self._arrival[pid] = a.newest_arrival_ns
            amp = a.details.get("amplitude_nm")
            if isinstance(amp, (int, float)) and amp > 0:
                self._amps[pid] = Amplitude(pid + "-amp", a.network, a.station, float(amp),
                                            None, a.time_ns)
            self.data_clock.saw(a.time_ns)
            changed = True
        self._tick()
        if not changed or self._newest_ns is None:
            return []
        if self._last_run_ns is not None and self._newest_ns - self._last_run_ns < self._gap_ns:
            return []
        return self._update(final=False)

    def advance(self, now_ns: int | None = None) -> list[Alert]:
        """Data time moved on (windows went on without picks: their ends given to
        ``data_clock`` per station, or ``now_ns`` where there are no stations): an update when
        one is due, so events refine their magnitudes and become final on a quiet stream."""
        if now_ns is not None:
            self.data_clock.saw(now_ns)
        self._tick()
        if (not self._picks and not self._open) or self._newest_ns is None:
            return []
        if self._last_run_ns is not None and self._newest_ns - self._last_run_ns < self._gap_ns:
            return []
        return self._update(final=False)

    def _tick(self) -> None:
        now = self.data_clock.now()
        if now is not None:
            self._newest_ns = max(self._newest_ns or now, now)

    def _future(self, a: Alert) -> None:
        """A pick dated more than ``horizon_s`` past data time: counted, logged once per
        station, kept out (its station's clock is ahead; ``data_clock``)."""
        self.future_picks += 1
        key = f"{a.network}.{a.station}"
        if key not in self._future_logged:
            self._future_logged.add(key)
            log.warning("pick %s %s dated %.1f s past the stations' data time (horizon %.0f "
                        "s): its clock is ahead? not associated (counted as future_picks)",
                        key, a.phase, (a.time_ns - (self.data_clock.now() or 0)) / NS_PER_S,
                        self.horizon_ns / NS_PER_S)

    @property
    def pick_ids(self) -> KeysView[str]:
        """Ids of the picks in the pool (their events may still change)."""
        return self._picks.keys()

    def flush(self) -> list[Alert]:
        """End of input: a last update, every open event final."""
        return self._update(final=True) if self._picks or self._open else []

    # ------------------------------------------------------------------------------------------
    def _update(self, final: bool) -> list[Alert]:
        began = self.clock()
        try:
            return self._associate(final)
        finally:
            self._pace(self.clock() - began)

    def _pace(self, took_s: float) -> None:
        """The next update's data-time gap: ``update_interval_s``, or this update's wall time
        when it took longer (``adaptive``)."""
        gap_ns = max(self.interval_ns, int(took_s * NS_PER_S)) if self.adaptive \
            else self.interval_ns
        if gap_ns > self.interval_ns and self._gap_ns == self.interval_ns:
            log.warning("event stage: an update took %.2f s (update_interval_s %.2f s): updates "
                        "every %.2f s of data while the load lasts (counted as slow_updates)",
                        took_s, self.interval_ns / NS_PER_S, gap_ns / NS_PER_S)
        if gap_ns > self.interval_ns:
            self.slow_updates += 1
        self._gap_ns = gap_ns
        if self.on_update is not None:
            self.on_update(took_s, gap_ns > self.interval_ns)

    def _associate(self, final: bool) -> list[Alert]:
        self._last_run_ns = self._newest_ns
        self.updates += 1
        self._bound()
        picks = list(self._picks.values())
        fruitless: dict[str, tuple[str, ...]] = {}
        found, _ = self.assoc.associate(picks, settled=self._settled, fruitless=fruitless)
        settled = (self._newest_ns or 0) - self.settle_ns
        for pid, marked in fruitless.items():  # searched, found nothing, all it sees is in
            if pid not in self._settled and self._picks[pid].time_ns < settled:
                self._settled[pid] = marked
        out: list[Alert] = []
        prev = dict(self._open)
        nxt: dict[str, Event] = {}
        pick_sets = {eid: set(e.pick_ids) for eid, e in prev.items()}
        for ev in found:
            if self._amps:
                ev = self.assoc.with_magnitude(ev, [self._amps[p] for p in ev.pick_ids
                                                    if p in self._amps])
            if self.measure is not None:
                ev = self.measure(ev)
            mine = set(ev.pick_ids)
            cands = sorted(((len(mine & s), eid) for eid, s in pick_sets.items()
                            if eid not in nxt and mine & s), key=lambda t: (-t[0], t[1]))
            if cands:
                old = prev[cands[0][1]]
                ev = replace(ev, id=old.id, update=old.update)
                if self._same(old, ev):
                    nxt[ev.id] = old
                    continue
                ev = replace(ev, update=self._version(old.id, old.update))
                self.sent["update"] += 1
            else:  # a new event: its id must not be one in use (its first pick left another)
                eid = ev.id
                while eid in nxt or eid in prev or eid in self._retired:
                    eid = hashlib.sha256(f"{eid}|next".encode()).hexdigest()[:32]
                self._ref[eid] = ev.first_pick_ns
                ev = replace(ev, id=eid, update=self._version(eid, -1))
                self.sent["new"] += 1
            nxt[ev.id] = ev
            out.append(self._alert(ev))
        for eid, old in prev.items():
            if eid not in nxt:
                out.append(self._alert(replace(old, update=self._version(eid, old.update)),
                                       deleted=True))
                self.sent["deleted"] += 1
                self._ref.pop(eid, None)
                first = earliest(a.pick for a in old.arrivals).id
                self._retired[eid] = (self._newest_ns or 0, first)
        self._open = nxt
        horizon = (self._newest_ns or 0) - self.horizon_ns
        # kept while the id's earliest pick can still be in the pool (it is, or it could come
        # again within the horizon)
        self._retired = {k: (t, p) for k, (t, p) in self._retired.items()
                         if p in self._picks or t >= horizon}
        for eid, ev in list(self._open.items()):
            if final or max(a.pick.time_ns for a in ev.arrivals) < horizon:
                for pid in ev.pick_ids:
                    self._forget(pid)
                del self._open[eid]
                self._ref.pop(eid, None)
                self.final_events += 1
        held = {pid for ev in self._open.values() for pid in ev.pick_ids}  # open events' picks
        for pid in [p for p, pk in self._picks.items()
                    if final or (pk.time_ns < horizon and p not in held)]:
            self._forget(pid)
        return out

    def _forget(self, pid: str) -> None:
        """A pick leaves the pool (its event is final, or it aged out unused)."""
        self._picks.pop(pid, None)
        self._arrival.pop(pid, None)
        self._amps.pop(pid, None)
        self._settled.pop(pid, None)

    def _bound(self) -> None:
        if len(self._picks) <= self.max_picks:
            return
        excess = len(self._picks) - self.max_picks
        for p in sorted(self._picks.values(), key=lambda p: (p.time_ns, p.id))[:excess]:
            self._forget(p.id)
        self.dropped_picks += excess
        log.warning("event stage: %d picks pending (max_picks %d): the %d oldest dropped",
                    len(self._picks) + excess, self.max_picks, excess)

    def _version(self, eid: str, prev: int) -> int:
        """An event's next ``update`` number: the data time of this association in ms after
        its first pick, and above ``prev``. Counted in data time, not in updates sent, so a
        restarted worker's versions of the data it had covered (re-read from its last commit,
        associated in other batches) come out below the ones it sent before, and its versions
        of new data above them: the highest update of an event id is its newest state."""
        ms = ((self._newest_ns or 0) - self._ref.get(eid, 0)) // 1_000_000
        return max(prev + 1, int(ms))

    @staticmethod
    def _same(a: Event, b: Event) -> bool:
        return (a.pick_ids == b.pick_ids and abs(a.time_ns - b.time_ns) < 1_000_000
                and a.summary()["magnitudes"] == b.summary()["magnitudes"])

    def _alert(self, ev: Event, deleted: bool = False) -> Alert:
        nets = sorted({a.pick.network for a in ev.arrivals})
        arrival = max((self._arrival.get(p, 0) for p in ev.pick_ids), default=0)
        details = {**ev.summary(), "deleted": deleted}
        return Alert(kind=AlertKind.EVENT, network=nets[0] if len(nets) == 1 else "*",
                     station="*", location="", channel="", time_ns=ev.time_ns,
                     score=float(ev.n_stations), threshold=float(self.assoc.cfg.min_stations),
                     model=self.model, newest_arrival_ns=arrival, phase=None, details=details)
