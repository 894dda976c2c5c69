"""Alert construction beyond single windows: buffer-policy ``health`` alerts and network
coincidence ``detection`` alerts (several stations triggering together).

>>> from stream.records import ModelRef
>>> c = Coincidence(min_stations=2, window_s=5.0)
>>> m = ModelRef("recursive_sta_lta", "x", "0" * 64)
>>> a = lambda sta, t: Alert("detection", "XX", sta, "", "HHZ", t, 5.0, 3.5, m, 0)
>>> c.add([a("A", 10**9)]), len(c.add([a("B", 2 * 10**9)]))
([], 1)
"""

from __future__ import annotations

import hashlib

from stream.buffer.windows import ChannelEvent
from stream.records import NS_PER_S, Alert, ModelRef

HEALTH_EVENTS = {"reset_gap", "reset_rate", "missing_component", "rate_too_low"}
_POLICY = ModelRef("buffer-policy", "1", hashlib.sha256(b"geosentry.buffer.v1").hexdigest())
_OVERLOAD = ModelRef("overload-policy", "1", hashlib.sha256(b"geosentry.overload.v1").hexdigest())


def overload_alert(started: bool, info: dict[str, object], now_ns: int) -> Alert:
    """Service-wide ``health`` alert (station ``*``) when a detector starts or stops shedding.

    >>> overload_alert(True, {"detector": "picker", "max_lag_s": 10.0}, 0).details["event"]
    'overload_started'
    """
    return Alert(kind="health", network="*", station="*", location="", channel="",
                 time_ns=now_ns, score=float(str(info.get("waited_s", 0.0))),
                 threshold=float(str(info.get("max_lag_s", 0.0))), model=_OVERLOAD,
                 newest_arrival_ns=now_ns, phase=None,
                 details={"event": "overload_started" if started else "overload_stopped",
                          "detail": str(info.get("detector", "")), **info})


def health_alert(ev: ChannelEvent, arrival_ns: int) -> Alert:
    """A ``health`` alert for a buffer event that changes what the detectors see."""
    net, sta, loc, cha = (ev.sid.split(".") + ["", "", "", ""])[:4]
    return Alert(kind="health", network=net, station=sta, location=loc, channel=cha,
                 time_ns=ev.event.start_ns, score=ev.event.duration_s, threshold=0.0,
                 model=_POLICY, newest_arrival_ns=arrival_ns, phase=None,
                 details={"event": ev.event.kind, "duration_s": round(ev.event.duration_s, 6),
                          "detail": ev.event.detail})


class Coincidence:
    """Network ``detection`` when ``min_stations`` stations trigger within ``window_s``.

    Station alerts of kind ``detection`` or P ``pick`` feed it, grouped per network and
    detector; each network event is reported once, at its earliest station trigger.
    """

    def __init__(self, min_stations: int, window_s: float) -> None:
        self.min_stations = min_stations
        self.window_ns = int(window_s * NS_PER_S)
        params = f"min_stations={min_stations},window_s={window_s:g}"
        self.model = ModelRef("coincidence", params, hashlib.sha256(params.encode()).hexdigest())
        self._triggers: dict[tuple[str, str], list[Alert]] = {}
        self._events: dict[tuple[str, str], list[int]] = {}

    def add(self, alerts: list[Alert]) -> list[Alert]:
        out: list[Alert] = []
        for a in alerts:
            if a.station == "*" or not (a.kind == "detection" or (a.kind == "pick" and a.phase == "P")):
                continue
            key = (a.network, str(a.details.get("detector", a.model.name)))
            triggers = self._triggers.setdefault(key, [])
            triggers.append(a)
            near = [t for t in triggers if abs(t.time_ns - a.time_ns) <= self.window_ns]
            stations = sorted({t.station for t in near})
            if len(stations) < self.min_stations:
                continue
            onset = min(t.time_ns for t in near)
            events = self._events.setdefault(key, [])
            if any(abs(onset - e) <= self.window_ns for e in events):
                continue
            events.append(onset)
            out.append(Alert(
                kind="detection", network=a.network, station="*", location="", channel="",
                time_ns=onset, score=float(len(stations)), threshold=float(self.min_stations),
                model=self.model, newest_arrival_ns=max(t.newest_arrival_ns for t in near),
                details={"detector": key[1], "stations": stations, "scope": "network"}))
            horizon = a.time_ns - 20 * self.window_ns
            self._triggers[key] = [t for t in triggers if t.time_ns >= horizon]
            self._events[key] = [e for e in events if e >= horizon]
        return out
