"""Picks: the associator's input, read from CSV or QuakeML.

CSV: ``network,station,phase,time[,amplitude,period]`` with a header; ``time`` ISO-8601 UTC
or epoch seconds, ``amplitude`` the Wood-Anderson amplitude as ground displacement in nm (see
``geosentry.stream.events.magnitude``), ``period`` in s. Optional columns ``id``, ``location``,
``channel``. A row with an amplitude and an empty phase is an amplitude reading only. QuakeFlow /
PhaseNet pick files read as they are (``station_id,phase_time,phase_type``: :data:`ALIASES`).
Phase hints are reduced to P or S (Pg, Pn, Sg, ...); picks of any other phase (Lg, IAML) are
skipped, counted in one log line per file.

>>> p = Pick("a", "NZ", "WHYM", Phase.P, 1_000_000_000)
>>> p.key, p.time_s
('NZ.WHYM', 1.0)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from geosentry.stream.errors import GeosentryError
from geosentry.stream.events import csvfile
from geosentry.stream.records import NS_PER_S

log = logging.getLogger(__name__)


class PickFileError(GeosentryError):
    """A pick file that cannot be read (one line, names the file and row)."""


class Phase(StrEnum):
    P = "P"
    S = "S"


@dataclass(frozen=True, slots=True)
class Pick:
    id: str
    network: str
    station: str
    phase: Phase
    time_ns: int
    location: str = ""
    channel: str = ""

    @property
    def key(self) -> str:
        return f"{self.network}.{self.station}"

    @property
    def time_s(self) -> float:
        return self.time_ns / NS_PER_S


@dataclass(frozen=True, slots=True)
class Amplitude:
    """A Wood-Anderson amplitude reading (ground displacement, nm) at a station."""

    id: str
    network: str
    station: str
    amplitude_nm: float
    period_s: float | None
    time_ns: int

    @property
    def key(self) -> str:
        return f"{self.network}.{self.station}"


def earliest(picks: Iterable[Pick]) -> Pick:
    """The first of ``picks`` by (time, station, phase, id): the pick an event's id derives
    from (``Associator``), and what ``EventStage`` keeps of a deleted event."""
    return min(picks, key=lambda p: (p.time_ns, p.key, p.phase, p.id))


def pick_id(network: str, station: str, phase: str, time_ns: int) -> str:
    """Deterministic id of a pick read without one."""
    basis = f"{network}.{station}|{phase}|{time_ns // 1_000_000}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


#: CSV header aliases -> the column they stand for: QuakeFlow/PhaseNet pick files
#: (``station_id`` NET.STA.LOC.CHA, ``phase_type``, ``phase_time``) and common short forms
ALIASES = {"net": "network", "sta": "station", "loc": "location", "cha": "channel",
           "phase_type": "phase", "phase_hint": "phase", "type": "phase",
           "phase_time": "time", "pick_time": "time", "timestamp": "time"}


def phase_of(hint: str) -> Phase | None:
    """P or S from a phase hint (Pg, Pn, Sg, sn, ...); None for any other (Lg, IAML, ?).

    >>> phase_of("Pg"), phase_of("sn"), phase_of("IAML"), phase_of("Lg"), phase_of("")
    (<Phase.P: 'P'>, <Phase.S: 'S'>, None, None, None)
    """
    h = hint.strip().upper()
    if not h or h[0] not in "PS" or h.startswith("PA"):  # "PAmp"-style amplitude readings
        return None
    return Phase(h[0])


def log_skipped(source: object, skipped: dict[str, int]) -> None:
    """One log line for the picks a file held that association does not use."""
    if skipped:
        log.warning("picks %s: %d picks skipped (%s): only P and S phases are associated",
                    source, sum(skipped.values()),
                    ", ".join(f"{k or 'no phase'} x{v}" for k, v in sorted(skipped.items())))


#: a numeric time below this is epoch seconds (year 5138); above, ObsPy reads it (compact ISO)
EPOCH_S_MAX = 10**11


def _ns(text: str) -> int:
    """Nanoseconds of an ISO-8601 time (UTC unless it says otherwise) or of epoch seconds."""
    from obspy import UTCDateTime

    text = text.strip()
    try:
        seconds = Decimal(text)  # exact: a float would round nanoseconds
    except InvalidOperation:
        return int(UTCDateTime(text).ns)
    if not seconds.is_finite() or abs(seconds) >= EPOCH_S_MAX:  # e.g. compact 20130101000000
        return int(UTCDateTime(text).ns)
    return int(seconds * NS_PER_S)


def read_picks(path: str | Path) -> tuple[list[Pick], list[Amplitude]]:
    """Picks and amplitudes from a CSV or a QuakeML file (by content)."""
    p = Path(path)
    try:
        head = p.read_text(errors="replace")[:512]
    except OSError as exc:
        raise PickFileError(f"picks {p}: {exc.strerror or exc}") from exc
    if head.lstrip().startswith("<"):
        from geosentry.stream.events.quakeml import picks_from_catalog

        import obspy

        try:
            cat = obspy.read_events(str(p))
        except Exception as exc:  # ObsPy raises many types for a bad file
            raise PickFileError(f"picks {p}: not readable QuakeML ({exc})") from exc
        return picks_from_catalog(cat)
    return _read_csv(p)


def _read_csv(p: Path) -> tuple[list[Pick], list[Amplitude]]:
    try:
        table = csvfile.rows(p)
    except csvfile.CsvTextError as exc:
        raise PickFileError(f"picks {exc}") from exc
    header = table[0] if table else []
    picks: list[Pick] = []
    amps: list[Amplitude] = []
    skipped: dict[str, int] = {}
    for n, cells in enumerate(table[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        r = _columns(dict(zip(header, cells)))
        try:
            net, sta, t = r.get("network", ""), r["station"], _ns(r["time"])
            hint = r.get("phase", "")
            phase = phase_of(hint)
            pid = r.get("id") or pick_id(net, sta, phase or "A", t)
            if phase is not None:
                picks.append(Pick(pid, net, sta, phase, t, r.get("location", ""),
                                  r.get("channel", "")))
            elif hint and not r.get("amplitude"):
                skipped[hint] = skipped.get(hint, 0) + 1
            if r.get("amplitude"):
                amps.append(Amplitude(pid + "-amp", net, sta, float(r["amplitude"]),
                                      float(r["period"]) if r.get("period") else None, t))
        except (KeyError, ValueError, TypeError) as exc:
            raise PickFileError(f"picks {p} row {n}: need network,station,phase,time"
                                f"[,amplitude,period] ({type(exc).__name__}: {exc})") from exc
    log_skipped(p, skipped)
    if not picks:
        raise PickFileError(f"picks {p}: no P or S picks")
    return picks, amps


def _columns(row: dict[str, str]) -> dict[str, str]:
    """A CSV row by the canonical column names (aliases mapped, ``station_id`` split)."""
    r: dict[str, str] = {}
    for k, v in row.items():
        if k:
            key = k.strip().lower()
            r.setdefault(ALIASES.get(key, key), (v or "").strip())
    if "station" not in r and r.get("station_id"):
        parts = r["station_id"].split(".")
        if len(parts) >= 2:
            r["network"], r["station"] = parts[0], parts[1]
            r.setdefault("location", parts[2] if len(parts) > 2 else "")
            r.setdefault("channel", parts[3] if len(parts) > 3 else "")
    return r
