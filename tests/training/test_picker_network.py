"""The network-imitating augmentation of ``training.train.picker_network`` (``evaluate
picker-lono --recipe network``): batches stay valid windows and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import find_peaks

from geosentry.training.train.common import prepare_seismic
from geosentry.training.train.picker_network import NetworkPickerTask, coloured_noise, response


def test_network_augmentation_gives_valid_windows_and_labels(no_shared: Path) -> None:
    data = prepare_seismic(0, limit=12)  # synthetic fallback events (no shared data here)
    task = NetworkPickerTask(data, window=400, batch=64, channels=(4, 8, 8))
    x, y = task.sample(np.random.default_rng(0))
    assert x.shape == (64, 3, 400) and y.shape == (64, 3, 400)
    assert np.isfinite(x).all() and (y >= 0).all() and (y <= 1).all()
    assert np.allclose(y.sum(axis=1)[y[:, :2].sum(axis=1) <= 1], 1.0, atol=1e-5)
    live = np.abs(x).max(axis=2) > 0
    assert np.allclose(x.std(axis=2)[live], 1.0, atol=1e-3)  # std-normalised, as the service
    p_peaks = [len(find_peaks(row[0], height=0.9, distance=50)[0]) for row in y]
    assert max(p_peaks) == 2  # some windows hold a second event's P
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 400)).astype(np.float32)
    w[1:] = 0.0
    for _ in range(8):
        out = response(w, rng)
        assert out.shape == w.shape and np.isfinite(out).all()
    noisy = coloured_noise(w, rng)
    assert (noisy[1:] == 0).all() and not np.allclose(noisy[0], w[0])  # dead rows stay dead
