"""The figures of ``geosentry plot`` (``geosentry.stream.plot`` reads the inputs).

Marks are vertical lines named in one legend above the panels (no text on the traces), panel
names sit left of the panels, and the time axis is written once, at the bottom: nothing can
overlap however many alerts there are.
"""

from __future__ import annotations

import importlib
import textwrap
from datetime import UTC, datetime
from typing import Any

import numpy as np
import obspy

from geosentry.stream.plot import STYLE, Mark, MarkKind, _matches, minute_dbdt


def _dates() -> Any:
    return importlib.import_module("matplotlib.dates")  # untyped module: used as Any


def _date(t_s: float) -> float:
    dates = _dates()
    return float(dates.date2num(datetime.fromtimestamp(t_s, UTC)))


def _time_axis(ax: Any, t0: obspy.UTCDateTime, t1: obspy.UTCDateTime) -> None:
    dates = _dates()
    span = t1 - t0
    fmt = "%H:%M:%S" if span < 3 * 3600 else "%H:%M"
    ax.xaxis.set_major_formatter(dates.DateFormatter(fmt, tz=UTC))
    ax.xaxis.set_major_locator(dates.AutoDateLocator(minticks=4, maxticks=9, tz=UTC))
    day = t0.strftime("%Y-%m-%d") + ("" if t0.date == t1.date else " – " + t1.strftime("%Y-%m-%d"))
    ax.set_xlabel(f"time (UTC), {day}")
    ax.set_xlim(_date(t0.timestamp), _date(t1.timestamp))


def _draw(ax: Any, marks: list[Mark], used: set[MarkKind]) -> None:
    for m in marks:
        style = STYLE[m.kind]
        if m.end_s is not None and m.end_s > m.time_s:
            ax.axvspan(_date(m.time_s), _date(m.end_s), color=style["color"], alpha=0.25, lw=0)
        else:
            ax.axvline(_date(m.time_s), color=style["color"], lw=style["lw"], ls=style["ls"])
        used.add(m.kind)


def _header(fig: Any, title: str, used: set[MarkKind]) -> None:
    """Title, then one legend row per six kinds of mark, then the panels: heights in inches,
    so the three never overlap whatever the figure's height."""
    from matplotlib.lines import Line2D

    fig.tight_layout()  # panel names and the time axis; then room at the top for the header
    height = fig.get_figheight()
    lines = textwrap.wrap(title, 130) or [""]
    fig.suptitle("\n".join(lines), y=1 - 0.06 / height, fontsize=11, va="top")
    title_in = 0.1 + 0.2 * len(lines)
    kinds = [k for k in STYLE if k in used]
    legend_in = 0.28 * -(-len(kinds) // 6)
    if kinds:
        handles = [Line2D([], [], color=STYLE[k]["color"], lw=max(1.5, STYLE[k]["lw"]),
                          ls=STYLE[k]["ls"], label=STYLE[k]["label"]) for k in kinds]
        fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6),
                   frameon=False, bbox_to_anchor=(0.5, 1 - title_in / height), fontsize=9)
    fig.subplots_adjust(top=1 - (title_in + legend_in + 0.1) / height, hspace=0.3)


def _panel_name(ax: Any, text: str) -> None:
    ax.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=9, labelpad=8)


def seismic(plt: Any, st: obspy.Stream, marks: list[Mark], title: str | None,
            max_panels: int) -> Any:
    traces = sorted(st, key=lambda tr: tr.id)
    dropped = len(traces) - max_panels
    traces = traces[:max_panels]
    n = len(traces)
    fig, axes = plt.subplots(n, 1, sharex=True, figsize=(11, 1.25 * n + 1.6), squeeze=False)
    used: set[MarkKind] = set()
    t0 = min(tr.stats.starttime for tr in traces)
    t1 = max(tr.stats.endtime for tr in traces)
    for ax, tr in zip(axes[:, 0], traces):
        data = np.asarray(tr.data, dtype=np.float64)
        data = data - np.nanmedian(data)  # NaN (gaps) stay gaps in the line
        ax.plot(tr.times("matplotlib"), data, lw=0.45, color="#334155")
        key = f"{tr.stats.network}.{tr.stats.station}"
        _draw(ax, [m for m in marks if _matches(m, key)
                   and t0.timestamp <= m.time_s <= t1.timestamp], used)
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        _panel_name(ax, f"{key}\n{tr.stats.location}.{tr.stats.channel}".replace("\n.", "\n"))
    _time_axis(axes[-1, 0], t0, t1)
    note = f" (first {max_panels} of {max_panels + dropped} traces)" if dropped > 0 else ""
    _header(fig, (title or f"{n} traces with the alerts of the run") + note, used)
    return fig


