"""Evidence rules of ``geosentry evaluate geomag``: whether a quiet-day alert is an instrument
artefact, a dropout, the field (seen elsewhere too), or unexplained (a false alarm); from the
data, never from the detectors' thresholds."""

from __future__ import annotations

import numpy as np

from geosentry.stream.decode.iaga import IagaFile
from geosentry.stream.detectors.geomag import minute_rate
from geosentry.stream.records import NS_PER_S, Alert

#: USGS 1 s data are FIR low-passed at 0.25 Hz (``firwin(123, 0.25 Hz, blackman)`` at 10 Hz): a
#: field impulse comes out as a peak whose larger neighbour is at least 57 % of it (0.571 one
#: second off the peak, 0.876 for an impulse half-way between samples), so a sample whose
#: neighbours both stay below half its excursion (or move the other way) is not the field.
FILTER_NEIGHBOUR_MIN = 0.5

def _label(a: Alert) -> str:
    """What an alert says happened: detector, or the health event / artefact type."""
    if a.kind == "health":
        return str(a.details.get("artefact") or a.details.get("event"))
    return str(a.details.get("detector"))


def _index(f: IagaFile, t_ns: int) -> int:
    return int(round((t_ns - f.start_ns) / (f.interval_s * NS_PER_S)))


def _res(x: np.ndarray, i: int) -> float:
    """Sample ``i`` off the median of the 7 around it."""
    return float(x[i] - np.nanmedian(x[max(0, i - 3):i + 4]))


def _utc(t_ns: int) -> str:
    return str(np.datetime64(t_ns, "ns").astype("datetime64[s]"))


def _rate_elsewhere(a: Alert, day: dict[str, IagaFile]) -> tuple[str, float]:
    """The highest one-minute dB/dt (nT/min) at another observatory within 15 min of ``a``."""
    best = ("", 0.0)
    for obs, g in day.items():
        if obs == a.station or not {"H", "E"} <= g.elements.keys():
            continue
        i = _index(g, a.time_ns)
        lo, hi = max(0, i - 960), min(len(g.elements["H"]), i + 900)
        rate, _ = minute_rate(g.elements["H"][lo:hi], g.elements["E"][lo:hi], 1 / g.interval_s)
        if np.isfinite(rate).any() and np.nanmax(rate) > best[1]:
            best = (obs, float(np.nanmax(rate)))
    return best


def _disturbed(h: np.ndarray, z: np.ndarray, fs: np.ndarray, i: int) -> str:
    """Why the vector sensor is disturbed around ``i`` (F - |B| scatters 10x its usual), or ''."""
    d_f = np.diff(fs - np.hypot(h, z))
    here, usual = float(np.nanstd(d_f[i - 60:i + 60])), float(np.nanmedian(np.abs(d_f)))
    if here < 10 * max(usual, 0.01):
        return ""
    return f"vector and F disagree around it: F - |B| scatters {here:.2f} nT/s, usually {usual:.2f}"


def _not_band_limited(x: np.ndarray, i: int, comp: str) -> str:
    """Why sample ``i`` cannot be the 0.25 Hz low-passed field, or '': it is off the quadratic
    through the 8 s either side (3-10 s away, clear of a 1-3 sample excursion) by at least 10
    times that curve's misfit, and neither neighbour follows it by half
    (:data:`FILTER_NEIGHBOUR_MIN`). Works on a steep variation and on 2-3 sample glitches,
    where the line through the two neighbours does not."""
    if not 12 <= i < len(x) - 12:
        return ""
    t = np.r_[-10:-2, 3:11]
    flank = x[i + t]
    if not np.isfinite(flank).all() or not np.isfinite(x[i - 1:i + 2]).all():
        return ""
    coef = np.polyfit(t, flank, 2)
    misfit = float(np.sqrt(np.mean((flank - np.polyval(coef, t)) ** 2)))
    off = x[i - 1:i + 2] - np.polyval(coef, np.arange(-1, 2))
    peak, follow = float(off[1]), float(max(off[0], off[2]) * np.sign(off[1]))
    if abs(peak) < 10 * max(misfit, 0.05) or follow >= FILTER_NEIGHBOUR_MIN * abs(peak):
        return ""
    return (f"{comp} {peak:+.2f} nT off the smooth curve through the 8 s either side (misfit "
            f"{misfit:.2f} nT), neighbours {off[0]:+.2f}, {off[2]:+.2f} nT: the 0.25 Hz low-pass "
            f"makes the field's neighbours follow a peak by >= 57 %")


