"""Conditional GAN (noise / event) on 10.24 s peak-normalised three-component windows.

Hinge loss, Adam(2e-4, betas 0.5/0.9). Trained on three-component training-station events only
(vertical-only records would teach it all-zero horizontals). Evaluated by (a) log-PSD distance
between generated and held-out real windows per class and (b) how often the shipped picker
(``stream/models/picker.pt`` if present) finds a P in generated vs real windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geosentry.training.data.windows import crop, normalise
from geosentry.training.evaluate.picks import extract_picks
from geosentry.training.export import export_model
from geosentry.training.models.gan import Discriminator, Generator
from geosentry.training.paths import MODELS_DIR
from geosentry.training.train.common import SeismicData

LABELS = ("noise", "event")


class GanTask:
    name = "gan"

    def __init__(self, data: SeismicData, window: int = 1024, batch: int = 32,
                 quick: bool = False) -> None:
        self.data, self.window, self.batch = data, window, batch
        if quick:
            self.window, self.batch = 256, 4
        self.train_ev = [e for e in data.train if e.three_component] or data.train
        self.test_ev = [e for e in data.test if e.three_component] or data.test
        self.gen = Generator(("Z", "N", "E"), LABELS, 100.0, self.window, latent_dim=32,
                             base=16 if quick else 64, n_up=3 if quick else 5)
        self.disc = Discriminator(3, len(LABELS), (8, 8) if quick else (16, 32, 64, 64))
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=2e-4, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=2e-4, betas=(0.5, 0.9))

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"gen": self.gen, "disc": self.disc}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def _real(self, events: list[Any], rng: np.random.Generator,
              n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(n):
            ev = events[int(rng.integers(len(events)))]
            label = int(rng.random() < 0.5)
            if label:
                off = ev.itp - int(rng.integers(self.window // 10, self.window // 2))
            else:
                off = int(rng.integers(0, max(ev.itp - self.window - 50, 1)))
            off = int(np.clip(off, 0, ev.data.shape[1] - self.window))
            x = crop(ev.data, off, self.window)
            if rng.random() < 0.5:
                x = -x
            xs.append(normalise(x, "peak"))
            ys.append(label)
        return np.stack(xs), np.asarray(ys, dtype=np.int64)

    def train_step(self, rng: np.random.Generator, progress: float) -> dict[str, float]:
        x, y = self._real(self.train_ev, rng, self.batch)
        real, lab = torch.from_numpy(x), torch.from_numpy(y)
        z = torch.randn(self.batch, self.gen.latent_dim)
        fake = self.gen(z, lab)
        d_loss = F.relu(1 - self.disc(real, lab)).mean() + F.relu(1 + self.disc(fake.detach(), lab)).mean()
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = -self.disc(fake, lab).mean()
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": float(d_loss.item()), "g_loss": float(g_loss.item())}

    @torch.no_grad()
    def generate(self, label: int, n: int, seed: int = 0) -> np.ndarray:
        g = torch.Generator().manual_seed(seed)
        self.gen.eval()
        z = torch.randn(n, self.gen.latent_dim, generator=g)
        return self.gen(z, torch.full((n,), label, dtype=torch.long)).numpy()

    @staticmethod
    def _logpsd(x: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1)) ** 2
        return np.log10(spec.mean(axis=0) + 1e-10)

    def validate(self) -> dict[str, float]:
        return self._psd_distance(64)

    def _psd_distance(self, n: int) -> dict[str, float]:
        rng = np.random.default_rng(1234)
        x, y = self._real(self.test_ev, rng, 2 * n)
        out = {}
        for k, name in enumerate(LABELS):
            real = x[y == k]
            fake = self.generate(k, len(real), seed=k)
            out[f"logpsd_rmse_{name}"] = round(float(np.sqrt(np.mean(
                (self._logpsd(real) - self._logpsd(fake)) ** 2))), 4)
        return out

    def evaluate(self) -> dict[str, Any]:
        res: dict[str, Any] = self._psd_distance(128)
        picker = MODELS_DIR / "picker.pt"
        if picker.exists():
            import json

            model = torch.jit.load(str(picker), map_location="cpu").eval()
            thr = float(json.loads(picker.with_suffix(".json").read_text())["thresholds"]["P"])
            rng = np.random.default_rng(99)
            x, y = self._real(self.test_ev, rng, 128)
            sets = {"real_event": x[y == 1], "real_noise": x[y == 0],
                    "generated_event": self.generate(1, 64, 5), "generated_noise": self.generate(0, 64, 6)}
            with torch.no_grad():
                for name, arr in sets.items():
                    prob = model(torch.from_numpy(normalise(arr))).numpy()
                    hit = [extract_picks(p[0], thr).size > 0 for p in prob]
                    res[f"picker_P_rate_{name}"] = round(float(np.mean(hit)), 4)
        else:
            res["picker_check"] = "skipped: stream/models/picker.pt absent"
        return res

    def export(self, out_dir: str | Path, metrics: dict[str, Any], training: dict[str, Any],
               name: str = "generator") -> tuple[Path, Path]:
        return export_model(
            self.gen, name=name, kind="generator", sampling_rate_hz=100.0,
            components=("Z", "N", "E"), window_samples=self.window,
            stride_samples=self.window, labels=LABELS, thresholds={}, out_dir=out_dir,
            normalisation={"method": "peak", "demean": True, "eps": 1e-8},
            training={**training, **self.data.summary(),
                      "call": "forward(z: (B, latent_dim) N(0,1), label: (B,) int64 index into labels)"
                              " -> (B, C, window_samples) in [-1, 1]",
                      "latent_dim": self.gen.latent_dim, "trained_on": "three-component events only"},
            metrics=metrics)
