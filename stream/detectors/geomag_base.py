"""Geomagnetic detector profiles: observatory latitude classes, per-class thresholds and their
overrides, and what the dB/dt, SSC and artefact detectors share (see
:mod:`geosentry.stream.detectors.geomag`)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from geosentry.stream.buffer.spec import WindowSpec
from geosentry.stream.detectors.registry import GeomagConfig
from geosentry.stream.errors import ConfigError
from geosentry.stream.records import Alert, AlertKind, ModelRef, Window

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
    "artefacts": {"spike_nT": (3.0,) * 4, "step_nT": (3.0,) * 4,
                  "sigma": (10.0,) * 4, "noise_window_s": (120.0,) * 4,
                  "flat_s": (60.0,) * 4, "flat_p": (1e-9,) * 4, "f_nT": (2.0,) * 4,
                  "refractory_s": (300.0,) * 4},
}
MAY_BE_ZERO = {"enabled"}


def latitude_class(mlat_deg: float) -> str:
    return CLASSES[sum(abs(mlat_deg) >= edge for edge in CLASS_EDGES_DEG)]


class Profiles:
    """Resolved thresholds per observatory: class profile <- all <- class table <- station.
    Every override is checked here (config loading builds one); errors name
    ``where.KEY`` (default ``detectors.NAME.thresholds``)."""

    def __init__(self, cfg: GeomagConfig, kind: str, where: str | None = None) -> None:
        self.kind, self.base = kind, PROFILES[kind]
        self.all: dict[str, float] = {}
        self.classes: dict[str, dict[str, float]] = {}
        self.stations: dict[str, dict[str, float]] = {}
        prefix = where or f"detectors.{cfg.name}.thresholds"
        for key, value in cfg.thresholds.items():
            where = f"{prefix}.{key}"
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
    return Alert(kind=AlertKind(kind), network=w.network, station=w.station, location=w.location,
                 channel=w.channels[row], time_ns=t_ns, score=score, threshold=threshold,
                 model=model, newest_arrival_ns=w.newest_arrival_ns,
                 details={"detector": name, "window_s": w.data.shape[-1] / w.sampling_rate_hz,
                          "profile": profile, **details})


#: Native rates the geomagnetic detectors run on: one-minute (``U``) to 10 Hz (``B``) data.
MIN_RATE_HZ = 0.99 / 60.0
MAX_RATE_HZ = 10.0 * 1.01


def geomag_spec(cfg: GeomagConfig) -> WindowSpec:
    """The window spec of a geomagnetic detector: native rate, one minute to 10 Hz; its
    components, window, stride and missing-component policy from ``cfg`` (defaults per type)."""
    return WindowSpec(cfg.name, cfg.components, cfg.window_s, cfg.stride_s, None,
                      cfg.missing_components,
                      channels=cfg.channels, min_rate_hz=MIN_RATE_HZ, max_rate_hz=MAX_RATE_HZ)


class _Detector:
    def __init__(self, cfg: GeomagConfig, kind: str) -> None:  # name, stride, profiles, model
        self.name, self.stride_s = cfg.name, cfg.stride_s
        self.profiles = Profiles(cfg, kind)
        self.model = self.profiles.model()

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _one(self, w: Window) -> list[Alert]:
        raise NotImplementedError  # each detector type decides on its own windows


def jitter(x: np.ndarray, rate_hz: float) -> float:
    """Scatter of 1 s changes about their median (nT; the 90th percentile, as a Gaussian sigma,
    so a few spikes do not count and a disturbed stretch does); 0 for data slower than 1 per
    12 s. A field variation is coherent, a shaken or failing sensor scatters from second to
    second: with ``coherence``, a change must be that many times the scatter around it."""
    d = np.diff(x[np.isfinite(x)])
    if rate_hz < 1 / 12 or len(d) < 10:
        return 0.0
    return float(np.percentile(np.abs(d - np.median(d)), 90) / 1.645)