def evidence(a: Alert, f: IagaFile, others: list[tuple[str, Alert]],
             day: dict[str, IagaFile]) -> tuple[str, str]:
    """(verdict, why) for an alert on a quiet day, from the data, not from the detector: verdicts
    ``artefact`` / ``dropout`` (the instrument, verified), ``geophysical`` (the field, seen
    elsewhere too) or ``false`` (unexplained: counted as a false alarm)."""
    el, label = f.elements, _label(a)
    i, comp = _index(f, a.time_ns), a.channel[-1]
    if label in ("reset_gap", "reset_rate"):
        gap = any(np.isnan(v[max(0, i - 120):i + 1]).any() for v in el.values())
        return ("dropout", "missing values in the file") if gap else ("false", "no missing values")
    if label in ("dbdt", "ssc", "ae"):
        window_s = {"dbdt": 900, "ssc": 180, "ae": 600}[label]
        seen = sorted({o for o, b in others if _label(b) == label and b.station != a.station
                       and abs(b.time_ns - a.time_ns) <= window_s * NS_PER_S
                       and (label == "dbdt" or "auroral" not in str(b.details.get("profile")))})
        if seen:
            return "geophysical", f"{label} also at {', '.join(seen)} within {window_s // 60} min"
        obs, elsewhere = _rate_elsewhere(a, day) if label == "dbdt" else ("", 0.0)
        if elsewhere >= max(10.0, a.score / 3):
            return "geophysical", f"{obs} reached {elsewhere:.0f} nT/min within 15 min"
        near = sorted({_label(b) for o, b in others if b.station == a.station and b.kind == "health"
                       and abs(b.time_ns - a.time_ns) <= 900 * NS_PER_S})
        here = f"; artefacts here: {', '.join(near)}" if near else ""
        return "false", "no other observatory" + here
    if not {"H", "Z", "F"} <= el.keys() or not 60 <= i < len(el["H"]) - 60:
        return "false", "no F/vector to check against"
    h, z, fs = el["H"], el["Z"], el["F"]
    if label == "spike":
        r = {c: _res(el[c], i) for c in ("H", "E", "Z", "F")}
        implied = (h[i] * r["H"] + z[i] * r["Z"]) / fs[i]  # |B| change the vector implies
        x = el[comp]
        if abs(r["F"] - implied) >= max(0.5, 0.5 * max(abs(implied), abs(r["F"]))):
            return "artefact", (f"{comp} {r[comp]:+.2f} nT at one second; F moved {r['F']:+.2f} nT "
                                f"where the vector implies {implied:+.2f} nT")
        out = float(x[i] - (x[i - 1] + x[i + 1]) / 2)  # off the line through its neighbours
        across = float(abs(x[i + 1] - x[i - 1]))
        if abs(out) >= 0.8 * abs(r[comp]) and across <= 0.25 * abs(r[comp]):
            return "artefact", (f"{comp} {out:+.2f} nT off its neighbours for one second, which "
                                f"differ by {across:.2f} nT (1 s data are low-passed at 0.25 Hz)")
        if shape := _not_band_limited(x, i, comp):
            return "artefact", shape
        if disturbed := _disturbed(h, z, fs, i):
            return "artefact", disturbed
        return "false", f"{comp} {r[comp]:+.2f} nT, consistent with F and its neighbours"
    if label in ("step", "f_inconsistency"):
        d_f = fs - np.hypot(h, z)
        shift = float(np.nanmedian(d_f[i:i + 60]) - np.nanmedian(d_f[i - 60:i]))
        noise = float(1.4826 * np.nanmedian(np.abs(np.diff(d_f[i - 300:i + 300]))))
        if abs(shift) >= max(1.0, 5 * noise):
            return "artefact", f"F - |B| shifts {shift:+.2f} nT (1 s noise {noise:.2f} nT)"
        if disturbed := _disturbed(h, z, fs, i):
            return "artefact", disturbed
        return "false", f"F - |B| steady ({shift:+.2f} nT)"
    if label == "flat_line":
        run = int(round(a.score / f.interval_s))
        before = el[comp][max(0, i - run):i]
        n_values = len(np.unique(before[np.isfinite(before)]))
        if n_values >= 5:
            return "artefact", f"{comp} frozen for {run} samples after {n_values} distinct values"
        return "false", f"{comp} took only {n_values} distinct values before (quantised)"
    return "false", "no rule"


