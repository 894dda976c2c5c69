"""Geomagnetic detectors: horizontal dB/dt, storm sudden commencement (SSC/SI), instrument
artefacts, on native-rate windows (1 s or 1 min) of nT components, with per-instrument state
across windows (one event, one alert). Thresholds come from a profile per geomagnetic-latitude
class (``low`` < 30°, ``mid`` < 55°, ``subauroral`` < 62°, ``auroral``; |dipole latitude|,
:data:`OBSERVATORY_MLAT_DEG`) that ``thresholds`` overrides, most specific last::

    thresholds = { spike_nT = 4.0 }          # every observatory
    thresholds.auroral = { spike_nT = 15.0 } # one latitude class
    thresholds.XYZ = { mlat_deg = 66.0 }     # an observatory not in the table: its class
    thresholds.BRW = { spike_nT = 25.0 }     # one observatory

``dbdt`` also takes ``default = 30.0`` and ``BRW = 60.0`` for ``rate_nT_per_min``. Unknown keys
are configuration errors. Every alert names its ``profile`` and the threshold it crossed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
from scipy.ndimage import median_filter

from stream.buffer.windows import WindowSpec
from stream.config import DetectorConfig
from stream.detectors.base import owned_range
from stream.errors import ConfigError
from stream.records import (NS_PER_S, Alert, ModelRef, Window, sample_period_ns,
                            seconds_to_samples)

#: |geomagnetic dipole latitude| (IGRF-12 dipole, pole 80.37° N 72.62° W, epoch 2015), degrees.
OBSERVATORY_MLAT_DEG = {
    "BDT": 48.0, "BOU": 48.0, "BRW": 70.0, "BSL": 39.5, "CMO": 65.6, "DED": 70.4, "FRD": 47.8,
    "FRN": 43.3, "GUA": 5.9, "HON": 21.8, "NEW": 54.6, "SHU": 54.5, "SIT": 60.4, "SJG": 27.7,
    "TUC": 39.5}
CLASSES = ("low", "mid", "subauroral", "auroral")
CLASS_EDGES_DEG = (30.0, 55.0, 62.0)
DEFAULT_CLASS = "mid"

# Per class (low, mid, subauroral, auroral), set a priori. dB/dt 0.3, 0.5, 1.1, 1.5 nT/s (0.3, 1.1,
# 1.5: Pulkkinen et al. 2013 levels; 0.5 the earlier default). Floors grow with 1 s activity. SSC
# is off at auroral latitudes: one station there cannot tell a substorm onset from an impulse.
PROFILES: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "dbdt": {"rate_nT_per_min": (18.0, 30.0, 66.0, 90.0), "coherence": (10.0,) * 4,
             "refractory_s": (1800.0,) * 4},
    "ssc": {"enabled": (1.0, 1.0, 1.0, 0.0), "amplitude_nT": (8.0, 8.0, 15.0, 40.0),
            "sigma": (6.0, 6.0, 8.0, 10.0), "rise_s": (240.0,) * 4, "coherence": (10.0,) * 4,
            "refractory_s": (1800.0,) * 4},
    "artefacts": {"spike_nT": (3.0, 3.0, 5.0, 10.0), "step_nT": (3.0, 3.0, 5.0, 10.0),
                  "sigma": (10.0,) * 4, "noise_window_s": (120.0,) * 4,
                  "flat_s": (60.0,) * 4, "flat_p": (1e-9,) * 4, "f_nT": (2.0, 2.0, 3.0, 5.0),
                  "refractory_s": (300.0,) * 4},
}
MAY_BE_ZERO = {"enabled"}


def latitude_class(mlat_deg: float) -> str:
    return CLASSES[sum(abs(mlat_deg) >= edge for edge in CLASS_EDGES_DEG)]


class Profiles:
    """Resolved thresholds per observatory: class profile <- all <- class table <- station."""

    def __init__(self, cfg: DetectorConfig, kind: str) -> None:
        self.kind, self.base = kind, PROFILES[kind]
        self.all: dict[str, float] = {}
        self.classes: dict[str, dict[str, float]] = {}
        self.stations: dict[str, dict[str, float]] = {}
        for key, value in cfg.thresholds.items():
            where = f"detectors.{cfg.name}.thresholds.{key}"
            if kind == "dbdt" and key == "default":
                self.all["rate_nT_per_min"] = self._value(where, "rate_nT_per_min", value)
            elif key in CLASSES:
                self.classes[key] = self._table(where, value, station=False)
            elif key.isupper() and key.isalnum():
                if kind == "dbdt" and not isinstance(value, dict):
                    value = {"rate_nT_per_min": value}
                self.stations[key] = self._table(where, value, station=True)
            else:
                self.all[key] = self._value(where, key, value)
        self._cache: dict[str, tuple[str, dict[str, float]]] = {}

    def _value(self, where: str, key: str, value: Any) -> float:
        if key not in self.base:
            raise ConfigError(where, f"unknown threshold (known: {', '.join(sorted(self.base))}, "
                                     f"a class {CLASSES} or an observatory code)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"must be a number, got {value!r}")
        if value < 0 or (value == 0 and key not in MAY_BE_ZERO):
            raise ConfigError(where, f"must be > 0, got {value}")
        return float(value)

    def _table(self, where: str, value: Any, station: bool) -> dict[str, float]:
        if not isinstance(value, dict):
            raise ConfigError(where, "must be a table of thresholds")
        out = {}
        for k, v in value.items():
            if station and k == "mlat_deg" and not (isinstance(v, (int, float)) and abs(v) <= 90):
                raise ConfigError(f"{where}.{k}", f"must be a latitude in degrees, got {v!r}")
            out[k] = float(v) if station and k == "mlat_deg" else self._value(f"{where}.{k}", k, v)
        return out

    def station(self, code: str) -> tuple[str, dict[str, float]]:
        """(profile name, thresholds) for an observatory."""
        if code not in self._cache:
            own = self.stations.get(code, {})
            mlat = own.get("mlat_deg", OBSERVATORY_MLAT_DEG.get(code))
            cls = DEFAULT_CLASS if mlat is None else latitude_class(mlat)
            i = CLASSES.index(cls)
            p = {k: v[i] for k, v in self.base.items()}
            p.update(self.all)
            p.update(self.classes.get(cls, {}))
            p.update({k: v for k, v in own.items() if k != "mlat_deg"})
            label = cls + ("" if mlat is not None else " (observatory not in table)")
            self._cache[code] = (label + (", overridden" if code in self.stations else ""), p)
        return self._cache[code]

    def model(self) -> ModelRef:
        text = repr((self.base, self.all, self.classes, self.stations))
        return ModelRef(self.kind, text, hashlib.sha256(text.encode()).hexdigest())


def robust_sigma(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else 0.0


def _odd(n: int) -> int:
    return max(1, n) | 1


def _alert(w: Window, kind: str, row: int, t_ns: int, score: float, threshold: float,
           model: ModelRef, name: str, profile: str, **details: object) -> Alert:
    return Alert(kind=kind, network=w.network, station=w.station, location=w.location,
                 channel=w.channels[row], time_ns=t_ns, score=score, threshold=threshold,
                 model=model, newest_arrival_ns=w.newest_arrival_ns,
                 details={"detector": name, "window_s": w.data.shape[-1] / w.sampling_rate_hz,
                          "profile": profile, **details})


class _Detector:
    def __init__(self, cfg: DetectorConfig, kind: str) -> None:  # name, stride, profiles, model
        self.name, self.stride_s = cfg.name, cfg.stride_s or 60.0
        self.profiles = Profiles(cfg, kind)
        self.model = self.profiles.model()

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _one(self, w: Window) -> list[Alert]: ...


def jitter(x: np.ndarray, rate_hz: float) -> float:
    """Scatter of 1 s changes about their median (nT; the 90th percentile, as a Gaussian sigma,
    so a few spikes do not count and a disturbed stretch does); 0 for data slower than 1 per
    12 s. A field variation is coherent, a shaken or failing sensor scatters from second to
    second: with ``coherence``, a change must be that many times the scatter around it."""
    d = np.diff(x[np.isfinite(x)])
    if rate_hz < 1 / 12 or len(d) < 10:
        return 0.0
    return float(np.percentile(np.abs(d - np.median(d)), 90) / 1.645)


def minute_rate(h: np.ndarray, e: np.ndarray, rate_hz: float) -> tuple[np.ndarray, int]:
    """Horizontal |ΔB| between consecutive trailing one-minute means, nT/min, as from standard
    one-minute values (a 5-sample median first keeps single-sample spikes out); and the lag."""
    n = max(1, seconds_to_samples(60.0, rate_hz))
    out = np.full(len(h), np.nan)
    if len(h) < 2 * n:
        return out, n
    means, size = [], 5 if n >= 5 else 1  # no median across minutes of one-minute data
    for x in (h, e):
        c = np.concatenate([[0.0], np.cumsum(median_filter(x.astype(np.float64), size,
                                                           mode="nearest"))])
        means.append((c[n:] - c[:-n]) / n)  # means[k] is the mean of samples k .. k+n-1
    dh, de = (m[n:] - m[:-n] for m in means)
    out[2 * n - 1:] = np.hypot(dh, de) * (60.0 * rate_hz / n)
    return out, n


class DbDtDetector(_Detector):
    """``detection`` when the horizontal rate of change of one-minute means exceeds the
    observatory's threshold (nT/min); re-armed below half of it."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__(cfg, "dbdt")
        self.spec = WindowSpec(cfg.name, ("H", "E"), cfg.window_s or 600.0, self.stride_s)
        self._armed: dict[str, bool] = {}
        self._last: dict[str, int] = {}

    def _one(self, w: Window) -> list[Alert]:
        profile, p = self.profiles.station(w.station)
        thr = p["rate_nT_per_min"]
        rate, n = minute_rate(w.data[0], w.data[1], w.sampling_rate_hz)
        key = w.station_key
        armed = True if w.first else self._armed.get(key, True)
        lo, hi = owned_range(w, self.stride_s, 0.0, warmup_s=120.0)
        alerts = []
        for i in range(max(lo, 2 * n - 1), hi):
            if armed and rate[i] >= thr and \
                    w.time_of(i) - self._last.get(key, -(1 << 62)) >= p["refractory_s"] * NS_PER_S:
                span = w.data[:2, i + 1 - 2 * n:i + 1].astype(np.float64)
                if rate[i] < p["coherence"] * max(jitter(x, w.sampling_rate_hz) for x in span):
                    continue  # incoherent: a disturbed sensor, not the field
                self._last[key] = w.time_of(i)
                alerts.append(_alert(w, "detection", 0, w.time_of(i), float(rate[i]), thr,
                                     self.model, self.name, profile, quantity="dB/dt horizontal",
                                     unit="nT/min", lag_s=n / w.sampling_rate_hz,
                                     peak=round(float(np.nanmax(rate[i:hi])), 3)))
                armed = False
            elif not armed and rate[i] < thr / 2:
                armed = True
        self._armed[key] = armed
        return alerts


