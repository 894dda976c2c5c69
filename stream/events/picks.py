"""Picks: the associator's input, read from CSV or QuakeML.

CSV: ``network,station,phase,time[,amplitude,period]`` with a header; ``time`` ISO-8601 UTC,
``amplitude`` the Wood-Anderson amplitude as ground displacement in nm (see
``geosentry.stream.events.magnitude``), ``period`` in s. Optional columns ``id``, ``location``,
``channel``. A row with an amplitude and an empty phase is an amplitude reading only.

>>> p = Pick("a", "NZ", "WHYM", Phase.P, 1_000_000_000)
>>> p.key, p.time_s
('NZ.WHYM', 1.0)
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from geosentry.stream.errors import GeosentryError
from geosentry.stream.records import NS_PER_S


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


def pick_id(network: str, station: str, phase: str, time_ns: int) -> str:
    """Deterministic id of a pick read without one."""
    basis = f"{network}.{station}|{phase}|{time_ns // 1_000_000}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _ns(text: str) -> int:
    from obspy import UTCDateTime

    return int(UTCDateTime(text.strip()).ns)


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
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    picks: list[Pick] = []
    amps: list[Amplitude] = []
    for n, row in enumerate(rows, start=2):
        r = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        try:
            net, sta, t = r.get("network", ""), r["station"], _ns(r["time"])
            phase = r.get("phase", "").upper()[:1]
            pid = r.get("id") or pick_id(net, sta, phase or "A", t)
            if phase:
                picks.append(Pick(pid, net, sta, Phase(phase), t, r.get("location", ""),
                                  r.get("channel", "")))
            if r.get("amplitude"):
                amps.append(Amplitude(pid + "-amp", net, sta, float(r["amplitude"]),
                                      float(r["period"]) if r.get("period") else None, t))
        except (KeyError, ValueError, TypeError) as exc:
            raise PickFileError(f"picks {p} row {n}: need network,station,phase,time"
                                f"[,amplitude,period] ({type(exc).__name__}: {exc})") from exc
    if not picks:
        raise PickFileError(f"picks {p}: no picks")
    return picks, amps
