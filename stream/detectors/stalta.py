"""Classic recursive STA/LTA trigger (ObsPy's C implementation), streamed window by window.

Each window is band-pass filtered and the characteristic function computed over the whole
window, but only the window's *owned* stretch (the ``stride`` just before the last ``tail_s``
seconds, or everything after the LTA warm-up for a station's first window) is searched for
triggers, so the stretches tile the stream and a trigger is reported once. The trigger is
re-armed only after the ratio falls below ``trigger_off`` (ObsPy ``trigger_onset`` semantics),
with that state kept per instrument across windows.
"""

from __future__ import annotations

import hashlib

import numpy as np
from obspy.signal.trigger import recursive_sta_lta
from scipy.signal import iirfilter, sosfilt

from stream.buffer.windows import WindowSpec
from stream.config import DetectorConfig
from stream.detectors.base import owned_range
from stream.records import Alert, ModelRef, Window, seconds_to_samples


class StaLtaDetector:
    """Per-station ``detection`` alerts from a recursive STA/LTA on the vertical component."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        assert cfg.window_s is not None and cfg.stride_s is not None  # set by config validation
        self.stride_s = cfg.stride_s
        self.spec = WindowSpec(cfg.name, ("Z",), cfg.window_s, cfg.stride_s, None, "skip")
        params = (f"sta={cfg.sta_s:g},lta={cfg.lta_s:g},on={cfg.trigger_on:g},"
                  f"off={cfg.trigger_off:g},band={cfg.bandpass_hz}")
        self.model = ModelRef("recursive_sta_lta", params,
                              hashlib.sha256(params.encode()).hexdigest())
        self._armed: dict[str, bool] = {}
        self._sos: dict[float, np.ndarray | None] = {}

    def _bandpass(self, rate_hz: float) -> np.ndarray | None:
        """Butterworth band-pass (4 corners, causal), as ObsPy's ``bandpass``; designed once
        per sampling rate instead of once per window."""
        if rate_hz not in self._sos:
            sos = None
            if self.cfg.bandpass_hz is not None:
                low, high = self.cfg.bandpass_hz
                high = min(high, 0.45 * rate_hz)
                if low < high:
                    nyquist = 0.5 * rate_hz
                    sos = iirfilter(4, [low / nyquist, high / nyquist], btype="band",
                                    ftype="butter", output="sos")
            self._sos[rate_hz] = sos
        return self._sos[rate_hz]

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return [(w, self._one(w)) for w in windows]

    def _one(self, w: Window) -> list[Alert]:
        rate = w.sampling_rate_hz
        x = w.data[0].astype(np.float64)
        x = x - x.mean()
        sos = self._bandpass(rate)
        if sos is not None:
            x = sosfilt(sos, x)
        nsta, nlta = seconds_to_samples(self.cfg.sta_s, rate), seconds_to_samples(self.cfg.lta_s, rate)
        cft = recursive_sta_lta(x, nsta, nlta)
        key = w.station_key + "." + w.channels[0][:2]
        if w.first:
            self._armed[key] = True
        armed = self._armed.get(key, True)
        lo, hi = owned_range(w, self.stride_s, self.cfg.tail_s, warmup_s=self.cfg.lta_s)
        alerts: list[Alert] = []
        i = lo
        while i < hi:
            seg = cft[i:hi]
            hits = np.flatnonzero(seg >= self.cfg.trigger_on) if armed else \
                np.flatnonzero(seg < self.cfg.trigger_off)
            if not len(hits):
                break
            i += int(hits[0])
            if armed:
                peak = float(cft[i:i + seconds_to_samples(1.0, rate)].max())
                alerts.append(Alert(
                    kind="detection", network=w.network, station=w.station, location=w.location,
                    channel=w.channels[0], time_ns=w.time_of(i), score=float(cft[i]),
                    threshold=self.cfg.trigger_on, model=self.model,
                    newest_arrival_ns=w.newest_arrival_ns,
                    details={"detector": self.name, "method": "recursive_sta_lta",
                             "cft_peak_1s": round(peak, 3)}))
            armed = not armed
            i += 1
        self._armed[key] = armed
        return alerts