class SscDetector(_Detector):
    """Storm sudden commencement / sudden impulse: a coherent rise of H by at least
    ``amplitude_nT`` and ``sigma`` times the pre-event noise within ``rise_s``. Reports onset,
    amplitude, rise time."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__(cfg, "ssc")
        self.spec = WindowSpec(cfg.name, ("H",), cfg.window_s or 2400.0, self.stride_s)
        self._last: dict[str, int] = {}

    def _one(self, w: Window) -> list[Alert]:
        profile, p = self.profiles.station(w.station)
        if not p["enabled"]:
            return []
        rate = w.sampling_rate_hz
        h = w.data[0].astype(np.float64)
        smooth = median_filter(h, size=_odd(seconds_to_samples(30.0, rate)), mode="nearest")
        rise = max(1, seconds_to_samples(p["rise_s"], rate))
        if len(h) < 3 * rise:
            return []
        d = np.full(len(h), np.nan)
        d[:-rise] = smooth[rise:] - smooth[:-rise]
        # decide 2 rise times after a candidate, so the whole rise is seen before measuring it
        lo, hi = owned_range(w, self.stride_s, 2 * p["rise_s"], warmup_s=p["rise_s"] * 2)
        lo = max(lo, 2 * rise)
        key = w.station_key
        sigma = robust_sigma(d[: lo - rise])  # noise of the changes before the owned stretch
        need = max(p["amplitude_nT"], p["sigma"] * sigma)
        for i in lo + np.flatnonzero(d[lo:hi] >= need):
            t_ns = w.time_of(int(i))
            last = self._last.get(key)
            if last is not None and t_ns - last < p["refractory_s"] * NS_PER_S:
                return []
            base = float(np.median(smooth[max(0, i - 4 * rise):i]))
            rising = smooth[i:i + rise + 1] - base
            before = np.flatnonzero(rising <= 0.1 * rising[-1])
            onset = i + (int(before[-1]) if len(before) else 0)
            sudden = smooth[onset:onset + rise + 1] - base  # the part within one rise time
            amplitude = float(sudden.max())
            rise_s = int(np.flatnonzero(sudden >= 0.9 * amplitude)[0]) / rate
            scatter = jitter(h[max(0, onset - rise):onset + rise + 1], rate)
            if amplitude < need or rise_s > 0.75 * p["rise_s"] or \
                    amplitude < p["coherence"] * scatter:
                continue  # too small from the onset, a drift not a jump, or a noisy sensor
            self._last[key] = w.time_of(onset)
            return [_alert(w, "detection", 0, w.time_of(onset), float(d[i]), need, self.model,
                           self.name, profile, event="sudden_commencement",
                           amplitude_nT=round(amplitude, 2), rise_time_s=round(rise_s, 1),
                           noise_sigma_nT=round(sigma, 3))]
        return []


Found = tuple[str, int, int, float, float]  # (artefact, row, sample, score, threshold)


class ArtefactDetector(_Detector):
    """Instrument artefacts as ``health`` alerts: spikes, steps (baseline jumps), flat lines, and
    F inconsistent with the vector (|B| from H and Z); dropouts are gaps (the gap policy)."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__(cfg, "artefacts")
        self.tail_s = 120.0
        comps = tuple(cfg.components) if cfg.components != ("Z",) else ("H", "E", "Z", "F")
        self.spec = WindowSpec(cfg.name, comps, cfg.window_s or 900.0, self.stride_s, None, "zeros")
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
        for c, r in rows.items():
            found += spikes(x[r], r, lo, hi, rate, p)
            found += steps(x[r], r, lo, hi, rate, p, p["step_nT"])
            found += self._flat(w, x[r], r, lo, hi, p)
        if {"H", "Z", "F"} <= rows.keys():
            delta_f = x[rows["F"]] - np.hypot(x[rows["H"]], x[rows["Z"]])
            vector_steps = {i for kind, r, i, _, _ in found if kind == "step" and r != rows["F"]}
            for _, _, i, score, thr in steps(delta_f, rows["F"], lo, hi, rate, p, p["f_nT"]):
                if not any(abs(i - j) <= 1 for j in vector_steps):  # not explained by H/E/Z
                    found = [f for f in found if not (f[0] == "step" and f[1] == rows["F"])]
                    found.append(("f_inconsistency", rows["F"], i, score, thr))
        alerts = []
        for kind, r, i, score, thr in sorted(found, key=lambda f: f[2]):
            key = (w.station_key, kind)  # one alert per station and artefact type per period
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


