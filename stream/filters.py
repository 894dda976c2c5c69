"""Observatory-standard decimation: 10 Hz -> 1 s and 1 s -> 1 min.

The INTERMAGNET one-minute filter is a 91-tap Gaussian (standard deviation 15.8734 samples),
normalised to unit sum, centred on each output minute. The 10 Hz -> 1 s filter is an FIR: by
default USGS geomag-algorithms' current one, a 123-tap Blackman-windowed sinc with a 0.25 Hz cutoff
(:func:`usgs_second_window`); an observatory's own coefficients can be passed as JSON
``{"window": [...]}`` (USGS's ``etc/filter/coeffs.json`` is their earlier 0.45 Hz cutoff filter,
``firwin(123, 0.45 Hz, blackman)``, identical to 1e-17). Which filter made a reference matters: the
two differ by up to several nT in seconds with power between 0.25 and 0.45 Hz (see README).
An output sample is NaN (a gap) when inputs carrying more than ``allowed_bad`` of the filter's
weight are missing, as in USGS geomag-algorithms.

>>> import numpy as np
>>> t0 = 1_578_268_800 * 10**9                    # 2020-01-06T00:00:00Z
>>> x = np.full(3 * 3600, 5.0)                      # three hours of a constant 1 s signal
>>> times, y = decimate(t0, 1.0, x, intermagnet_minute_window(), 60.0)
>>> len(y), round(float(y[0]), 9), int(times[0] - t0) // 10**9
(179, 5.0, 60)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import firwin, get_window

MINUTE_TAPS = 91
MINUTE_SIGMA_SAMPLES = 15.8734
SECOND_TAPS = 123
SECOND_CUTOFF_HZ = 0.25


def intermagnet_minute_window() -> np.ndarray:
    """The INTERMAGNET 1 s -> 1 min Gaussian filter (91 taps, unit sum)."""
    w = np.asarray(get_window(("gaussian", MINUTE_SIGMA_SAMPLES), MINUTE_TAPS), dtype=np.float64)
    return w / float(w.sum())


def usgs_second_window() -> np.ndarray:
    """USGS geomag-algorithms' default 10 Hz -> 1 s FIR: ``firwin(123, 0.25 Hz, blackman)``."""
    w = np.asarray(firwin(SECOND_TAPS, SECOND_CUTOFF_HZ, window="blackman", fs=10.0),
                   dtype=np.float64)
    return w / float(w.sum())


def load_fir(path: str | Path) -> np.ndarray:
    """FIR coefficients from ``{"window": [...]}`` JSON (USGS format), normalised to unit sum."""
    w = np.asarray(json.loads(Path(path).read_text())["window"], dtype=np.float64)
    return w / float(w.sum())


def decimate(start_ns: int, rate_hz: float, data: np.ndarray, window: np.ndarray,
             interval_s: float, allowed_bad: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``data`` (NaN = missing) with ``window`` centred on every multiple of
    ``interval_s`` (UTC-aligned) that the input fully covers; returns (times_ns, values)."""
    taps = len(window)
    half = taps // 2
    period_ns = 1e9 / rate_hz
    step = int(round(interval_s * rate_hz))
    interval_ns = int(round(interval_s * 1e9))
    first_centre = start_ns + half * period_ns
    t_first = -(-int(first_centre) // interval_ns) * interval_ns  # ceil to the output grid
    i_first = int(round((t_first - start_ns) / period_ns)) - half
    if i_first < 0 or i_first + taps > len(data):
        return np.empty(0, dtype=np.int64), np.empty(0)
    rows = sliding_window_view(data[i_first:], taps)[::step]
    valid = np.isfinite(rows)
    weight = valid @ window
    values = np.where(valid, rows, 0.0) @ window
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(weight >= 1.0 - allowed_bad, values / weight, np.nan)
    times = t_first + np.arange(len(out), dtype=np.int64) * interval_ns
    return times, out


def decimate_archive(path: str | Path, out: str | Path, interval_s: float,
                     fir: str | Path | None = None) -> int:
    """``geosentry decimate``: every channel under ``path`` (miniSEED or IAGA-2002) filtered to
    ``interval_s`` and written as miniSEED with the matching band code; returns channels written.
    Without ``fir``: the INTERMAGNET Gaussian for 1 min, USGS's default FIR for 1 s.
    """
    import obspy

    from geosentry.stream.decode.mseed import decode_payload, encode_traces, geomag_band_code
    from geosentry.stream.sources.files import archive_records

    st = obspy.Stream()
    for _, payload in archive_records(path):
        for r in decode_payload(payload, 0):
            st += obspy.Trace(r.data, header={
                "network": r.network, "station": r.station, "location": r.location,
                "channel": r.channel, "sampling_rate": r.sampling_rate_hz,
                "starttime": obspy.UTCDateTime(ns=r.start_ns)})
    st.merge(fill_value=np.nan)  # gaps stay gaps (NaN), the filter's bad-weight rule decides
    if fir is not None:
        window = load_fir(fir)
    else:
        window = intermagnet_minute_window() if interval_s >= 60.0 else usgs_second_window()
    result = obspy.Stream()
    for tr in st:
        data = np.ma.filled(tr.data.astype(np.float64), np.nan)
        times, values = decimate(tr.stats.starttime.ns, tr.stats.sampling_rate, data, window,
                                 interval_s)
        if not len(values):
            continue
        band = geomag_band_code(1.0 / interval_s)
        header = {"network": tr.stats.network, "station": tr.stats.station,
                  "location": tr.stats.location, "channel": band + tr.stats.channel[1:],
                  "sampling_rate": 1.0 / interval_s}
        for lo, hi in _finite_runs(values):
            result += obspy.Trace(values[lo:hi], header={
                **header, "starttime": obspy.UTCDateTime(ns=int(times[lo]))})
    Path(out).write_bytes(b"".join(encode_traces(result)))
    return len({tr.id for tr in result})


def _finite_runs(values: np.ndarray) -> list[tuple[int, int]]:
    ok = np.concatenate([[0], np.isfinite(values).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(ok))
    return list(zip(edges[::2], edges[1::2]))
