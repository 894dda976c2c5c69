"""Geomagnetic detectors: horizontal dB/dt, storm sudden commencement (SSC/SI), instrument
artefacts. All run on native-rate windows (1 s or 1 min) of nT components (see
``stream/decode/iaga.py`` for channel naming) and keep per-instrument state across windows, so
one event gives one alert.

Thresholds live in the detector's ``thresholds`` table (config), with these keys:

* ``dbdt``: ``default`` and per-observatory codes (``BRW = 60.0``), nT/min, and
  ``refractory_s`` (one alert per disturbance);
* ``ssc``: ``amplitude_nT`` (minimum rise), ``sigma`` (rise / robust noise of the pre-event
  4-min changes), ``rise_s`` (longest rise time), ``refractory_s``;
* ``artefacts``: ``spike_nT``, ``step_nT``, ``flat_s``, ``f_nT``, ``refractory_s``.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.ndimage import median_filter

from stream.buffer.windows import WindowSpec
from stream.config import DetectorConfig
from stream.detectors.base import owned_range
from stream.errors import ConfigError
from stream.records import NS_PER_S, Alert, ModelRef, Window, seconds_to_samples

DBDT_DEFAULTS = {"default": 30.0, "refractory_s": 1800.0}
SSC_DEFAULTS = {"amplitude_nT": 8.0, "sigma": 6.0, "rise_s": 240.0, "refractory_s": 1800.0}
ARTEFACT_DEFAULTS = {"spike_nT": 3.0, "step_nT": 3.0, "flat_s": 60.0, "f_nT": 2.0,
                     "refractory_s": 300.0}


def _thresholds(cfg: DetectorConfig, defaults: dict[str, float], free_keys: bool) -> dict[str, float]:
    merged = {**defaults, **cfg.thresholds}
    for key, value in merged.items():
        if not free_keys and key not in defaults:
            raise ConfigError(f"detectors.{cfg.name}.thresholds.{key}",
                              f"unknown threshold (known: {', '.join(sorted(defaults))})")
        if value <= 0:
            raise ConfigError(f"detectors.{cfg.name}.thresholds.{key}", f"must be > 0, got {value}")
    return merged


def _model(name: str, params: dict[str, float]) -> ModelRef:
    text = ",".join(f"{k}={v:g}" for k, v in sorted(params.items()))
    return ModelRef(name, text, hashlib.sha256(text.encode()).hexdigest())


def _robust_sigma(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else 0.0


def _alert(w: Window, kind: str, row: int, t_ns: int, score: float, threshold: float,
           model: ModelRef, name: str, **details: object) -> Alert:
    return Alert(kind=kind, network=w.network, station=w.station, location=w.location,
                 channel=w.channels[row], time_ns=t_ns, score=score, threshold=threshold,
                 model=model, newest_arrival_ns=w.newest_arrival_ns,
                 details={"detector": name, "window_s": w.data.shape[-1] / w.sampling_rate_hz,
                          **details})


class DbDtDetector:
    """``detection`` when the horizontal rate of change |ΔB_h| over ``lag`` exceeds the
    observatory's threshold (nT/min); re-armed below half of it."""

    lag_s = 60.0

    def __init__(self, cfg: DetectorConfig) -> None:
        self.name = cfg.name
        self.thresholds = _thresholds(cfg, DBDT_DEFAULTS, free_keys=True)
        self.stride_s = cfg.stride_s or 60.0
        self.spec = WindowSpec(cfg.name, ("H", "E"), cfg.window_s or 600.0, self.stride_s)
        self.model = _model("dbdt", {"lag_s": self.lag_s, **self.thresholds})
        self.refractory_ns = int(self.thresholds.pop("refractory_s") * NS_PER_S)
        self._armed: dict[str, bool] = {}
        self._last: dict[str, int] = {}

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _one(self, w: Window) -> list[Alert]:
        thr = self.thresholds.get(w.station, self.thresholds["default"])
        lag = max(1, seconds_to_samples(self.lag_s, w.sampling_rate_hz))
        # a 5-sample median keeps single-sample spikes (artefacts) out of the rate
        h = median_filter(w.data[0].astype(np.float64), size=5, mode="nearest")
        e = median_filter(w.data[1].astype(np.float64), size=5, mode="nearest")
        rate = np.full(len(h), np.nan)
        rate[lag:] = np.hypot(h[lag:] - h[:-lag], e[lag:] - e[:-lag]) * (60.0 / (lag / w.sampling_rate_hz))
        key = w.station_key
        armed = True if w.first else self._armed.get(key, True)
        lo, hi = owned_range(w, self.stride_s, 0.0, warmup_s=self.lag_s)
        alerts = []
        for i in range(max(lo, lag), hi):
            if armed and rate[i] >= thr and \
                    w.time_of(i) - self._last.get(key, -(1 << 62)) >= self.refractory_ns:
                self._last[key] = w.time_of(i)
                peak = float(np.nanmax(rate[i:hi]))
                alerts.append(_alert(w, "detection", 0, w.time_of(i), float(rate[i]), thr,
                                     self.model, self.name, quantity="dB/dt horizontal",
                                     unit="nT/min", lag_s=self.lag_s, peak=round(peak, 3)))
                armed = False
            elif not armed and rate[i] < thr / 2:
                armed = True
        self._armed[key] = armed
        return alerts


