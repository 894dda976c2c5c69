"""Shared parts of the autoencoder anomaly tasks: the false-alarm target, the score (the
service's rule), the dead-channel test and the plain reconstruction training step.
"""

from __future__ import annotations

import numpy as np
import torch

from geosentry.stream.inference.rules import anomaly_scores
from geosentry.training.models.autoencoder import ConvAutoencoder
from geosentry.training.train.common import cosine_lr, predict

TARGET_FAR = 0.01


def flat_lined(raw: np.ndarray, min_run: int = 100) -> np.ndarray:
    """``(M,)`` bool: a channel that is not all zeros (all zeros = missing component) holds one
    value for ``min_run`` consecutive samples or more (a dead / clipped channel, not quiet data)."""
    out = np.zeros(len(raw), bool)
    for i, w in enumerate(raw):
        for ch in w:
            if not np.any(ch):
                continue
            change = np.flatnonzero(np.diff(ch) != 0)
            runs = np.diff(np.concatenate([[-1], change, [len(ch) - 1]]))
            if runs.max() >= min_run:
                out[i] = True
                break
    return out


def mse_scores(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Per-window anomaly scores of ``model`` on normalised windows ``x``: the service's own
    score (``geosentry.stream.inference.rules.anomaly_scores``, reconstruction MSE)."""
    return anomaly_scores(predict(model, x), x)


class AETask:
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