def spikes(x: np.ndarray, r: int, lo: int, hi: int, rate: float,
           p: dict[str, float]) -> list[Found]:
    """1-3 samples off a 7-sample running median by ``sigma`` local noise levels (and the floor)."""
    a, b = _around(lo, hi, len(x), seconds_to_samples(p["noise_window_s"], rate) + 3)
    res = x[a:b] - median_filter(x[a:b], size=7, mode="nearest")
    thr = np.maximum(p["spike_nT"], p["sigma"] * _local_sigma(res, rate, p))
    hit = lo - a + np.flatnonzero(np.abs(res[lo - a:hi - a]) >= thr[lo - a:hi - a])
    return [("spike", r, a + int(j), float(abs(res[j])), float(thr[j])) for j in hit[:1]]


def steps(x: np.ndarray, r: int, lo: int, hi: int, rate: float, p: dict[str, float],
          floor_nT: float) -> list[Found]:
    """A jump against the local trend (a steep smooth variation has none) that persists for a
    minute, on the series with 1-2 sample spikes removed (a 5-sample median keeps steps)."""
    n = max(3, seconds_to_samples(60.0, rate))
    a, b = _around(lo, hi, len(x), max(n, seconds_to_samples(p["noise_window_s"], rate)) + 3)
    x = np.concatenate([x[:a], median_filter(x[a:b], size=5, mode="nearest"), x[b:]])
    d = np.diff(x[a:b])
    trend = _local_level(d, rate, 120.0)
    excess = d - trend
    thr = np.maximum(floor_nT, p["sigma"] * _local_sigma(excess, rate, p))
    for j in np.flatnonzero(np.abs(excess[lo - a:hi - a]) >= thr[lo - a:hi - a]) + lo - a:
        i = a + int(j)
        if i - n < 0 or i + 1 + n > len(x):
            continue
        level = float(np.median(x[i + 1:i + 1 + n]) - np.median(x[i + 1 - n:i + 1]) - trend[j] * n)
        if abs(level) >= 0.8 * abs(excess[j]):
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
        key = (w.station_key, r)
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
