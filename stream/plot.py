"""``geosentry plot``: PNG figures of an archive with the alerts of a run drawn on them.

* seismic channels: one panel per trace; picks (P, S), station and network detections,
  anomalies and event origin times from a jsonl alerts file;
* magnetometers (IAGA-2002 or miniSEED F-instruments): H, E (or D), Z and the horizontal dB/dt
  of one-minute means, with dB/dt, SSC and artefact alerts.

matplotlib is the ``plot`` extra (``pip install "geosentry[plot]"``); without it the command
says so in one line (exit 2). Marks carry no text on the traces: a legend above the panels
names them, so labels cannot overlap however dense the alerts are.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import obspy

from geosentry.stream.buffer.spec import channel_kind
from geosentry.stream.errors import GeosentryError
from geosentry.stream.records import NS_PER_S, AlertKind

log = logging.getLogger(__name__)
MAX_PANELS = 24


class PlotError(GeosentryError):
    """Nothing to plot, an unreadable file, or matplotlib missing (one line, exit 2)."""


class MarkKind(StrEnum):
    """How an alert is drawn (``STYLE``)."""

    PICK_P = "pick-P"
    PICK_S = "pick-S"
    DETECTION = "detection"  # one station's
    NETWORK = "network"  # a network coincidence
    ANOMALY = "anomaly"
    EVENT = "event"  # a located event's origin time
    SSC = "ssc"
    DBDT = "dbdt"
    ARTEFACT = "artefact"
    HEALTH = "health"


@dataclass(frozen=True)
class Mark:
    """One alert drawn on the figure."""

    time_s: float
    kind: MarkKind
    station: str  # NET.STA, or "*" for every panel
    channel: str = ""
    end_s: float | None = None  # artefact spans


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="PNG of an archive with the alerts of a run drawn on it")
    p.add_argument("path", help="miniSEED or IAGA-2002 file, or a directory of them")
    p.add_argument("--alerts", help="jsonl alerts file of a run (geosentry run --sink jsonl:PATH)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--kind", choices=("auto", "seismic", "geomag"), default="auto",
                   help="auto: geomag when the channels are magnetometers")
    p.add_argument("--start", help="UTC start (ISO 8601); default: the data's start")
    p.add_argument("--end", help="UTC end (ISO 8601); default: the data's end")
    p.add_argument("--stations", help="comma-separated NET.STA or STA to keep")
    p.add_argument("--title", help="figure title (default: what is plotted)")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotError('geosentry plot needs matplotlib: pip install "geosentry[plot]"') from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_archive(path: str | Path) -> obspy.Stream:
    """Every miniSEED / IAGA-2002 file under ``path`` as one merged stream."""
    from geosentry.stream.decode.iaga import iaga_to_mseed, is_iaga

    root = Path(path)
    if not root.exists():
        raise PlotError(f"not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    st = obspy.Stream()
    for f in files:
        try:
            if is_iaga(f):
                st += obspy.read(io.BytesIO(b"".join(iaga_to_mseed(f))))
            else:
                st += obspy.read(str(f))
        except Exception as exc:  # not waveform data: named, skipped
            log.warning("plot: skipping %s (%s)", f, exc)
    if not st:
        raise PlotError(f"no miniSEED or IAGA-2002 data under {root}")
    st.merge(method=1, fill_value=None)
    return st


def read_alerts(path: str | Path | None) -> list[Mark]:
    """The marks of a jsonl alerts file (one ``geosentry.alert.v1`` object a line)."""
    if path is None:
        return []
    marks: list[Mark] = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise PlotError(f"cannot read alerts file {path}: {exc.strerror or exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            a = json.loads(line)
            marks.extend(_marks(a))
        except (ValueError, KeyError, TypeError) as exc:
            raise PlotError(f"{path}:{n}: not a geosentry alert ({exc})") from exc
    return marks


def _t(iso: str) -> float:
    return float(obspy.UTCDateTime(iso).ns) / NS_PER_S


def _marks(a: dict[str, Any]) -> list[Mark]:
    d = a.get("details") or {}
    sta = "*" if a["station"] == "*" else f"{a['network']}.{a['station']}"
    det = str(d.get("detector", a["model"]["name"]))
    kind = a["kind"]
    t = _t(a["time"])
    if kind == AlertKind.PICK:
        return [Mark(t, MarkKind.PICK_S if a.get("phase") == "S" else MarkKind.PICK_P, sta, a["channel"])]
    if kind == AlertKind.EVENT:
        origin = d.get("origin") or {}
        return [] if d.get("deleted") else [Mark(_t(origin.get("time", a["time"])), MarkKind.EVENT, "*")]
    if det == "ssc":
        return [Mark(t, MarkKind.SSC, sta, a["channel"])]
    if det == "dbdt":
        return [Mark(t, MarkKind.DBDT, sta, a["channel"])]
    if det == "artefacts" or d.get("event") in ("spike", "step", "flat", "f_mismatch"):
        end = _t(d["end"]) if isinstance(d.get("end"), str) else None
        return [Mark(t, MarkKind.ARTEFACT, sta, a["channel"], end)]
    if kind == AlertKind.DETECTION:
        return [Mark(t, MarkKind.NETWORK if sta == "*" else MarkKind.DETECTION, sta,
                     a["channel"])]
    if kind == AlertKind.ANOMALY:
        return [Mark(t, MarkKind.ANOMALY, sta, a["channel"])]
    return [Mark(t, MarkKind.HEALTH, sta, a["channel"])]


STYLE: dict[MarkKind, dict[str, Any]] = {
    MarkKind.PICK_P: {"color": "#1d4ed8", "lw": 1.4, "ls": "-", "label": "P pick"},
    MarkKind.PICK_S: {"color": "#dc2626", "lw": 1.4, "ls": "-", "label": "S pick"},
    MarkKind.DETECTION: {"color": "#7c3aed", "lw": 1.0, "ls": ":", "label": "station detection"},
    MarkKind.NETWORK: {"color": "#111827", "lw": 1.2, "ls": "--", "label": "network detection"},
    MarkKind.ANOMALY: {"color": "#b45309", "lw": 1.0, "ls": ":", "label": "anomaly"},
    MarkKind.EVENT: {"color": "#0f766e", "lw": 2.0, "ls": "-.", "label": "event origin time"},
    MarkKind.SSC: {"color": "#dc2626", "lw": 1.6, "ls": "--", "label": "SSC"},
    MarkKind.DBDT: {"color": "#7c3aed", "lw": 1.2, "ls": "-", "label": "dB/dt alert"},
    MarkKind.ARTEFACT: {"color": "#f59e0b", "lw": 1.0, "ls": "-", "label": "artefact"},
    MarkKind.HEALTH: {"color": "#6b7280", "lw": 0.8, "ls": ":", "label": "health"},
}


def _matches(m: Mark, key: str) -> bool:
    return m.station == "*" or m.station == key


def run(args: argparse.Namespace) -> int:
    st = read_archive(args.path)
    if args.stations:
        keep = {s.strip() for s in args.stations.split(",") if s.strip()}
        st = obspy.Stream([tr for tr in st if tr.stats.station in keep
                           or f"{tr.stats.network}.{tr.stats.station}" in keep])
    if args.start or args.end:
        st = st.slice(obspy.UTCDateTime(args.start) if args.start else None,
                      obspy.UTCDateTime(args.end) if args.end else None)
    if not st:
        raise PlotError("no data left after --stations / --start / --end")
    marks = read_alerts(args.alerts)
    kind = args.kind
    if kind == "auto":
        kinds = {channel_kind(tr.stats.channel[:2]) for tr in st}
        kind = "geomag" if kinds == {"geomagnetic"} else "seismic"
    from geosentry.stream.plot_figures import geomag, seismic

    out = Path(args.out)
    if not out.parent.is_dir():
        raise PlotError(f"folder not found for --out: {out.parent}")
    plt = _pyplot()
    if kind == "geomag":
        fig = geomag(plt, st, marks, args.title)
    else:
        fig = seismic(plt, st, marks, args.title, MAX_PANELS)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    shown = sum(1 for m in marks if any(_matches(m, f"{t.stats.network}.{t.stats.station}")
                                        for t in st))
    print(f"wrote {out} ({len(st)} traces, {shown} of {len(marks)} alerts on them)")
    return 0


def minute_dbdt(h: np.ndarray, e: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal dB/dt (nT/min) of one-minute means: (minute index, rate), NaN-aware."""
    per = max(1, int(round(60 * rate_hz)))
    n = len(h) // per
    with np.errstate(all="ignore"):
        hm = np.nanmean(h[: n * per].reshape(n, per), axis=1) if n else np.array([])
        em = np.nanmean(e[: n * per].reshape(n, per), axis=1) if n else np.array([])
    rate = np.hypot(np.diff(hm), np.diff(em))
    return np.arange(1, n), rate
