"""Fallback data when ``../shared/data`` is absent: ObsPy's bundled example + synthetic events.

The synthetic events mimic the PhaseNet layout (Z, N, E rows, 9001 samples at 100 Hz, P at
3000) so every training task runs unchanged. Numbers from them say nothing about real data.
"""

from __future__ import annotations

import numpy as np

from geosentry.training.data.phasenet import PhaseNetEvent

N_SAMPLES = 9001
P_INDEX = 3000


def obspy_noise() -> np.ndarray | None:
    """ObsPy's bundled 3-component example (Z, N, E), demeaned and unit-std, or None."""
    try:
        import obspy

        st = obspy.read()  # bundled example: BW.RJOB EHZ/EHN/EHE, 100 Hz, 30 s
        rows = []
        for comp in "ZNE":
            tr = st.select(component=comp)[0]
            d = tr.data.astype(np.float64)[:1000]  # first 10 s: before the example's event
            d = d - d.mean()
            rows.append(d / (d.std() + 1e-12))
        return np.stack(rows).astype(np.float32)
    except Exception:  # any problem just means "no ObsPy noise"
        return None


def _wavelet(n: int, onset: int, freq: float, decay: float, rng: np.random.Generator) -> np.ndarray:
    t = (np.arange(n) - onset) / 100.0
    env = np.where(t >= 0, np.exp(-np.clip(t, 0, None) / decay) * (1 - np.exp(-np.clip(t, 0, None) * 20)), 0.0)
    phase = rng.uniform(0, 2 * np.pi)
    return env * np.sin(2 * np.pi * freq * t + phase)


def synthetic_event(rng: np.random.Generator, index: int,
                    noise: np.ndarray | None = None, vertical_only: bool = False) -> PhaseNetEvent:
    """One synthetic P+S event on (ObsPy-derived or white) noise."""
    its = P_INDEX + int(rng.integers(80, 900))
    if noise is not None:
        reps = N_SAMPLES // noise.shape[1] + 2
        base = np.concatenate([noise, noise[:, ::-1]] * reps, axis=1)
        start = int(rng.integers(0, base.shape[1] - N_SAMPLES))
        data = base[:, start: start + N_SAMPLES].astype(np.float64).copy()
        data += 0.3 * rng.standard_normal(data.shape)
    else:
        data = rng.standard_normal((3, N_SAMPLES))
    amp_p, amp_s = 10 ** rng.uniform(0.3, 1.5), 10 ** rng.uniform(0.6, 2.0)
    fp, fs = rng.uniform(4, 12), rng.uniform(1.5, 6)
    for row, (wp, ws) in enumerate(((1.0, 0.3), (0.4, 1.0), (0.4, 1.0))):
        data[row] += wp * amp_p * _wavelet(N_SAMPLES, P_INDEX, fp, 1.5, rng)
        data[row] += ws * amp_s * _wavelet(N_SAMPLES, its, fs, 4.0, rng)
    if vertical_only:
        data[1:] = 0.0
    sta = f"S{index % 16:02d}"
    return PhaseNetEvent(f"SY_{sta}_{index:06d}.npz", "SY", sta, data.astype(np.float32),
                         P_INDEX, its, "SYZ" if vertical_only else "SYE_SYN_SYZ", "synthetic")


def fallback_events(n: int = 64, seed: int = 0) -> list[PhaseNetEvent]:
    """``n`` synthetic events over 16 pseudo-stations (40 % vertical-only, like PhaseNet's set)."""
    rng = np.random.default_rng(seed)
    noise = obspy_noise()
    return [synthetic_event(rng, i, noise, vertical_only=rng.random() < 0.4) for i in range(n)]


def synthetic_geomag(n_seconds: int = 86400, seed: int = 0) -> np.ndarray:
    """Quiet-day-like 1 Hz H, E, Z variations ``(3, n)``: red noise + slow daily drift (nT-ish)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_seconds) / 86400.0
    out = []
    for amp in (20.0, 5.0, 10.0):
        walk = np.cumsum(rng.standard_normal(n_seconds)) * 0.05
        walk -= np.linspace(walk[0], walk[-1], n_seconds)
        out.append(amp * np.sin(2 * np.pi * t + rng.uniform(0, 6.3)) + walk
                   + 0.05 * rng.standard_normal(n_seconds))
    return np.stack(out).astype(np.float32)
