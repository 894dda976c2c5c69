"""Shared pieces of the training tasks: data preparation, batching, LR schedule, predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from geosentry.training.data.phasenet import PhaseNetEvent, load_events, station_split


@dataclass
class SeismicData:
    """Station-held-out split of the event records plus a bank of real pre-event noise."""

    train: list[PhaseNetEvent]
    test: list[PhaseNetEvent]
    source: str
    noise_bank: list[np.ndarray] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "data_source": self.source,
            "split": "station-held-out",
            "train_events": len(self.train), "test_events": len(self.test),
            "train_stations": len({e.station_id for e in self.train}),
            "test_stations": sorted({e.station_id for e in self.test}),
            "test_vertical_only_events": sum(not e.three_component for e in self.test),
        }


def pre_event_noise(events: list[PhaseNetEvent], margin: int = 100) -> list[np.ndarray]:
    """Pre-P segments ``(3, itp - margin)`` of three-component events (demeaned)."""
    out = []
    for e in events:
        if e.three_component and e.itp - margin > 500:
            seg = e.data[:, : e.itp - margin].astype(np.float32)
            out.append(seg - seg.mean(axis=1, keepdims=True))
    return out


def prepare_seismic(seed: int = 0, test_fraction: float = 0.2, root: str | None = None,
                    limit: int | None = None) -> SeismicData:
    """Load PhaseNet (or the fallback) and split by station with ``seed``."""
    events, source = load_events(root, seed=seed)
    if limit is not None:
        events = events[:limit]
    train, test = station_split(events, test_fraction, seed=seed)
    if not test:  # tiny subsets (tests): still hold something out
        train, test = events[:-1], events[-1:]
    return SeismicData(train, test, source, pre_event_noise(train))


def cosine_lr(opt: torch.optim.Optimizer, base_lr: float, progress: float,
              warmup: float = 0.03, floor: float = 0.05) -> float:
    """Linear warm-up then cosine decay to ``floor * base_lr``; sets and returns the LR."""
    if progress < warmup:
        lr = base_lr * (0.1 + 0.9 * progress / warmup)
    else:
        t = (progress - warmup) / max(1.0 - warmup, 1e-9)
        lr = base_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
    for g in opt.param_groups:
        g["lr"] = lr
    return lr


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Run ``model`` (eval mode) on ``x`` ``(M, C, N)`` in batches; numpy out."""
    model.eval()
    outs = [model(torch.from_numpy(np.ascontiguousarray(x[i: i + batch]))).numpy()
            for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)
