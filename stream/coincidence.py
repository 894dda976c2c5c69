"""Network coincidence: a ``detection`` alert (station ``*``) when ``min_stations`` stations
trigger within ``window_s``, decided in data-time order so the result depends only on the
triggers, not on the order stations' windows happen to arrive in.

Station alerts of kind ``detection`` or P ``pick`` feed it, grouped per network and detector.
Each station's *progress* is how far its processed windows have reported (the newest window's
end, less the detector's ``report_lag_s``). A stretch
of time is decided once every active station has progressed past it (the *watermark*: the
slowest station that delivered a window within ``ACTIVE_WALL_S`` and is less than
``ACTIVE_LAG_S`` of data time behind the most advanced one). Triggers are then taken in time
order: a trigger more than ``window_s`` after the last event's onset starts an event when the
triggers in ``[t, t + window_s]`` come from ``min_stations`` stations or more; the event is
reported at ``t`` with those stations. A trigger that arrives after its stretch was decided (a
station far behind the others) re-opens it, so a replay whose Kafka partitions are read one
after another still finds the events across them. ``flush`` decides everything (the end of a
finite stream).

Because the decision needs the slowest active station, a network alert comes about
``window_s`` (plus the spread of the stations' data latency) after its onset; station alerts
are not delayed. After a restart the same triggers give the same events, with the same ids
(``geosentry.stream.resume``).

>>> from geosentry.stream.records import ModelRef
>>> c = Coincidence(min_stations=2, window_s=5.0)
>>> m = ModelRef("recursive_sta_lta", "x", "0" * 64)
>>> a = lambda sta, t: Alert("detection", "XX", sta, "", "HHZ", t, 5.0, 3.5, m, 0)
>>> c.add([a("A", 10**9)]), c.add([a("B", 2 * 10**9)]), len(c.flush())
([], [], 1)
"""

from __future__ import annotations

import bisect
import hashlib
import time
from dataclasses import dataclass, field

from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef, Window

Key = tuple[str, str]  # (network, detector)


@dataclass
class _Net:
    times: list[int] = field(default_factory=list)  # trigger times, sorted
    triggers: list[Alert] = field(default_factory=list)  # in the same order
    added_wall_ns: list[int] = field(default_factory=list)  # when each was received
    progress: dict[str, int] = field(default_factory=dict)  # station -> newest window end
    seen_wall_ns: dict[str, int] = field(default_factory=dict)  # station -> when it delivered
    decided_ns: int = -(2**62)  # triggers before this time were decided
    onsets: list[int] = field(default_factory=list)  # events reported, sorted


