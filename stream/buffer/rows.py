"""Window rows from a channel's samples: the front of a stream's first window (mirrored),
resampling to a detector's rate, and where a stream's last window starts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from geosentry.stream.buffer.channel import ChannelBuffer, Segment
from geosentry.stream.records import NS_PER_S


def pad_front(samples: np.ndarray, n: int) -> np.ndarray:
    """``samples`` with ``n`` samples before them: their first samples mirrored about the first
    (a stream's first window starts on the grid point before its first sample).

    Mirrored, not held flat: a picker reads the step from a flat stretch into noise as an onset,
    and the CNN's picks came up to 7 s after that step (leave-one-network-out records through
    ``geosentry run``: 6 false S picks in 96 records). The mirror keeps the noise's
    level and spectrum across the join, and its value at the join.

    >>> pad_front(np.array([5.0, 6.0, 7.0]), 2)
    array([7., 6., 5., 6., 7.])
    >>> pad_front(np.array([5.0]), 2)   # one sample: held
    array([5., 5., 5.])
    """
    if n <= 0:
        return samples
    return np.pad(samples, (n, 0), mode="reflect" if samples.size > 1 else "edge")


def last_start_ns(bufs: Sequence[ChannelBuffer | Segment], n_window: int, rate_hz: float) -> int:
    """Start of a stream's last window (``n_window`` samples at ``rate_hz``): ending on the last
    sample every channel in ``bufs`` has (with one native sample to spare where a channel is
    resampled: resampling reads one beyond), on the first channel's sample lattice so that the
    window's times are its samples'.

    >>> class B:  # 100 Hz, from 25.0 s to 37.3 s (exclusive)
    ...     start_ns, end_ns, period_ns, rate_hz = 25 * 10**9, 37_300_000_000, 1e7, 100.0
    >>> last_start_ns([B()], 1000, 100.0), last_start_ns([B()], 2000, 200.0)
    (27300000000, 27290000000)
    """
    base = bufs[0]
    spare = max(b.period_ns for b in bufs) if any(b.rate_hz != rate_hz for b in bufs) else 0
    start_ns = (min(b.end_ns for b in bufs) - round(n_window * NS_PER_S / rate_hz)
                - round(spare))
    k = math.floor((start_ns - base.start_ns) / base.period_ns + 1e-6)
    return base.start_ns + round(k * base.period_ns)


def row(buf: ChannelBuffer | Segment, start_ns: int, n_out: int, rate_hz: float,
        first: bool = False) -> np.ndarray | None:
    """``n_out`` samples at ``rate_hz`` from ``start_ns`` (resampled from the channel's rate), or
    None where the channel lacks them; a stream's ``first`` window is padded before its first
    sample (:func:`pad_front`)."""
    i0 = buf.index_of(start_ns)
    samples = buf.samples()
    if i0 < 0:  # a stream's first window starts on the grid point before its first sample
        if not first or not len(samples):
            return None
        samples = pad_front(samples, -i0)
        i0 = 0
    if buf.rate_hz == rate_hz:
        out = samples[i0:i0 + n_out]
        return out if len(out) == n_out else None
    ratio = Fraction(rate_hz / buf.rate_hz).limit_denominator(1000)
    n_native = math.ceil(n_out * ratio.denominator / ratio.numerator)
    native = samples[i0:i0 + n_native]
    if len(native) < n_native - 1:
        return None
    offset = float(native.mean())  # resample_poly pads with zeros: no step at the edges
    resampled = resample_poly(native - offset, ratio.numerator, ratio.denominator) + offset
    return resampled[:n_out] if len(resampled) >= n_out else None
