"""Alert construction beyond single windows: buffer-policy ``health`` alerts and network
coincidence ``detection`` alerts (several stations triggering together).

>>> from geosentry.stream.records import ModelRef
>>> c = Coincidence(min_stations=2, window_s=5.0)
>>> m = ModelRef("recursive_sta_lta", "x", "0" * 64)
>>> a = lambda sta, t: Alert("detection", "XX", sta, "", "HHZ", t, 5.0, 3.5, m, 0)
>>> c.add([a("A", 10**9)]), len(c.add([a("B", 2 * 10**9)]))
([], 1)
"""

from __future__ import annotations

import bisect
import hashlib
import time
from datetime import UTC, datetime
from enum import StrEnum

from geosentry.stream.buffer.channel import BufferEventKind
from geosentry.stream.buffer.windows import ChannelEvent
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef


class HealthEvent(StrEnum):
    """``details.event`` of a ``health`` alert."""

    # buffer policy (``BufferEventKind`` of the same value, see ``HEALTH_EVENTS``)
    RESET_GAP = "reset_gap"
    RESET_RATE = "reset_rate"
    MISSING_COMPONENT = "missing_component"
    RATE_TOO_LOW = "rate_too_low"
    RATE_UNSUPPORTED = "rate_unsupported"
    FUTURE = "future"
    RELEASED = "released"
    # service-wide (station ``*``)
    OVERLOAD_STARTED = "overload_started"
    OVERLOAD_STOPPED = "overload_stopped"
    STALLED = "stalled"
    # a source could not get data back (a SeedLink resume after the server's ring moved on)
    SOURCE_GAP = "source_gap"
    # a geomagnetic instrument artefact (``geosentry.stream.detectors.geomag_artefacts``)
    ARTEFACT = "artefact"
    # picks of a station the events stage's inventory lacks (``geosentry.stream.events.service``)
    STATION_UNKNOWN = "station_unknown"


#: the buffer events that change what the detectors see: each raises a ``health`` alert
HEALTH_EVENTS: frozenset[BufferEventKind] = frozenset(
    k for k in BufferEventKind if k.value in {e.value for e in HealthEvent})
_POLICY = ModelRef("buffer-policy", "1", hashlib.sha256(b"geosentry.buffer.v1").hexdigest())
_WATCHDOG = ModelRef("watchdog", "1", hashlib.sha256(b"geosentry.watchdog.v1").hexdigest())
_OVERLOAD = ModelRef("overload-policy", "1", hashlib.sha256(b"geosentry.overload.v1").hexdigest())
_SOURCE = ModelRef("source-resume", "1", hashlib.sha256(b"geosentry.source.v1").hexdigest())
_EVENTS = ModelRef("events-stage", "1", hashlib.sha256(b"geosentry.events.v1").hexdigest())


def overload_alert(started: bool, info: dict[str, object], now_ns: int) -> Alert:
    """Service-wide ``health`` alert (station ``*``) when a detector starts or stops shedding.

    >>> overload_alert(True, {"detector": "picker", "max_lag_s": 10.0}, 0).details["event"]
    'overload_started'
    """
    event = HealthEvent.OVERLOAD_STARTED if started else HealthEvent.OVERLOAD_STOPPED
    return Alert(kind=AlertKind.HEALTH, network="*", station="*", location="", channel="",
                 time_ns=now_ns, score=float(str(info.get("waited_s", 0.0))),
                 threshold=float(str(info.get("max_lag_s", 0.0))), model=_OVERLOAD,
                 newest_arrival_ns=now_ns, phase=None,
                 details={"event": event.value, "detail": str(info.get("detector", "")), **info})


