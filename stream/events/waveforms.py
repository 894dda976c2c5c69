"""Amplitudes for magnitudes, measured on the windows that already flow to the detectors.

Each 3-component window is converted to ground velocity (counts divided by the channel's
sensitivity: the StationXML instrument sensitivity where the inventory has responses, else the
configured ``counts_per_m_s``; an accelerometer's, input units m/s², integrated once and
high-passed at ``PD_HIGHPASS_HZ``; a response that is not flat over the magnitudes' band is
removed in full instead: :mod:`geosentry.stream.events.response`) and
reduced to 0.25 s bins per station kept for the events stage's horizon:

* ``wa``: peak absolute Wood-Anderson displacement on the horizontals, as ground displacement in
  nm (the WA response, natural period 0.8 s, damping 0.7, applied to velocity by a bilinear IIR;
  the WA gain is not applied, as IASPEI's ML takes A / 2080);
* ``pd``: peak absolute vertical displacement (velocity integrated, 0.075 Hz high-pass as in
  Wu & Zhao 2006), in cm;
* ``u2``, ``v2``: sums of squared vertical displacement and velocity, for tau_c.

The first ``SETTLE_S`` of each window is not binned (filter start-up); the filters run over the
whole window each time, so no state is carried between windows. Bins already measured are
kept (a later, overlapping window does not overwrite them).

>>> round(pd_magnitude(0.1, 20.0), 2)   # Pd 1 mm at 20 km (Wu & Zhao 2006)
5.83
>>> round(tau_c_magnitude(1.0), 2)      # tau_c 1 s (Wu & Kanamori 2005)
5.67
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from geosentry.stream.events.response import GUARD_S, ResponseCorrection
from geosentry.stream.records import NS_PER_S, Window

log = logging.getLogger(__name__)

BIN_NS = NS_PER_S // 4
SETTLE_S = 5.0
WA_PERIOD_S = 0.8
WA_DAMPING = 0.7
PD_HIGHPASS_HZ = 0.075
#: slower channels give no amplitudes (the filters need a Nyquist frequency above the
#: response correction's 0.2 Hz high-pass)
MIN_RATE_HZ = 1.0
#: Wu & Zhao (2006), southern California: log10 Pd[cm] = -3.463 + 0.729 M - 1.374 log10 R[km]
PD_A, PD_B, PD_C = -3.463, 0.729, -1.374
#: Wu & Kanamori (2005): log10 tau_c = 0.21 M - 1.19
TC_A, TC_B = 0.21, -1.19


def pd_magnitude(pd_cm: float, hypo_km: float) -> float:
    return (math.log10(pd_cm) - PD_A - PD_C * math.log10(max(hypo_km, 1.0))) / PD_B


def tau_c_magnitude(tau_c_s: float) -> float:
    return (math.log10(tau_c_s) - TC_B) / TC_A


@dataclass
class _Bins:
    first: int  # bin index of row 0
    data: np.ndarray  # (n, 4): wa, pd, u2, v2; NaN where not measured


class AmplitudeBins:
    """Per station (``NET.STA``) bins of the measures above, trimmed to ``keep_s``."""

    def __init__(self, gain: GainLookup, keep_s: float) -> None:
        self.gain = gain
        self.keep_bins = int(keep_s * NS_PER_S // BIN_NS)
        self._bins: dict[str, _Bins] = {}
        self._filters: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._too_slow: set[str] = set()

    def add(self, w: Window) -> None:
        if w.data.ndim != 2 or w.data.shape[1] < 2:
            return
        rows = {c[-1:]: i for i, c in enumerate(w.channels) if c}
        z = rows.get("Z")
        hor = [rows[k] for k in ("N", "E", "1", "2") if k in rows]
        if z is None and not hor:
            return
        rate = w.sampling_rate_hz
        if rate < MIN_RATE_HZ:  # e.g. a 0.1 Hz channel: no Wood-Anderson band, no filters
            if w.station not in self._too_slow:
                self._too_slow.add(w.station)
                log.info("%s.%s: %g Hz is below %g Hz: no amplitudes measured", w.network,
                         w.station, rate, MIN_RATE_HZ)
            return
        n = w.data.shape[1]
        settle = int(SETTLE_S * rate)
        if n <= settle + 1:
            return
        key = f"{w.network}.{w.station}"
        start_bin = -(-(w.start_ns + int(settle * NS_PER_S / rate)) // BIN_NS)
        end_ns = w.end_ns + 1
        if any(self.gain.deconvolved(w, i) for i in [*hor, *([] if z is None else [z])]):
            end_ns -= int(GUARD_S * NS_PER_S)  # the deconvolution's tapered end
        end_bin = end_ns // BIN_NS  # bins wholly inside the window
        if end_bin <= start_bin:
            return
        b = self._bins.get(key)
        if b is not None and b.first + len(b.data) >= end_bin:
            return  # measured already (another detector's window, or an overlap)
        wa_b, wa_a, hp_b, hp_a = self._filt(rate)
        t_ns = w.start_ns + (np.arange(n) * (NS_PER_S / rate)).astype(np.int64)
        idx = t_ns // BIN_NS
        sel = (idx >= start_bin) & (idx < end_bin)
        meas = np.full((end_bin - start_bin, 4), np.nan)
        bin_of = idx[sel] - start_bin
        if hor:
            vs = [v for i in hor if (v := self._velocity(w, i, hp_b, hp_a)) is not None]
            if len(vs) == len(hor):
                wa = np.zeros(n)
                for v in vs:
                    wa = np.maximum(wa, np.abs(signal.lfilter(wa_b, wa_a, v * 1e9)))
                meas[:, 0] = _reduce(np.maximum, wa[sel], bin_of, len(meas))
        if z is not None and (vz := self._velocity(w, z, hp_b, hp_a)) is not None:
            v = signal.lfilter(hp_b, hp_a, vz * 100.0)  # cm/s
            u = signal.lfilter(hp_b, hp_a, np.cumsum(v) / rate)
            meas[:, 1] = _reduce(np.maximum, np.abs(u)[sel], bin_of, len(meas))
            meas[:, 2] = _reduce(np.add, (u * u)[sel], bin_of, len(meas))
            meas[:, 3] = _reduce(np.add, (v * v)[sel], bin_of, len(meas))
        self._store(key, start_bin, meas)

    def _velocity(self, w: Window, row: int, hp_b: np.ndarray, hp_a: np.ndarray
                  ) -> np.ndarray | None:
        """Ground velocity (m/s) of a row, or None where it has no sensitivity: counts over the
        sensitivity; an accelerometer's integrated once (then high-passed as for Pd)."""
        g = self.gain(w, row)
        if g <= 0:
            return None
        x: np.ndarray = w.data[row].astype(np.float64) - float(w.data[row].mean())
        spectrum = self.gain.correction(w, row)
        if spectrum is not None:
            return self.gain.response.velocity(x, spectrum, w.sampling_rate_hz)
        x = x / g
        if self.gain.motion(w, row) is Motion.ACCELERATION:
            x = np.asarray(signal.lfilter(hp_b, hp_a, np.cumsum(x) / w.sampling_rate_hz))
        return x

    def _filt(self, rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        f = self._filters.get(rate)
        if f is None:
            w0 = 2 * math.pi / WA_PERIOD_S
            wa_b, wa_a = signal.bilinear([1.0, 0.0], [1.0, 2 * WA_DAMPING * w0, w0 * w0], rate)
            hp_b, hp_a = signal.butter(2, PD_HIGHPASS_HZ, "highpass", fs=rate)
            f = self._filters[rate] = (wa_b, wa_a, hp_b, hp_a)
        return f

    def _store(self, key: str, start: int, meas: np.ndarray) -> None:
        b = self._bins.get(key)
        end = start + len(meas)
        if b is None:
            self._bins[key] = _Bins(start, meas)
            return
        lo, hi = min(b.first, start), max(b.first + len(b.data), end)
        lo = max(lo, hi - self.keep_bins)
        out = np.full((hi - lo, 4), np.nan)
        old_lo = max(b.first, lo)
        if b.first + len(b.data) > old_lo:
            out[old_lo - lo:b.first + len(b.data) - lo] = b.data[old_lo - b.first:]
        new_lo = max(start, lo)
        part = out[new_lo - lo:end - lo]
        fresh = meas[new_lo - start:]
        part[:] = np.where(np.isnan(part), fresh, part)
        b.first, b.data = lo, out

    def span(self, key: str, t0_ns: int, t1_ns: int) -> np.ndarray | None:
        """Rows of the bins in [t0, t1) (NaN rows where not measured), None if none known."""
        b = self._bins.get(key)
        if b is None:
            return None
        lo, hi = t0_ns // BIN_NS - b.first, -(-t1_ns // BIN_NS) - b.first
        lo, hi = max(lo, 0), min(hi, len(b.data))
        if hi <= lo:
            return None
        return b.data[lo:hi]

    def measured_until_ns(self, key: str) -> int:
        b = self._bins.get(key)
        return -1 if b is None else (b.first + len(b.data)) * BIN_NS


def _reduce(op: np.ufunc, values: np.ndarray, bins: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    if len(values) == 0:
        return out
    fill = 0.0
    acc = np.full(n, fill)
    op.at(acc, bins, values)
    seen = np.zeros(n, dtype=bool)
    seen[bins] = True
    out[seen] = acc[seen]
    return out


class Motion(enum.Enum):
    """What a channel's counts are proportional to (its sensitivity's input units)."""

    VELOCITY = "M/S"
    ACCELERATION = "M/S**2"


VELOCITY_UNITS = frozenset({"M/S", "M/SEC"})
ACCELERATION_UNITS = frozenset({"M/S**2", "M/S/S", "M/SEC**2", "M/S2"})


class GainLookup:
    """Counts per m/s (a velocity sensor) or per m/s² (an accelerometer) of a window's row: the
    StationXML instrument sensitivity, else the configured velocity gain; a channel without one,
    or whose input units are neither, is logged once and gives 0 (not measured)."""

    def __init__(self, responses: object, counts_per_m_s: float) -> None:
        self.responses = responses
        self.default = counts_per_m_s
        self.response = ResponseCorrection(responses)
        self._cache: dict[str, tuple[float, Motion]] = {}

    def __call__(self, w: Window, row: int) -> float:
        return self._get(w, row)[0]

    def motion(self, w: Window, row: int) -> Motion:
        return self._get(w, row)[1]

    def deconvolved(self, w: Window, row: int) -> bool:
        """Whether the row's response is removed in full (not flat over the band)."""
        return self._get(w, row)[0] > 0 and self.response.needed(
            self._sid(w, row), w.start_ns, w.sampling_rate_hz, self._units(w, row))

    def correction(self, w: Window, row: int) -> np.ndarray | None:
        """The full response correction's spectrum for the row, None where the sensitivity
        alone is used (:mod:`geosentry.stream.events.response`)."""
        if not self.deconvolved(w, row):
            return None
        return self.response.spectrum(self._sid(w, row), w.start_ns, w.data.shape[1],
                                      w.sampling_rate_hz, self._units(w, row))

    def _units(self, w: Window, row: int) -> str:
        return "ACC" if self.motion(w, row) is Motion.ACCELERATION else "VEL"

    @staticmethod
    def _sid(w: Window, row: int) -> str:
        return f"{w.network}.{w.station}.{w.location}.{w.channels[row]}"

    def _get(self, w: Window, row: int) -> tuple[float, Motion]:
        sid = self._sid(w, row)
        g = self._cache.get(sid)
        if g is None:
            g = self._cache[sid] = self._lookup(sid, w.start_ns)
        return g

    def _lookup(self, sid: str, t_ns: int) -> tuple[float, Motion]:
        if self.responses is not None:
            from obspy import UTCDateTime

            try:
                resp = self.responses.get_response(sid, UTCDateTime(ns=t_ns))  # type: ignore[attr-defined]
                sens = resp.instrument_sensitivity
                units = (sens.input_units or "").upper().replace(" ", "")
                if units in VELOCITY_UNITS:
                    return float(sens.value), Motion.VELOCITY
                if units in ACCELERATION_UNITS:
                    return float(sens.value), Motion.ACCELERATION
                log.warning("%s: response input units %s, neither M/S nor M/S**2: no "
                            "amplitudes measured", sid, units)
                return 0.0, Motion.VELOCITY
            except Exception:  # no response for this channel in the inventory
                pass
        if self.default <= 0:
            log.warning("%s: no StationXML response and stations.counts_per_m_s is 0: no "
                        "Wood-Anderson amplitudes or Pd from it", sid)
        return self.default, Motion.VELOCITY
