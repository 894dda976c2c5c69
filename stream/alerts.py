"""Alert construction beyond single windows: buffer-policy and service ``health`` alerts.
Network coincidence ``detection`` alerts are ``geosentry.stream.coincidence`` (re-exported
here as ``Coincidence``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum

from geosentry.stream.buffer.channel import BufferEventKind
from geosentry.stream.buffer.windows import ChannelEvent
from geosentry.stream.coincidence import Coincidence
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef

__all__ = ["HEALTH_EVENTS", "Coincidence", "HealthEvent", "health_alert", "overload_alert",
           "source_gap_alert", "stall_alert", "station_unknown_alert"]


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
