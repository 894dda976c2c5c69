"""Classic recursive STA/LTA trigger, computed continuously per channel.

The band-pass filter state and the STA and LTA recursions are carried from one window to the
next, so each window only costs its *new* samples (the stride), and the characteristic function
is exactly what ObsPy's ``recursive_sta_lta`` gives on the whole trace filtered by
``Trace.filter("bandpass", ...)`` from the stream's first sample. Both are causal, so a trigger
is final as soon as its sample arrives: it is reported in the first window that holds it (alert
latency about one stride). A reset (gap beyond the interpolation limit, rate change: the window
arrives with ``first`` set) or a window that does not continue the previous one restarts the
state, with the LTA warm-up (``lta_s``) during which nothing triggers. The trigger is re-armed
only after the ratio falls below ``trigger_off`` (ObsPy ``trigger_onset`` semantics).

>>> import numpy as np
>>> from obspy.signal.trigger import recursive_sta_lta
>>> from geosentry.stream.detectors.registry import StaLtaConfig
>>> from geosentry.stream.records import InstrumentId, Window
>>> det = StaLtaDetector(StaLtaConfig("s", window_s=4.0, stride_s=1.0, lta_s=2.0))
>>> x = np.random.default_rng(0).normal(size=1000).astype(np.float32)
>>> w = lambda k, first: Window("XX", "A", "", ("HHZ",), k * 10**9, 100.0,
...                             x[None, k * 100:k * 100 + 400], 0, "s", first)
>>> _ = [det.process([w(k, k == 0)]) for k in range(7)]  # windows 0-4 s, 1-5 s, ... 6-10 s
>>> whole = recursive_sta_lta(x - x[:400].mean(dtype=np.float64), 50, 200)  # DC: 1st window
>>> bool(np.isclose(det._streams[InstrumentId("XX", "A", "", "HH")].last_cft, whole[-1]))
True
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import iirfilter, lfilter, sosfilt, sosfilt_zi

from geosentry.stream.buffer.windows import WindowSpec
from geosentry.stream.detectors.registry import StaLtaConfig
from geosentry.stream.records import (Alert, AlertKind, InstrumentId, ModelRef, Window,
                                      sample_period_ns, seconds_to_samples)


#: Highest band-pass corner, as a fraction of the sampling rate (below Nyquist).
MAX_CORNER_OF_RATE = 0.45


def stalta_min_rate_hz(cfg: StaLtaConfig) -> float:
    """Slowest channel the trigger runs on: its band-pass must fit below Nyquist (a 1-20 Hz band
    needs more than 2.2 Hz); STA and LTA must be a sample or more (``WindowSpec.lengths_s``)."""
    if cfg.bandpass_hz is None:
        return 0.0
    return math.nextafter(cfg.bandpass_hz[0] / MAX_CORNER_OF_RATE, math.inf)


def stalta_state_s(cfg: StaLtaConfig) -> float:
    """How long the recursions remember (``WindowSpec.state_s``): a restart that re-reads this
    much before its first undelivered window starts the LTA ``exp(-40)`` (4e-18) of its value
    away from the first run's, below double precision even after an earthquake a million
    times louder in energy than the noise that follows, so the recursions meet bit for bit and
    triggers and scores repeat (``geosentry.stream.resume``): 40 LTA lengths, plus 10 periods
    of the band-pass's lowest corner for the filter to settle."""
    settle_s = 10.0 / cfg.bandpass_hz[0] if cfg.bandpass_hz is not None else 0.0
    return 40.0 * cfg.lta_s + settle_s


@dataclass(slots=True)
class _Stream:
    """Per-channel state carried between windows."""

    rate_hz: float
    end_ns: int  # time just after the last processed sample
    zi: np.ndarray | None  # band-pass filter state
    offset: float  # subtracted before squaring when there is no band-pass (removes DC)
    sta: float = 0.0
    lta: float = 1e-99  # ObsPy's starting value
    seen: int = 0  # samples processed since the (re)start
    armed: bool = True
    last_cft: float = 0.0


