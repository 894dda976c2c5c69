"""The picker recipe with augmentation that imitates other networks (``--recipe network`` of
``evaluate picker-lono``): on top of :class:`~geosentry.training.train.picker.PickerTask`'s
augmentation, per training window and with these probabilities

* instrument response (0.5): a random Butterworth band (high-pass 0.5-5 Hz, low-pass 8-40 Hz,
  order 2-4; short-period, broadband, band-limited digitisers), or the record differentiated or
  integrated once (velocity <-> acceleration: strong-motion and seismometer channels);
* clipping (0.1): the record clipped at 20-80 % of its peak (saturated old digitisers);
* a second event (0.2): another training record's window added at 0.1-1x its amplitude at a
  random shift, with its P and S labels (swarms, aftershocks);
* a station's noise floor (0.2): coloured noise (AR(1), coefficient 0.5-0.99) at 0-20 dB SNR;
* optionally a second region's records (``extra``, e.g. the Iceland swarm), their labels as wide
  as their automatic picks are uncertain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from geosentry.training.data.windows import crop, normalise, pick_labels
from geosentry.training.train.picker import PickerTask

SR = 100.0


def response(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        sos = butter(int(rng.integers(2, 5)), float(rng.uniform(0.5, 5.0)), "highpass", fs=SR,
                     output="sos")
    elif kind == 1:
        sos = butter(int(rng.integers(2, 5)), float(rng.uniform(8.0, 40.0)), "lowpass", fs=SR,
                     output="sos")
    elif kind == 2:
        return np.gradient(x, axis=1).astype(np.float32)
    else:
        y = np.cumsum(x - x.mean(axis=1, keepdims=True), axis=1)
        t = np.arange(x.shape[1])
        return (y - np.polyval(np.polyfit(t, y.T, 1), t[:, None]).T).astype(np.float32)
    return sosfilt(sos, x, axis=1).astype(np.float32)


def coloured_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c, n = x.shape
    a = float(rng.uniform(0.5, 0.99))
    w = rng.standard_normal((c, n)).astype(np.float32)
    noise = lfilter([1.0], [1.0, -a], w, axis=1).astype(np.float32)
    snr = 10 ** (rng.uniform(0.0, 20.0) / 20.0)
    sig = x.std(axis=1, keepdims=True)
    live = np.abs(x).max(axis=1, keepdims=True) > 0
    return x + noise / (noise.std(axis=1, keepdims=True) + 1e-12) * sig / snr * live


class NetworkPickerTask(PickerTask):
    """:class:`PickerTask` with the network-imitating augmentation (module docstring);
    ``extra`` records (a second region: :func:`geosentry.training.data.iceland.load_iceland`)
    are drawn for ``extra_share`` of the windows, their label width following each pick's error
    (``pick_error_s``, at least the recipe's sigma)."""

    def __init__(self, data: Any, extra: list[Any] | None = None, extra_share: float = 0.3,
                 **kw: Any) -> None:
        super().__init__(data, **kw)
        self.extra, self.extra_share = list(extra or []), extra_share

    def _labels(self, ev: Any, off: int) -> np.ndarray:
        n = self.window
        err = getattr(ev, "pick_error_s", None)
        if not err:
            return pick_labels(n, ev.itp - off, ev.its - off, self.sigma)
        sp = max(self.sigma, (err.get("P") or 0.0) * SR)
        ss = max(self.sigma, (err.get("S") or 0.0) * SR)
        y = pick_labels(n, ev.itp - off, None, sp)
        y[1] = pick_labels(n, None, ev.its - off if ev.its > 0 else None, ss)[1]
        y[2] = np.clip(1.0 - y[0] - y[1], 0.0, 1.0)
        return y

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        n = self.window
        for _ in range(self.batch):
            ev, off = self._crop(rng)
            x = crop(ev.data, off, n).astype(np.float32)
            y = self._labels(ev, off)
            if rng.random() < 0.2:
                ev2, off2 = self._crop(rng)
                x2 = crop(ev2.data, off2, n).astype(np.float32)
                x2 = x2 - x2.mean(axis=1, keepdims=True)
                scale = rng.uniform(0.1, 1.0) * (x.std() + 1e-9) / (x2.std() + 1e-9)
                x = x - x.mean(axis=1, keepdims=True) + scale * x2
                y2 = self._labels(ev2, off2)
                y[:2] = np.maximum(y[:2], y2[:2])
                y[2] = np.clip(1.0 - y[0] - y[1], 0.0, 1.0)
            x = self.aug(x, rng)
            if rng.random() < 0.5:
                x = response(x, rng)
            if rng.random() < 0.1:
                peak = np.abs(x).max(axis=1, keepdims=True) * rng.uniform(0.2, 0.8)
                x = np.clip(x, -peak, peak)
            if rng.random() < 0.2:
                x = coloured_noise(x, rng)
            xs.append(normalise(x))
            ys.append(y)
        return np.stack(xs), np.stack(ys)

    def _crop(self, rng: np.random.Generator) -> tuple[Any, int]:
        n = self.window
        pool = self.extra if self.extra and rng.random() < self.extra_share else self.data.train
        ev = pool[int(rng.integers(len(pool)))]
        length = ev.data.shape[1]
        off = ev.itp - int(rng.integers(20, n - 20)) if rng.random() < 0.85 else \
            int(rng.integers(0, length - n + 1))
        return ev, int(np.clip(off, 0, length - n))

    def export(self, out_dir: Any, metrics: dict[str, Any], training: dict[str, Any],
               name: str = "picker") -> tuple[Any, Any]:
        extra = {"recipe": "network-imitating augmentation (training.train.picker_network)"}
        if self.extra:
            extra["data_source_extra"] = (f"iceland-2014-dike ({len(self.extra)} records, "
                                          f"share {self.extra_share})")
        return super().export(out_dir, metrics, {**training, **extra}, name)

