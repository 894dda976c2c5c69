"""miniSEED waveforms + phase picks (QuakeML or CSV) -> training events.

Picks:

* QuakeML (``.xml``, ``.qml``, ``.quakeml``; anything ObsPy's ``read_events`` reads): every
  ``Pick`` with a ``phase_hint`` starting with P or S and a ``waveform_id``; the event is the
  QuakeML event the pick belongs to.
* CSV with a header: ``network,station,phase,time`` and optionally ``event_id`` (or a
  ``station_id`` column ``NET.STA`` instead of ``network`` + ``station``); ``time`` is ISO 8601.
  Without ``event_id`` a P pick starts a new event at its station and the next S pick of that
  station joins it.

Waveforms: any miniSEED files (or an ObsPy ``Stream``). For each (event, station) with a P pick
the station's traces are merged, resampled to 100 Hz when needed, cut to
``[P - before_s, P + after_s]`` and arranged Z, N, E (``1``/``2`` components count as N/E;
missing components are all-zero rows, as the PhaseNet vertical-only records) into a
:class:`geosentry.training.data.phasenet.PhaseNetEvent` with sample-index ``itp`` / ``its``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable

import numpy as np
import obspy

from geosentry.training.data.phasenet import PhaseNetEvent

COMPONENT_ROWS = {"Z": 0, "N": 1, "1": 1, "E": 2, "2": 2}


@dataclass(frozen=True)
class Pick:
    network: str
    station: str
    phase: str  # "P" or "S"
    time: obspy.UTCDateTime
    event_id: str

    @property
    def station_id(self) -> str:
        return f"{self.network}.{self.station}"


def _phase(hint: str | None) -> str | None:
    h = (hint or "").strip().upper()
    return h[0] if h[:1] in ("P", "S") else None


def read_picks_quakeml(path: str | Path) -> list[Pick]:
    cat = obspy.read_events(str(path))
    out = []
    for k, ev in enumerate(cat):
        eid = str(ev.resource_id) if ev.resource_id else f"event{k}"
        for p in ev.picks:
            phase = _phase(p.phase_hint)
            if phase is None or p.waveform_id is None:
                continue
            out.append(Pick(p.waveform_id.network_code or "", p.waveform_id.station_code or "",
                            phase, p.time, eid))
    return out


def read_picks_csv(path: str | Path) -> list[Pick]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: list[Pick] = []
    open_event: dict[str, str] = {}
    for i, r in enumerate(rows):
        row = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
        if "station_id" in row and row["station_id"]:
            net, _, sta = row["station_id"].partition(".")
        else:
            net, sta = row.get("network", ""), row.get("station", "")
        phase = _phase(row.get("phase"))
        if not sta or phase is None or not row.get("time"):
            raise ValueError(f"{path}: row {i + 2} needs station, phase (P/S) and time: {r}")
        sid = f"{net}.{sta}"
        eid = row.get("event_id") or ""
        if not eid:
            if phase == "P" or sid not in open_event:
                open_event[sid] = f"{sid}#{i}"
            eid = open_event[sid]
        out.append(Pick(net, sta, phase, obspy.UTCDateTime(row["time"]), eid))
    return out


def read_picks(path: str | Path) -> list[Pick]:
    """QuakeML or CSV (chosen by suffix: ``.csv`` is CSV, anything else QuakeML)."""
    return read_picks_csv(path) if str(path).lower().endswith(".csv") else read_picks_quakeml(path)


def _stream(waveforms: obspy.Stream | Iterable[str | Path]) -> obspy.Stream:
    if isinstance(waveforms, obspy.Stream):
        return waveforms
    st = obspy.Stream()
    for p in waveforms:
        st += obspy.read(str(p), format="MSEED")
    return st


def mseed_events(waveforms: obspy.Stream | Iterable[str | Path], picks: list[Pick],
                 before_s: float = 30.0, after_s: float = 60.0,
                 sampling_rate_hz: float = 100.0) -> list[PhaseNetEvent]:
    """One event record per (event, station) with a P pick and waveforms covering the window;
    the S pick (if any, after P and inside the window) gives ``its``, else ``its = -1``."""
    st = _stream(waveforms)
    groups: dict[tuple[str, str], dict[str, Pick]] = {}
    for p in picks:
        groups.setdefault((p.event_id, p.station_id), {}).setdefault(p.phase, p)
    n = int(round((before_s + after_s) * sampling_rate_hz)) + 1
    out: list[PhaseNetEvent] = []
    for (_eid, sid), ph in sorted(groups.items(), key=lambda kv: (kv[1].get("P") or kv[1]["S"]).time):
        if "P" not in ph:
            continue
        net, sta = sid.split(".", 1)
        t0 = ph["P"].time - before_s
        sel = st.select(network=net or "*", station=sta).copy()
        sel.trim(t0 - 1.0, t0 + (n - 1) / sampling_rate_hz + 1.0)
        if not sel:
            continue
        data = np.zeros((3, n), np.float32)
        chans = []
        for tr in sel.merge(fill_value=0):
            row = COMPONENT_ROWS.get(tr.stats.channel[-1:].upper())
            if row is None or np.any(data[row]):
                continue
            tr = tr.copy()
            tr.data = tr.data.astype(np.float64)
            if abs(tr.stats.sampling_rate - sampling_rate_hz) > 1e-6:
                tr.detrend("demean")  # resample needs no offset step at the edges
                tr.resample(sampling_rate_hz)
            tr.trim(t0, t0 + (n - 1) / sampling_rate_hz, pad=True, fill_value=0.0,
                    nearest_sample=True)
            data[row, : min(n, tr.stats.npts)] = tr.data[:n].astype(np.float32)
            chans.append(tr.stats.channel)
        if not np.any(data[0]):
            continue
        itp = int(round((ph["P"].time - t0) * sampling_rate_hz))
        its = int(round((ph["S"].time - t0) * sampling_rate_hz)) if "S" in ph else -1
        if not itp < its < n:
            its = -1
        name = f"{net}_{sta}_{ph['P'].time.strftime('%Y%m%d%H%M%S%f')[:16]}.mseed"
        out.append(PhaseNetEvent(name, net, sta, data, itp, its, "_".join(sorted(chans)),
                                 source="mseed"))
    return out