class StaLtaDetector:
    """Per-station ``detection`` alerts from a recursive STA/LTA on one component (``Z``
    unless ``components`` names another)."""

    def __init__(self, cfg: StaLtaConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.stride_s = cfg.stride_s
        self.spec = WindowSpec(cfg.name, cfg.components, cfg.window_s, cfg.stride_s, None, "skip",
                               channels=cfg.channels, min_rate_hz=stalta_min_rate_hz(cfg),
                               lengths_s=(("sta_s", cfg.sta_s), ("lta_s", cfg.lta_s)),
                               state_s=stalta_state_s(cfg))
        params = (f"sta={cfg.sta_s:g},lta={cfg.lta_s:g},on={cfg.trigger_on:g},"
                  f"off={cfg.trigger_off:g},band={cfg.bandpass_hz}")
        self.model = ModelRef("recursive_sta_lta", params,
                              hashlib.sha256(params.encode()).hexdigest())
        self._streams: dict[InstrumentId, _Stream] = {}
        self._sos: dict[float, np.ndarray | None] = {}

    def reset(self) -> None:
        """Forget every channel's state (the next window of each starts afresh)."""
        self._streams.clear()

    def _bandpass(self, rate_hz: float) -> np.ndarray | None:
        """Butterworth band-pass (4 corners, causal), as ObsPy's ``bandpass``; designed once
        per sampling rate."""
        if rate_hz not in self._sos:
            sos = None
            if self.cfg.bandpass_hz is not None:
                low, high = self.cfg.bandpass_hz
                high = min(high, MAX_CORNER_OF_RATE * rate_hz)
                if low < high:
                    nyquist = 0.5 * rate_hz
                    sos = iirfilter(4, [low / nyquist, high / nyquist], btype="band",
                                    ftype="butter", output="sos")
            self._sos[rate_hz] = sos
        return self._sos[rate_hz]

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _new_samples(self, w: Window, key: InstrumentId, end_ns: int) -> tuple[_Stream, int]:
        """The channel's state and how many of ``w``'s last samples it has not yet seen."""
        n = w.data.shape[-1]
        rate = w.sampling_rate_hz
        s = self._streams.get(key)
        if s is not None and not w.first and s.rate_hz == rate:
            new = round((end_ns - s.end_ns) / sample_period_ns(rate))
            if 0 <= new <= n:
                return s, new
        sos = self._bandpass(rate)
        zi = None if sos is None else np.zeros_like(sosfilt_zi(sos))
        offset = 0.0 if sos is not None else float(w.data[0, min(w.pad_samples, n - 1):].mean())
        s = self._streams[key] = _Stream(rate, end_ns, zi, offset)
        real = n - min(w.pad_samples, n - 1)  # the padding before a stream's first sample
        s.end_ns = end_ns - round(real * sample_period_ns(rate))
        return s, real

    def _one(self, w: Window) -> list[Alert]:
        rate = w.sampling_rate_hz
        n = w.data.shape[-1]
        end_ns = w.time_of(n)
        key = w.instrument
        s, new = self._new_samples(w, key, end_ns)
        if new == 0:
            return []
        x = w.data[0, n - new:].astype(np.float64) - s.offset
        sos = self._bandpass(rate)
        if sos is not None:
            x, s.zi = sosfilt(sos, x, zi=s.zi)
        sq = x * x
        if s.seen == 0:
            sq[0] = 0.0  # ObsPy's recursion starts at the second sample
        nsta = seconds_to_samples(self.cfg.sta_s, rate)
        nlta = seconds_to_samples(self.cfg.lta_s, rate)
        if nsta < 1 or nlta < 1:  # the windower refuses such channels (spec.refusal): no division
            return []
        a_sta, a_lta = 1.0 - 1.0 / nsta, 1.0 - 1.0 / nlta
        sta, _ = lfilter([1.0 / nsta], [1.0, -a_sta], sq, zi=[a_sta * s.sta])
        lta, _ = lfilter([1.0 / nlta], [1.0, -a_lta], sq, zi=[a_lta * s.lta])
        cft = sta / lta
        warm = nlta - s.seen  # ObsPy zeroes the first nlta values
        if warm > 0:
            cft[:warm] = 0.0
        s.sta, s.lta = float(sta[-1]), float(lta[-1])
        s.seen += new
        s.end_ns = end_ns
        s.last_cft = float(cft[-1])
        alerts: list[Alert] = []
        i, base = 0, n - new
        while i < new:
            seg = cft[i:]
            hits = np.flatnonzero(seg >= self.cfg.trigger_on) if s.armed else \
                np.flatnonzero(seg < self.cfg.trigger_off)
            if not len(hits):
                break
            i += int(hits[0])
            if s.armed:
                alerts.append(Alert(
                    kind=AlertKind.DETECTION, network=w.network, station=w.station,
                    location=w.location, channel=w.channels[0], time_ns=w.time_of(base + i),
                    score=float(cft[i]), threshold=self.cfg.trigger_on, model=self.model,
                    newest_arrival_ns=w.newest_arrival_ns,
                    details={"detector": self.name, "method": "recursive_sta_lta"}))
            s.armed = not s.armed
            i += 1
        return alerts
