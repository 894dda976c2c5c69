"""Window cropping, normalisation and label making (numpy, shared by training and evaluation)."""

from __future__ import annotations

import numpy as np

# per-channel normalisation: the service's own (one rule for training and the service)
from geosentry.stream.inference.rules import normalise

__all__ = ["crop", "downsample_mask", "event_mask", "normalise", "pick_labels"]


def pick_labels(n: int, p: float | None, s: float | None, sigma: float = 20.0,
                shape: str = "gaussian") -> np.ndarray:
    """``(3, n)`` targets P, S, noise; picks are sample positions in the window (may be outside).

    ``gaussian``: exp(-d^2 / 2 sigma^2); ``triangle``: max(0, 1 - |d| / (2 sigma)).
    Noise = clip(1 - P - S, 0, 1).
    """
    t = np.arange(n, dtype=np.float32)
    out = np.zeros((3, n), dtype=np.float32)
    for row, pos in ((0, p), (1, s)):
        if pos is None:
            continue
        d = t - float(pos)
        if shape == "gaussian":
            out[row] = np.exp(-0.5 * (d / sigma) ** 2)
        elif shape == "triangle":
            out[row] = np.clip(1.0 - np.abs(d) / (2.0 * sigma), 0.0, 1.0)
        else:
            raise ValueError(f"unknown label shape {shape!r}")
    out[2] = np.clip(1.0 - out[0] - out[1], 0.0, 1.0)
    return out


def event_mask(n: int, p: float, s: float, coda_factor: float = 1.4) -> np.ndarray:
    """``(n,)`` 1 from P to S + coda_factor * (S - P) (CRED-style), 0 elsewhere."""
    t = np.arange(n, dtype=np.float32)
    end = s + coda_factor * max(s - p, 0.0)
    return ((t >= p) & (t <= end)).astype(np.float32)


def downsample_mask(mask: np.ndarray, step: int) -> np.ndarray:
    """Mean of ``mask`` over consecutive blocks of ``step`` samples -> ``(len // step,)``."""
    steps = mask.shape[-1] // step
    return mask[..., : steps * step].reshape(*mask.shape[:-1], steps, step).mean(axis=-1)


def crop(data: np.ndarray, offset: int, n: int) -> np.ndarray:
    """``data[:, offset:offset+n]``, zero-padded on the right if the record is too short."""
    out = data[:, offset: offset + n]
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    return out
