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

import numpy as np
from scipy.ndimage import median_filter

from geosentry.stream.detectors.base import owned_range
from geosentry.stream.detectors.geomag_artefacts import ArtefactDetector, spikes, steps
from geosentry.stream.detectors.registry import DbDtConfig, SscConfig
from geosentry.stream.detectors.geomag_base import (CLASSES, OBSERVATORY_MLAT_DEG, PROFILES, Profiles,
                                          _alert, _Detector, _odd, geomag_spec, jitter,
                                          latitude_class, robust_sigma)
from geosentry.stream.records import NS_PER_S, Alert, Window, seconds_to_samples

__all__ = ["ArtefactDetector", "CLASSES", "DbDtDetector", "OBSERVATORY_MLAT_DEG", "PROFILES",
           "Profiles", "SscDetector", "jitter", "latitude_class", "minute_rate", "robust_sigma",
           "spikes", "steps"]


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

    def __init__(self, cfg: DbDtConfig) -> None:
        super().__init__(cfg, "dbdt")
        self.spec = geomag_spec(cfg)  # the two horizontal components, H and E by default
        self._armed: dict[str, bool] = {}
        self._last: dict[str, int] = {}

    def _one(self, w: Window) -> list[Alert]:
        profile, p = self.profiles.station(w.station)
        thr = p["rate_nT_per_min"]
        rate, n = minute_rate(w.data[0], w.data[1], w.sampling_rate_hz)
        key = w.site_key
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

    def __init__(self, cfg: SscConfig) -> None:
        super().__init__(cfg, "ssc")
        self.spec = geomag_spec(cfg)  # the northward component, H by default
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
        key = w.site_key
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
            onset = int(i) + (int(before[-1]) if len(before) else 0)
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


