"""Instrument artefacts in geomagnetic 1 s / 1 min data: spikes, steps, flat lines, F
inconsistent with the vector (see :class:`ArtefactDetector`)."""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import median_filter

from geosentry.stream.detectors.base import owned_range
from geosentry.stream.detectors.geomag_base import _alert, _Detector, geomag_spec
from geosentry.stream.detectors.registry import ArtefactsConfig
from geosentry.stream.records import (NS_PER_S, Alert, Window, sample_period_ns,
                                       seconds_to_samples)

Found = tuple[str, int, int, float, float]  # (artefact, row, sample, score, threshold)


class ArtefactDetector(_Detector):
    """Instrument artefacts as ``health`` alerts: spikes, steps (baseline jumps), flat lines, and
    F inconsistent with the vector (F - |B|, |B| from H, E, Z); dropouts are gaps (the gap policy)."""

    def __init__(self, cfg: ArtefactsConfig) -> None:
        super().__init__(cfg, "artefacts")
        self.tail_s = 120.0
        self.spec = geomag_spec(cfg)  # H, E, Z, F unless ``components`` says otherwise
        self._last: dict[tuple[str, str], int] = {}
        self._flat = FlatLines()

    def _one(self, w: Window) -> list[Alert]:
        profile, p = self.profiles.station(w.station)
        lo, hi = owned_range(w, self.stride_s, self.tail_s, warmup_s=self.tail_s)
        rate = w.sampling_rate_hz
        if rate < 1.0:  # floors are for 1 s data; the field changes ~sqrt(interval) more per sample
            k = math.sqrt(1.0 / rate)
            p = {**p, "spike_nT": p["spike_nT"] * k, "step_nT": p["step_nT"] * k}
        found: list[Found] = []
        rows = {c: i for i, c in enumerate(self.spec.components) if w.channels[i]}
        x = w.data.astype(np.float64)
        for r in rows.values():
            found += spikes(x[r], r, lo, hi, rate, p)
            found += steps(x[r], r, lo, hi, rate, p, p["step_nT"])
            found += self._flat(w, x[r], r, lo, hi, p)
        if {"H", "Z", "F"} <= rows.keys():
            horizontal = np.hypot(x[rows["H"]], x[rows["E"]]) if "E" in rows else x[rows["H"]]
            delta_f = x[rows["F"]] - np.hypot(horizontal, x[rows["Z"]])  # F - |B|
            vector_steps = {i for kind, r, i, _, _ in found if kind == "step" and r != rows["F"]}
            for _, _, i, score, thr in steps(delta_f, rows["F"], lo, hi, rate, p, p["f_nT"]):
                if not any(abs(i - j) <= 1 for j in vector_steps):  # not explained by H/E/Z
                    found = [f for f in found if not (f[0] == "step" and f[1] == rows["F"])]
                    found.append(("f_inconsistency", rows["F"], i, score, thr))
        alerts = []
        for kind, r, i, score, thr in sorted(found, key=lambda f: f[2]):
            key = (w.site_key, kind)  # one alert per station and artefact type per period
            t_ns = w.time_of(i)
            if t_ns - self._last.get(key, -(1 << 62)) < p["refractory_s"] * NS_PER_S:
                continue
            self._last[key] = t_ns
            alerts.append(_alert(w, "health", r, t_ns, score, thr, self.model, self.name,
                                 profile, event="artefact", artefact=kind))
        return alerts


