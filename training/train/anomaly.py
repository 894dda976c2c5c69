"""Autoencoder anomaly models: seismic (noise-only training) and geomagnetic (quiet days).

The service scores a window by the MSE between its (normalised) input and the reconstruction;
``thresholds["anomaly"]`` is the (1 - target_far) quantile of scores on quiet training windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data.augment import Augmenter
from training.data.windows import crop, normalise
from training.export import export_model
from training.models.autoencoder import ConvAutoencoder
from training.train.common import SeismicData, cosine_lr, predict

TARGET_FAR = 0.01


def mse_scores(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Per-window mean squared reconstruction error (what the service computes)."""
    return ((predict(model, x) - x) ** 2).mean(axis=(1, 2))


class _AETask:
    """Shared AE training step (MSE on a batch from ``sample``)."""

    name = "anomaly"
    model: ConvAutoencoder
    opt: torch.optim.Optimizer
    base_lr: float

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def sample(self, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_step(self, rng: np.random.Generator, progress: float) -> dict[str, float]:
        x = torch.from_numpy(self.sample(rng))
        lr = cosine_lr(self.opt, self.base_lr, progress)
        loss = ((self.model(x) - x) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.item()), "lr": lr}


class SeismicAnomalyTask(_AETask):
    """Trained on pre-event noise only; events should reconstruct badly."""

    name = "anomaly"

    def __init__(self, data: SeismicData, window: int = 1000, batch: int = 32, lr: float = 2e-3,
                 quick: bool = False) -> None:
        self.data, self.window, self.batch, self.base_lr = data, window, batch, lr
        if quick:
            self.window, self.batch = 256, 4
        self.model = ConvAutoencoder(("Z", "N", "E"), 100.0, self.window,
                                     channels=(8, 8) if quick else (16, 32, 32))
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        self.aug = Augmenter(p_noise=0.2, p_gap=0.0)
        self.per_event = 1 if quick else 6

    def _noise_off(self, ev: Any, rng: np.random.Generator) -> int:
        return int(rng.integers(0, max(ev.itp - self.window - 50, 1)))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        xs = []
        for _ in range(self.batch):
            ev = self.data.train[int(rng.integers(len(self.data.train)))]
            xs.append(normalise(self.aug(crop(ev.data, self._noise_off(ev, rng), self.window), rng)))
        return np.stack(xs)

    def _windows(self, events: list[Any], seed: int, event: bool) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = []
        for ev in events:
            for _ in range(self.per_event):
                off = (ev.itp - int(rng.integers(100, max(self.window // 2, 101))) if event
                       else self._noise_off(ev, rng))
                out.append(crop(ev.data, int(np.clip(off, 0, ev.data.shape[1] - self.window)),
                                self.window))
        return normalise(np.stack(out))

    def validate(self) -> dict[str, float]:
        return {"noise_mse": float(mse_scores(self.model, self._windows(self.data.test, 7, False)).mean())}

    def evaluate(self) -> dict[str, Any]:
        """Threshold at ``TARGET_FAR`` on training-station noise; FAR + event hit rate on test."""
        calib = mse_scores(self.model, self._windows(self.data.train, 99, False))
        thr = float(np.quantile(calib, 1 - TARGET_FAR))
        noise = mse_scores(self.model, self._windows(self.data.test, 1234, False))
        events = mse_scores(self.model, self._windows(self.data.test, 1235, True))
        return {"threshold": round(thr, 5), "target_false_alarm_rate": TARGET_FAR,
                "test_false_alarm_rate": round(float((noise > thr).mean()), 4),
                "test_event_detection_rate": round(float((events > thr).mean()), 4),
                "test_noise_windows": int(len(noise)), "test_event_windows": int(len(events)),
                "median_score_noise": round(float(np.median(noise)), 5),
                "median_score_event": round(float(np.median(events)), 5)}

    def export(self, out_dir: str | Path, metrics: dict[str, Any], training: dict[str, Any],
               name: str = "anomaly") -> tuple[Path, Path]:
        return export_model(
            self.model, name=name, kind="anomaly", sampling_rate_hz=100.0,
            components=("Z", "N", "E"), window_samples=self.window,
            stride_samples=self.window // 2, labels=("anomaly",),
            thresholds={"anomaly": metrics.get("threshold", 1.0)}, out_dir=out_dir,
            training={**training, **self.data.summary(), "trained_on": "pre-event noise windows",
                      "score": "mean squared error of the std-normalised window"},
            metrics=metrics)


GEOMAG_COMPONENTS = ("H", "D", "Z")


def load_geomag(quick: bool = False) -> tuple[dict[str, np.ndarray], str]:
    """``{station: (3, n) H, D, Z float32 (NaN = missing)}`` from the INTERMAGNET 1 s files
    (two days concatenated), or one synthetic quiet day per pseudo-station as fallback."""
    from training.data.iaga import read_iaga2002
    from training.paths import shared_data_dir

    folder = shared_data_dir() / "geomag" / "intermagnet-1s-2014-04"
    files = sorted(folder.glob("*.sec*"))
    if not files:
        from training.data.synthetic import synthetic_geomag

        return ({f"SY{i}": synthetic_geomag(3600 * 6 if quick else 86400, seed=i) for i in range(6)},
                "fallback:synthetic")
    if quick:
        files = files[:8]
    out: dict[str, list[np.ndarray]] = {}
    for f in files:
        rec = read_iaga2002(f)
        out.setdefault(rec.station.upper(), []).append(rec.channels(GEOMAG_COMPONENTS).astype(np.float32))
    return {k: np.concatenate(v, axis=1) for k, v in out.items()}, f"intermagnet-1s:{folder}"


class GeomagAnomalyTask(_AETask):
    """1 Hz H, D, Z (IAGA-2002 units: nT, nT, and D as in the file) demeaned, no scaling by the
    service; the model scales channels internally (``channel_scale`` from training data)."""

    name = "anomaly-geomag"

    def __init__(self, seed: int = 0, window: int = 600, batch: int = 32, lr: float = 2e-3,
                 quick: bool = False, n_test: int = 3) -> None:
        self.window, self.batch, self.base_lr = window, batch, lr
        if quick:
            self.window, self.batch = 120, 4
        self.series, self.source = load_geomag(quick)
        stations = sorted(self.series)
        rng = np.random.default_rng(seed)
        rng.shuffle(stations)
        self.test_st = sorted(stations[: max(1, min(n_test, len(stations) // 3))])
        self.train_st = sorted(s for s in stations if s not in self.test_st)
        scale = self._scale()
        self.model = ConvAutoencoder(GEOMAG_COMPONENTS, 1.0, self.window,
                                     channels=(8, 8) if quick else (16, 32, 32),
                                     channel_scale=scale)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)

    def _cut(self, st: str, off: int) -> np.ndarray | None:
        x = self.series[st][:, off: off + self.window]
        if x.shape[1] < self.window or not np.isfinite(x).all():
            return None
        return x - x.mean(axis=1, keepdims=True)

    def _scale(self) -> list[float]:
        rng = np.random.default_rng(1)
        wins = [w for w in (self._cut(st, int(rng.integers(0, self.series[st].shape[1] - self.window)))
                            for st in self.train_st for _ in range(50)) if w is not None]
        std = np.median(np.stack([w.std(axis=1) for w in wins]), axis=0)
        return [float(max(s, 1e-3)) for s in std]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        xs: list[np.ndarray] = []
        while len(xs) < self.batch:
            st = self.train_st[int(rng.integers(len(self.train_st)))]
            w = self._cut(st, int(rng.integers(0, self.series[st].shape[1] - self.window)))
            if w is None:
                continue
            if rng.random() < 0.5:
                w = w[:, ::-1] - w[:, ::-1].mean(axis=1, keepdims=True)
            xs.append((w * rng.uniform(0.7, 1.3)).astype(np.float32))
        return np.stack(xs)

    def _tiled(self, stations: list[str]) -> np.ndarray:
        out = [w for st in stations for off in range(0, self.series[st].shape[1] - self.window + 1,
                                                     self.window // 2)
               if (w := self._cut(st, off)) is not None]
        return np.stack(out).astype(np.float32)

    def validate(self) -> dict[str, float]:
        x = self._tiled(self.test_st)[::8]
        return {"quiet_mse": float(mse_scores(self.model, x).mean())}

    def evaluate(self) -> dict[str, Any]:
        """Threshold = (1 - 1 %) quantile on training observatories (quiet days, stride = half a
        window); FAR on held-out observatories; hit rate for synthetic SSC-like steps in H."""
        thr = float(np.quantile(mse_scores(self.model, self._tiled(self.train_st)), 1 - TARGET_FAR))
        quiet = self._tiled(self.test_st)
        q_scores = mse_scores(self.model, quiet)
        rng = np.random.default_rng(1234)
        hits: dict[str, float] = {}
        t = np.arange(self.window, dtype=np.float32)
        for amp in (5.0, 10.0, 20.0, 40.0):
            inj = quiet.copy()
            for w in inj:
                t0 = rng.uniform(0.2, 0.8) * self.window
                rise = rng.uniform(60, 300)
                step = amp * 0.5 * (1 + np.tanh((t - t0) / (rise / 4)))
                w[0] += step
                w[2] += 0.3 * step * rng.choice([-1.0, 1.0])
            inj -= inj.mean(axis=2, keepdims=True)
            hits[f"{amp:g}nT"] = round(float((mse_scores(self.model, inj) > thr).mean()), 4)
        per_st = {st: round(float((mse_scores(self.model, self._tiled([st])) > thr).mean()), 4)
                  for st in self.test_st}
        return {"threshold": round(thr, 5), "target_false_alarm_rate": TARGET_FAR,
                "test_observatories": self.test_st, "train_observatories": self.train_st,
                "test_false_alarm_rate": round(float((q_scores > thr).mean()), 4),
                "test_false_alarm_rate_per_observatory": per_st,
                "synthetic_ssc_detection_rate": hits, "test_windows": int(len(q_scores)),
                "data_source": self.source}

    def export(self, out_dir: str | Path, metrics: dict[str, Any], training: dict[str, Any],
               name: str = "anomaly-geomag") -> tuple[Path, Path]:
        return export_model(
            self.model, name=name, kind="anomaly", sampling_rate_hz=1.0,
            components=GEOMAG_COMPONENTS, window_samples=self.window,
            stride_samples=self.window // 2, labels=("anomaly",),
            thresholds={"anomaly": metrics.get("threshold", 1.0)}, out_dir=out_dir,
            normalisation={"method": "none", "demean": True, "eps": 1e-8}, domain="geomagnetic",
            training={**training, "data_source": self.source,
                      "components": "IAGA-2002 H (nT), D (as reported in the file), Z (nT); F dropped",
                      "channel_scale": [float(v) for v in self.model.channel_scale.flatten()],
                      "train_observatories": self.train_st, "test_observatories": self.test_st,
                      "score": "mean squared error in input units (demeaned, unscaled)"},
            metrics=metrics)
