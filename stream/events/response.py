"""Full instrument-response correction for the amplitudes, where a channel's StationXML response
is not flat over the band magnitudes use.

A sensor flat over ``BAND_HZ`` in its sensitivity's units (a broadband velocity sensor, a
strong-motion accelerometer: within ``FLAT_TOLERANCE`` of its sensitivity there) is divided by
its sensitivity, causally (an accelerometer then integrated). Any other response (a 1 Hz
or 2 Hz geophone, whose velocity response falls as f² below its natural frequency, right in the
Wood-Anderson band) is removed in the frequency domain: the window is demeaned, its start
tapered (``TAPER_S``), zero-padded to at least twice its length, its spectrum divided by the
channel's complex response to ground velocity (ObsPy's evalresp, ``output="VEL"``: an
accelerometer is integrated by the same division) with a 60 dB water level, and band-limited by
causal Butterworth filters (high-pass ``HIGHPASS_HZ`` of order ``HIGHPASS_ORDER``, which also
cancels the inverse's 1/f² growth below a geophone's natural frequency; low-pass 0.4 of the
rate). Being causal, the correction needs no taper at the window's end (a zero-phase band taper,
as in ``remove_response``, rings back from it by several seconds); the window's last ``GUARD_S``
are still not measured (the digitiser's zero-phase FIR stages reach a little into the future):
the next window measures them. The start-up transient lies within the amplitudes'
``SETTLE_S``.

>>> c = ResponseCorrection(None)
>>> c.spectrum("XX.STA..HHZ", 0, 3001, 100.0) is None  # no inventory: nothing to correct
True
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import fft, signal

log = logging.getLogger(__name__)

#: the band Wood-Anderson ML and Pd use, where a response must be flat to skip deconvolution
BAND_HZ = (0.2, 10.0)
FLAT_TOLERANCE = 0.05
#: the band kept: causal Butterworth filters (a zero-phase taper would ring back from the end)
HIGHPASS_HZ = 0.2
HIGHPASS_ORDER = 4
LOWPASS_OF_RATE = 0.4
WATER_LEVEL_DB = 60.0
TAPER_S = 2.0
#: the end of a deconvolved window not measured (the digitiser's zero-phase FIR stages, whose
#: inverse reaches a little into the future)
GUARD_S = 1.0


class ResponseCorrection:
    """Per channel and window length, the spectrum that turns counts into ground velocity (m/s),
    or ``None`` where the sensitivity alone does (a flat response, or none in the inventory)."""

    def __init__(self, responses: object) -> None:
        self.responses = responses
        self._flat: dict[str, bool] = {}
        self._spectra: dict[tuple[str, int, float], np.ndarray] = {}

    def needed(self, sid: str, t_ns: int, rate_hz: float, units: str = "VEL") -> bool:
        """Whether ``sid``'s response must be removed in full: not flat over the band in its
        sensitivity's own units (``VEL``, or ``ACC`` for an accelerometer)."""
        if self.responses is None:
            return False
        flat = self._flat.get(sid)
        if flat is None:
            flat = self._flat[sid] = self._is_flat(sid, t_ns, rate_hz, units)
        return not flat

    def spectrum(self, sid: str, t_ns: int, n: int, rate_hz: float, units: str = "VEL"
                 ) -> np.ndarray | None:
        """The spectrum (length of ``rfft`` at :func:`_nfft` of ``n``) that turns ``sid``'s
        counts into ground velocity, or None where its sensitivity alone does."""
        if not self.needed(sid, t_ns, rate_hz, units):
            return None
        key = (sid, n, rate_hz)
        s = self._spectra.get(key)
        if s is None:
            s = self._spectra[key] = self._inverse(sid, t_ns, n, rate_hz)
        return s

    def velocity(self, x: np.ndarray, spectrum: np.ndarray, rate_hz: float) -> np.ndarray:
        """Ground velocity (m/s) of the demeaned counts ``x`` (length ``n`` of ``spectrum``)."""
        n = len(x)
        k = min(int(TAPER_S * rate_hz), n // 4)
        y = x.astype(np.float64).copy()
        if k > 1:  # the start only: the correction is causal, the end needs no taper
            y[:k] *= 0.5 * (1 - np.cos(np.pi * np.arange(k) / k))
        nfft = _nfft(n)
        return np.asarray(fft.irfft(fft.rfft(y, nfft) * spectrum, nfft)[:n])

    def _response(self, sid: str, t_ns: int) -> Any:
        from obspy import UTCDateTime

        return self.responses.get_response(sid, UTCDateTime(ns=t_ns))  # type: ignore[attr-defined]

    def _is_flat(self, sid: str, t_ns: int, rate_hz: float, units: str) -> bool:
        try:
            resp = self._response(sid, t_ns)
            sens = float(resp.instrument_sensitivity.value)
            hi = min(BAND_HZ[1], 0.4 * rate_hz)
            f = np.geomspace(BAND_HZ[0], hi, 24)
            r = np.abs(resp.get_evalresp_response_for_frequencies(f, output=units)) / sens
        except Exception:  # no response here: the sensitivity path decides (and logs)
            return True
        flat = bool(np.all(np.abs(r - 1.0) <= FLAT_TOLERANCE))
        if not flat:
            log.info("%s: response not flat over %g-%g Hz (%.2f-%.2f of its sensitivity): "
                     "removed in full for amplitudes", sid, BAND_HZ[0], hi, r.min(), r.max())
        return flat

    def _inverse(self, sid: str, t_ns: int, n: int, rate_hz: float) -> np.ndarray:
        from obspy.signal.invsim import invert_spectrum

        nfft = _nfft(n)
        freqs = fft.rfftfreq(nfft, 1.0 / rate_hz)
        resp = self._response(sid, t_ns)
        spec = np.asarray(resp.get_evalresp_response_for_frequencies(freqs, output="VEL"),
                          dtype=np.complex128)
        invert_spectrum(spec, WATER_LEVEL_DB)  # in place: 1 / R with a water level
        hp = signal.butter(HIGHPASS_ORDER, HIGHPASS_HZ, "highpass", fs=rate_hz, output="sos")
        lp = signal.butter(4, LOWPASS_OF_RATE * rate_hz, "lowpass", fs=rate_hz, output="sos")
        band = signal.sosfreqz(hp, freqs, fs=rate_hz)[1] * signal.sosfreqz(lp, freqs,
                                                                           fs=rate_hz)[1]
        out: np.ndarray = spec * band
        return out


def _nfft(n: int) -> int:
    return int(fft.next_fast_len(2 * n))