def _local_level(x: np.ndarray, rate: float, span_s: float) -> np.ndarray:
    """Running median of ``x`` over about ``span_s`` around each sample, cheaply: medians of
    quarter-span blocks, then the median of each block and the two either side."""
    block = max(1, seconds_to_samples(span_s / 4, rate))
    n_blocks = -(-len(x) // block)
    padded = np.pad(x, (0, n_blocks * block - len(x)), mode="edge")
    med = median_filter(np.median(padded.reshape(n_blocks, block), axis=1), size=5, mode="nearest")
    return np.repeat(med, block)[:len(x)]


def _local_sigma(res: np.ndarray, rate: float, p: dict[str, float]) -> np.ndarray:
    """Robust (MAD) noise level of a residual around every sample, at least 0.01 nT."""
    return np.maximum(1.4826 * _local_level(np.abs(res), rate, p["noise_window_s"]), 0.01)


def _around(lo: int, hi: int, n: int, margin: int) -> tuple[int, int]:
    return max(0, lo - margin), min(n, hi + margin)


#: A smooth curve's departure from the local trend is bounded by how much its slope changes
#: nearby: the 7-sample-median residual of a band-limited (0.25 Hz) field is at most about the
#: spread of its first differences either side (a parabola: 2a against 12a; a slope reversal at
#: s nT/s: 2s against 2s), and so is a first difference's departure from its neighbours. An
#: artefact must exceed SMOOTH_MARGIN times that spread, so a steep but smooth substorm
#: variation is never a spike or a step, however large its rate, while a jump of a few nT on it
#: still is (a priori: a factor 2 margin over the bound, not fitted).
SMOOTH_MARGIN = 2.0
#: A step's size is measured by lines fitted to this much data either side: 10 samples average
#: the noise, while the misfit of a line to a curving substorm variation (which grows as the
#: square of the span) stays small; a jump that comes back sooner is not a step.
STEP_FIT_S = 10.0


def _flanks(d: np.ndarray, near: int, far: int) -> tuple[np.ndarray, np.ndarray]:
    """Per index j: median and spread (max - min) of ``d[j-far .. j-near]`` and
    ``d[j+near .. j+far]``, the first differences either side of a jump or excursion, which
    leave out those it touches itself."""
    offsets = [*range(-far, -near + 1), *range(near, far + 1)]
    padded = np.pad(d, far, mode="edge")
    stack = np.stack([padded[far + o:far + o + len(d)] for o in offsets])
    return np.median(stack, axis=0), stack.max(axis=0) - stack.min(axis=0)


def _spike_residual(seg: np.ndarray, rate: float,
                    p: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residual off the 7-sample running median, its threshold, the running median): the
    threshold is ``sigma`` local noise levels, :data:`SMOOTH_MARGIN` times the spread of the
    first differences around (a 1-3 sample excursion at sample j touches ``d[j-3 .. j+2]``; its
    flanks are ``d[j-7 .. j-4]`` and ``d[j+3 .. j+6]``), and at least the floor."""
    med = median_filter(seg, size=7, mode="nearest")
    res = seg - med
    thr = np.maximum(p["spike_nT"], p["sigma"] * _local_sigma(res, rate, p))
    if len(seg) > 14:
        _, spread = _flanks(np.diff(seg), 4, 7)  # d[k-7 .. k-4], d[k+4 .. k+7]: k = j-1 and j
        thr[1:] = np.maximum(thr[1:], SMOOTH_MARGIN * np.maximum(spread, np.roll(spread, -1)))
    return res, thr, med


def spikes(x: np.ndarray, r: int, lo: int, hi: int, rate: float,
           p: dict[str, float]) -> list[Found]:
    """1-3 samples off a 7-sample running median by more than :func:`_spike_residual`'s
    threshold; reported at the largest of the (up to 3) samples off."""
    a, b = _around(lo, hi, len(x), seconds_to_samples(p["noise_window_s"], rate) + 8)
    res, thr, _ = _spike_residual(x[a:b], rate, p)
    hit = lo - a + np.flatnonzero(np.abs(res[lo - a:hi - a]) >= thr[lo - a:hi - a])
    if not len(hit):
        return []
    j = int(hit[0] + np.argmax(np.abs(res[hit[0]:hit[0] + 3])))
    return [("spike", r, a + j, float(abs(res[j])), float(thr[j]))]


def _line_jump(x: np.ndarray, i: int, n: int) -> float:
    """Jump between samples ``i`` and ``i + 1``: the line fitted to the ``n`` samples after,
    less the line fitted to the ``n`` before, both at ``i + 0.5`` (a smooth curve's two sides
    meet there: curvature and slope changes cancel, unlike medians less a slope)."""
    t = np.arange(n, dtype=np.float64)
    before = np.polyval(np.polyfit(t, x[i + 1 - n:i + 1], 1), n - 0.5)
    after = np.polyval(np.polyfit(t, x[i + 1:i + 1 + n], 1), -0.5)
    return float(after - before)


def steps(x: np.ndarray, r: int, lo: int, hi: int, rate: float, p: dict[str, float],
          floor_nT: float) -> list[Found]:
    """A first difference off the slope either side (median of ``d[j-5 .. j-2]`` and
    ``d[j+2 .. j+5]``) by ``sigma`` local noise levels, :data:`SMOOTH_MARGIN` times the spread of
    those slopes and the floor, that persists: the lines fitted to the :data:`STEP_FIT_S` after
    and before differ by the jump (:func:`_line_jump`); on the series with spikes (as
    :func:`spikes` finds them) bridged by straight lines and then 5-sample median filtered
    (which keeps steps)."""
    n = max(3, seconds_to_samples(STEP_FIT_S, rate))
    a, b = _around(lo, hi, len(x), max(n, seconds_to_samples(p["noise_window_s"], rate)) + 8)
    res, thr, _ = _spike_residual(x[a:b], rate, p)
    clean, off = x[a:b].copy(), np.abs(res) >= thr
    if off.any() and not off.all():  # spikes bridged by the line through their neighbours
        k = np.arange(len(clean))
        clean[off] = np.interp(k[off], k[~off], clean[~off])
    x = np.concatenate([x[:a], median_filter(clean, size=5, mode="nearest"), x[b:]])
    d = np.diff(x[a:b])
    if len(d) <= 10:
        return []
    slope, spread = _flanks(d, 2, 5)
    excess = d - slope
    thr = np.maximum(np.maximum(floor_nT, p["sigma"] * _local_sigma(excess, rate, p)),
                     SMOOTH_MARGIN * spread)
    for j in np.flatnonzero(np.abs(excess[lo - a:hi - a]) >= thr[lo - a:hi - a]) + lo - a:
        i = a + int(j)
        if i + 1 - n < 0 or i + 1 + n > len(x) or not np.isfinite(x[i + 1 - n:i + 1 + n]).all():
            continue
        level = _line_jump(x, i, n)
        if level * excess[j] > 0 and abs(level) >= 0.8 * abs(excess[j]):
            return [("step", r, i + 1, abs(level), float(thr[j]))]
    return []


class FlatLines:
    """Exactly repeated values for ``flat_s`` and longer than the channel's own repeat rate makes
    likely (``p_repeat ** n < flat_p``: a quantised quiet channel repeats by itself); followed
    across windows, so a run longer than a window is found, once."""

    def __init__(self) -> None:
        self._repeat: dict[tuple[str, int], float] = {}
        # per channel: value, start, end (ns), reported
        self._run: dict[tuple[str, int], tuple[float, int, int, bool]] = {}

    def __call__(self, w: Window, x: np.ndarray, r: int, lo: int, hi: int,
                 p: dict[str, float]) -> list[Found]:
        key = (w.site_key, r)
        same = np.concatenate([[False], np.diff(x) == 0])
        edges = np.flatnonzero(np.diff(np.concatenate([[0], same.astype(np.int8), [0]])))
        flat_n = seconds_to_samples(p["flat_s"], w.sampling_rate_hz)
        runs = [(a - 1, b) for a, b in zip(edges[::2], edges[1::2]) if b - a + 1 >= flat_n]
        for a, b in runs:
            if b <= lo or a >= hi or (x[a] == 0.0 and w.channels[r].endswith("E")):
                continue  # E = H sin D is exactly 0 while D reads 0.00', whatever the sensor does
            n_out = len(x) - 1 - (b - a - 1)  # repeat rate of the channel outside this run
            if n_out >= 120:
                self._repeat[key] = (same[1:].sum() - (b - a - 1) + 1.0) / (n_out + 2.0)
            need = max(flat_n, math.log(p["flat_p"]) / math.log(self._repeat.get(key, 0.5)))
            start, end, reported = w.time_of(a), w.time_of(min(b, hi) - 1), False
            known = self._run.get(key)
            if known is not None and known[0] == x[a] and known[1] <= start <= known[2]:
                start, reported = known[1], known[3]  # the same run, begun in an earlier window
            period_ns, rate = sample_period_ns(w.sampling_rate_hz), w.sampling_rate_hz
            length = (end - start) / period_ns + 1
            self._run[key] = (float(x[a]), start, end, reported or length >= need)
            if length >= need and not reported:
                first = round((start - w.start_ns) / period_ns)
                return [("flat_line", r, first, float(length / rate), float(need / rate))]
        return []
