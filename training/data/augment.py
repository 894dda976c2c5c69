"""Waveform augmentation: noise mixing, amplitude scaling, polarity, channel drop, gaps.

Time shift is done by cropping at random offsets (see :mod:`geosentry.training.train.tasks`). All operations
act on a raw ``(C, N)`` window *before* normalisation, as the service normalises after.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Augmenter:
    """Randomised augmentations; probabilities are per window. ``noise_bank`` holds real
    pre-event noise segments ``(C, M)`` to mix in (optional)."""

    p_noise: float = 0.4
    snr_db: tuple[float, float] = (0.0, 30.0)
    p_gain: float = 0.5
    gain_range: tuple[float, float] = (0.5, 2.0)
    p_polarity: float = 0.5
    p_drop_horizontals: float = 0.25
    p_drop_one: float = 0.1
    p_gap: float = 0.1
    gap_samples: tuple[int, int] = (10, 300)
    noise_bank: list[np.ndarray] = field(default_factory=list)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.float32, copy=True)
        x -= x.mean(axis=1, keepdims=True)
        c, n = x.shape
        live = np.abs(x).max(axis=1) > 0
        if rng.random() < self.p_noise:
            x = self.mix_noise(x, rng, live)
        if rng.random() < self.p_gain:
            x *= rng.uniform(*self.gain_range, size=(c, 1)).astype(np.float32)
        if rng.random() < self.p_polarity:
            x *= -1.0
        if c >= 3 and rng.random() < self.p_drop_horizontals:
            x[1:] = 0.0
        elif c >= 2 and rng.random() < self.p_drop_one:
            x[rng.integers(1, c)] = 0.0
        if rng.random() < self.p_gap:
            length = int(rng.integers(*self.gap_samples))
            start = int(rng.integers(0, max(n - length, 1)))
            x[:, start: start + length] = 0.0
        return x

    def mix_noise(self, x: np.ndarray, rng: np.random.Generator, live: np.ndarray) -> np.ndarray:
        """Add real (from ``noise_bank``) or white noise at a random SNR on the live channels."""
        c, n = x.shape
        if self.noise_bank and rng.random() < 0.7:
            seg = self.noise_bank[int(rng.integers(len(self.noise_bank)))]
            reps = int(np.ceil(n / seg.shape[1])) + 1
            tiled = np.concatenate([seg, seg[:, ::-1]] * reps, axis=1)
            start = int(rng.integers(0, tiled.shape[1] - n))
            noise = tiled[:c, start: start + n].astype(np.float32)
            noise = noise - noise.mean(axis=1, keepdims=True)
        else:
            noise = rng.standard_normal((c, n)).astype(np.float32)
        snr = 10 ** (rng.uniform(*self.snr_db) / 20.0)
        sig = x.std(axis=1, keepdims=True)
        nstd = noise.std(axis=1, keepdims=True) + 1e-12
        noise = noise / nstd * (sig / snr)
        return x + noise * live[:, None]