class Coincidence:
    ACTIVE_WALL_S = 600.0
    ACTIVE_LAG_S = 60.0

    def __init__(self, min_stations: int, window_s: float,
                 report_lag_s: dict[str, float] | None = None) -> None:
        """``report_lag_s``: per detector, how long before a window's end its events are final
        (``WindowSpec.report_lag_s``: a picker reports the tail of a window with the next)."""
        self.report_lag_ns = {k: int(v * NS_PER_S) for k, v in (report_lag_s or {}).items()}
        self.min_stations = min_stations
        self.window_ns = int(window_s * NS_PER_S)
        params = f"min_stations={min_stations},window_s={window_s:g}"
        self.model = ModelRef("coincidence", params, hashlib.sha256(params.encode()).hexdigest())
        self._nets: dict[Key, _Net] = {}

    # ---- feeding ---------------------------------------------------------------------------
    def observe(self, results: list[tuple[Window, list[Alert]]]) -> list[Alert]:
        """Triggers and progress of processed windows (the pipeline's batches, replayed ones
        included); the network alerts this decides."""
        touched: set[Key] = set()
        now = time.time_ns()
        for w, alerts in results:
            self._triggers(alerts, touched)
            for key in {(w.network, w.detector)}:
                net = self._nets.setdefault(key, _Net())
                end = w.time_of(w.data.shape[-1]) - (0 if w.owned_from_samples is not None
                                                     else self.report_lag_ns.get(w.detector, 0))
                net.progress[w.station] = max(net.progress.get(w.station, end), end)
                net.seen_wall_ns[w.station] = now
                touched.add(key)
        return [e for key in sorted(touched) for e in self._decide(key, self._watermark(key))]

    def add(self, alerts: list[Alert]) -> list[Alert]:
        """Triggers without windows (tests, offline use): each trigger's own time is its
        station's progress."""
        touched: set[Key] = set()
        now = time.time_ns()
        for a in self._triggers(alerts, touched):
            net = self._nets[self._key(a)]
            net.progress[a.station] = max(net.progress.get(a.station, a.time_ns), a.time_ns)
            net.seen_wall_ns[a.station] = now
        return [e for key in sorted(touched) for e in self._decide(key, self._watermark(key))]

    def flush(self) -> list[Alert]:
        """End of a finite stream: decide every trigger held."""
        return [e for key in sorted(self._nets) for e in self._decide(key, 2**62)]

    @staticmethod
    def _key(a: Alert) -> Key:
        return a.network, str(a.details.get("detector", a.model.name))

    def _triggers(self, alerts: list[Alert], touched: set[Key]) -> list[Alert]:
        used = []
        for a in alerts:
            if a.station == "*" or not (a.kind is AlertKind.DETECTION
                                        or (a.kind is AlertKind.PICK and a.phase == "P")):
                continue
            key = self._key(a)
            net = self._nets.setdefault(key, _Net())
            i = bisect.bisect_right(net.times, a.time_ns)
            net.times.insert(i, a.time_ns)
            net.triggers.insert(i, a)
            net.added_wall_ns.insert(i, time.time_ns())
            if a.time_ns - self.window_ns < net.decided_ns:  # decided without it: re-open
                net.decided_ns = a.time_ns - self.window_ns
            touched.add(key)
            used.append(a)
        return used

    # ---- deciding --------------------------------------------------------------------------
    def _watermark(self, key: Key) -> int:
        net = self._nets[key]
        if not net.progress:
            return -(2**62)
        newest = max(net.progress.values())
        wall = time.time_ns() - int(self.ACTIVE_WALL_S * NS_PER_S)
        lag = int(self.ACTIVE_LAG_S * NS_PER_S)
        return min(t for s, t in net.progress.items()
                   if t >= newest - lag and net.seen_wall_ns.get(s, 0) >= wall)

    def _decide(self, key: Key, watermark_ns: int) -> list[Alert]:
        net = self._nets[key]
        out: list[Alert] = []
        # triggers before this have their whole window (and none is newer than the data)
        limit = min(watermark_ns - self.window_ns, max(net.progress.values(), default=0) + 1)
        i = bisect.bisect_left(net.times, net.decided_ns)
        while i < len(net.times) and net.times[i] < limit:
            t = net.times[i]
            j = bisect.bisect_left(net.onsets, t - self.window_ns)
            if j < len(net.onsets) and net.onsets[j] <= t + self.window_ns:
                i += 1  # part of an event already reported
                continue
            hi = bisect.bisect_right(net.times, t + self.window_ns)
            stations = sorted({a.station for a in net.triggers[i:hi]})
            if len(stations) >= self.min_stations:
                bisect.insort(net.onsets, t)
                near = net.triggers[i:hi]
                out.append(Alert(
                    kind=AlertKind.DETECTION, network=key[0], station="*", location="",
                    channel="", time_ns=t, score=float(len(stations)),
                    threshold=float(self.min_stations), model=self.model,
                    newest_arrival_ns=max(a.newest_arrival_ns for a in near),
                    details={"detector": key[1], "stations": stations, "scope": "network"}))
            i += 1
        net.decided_ns = max(net.decided_ns, limit)
        self._prune(net)
        return out

    def _prune(self, net: _Net) -> None:
        """Drop triggers a re-opened stretch cannot need any more: more than ``ACTIVE_LAG_S``
        behind the decided time *and* received more than ``ACTIVE_WALL_S`` ago (a replay whose
        partitions are read one after another keeps the lagging stations' partners)."""
        keep_from = net.decided_ns - int(self.ACTIVE_LAG_S * NS_PER_S) - 2 * self.window_ns
        wall = time.time_ns() - int(self.ACTIVE_WALL_S * NS_PER_S)
        k = 0
        while k < len(net.times) and net.times[k] < keep_from and net.added_wall_ns[k] < wall:
            k += 1
        if k:
            del net.times[:k]
            del net.triggers[:k]
            del net.added_wall_ns[:k]
        k = bisect.bisect_left(net.onsets, min(keep_from, net.times[0] if net.times else keep_from)
                               - self.window_ns)
        if k:
            del net.onsets[:k]