class SscDetector:
    """Storm sudden commencement / sudden impulse: a rise of H by at least ``amplitude_nT`` and
    ``sigma`` times the pre-event noise within ``rise_s``. Reports onset, amplitude, rise time."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.name = cfg.name
        self.p = _thresholds(cfg, SSC_DEFAULTS, free_keys=False)
        self.stride_s = cfg.stride_s or 60.0
        self.spec = WindowSpec(cfg.name, ("H",), cfg.window_s or 2400.0, self.stride_s)
        self.model = _model("ssc", self.p)
        self._last: dict[str, int] = {}

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _one(self, w: Window) -> list[Alert]:
        rate = w.sampling_rate_hz
        h = w.data[0].astype(np.float64)
        smooth = median_filter(h, size=max(1, seconds_to_samples(30.0, rate)) | 1, mode="nearest")
        rise = max(1, seconds_to_samples(self.p["rise_s"], rate))
        if len(h) < 3 * rise:
            return []
        d = np.full(len(h), np.nan)
        d[:-rise] = smooth[rise:] - smooth[:-rise]
        # decide 2 rise times after a candidate, so the whole rise is seen before measuring it
        lo, hi = owned_range(w, self.stride_s, 2 * self.p["rise_s"], warmup_s=self.p["rise_s"] * 2)
        lo = max(lo, 2 * rise)
        key = w.station_key
        sigma = _robust_sigma(d[: lo - rise])  # noise of the changes before the owned stretch
        need = max(self.p["amplitude_nT"], self.p["sigma"] * sigma)
        for i in lo + np.flatnonzero(d[lo:hi] >= need):
            t_ns = w.time_of(int(i))
            last = self._last.get(key)
            if last is not None and t_ns - last < self.p["refractory_s"] * NS_PER_S:
                return []
            base = float(np.median(smooth[max(0, i - 4 * rise):i]))
            rising = smooth[i:i + rise + 1] - base
            before = np.flatnonzero(rising <= 0.1 * rising[-1])
            onset = i + (int(before[-1]) if len(before) else 0)
            sudden = smooth[onset:onset + rise + 1] - base  # the part within one rise time
            amplitude = float(sudden.max())
            rise_s = int(np.flatnonzero(sudden >= 0.9 * amplitude)[0]) / rate
            if amplitude < need or rise_s > 0.75 * self.p["rise_s"]:
                continue  # too small once measured from the onset, or a drift, not a jump
            self._last[key] = w.time_of(onset)
            return [_alert(w, "detection", 0, w.time_of(onset), float(d[i]), need, self.model,
                           self.name, event="sudden_commencement",
                           amplitude_nT=round(amplitude, 2), rise_time_s=round(rise_s, 1),
                           noise_sigma_nT=round(sigma, 3))]
        return []


class ArtefactDetector:
    """Instrument artefacts as ``health`` alerts: spikes, steps (baseline jumps), flat lines,
    and F inconsistent with the vector (|B| from H and Z). Dropouts reach the buffers as gaps and
    are reported by the gap policy."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.name = cfg.name
        self.p = _thresholds(cfg, ARTEFACT_DEFAULTS, free_keys=False)
        self.stride_s = cfg.stride_s or 60.0
        self.tail_s = 120.0
        comps = tuple(cfg.components) if cfg.components != ("Z",) else ("H", "E", "Z", "F")
        self.spec = WindowSpec(cfg.name, comps, cfg.window_s or 900.0, self.stride_s,
                               None, "zeros")
        self.model = _model("artefacts", self.p)
        self._last: dict[tuple[str, str], int] = {}

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _one(self, w: Window) -> list[Alert]:
        lo, hi = owned_range(w, self.stride_s, self.tail_s, warmup_s=self.tail_s)
        found: list[tuple[str, int, int, float, float]] = []  # (type, row, index, score, thr)
        rows = {c: i for i, c in enumerate(self.spec.components) if w.channels[i]}
        for c, r in rows.items():
            found += self._row(w.data[r].astype(np.float64), r, lo, hi, w.sampling_rate_hz)
        if {"H", "Z", "F"} <= rows.keys():
            x = w.data.astype(np.float64)
            delta_f = x[rows["F"]] - np.hypot(x[rows["H"]], x[rows["Z"]])
            vector_steps = {i for kind, r, i, _, _ in found if kind == "step" and r != rows["F"]}
            for _, _, i, score, thr in self._steps(delta_f, rows["F"], lo, hi,
                                                   w.sampling_rate_hz, self.p["f_nT"]):
                if not any(abs(i - j) <= 1 for j in vector_steps):  # not explained by H/E/Z
                    found = [f for f in found if not (f[0] == "step" and f[1] == rows["F"])]
                    found.append(("f_inconsistency", rows["F"], i, score, thr))
        alerts = []
        for kind, r, i, score, thr in sorted(found, key=lambda f: f[2]):
            key = (w.station_key, kind)  # one alert per station and artefact type per period
            t_ns = w.time_of(i)
            if t_ns - self._last.get(key, -(1 << 62)) < self.p["refractory_s"] * NS_PER_S:
                continue
            self._last[key] = t_ns
            alerts.append(_alert(w, "health", r, t_ns, score, thr, self.model, self.name,
                                 event="artefact", artefact=kind))
        return alerts

    def _row(self, x: np.ndarray, r: int, lo: int, hi: int,
             rate: float) -> list[tuple[str, int, int, float, float]]:
        out: list[tuple[str, int, int, float, float]] = []
        dev = x - median_filter(x, size=7, mode="nearest")
        sigma = _robust_sigma(np.diff(x))
        thr = max(self.p["spike_nT"], 10 * sigma)
        spikes = lo + np.flatnonzero(np.abs(dev[lo:hi]) >= thr)
        if len(spikes):
            out.append(("spike", r, int(spikes[0]), float(abs(dev[spikes[0]])), thr))
        out += self._steps(x, r, lo, hi, rate, self.p["step_nT"])
        flat_n = max(10, seconds_to_samples(self.p["flat_s"], rate))
        same = np.concatenate([[False], np.diff(x) == 0])
        run = 0
        for i in range(max(1, lo - flat_n), hi):
            run = run + 1 if same[i] else 0
            if run == flat_n - 1 and i >= lo:
                out.append(("flat_line", r, i - flat_n + 1, float(flat_n / rate), self.p["flat_s"]))
                break
        return out

    def _steps(self, x: np.ndarray, r: int, lo: int, hi: int, rate: float,
               min_nT: float) -> list[tuple[str, int, int, float, float]]:
        """A jump between adjacent samples that persists (a spike comes back, a step does not)."""
        n = max(3, seconds_to_samples(60.0, rate))
        jumps = np.abs(np.diff(x))
        sigma = _robust_sigma(np.diff(x))
        thr = max(min_nT, 10 * sigma)
        for i in lo + np.flatnonzero(jumps[lo:hi] >= thr):
            if i - n < 0 or i + 1 + n > len(x):
                continue
            level = float(np.median(x[i + 1:i + 1 + n]) - np.median(x[i + 1 - n:i + 1]))
            if abs(level) >= 0.8 * jumps[i]:
                return [("step", r, int(i + 1), abs(level), thr)]
        return []