def source_gap_alert(source: str, sid: str, after_ns: int, until_ns: int, now_ns: int) -> Alert:
    """A ``health`` alert for data a source could not get back: channel ``sid``
    (``NET.STA.LOC.CHA``) has nothing from just after ``after_ns`` (its last sample held) to
    ``until_ns`` (the first one received again).

    >>> a = source_gap_alert("seedlink:h:1", "BW.UH1..SHZ", 0, 2 * NS_PER_S, 5)
    >>> a.details["event"], a.score, a.channel
    ('source_gap', 2.0, 'SHZ')
    """
    net, sta, loc, cha = (sid.split(".") + ["", "", "", ""])[:4]
    duration_s = (until_ns - after_ns) / NS_PER_S
    return Alert(kind=AlertKind.HEALTH, network=net, station=sta, location=loc, channel=cha,
                 time_ns=after_ns, score=duration_s, threshold=0.0, model=_SOURCE,
                 newest_arrival_ns=now_ns, phase=None,
                 details={"event": HealthEvent.SOURCE_GAP.value, "duration_s": round(duration_s, 6),
                          "detail": f"not received from {source}",
                          "until": datetime.fromtimestamp(until_ns // 1000 / 1e6, UTC)
                          .strftime("%Y-%m-%dT%H:%M:%S.%fZ")})


def station_unknown_alert(pick: Alert, inventory: str) -> Alert:
    """A ``health`` alert for the first pick of a station missing from the inventory: its
    picks are kept out of association and location.

    >>> from geosentry.stream.records import AlertKind
    >>> p = Alert(AlertKind.PICK, "XX", "NEW", "", "HHZ", 5, 0.9, 0.3, _SOURCE, 6, phase="P")
    >>> station_unknown_alert(p, "stations.csv").details["event"]
    'station_unknown'
    """
    return Alert(kind=AlertKind.HEALTH, network=pick.network, station=pick.station,
                 location=pick.location, channel=pick.channel, time_ns=pick.time_ns, score=0.0,
                 threshold=0.0, model=_EVENTS, newest_arrival_ns=pick.newest_arrival_ns,
                 phase=None, details={"event": HealthEvent.STATION_UNKNOWN.value,
                                      "detail": f"not in the inventory {inventory}: its picks "
                                                "are kept out of association and location"})


def stall_alert(why: str, now_ns: int) -> Alert:
    """Service-wide ``health`` alert from the watchdog: work pending and nothing moving.

    >>> stall_alert("3 windows pending and no progress for 60 s", 0).details["event"]
    'stalled'
    """
    return Alert(kind=AlertKind.HEALTH, network="*", station="*", location="", channel="",
                 time_ns=now_ns, score=0.0, threshold=0.0, model=_WATCHDOG,
                 newest_arrival_ns=now_ns, phase=None,
                 details={"event": HealthEvent.STALLED.value, "detail": why})


def health_alert(ev: ChannelEvent, arrival_ns: int) -> Alert:
    """A ``health`` alert for a buffer event that changes what the detectors see."""
    net, sta, loc, cha = (ev.sid.split(".") + ["", "", "", ""])[:4]
    return Alert(kind=AlertKind.HEALTH, network=net, station=sta, location=loc, channel=cha,
                 time_ns=ev.event.start_ns, score=ev.event.duration_s, threshold=0.0,
                 model=_POLICY, newest_arrival_ns=arrival_ns, phase=None,
                 details={"event": HealthEvent(ev.event.kind).value,
                          "duration_s": round(ev.event.duration_s, 6),
                          "detail": ev.event.detail})


class Coincidence:
    """Network ``detection`` when ``min_stations`` stations trigger within ``window_s``.

    Station alerts of kind ``detection`` or P ``pick`` feed it, grouped per network and
    detector; each network event is reported once, at its earliest station trigger, and a
    trigger within ``window_s`` of an event already reported belongs to it. Triggers are kept
    sorted by time for ``HORIZON_WINDOWS`` windows behind the newest, so an earthquake seen by
    thousands of stations at once costs a binary search per trigger, not a scan of all of them.
    A trigger is dropped only once it is both that far behind in data time and received more
    than ``KEEP_S`` ago, so a replay whose Kafka partitions are read one after another (one
    partition's stations far ahead of another's) still finds the events across them.
    """

    HORIZON_WINDOWS = 20
    KEEP_S = 600.0

    def __init__(self, min_stations: int, window_s: float) -> None:
        self.min_stations = min_stations
        self.window_ns = int(window_s * NS_PER_S)
        params = f"min_stations={min_stations},window_s={window_s:g}"
        self.model = ModelRef("coincidence", params, hashlib.sha256(params.encode()).hexdigest())
        self._times: dict[tuple[str, str], list[int]] = {}  # sorted trigger times per key
        self._triggers: dict[tuple[str, str], list[Alert]] = {}  # in the same order
        self._events: dict[tuple[str, str], list[int]] = {}  # onsets reported
        self._retry_ns: dict[tuple[str, str], int] = {}  # wall time of the next prune attempt

    def add(self, alerts: list[Alert]) -> list[Alert]:
        out: list[Alert] = []
        for a in alerts:
            if a.station == "*" or not (a.kind is AlertKind.DETECTION
                                        or (a.kind is AlertKind.PICK and a.phase == "P")):
                continue
            key = (a.network, str(a.details.get("detector", a.model.name)))
            times = self._times.setdefault(key, [])
            triggers = self._triggers.setdefault(key, [])
            events = self._events.setdefault(key, [])
            self._prune(key, max(a.time_ns, times[-1] if times else a.time_ns))
            i = bisect.bisect_right(times, a.time_ns)
            times.insert(i, a.time_ns)
            triggers.insert(i, a)
            if any(abs(a.time_ns - e) <= self.window_ns for e in events):
                continue  # part of a network event already reported
            lo = bisect.bisect_left(times, a.time_ns - self.window_ns)
            hi = bisect.bisect_right(times, a.time_ns + self.window_ns)
            near = triggers[lo:hi]
            stations = sorted({t.station for t in near})
            if len(stations) < self.min_stations:
                continue
            onset = near[0].time_ns
            if any(abs(onset - e) <= self.window_ns for e in events):
                continue
            events.append(onset)
            out.append(Alert(
                kind=AlertKind.DETECTION, network=a.network, station="*", location="", channel="",
                time_ns=onset, score=float(len(stations)), threshold=float(self.min_stations),
                model=self.model, newest_arrival_ns=max(t.newest_arrival_ns for t in near),
                details={"detector": key[1], "stations": stations, "scope": "network"}))
        return out

    def _prune(self, key: tuple[str, str], newest_ns: int) -> None:
        horizon = newest_ns - self.HORIZON_WINDOWS * self.window_ns
        times = self._times[key]
        now = time.time_ns()
        if not times or times[0] >= horizon or now < self._retry_ns.get(key, 0):
            return
        k = bisect.bisect_left(times, horizon)
        keep_ns = int(self.KEEP_S * NS_PER_S)
        old = self._triggers[key][:k]
        keep = [t for t in old if t.newest_arrival_ns > now - keep_ns]
        # nothing kept can go before the earliest of them is KEEP_S old: no rescans till then
        # (a fast replay keeps minutes of triggers behind the horizon; one scan per add of all
        # of them would be quadratic again)
        self._retry_ns[key] = min(t.newest_arrival_ns for t in keep) + keep_ns if keep else 0
        if len(keep) == len(old):
            return
        self._triggers[key][:k] = keep
        times[:k] = [t.time_ns for t in keep]
        if not keep:  # events stay while triggers behind the horizon do, to dedupe against them
            self._events[key] = [e for e in self._events[key] if e >= horizon]