def _robust_ylim(ax: Any, x: np.ndarray) -> None:
    """Scale to the 0.2-99.8 % range of the data (plus a margin): a single-sample spike, which
    the artefact marks point at, runs off the panel instead of flattening the trace."""
    x = x[np.isfinite(x)]
    if len(x) < 100:
        return
    lo, hi = np.percentile(x, [0.2, 99.8])
    pad = max(hi - lo, 1e-9) * 0.15
    if x.min() < lo - pad or x.max() > hi + pad:
        ax.set_ylim(lo - pad, hi + pad)


def _component(st: obspy.Stream, comps: str) -> obspy.Trace | None:
    for c in comps:
        got = [tr for tr in st if tr.stats.channel[-1:] == c]
        if got:
            return got[0]
    return None


def geomag(plt: Any, st: obspy.Stream, marks: list[Mark], title: str | None) -> Any:
    first = sorted(st, key=lambda tr: tr.id)[0]
    key = f"{first.stats.network}.{first.stats.station}"
    mine = obspy.Stream([tr for tr in st if f"{tr.stats.network}.{tr.stats.station}" == key])
    h, e, z, f = (_component(mine, c) for c in ("HX", "EYD", "Z", "FG"))
    rows = [(name, tr) for name, tr in (("H", h), ("E" if e is None or e.stats.channel[-1] != "D"
                                                    else "D", e), ("Z", z), ("F", f))
            if tr is not None]
    fig, axes = plt.subplots(len(rows) + 1, 1, sharex=True, figsize=(11, 1.5 * len(rows) + 3.2),
                             squeeze=False, gridspec_kw={"height_ratios": [1] * len(rows) + [1.3]})
    used: set[MarkKind] = set()
    t0 = min(tr.stats.starttime for _, tr in rows)
    t1 = max(tr.stats.endtime for _, tr in rows)
    inside = [m for m in marks if _matches(m, key) and t0.timestamp <= m.time_s <= t1.timestamp]
    for ax, (name, tr) in zip(axes[:-1, 0], rows):
        ax.plot(tr.times("matplotlib"), np.ma.masked_invalid(tr.data), lw=0.6, color="#334155")
        _robust_ylim(ax, np.asarray(tr.data, dtype=np.float64))
        comp = tr.stats.channel[-1:]
        _draw(ax, [m for m in inside if m.kind in (MarkKind.SSC, MarkKind.EVENT) or
                   (m.kind is MarkKind.ARTEFACT and m.channel[-1:] in (comp, ""))], used)
        _panel_name(ax, f"{name} (nT)" if name != "D" else "D")
        ax.grid(alpha=0.25)
    ax = axes[-1, 0]
    if h is not None and e is not None and e.stats.channel[-1] != "D":
        rate = h.stats.sampling_rate
        n = min(len(h.data), len(e.data))
        idx, dbdt = minute_dbdt(np.asarray(h.data[:n], float), np.asarray(e.data[:n], float), rate)
        times = [_date(h.stats.starttime.timestamp + 60 * i + 30) for i in idx]
        ax.plot(times, dbdt, lw=0.8, color="#0f172a")
        _robust_ylim(ax, dbdt)
    _draw(ax, [m for m in inside if m.kind in (MarkKind.DBDT, MarkKind.SSC)], used)
    _panel_name(ax, "dB/dt\n(nT/min)")
    ax.grid(alpha=0.25)
    _time_axis(ax, t0, t1)
    _header(fig, title or f"{key}: H, E, Z and horizontal dB/dt of one-minute means, with the "
                          "run's alerts", used)
    return fig
