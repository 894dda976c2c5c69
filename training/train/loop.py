"""A small resumable training loop: fixed seed, progress with ETA, checkpoint every epoch.

A :class:`Task` owns its modules, optimizers and data sampling; :func:`fit` runs
``epochs x steps_per_epoch`` calls of ``task.train_step(rng, progress)`` (``progress`` in [0, 1] drives LR schedules), then ``task.validate()`` and a
checkpoint (modules, optimizers, numpy + torch RNG state, history) at the end of every epoch.
``resume=True`` restarts after the last completed epoch, so an interrupted run loses at most one
epoch and continues bit-for-bit on the same random stream.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


class Task(Protocol):
    """What :func:`fit` needs from a training task."""

    name: str

    def modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(self, rng: np.random.Generator, progress: float) -> dict[str, float]: ...

    def validate(self) -> dict[str, float]: ...


@dataclass
class FitConfig:
    epochs: int = 10
    steps_per_epoch: int = 100
    seed: int = 0
    out_dir: Path = Path("runs/default")
    resume: bool = False
    log_every: int = 20
    threads: int = 1


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; return the numpy Generator used for data sampling."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def checkpoint_path(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoint.pt"


def save_checkpoint(task: Task, out_dir: Path, epoch: int, rng: np.random.Generator,
                    history: list[dict[str, Any]]) -> Path:
    """Atomically write ``out_dir/checkpoint.pt`` (write to tmp, then rename)."""
    path = checkpoint_path(out_dir)
    state = {
        "epoch": epoch,
        "modules": {k: m.state_dict() for k, m in task.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in task.optimizers().items()},
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "history": history,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(task: Task, out_dir: Path,
                    rng: np.random.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Restore ``task`` and ``rng`` from ``out_dir/checkpoint.pt``; returns (epoch, history)."""
    state = torch.load(checkpoint_path(out_dir), map_location="cpu", weights_only=False)
    for k, m in task.modules().items():
        m.load_state_dict(state["modules"][k])
    for k, o in task.optimizers().items():
        o.load_state_dict(state["optimizers"][k])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), list(state["history"])


def fit(task: Task, cfg: FitConfig) -> list[dict[str, Any]]:
    """Train ``task``; returns the per-epoch history (also written to ``history.json``)."""
    torch.set_num_threads(cfg.threads)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = seed_everything(cfg.seed)
    start_epoch = 0
    history: list[dict[str, Any]] = []
    if cfg.resume and checkpoint_path(out_dir).exists():
        start_epoch, history = load_checkpoint(task, out_dir, rng)
        _say(f"[{task.name}] resumed from {checkpoint_path(out_dir)} after epoch {start_epoch}")
    total = (cfg.epochs - start_epoch) * cfg.steps_per_epoch
    total_all = cfg.epochs * cfg.steps_per_epoch
    done_before = start_epoch * cfg.steps_per_epoch
    t0 = time.perf_counter()
    done = 0
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        for m in task.modules().values():
            m.train()
        sums: dict[str, float] = {}
        for step in range(1, cfg.steps_per_epoch + 1):
            losses = task.train_step(rng, (done_before + done + 0.5) / max(total_all, 1))
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            done += 1
            if step % cfg.log_every == 0 or step == cfg.steps_per_epoch:
                el = time.perf_counter() - t0
                eta = el / done * (total - done)
                avg = " ".join(f"{k}={v / step:.4f}" for k, v in sums.items())
                _say(f"[{task.name}] epoch {epoch}/{cfg.epochs} step {step}/{cfg.steps_per_epoch} "
                     f"{avg} elapsed {_fmt(el)} eta {_fmt(eta)}")
        for m in task.modules().values():
            m.eval()
        with torch.no_grad():
            val = task.validate()
        rec: dict[str, Any] = {"epoch": epoch, **{k: v / cfg.steps_per_epoch for k, v in sums.items()},
                               **{f"val_{k}": v for k, v in val.items()},
                               "elapsed_s": round(time.perf_counter() - t0, 1)}
        history.append(rec)
        save_checkpoint(task, out_dir, epoch, rng, history)
        (out_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
        _say(f"[{task.name}] epoch {epoch} done: " + json.dumps(rec))
    return history


def _say(msg: str) -> None:
    """Progress goes to stderr (not through logging, to avoid double lines under basicConfig)."""
    print(msg, file=sys.stderr, flush=True)
