"""``python -m geosentry.training evaluate gan-augmentation``: does the GAN earn its place as augmentation?

Trains the picker recipe (:class:`geosentry.training.train.picker.PickerTask`) once per *arm*, each with
the same seed (same station split, same initial weights, same fit seed), the same budget
(``--epochs`` x ``--steps-per-epoch``, batch 16) and the same held-out evaluation
(``PickerTask.evaluate``: thresholds tuned on training-station windows, P/S F1 on the 160
held-out-station windows). Arms:

* ``baseline``  -- the shipped recipe (real pre-event noise / white noise mixing, gain, polarity,
  channel drop, gaps).
* ``gan-noise`` -- as baseline, plus the generator's *noise* class: half of the noise-mixing bank
  is generated noise, and 10 % of training windows are generated noise alone (labelled noise).
* ``gan-full``  -- as ``gan-noise``, plus the generator's *event* class: 4 of the 16 windows of
  every step (a quarter of the batch) are generated events (1024 samples) whose P / S labels come from the shipped picker
  (teacher; it and the generator saw training stations only). Still 16 windows per step.

The generator is ``stream/models/generator.pt``; its contract must list the same test stations
as the picker split (checked), so no held-out station leaks through it. Writes
``gan_augmentation.json`` and ``gan_augmentation.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geosentry.training.data.augment import Augmenter
from geosentry.training.data.windows import normalise, pick_labels
from geosentry.training.evaluate.picks import extract_picks
from geosentry.training.paths import MODELS_DIR
from geosentry.training.train.common import SeismicData, cosine_lr
from geosentry.training.train.picker import PickerTask

log = logging.getLogger(__name__)
ARMS = ("baseline", "gan-noise", "gan-full")


def _jit(path: Path) -> torch.jit.ScriptModule:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval()


@torch.no_grad()
def generate_bank(generator: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated noise and ``n`` generated event windows ``(n, 3, W)`` (fixed seed)."""
    gen = _jit(generator)
    g = torch.Generator().manual_seed(seed)
    latent = int(gen.latent_dim)
    noise = gen(torch.randn(n, latent, generator=g), torch.zeros(n, dtype=torch.long))
    events = gen(torch.randn(n, latent, generator=g), torch.ones(n, dtype=torch.long))
    return noise.numpy().astype(np.float32), events.numpy().astype(np.float32)


@torch.no_grad()
def teacher_labels(events: np.ndarray, picker: Path) -> list[tuple[int, int | None]]:
    """P (and S, if above threshold) sample of each generated event by the shipped picker: the
    event sits in the middle of a zero-padded picker window (zeros = missing data, as trained).
    Events without a P pick get ``(-1, None)``."""
    model = _jit(picker)
    contract = json.loads(picker.with_suffix(".json").read_text())
    n_win, thr = int(contract["window_samples"]), contract["thresholds"]
    w = events.shape[-1]
    off = (n_win - w) // 2
    padded = np.zeros((len(events), events.shape[1], n_win), np.float32)
    padded[:, :, off: off + w] = events
    out: list[tuple[int, int | None]] = []
    for i in range(0, len(padded), 32):
        prob = model(torch.from_numpy(normalise(padded[i: i + 32]))).numpy()[:, :, off: off + w]
        for p in prob:
            ps = extract_picks(p[0], float(thr["P"]))
            ss = extract_picks(p[1], float(thr["S"]))
            if ps.size == 0:
                out.append((-1, None))
                continue
            p_idx = int(ps[np.argmax(p[0][ps])])
            later = ss[ss > p_idx]
            out.append((p_idx, int(later[np.argmax(p[1][later])]) if later.size else None))
    return out


class GanAugmentedPicker(PickerTask):
    """The picker recipe with generated noise (and optionally generated events) mixed in."""

    def __init__(self, data: SeismicData, gan_noise: np.ndarray, gan_events: np.ndarray | None = None,
                 event_labels: list[tuple[int, int | None]] | None = None, p_gan_noise: float = 0.1,
                 n_gan_events: int | None = None, **kw: Any) -> None:
        super().__init__(data, **kw)
        k = max(len(data.noise_bank), 1)
        bank = [g for g in gan_noise[:k]]
        self.gan_noise = list(gan_noise)
        self.aug = Augmenter(noise_bank=list(data.noise_bank) + bank)
        self.p_gan_noise = p_gan_noise
        self.gan_events: list[tuple[np.ndarray, int, int | None]] = []
        if gan_events is not None and event_labels is not None:
            self.gan_events = [(x, p, s) for x, (p, s) in zip(gan_events, event_labels) if p >= 0]
        n_ev = max(self.batch // 4, 1) if n_gan_events is None else n_gan_events
        self.n_gan_events = n_ev if self.gan_events else 0

    def _gan_noise_window(self, rng: np.random.Generator) -> np.ndarray:
        seg = self.gan_noise[int(rng.integers(len(self.gan_noise)))]
        reps = int(np.ceil(self.window / seg.shape[1])) + 1
        tiled = np.concatenate([seg, seg[:, ::-1]] * reps, axis=1)  # mirrored: no jumps
        start = int(rng.integers(0, tiled.shape[1] - self.window))
        return tiled[:, start: start + self.window]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, y = super().sample(rng)
        for i in range(len(x)):
            if rng.random() < self.p_gan_noise:
                x[i] = normalise(self.aug(self._gan_noise_window(rng), rng))
                y[i] = pick_labels(self.window, None, None, self.sigma)
        return x, y

    def _gan_event_batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(self.n_gan_events):
            w, p, s = self.gan_events[int(rng.integers(len(self.gan_events)))]
            xs.append(normalise(self.aug(w, rng)))
            ys.append(pick_labels(w.shape[1], p, s, self.sigma))
        return np.stack(xs), np.stack(ys)

    def train_step(self, rng: np.random.Generator, progress: float) -> dict[str, float]:
        if not self.n_gan_events:
            return super().train_step(rng, progress)
        full = self.batch
        self.batch = full - self.n_gan_events  # same 16 windows per step
        try:
            x, y = self.sample(rng)
        finally:
            self.batch = full
        xe, ye = self._gan_event_batch(rng)
        lr = cosine_lr(self.opt, self.base_lr, progress)

        def ce(xb: np.ndarray, yb: np.ndarray) -> torch.Tensor:
            logits = self.model.logits(torch.from_numpy(xb))
            return -(torch.from_numpy(yb) * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

        loss = (len(x) * ce(x, y) + len(xe) * ce(xe, ye)) / (len(x) + len(xe))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.item()), "lr": lr}


ARM_RECIPES = {
    "baseline": "shipped picker augmentation only",
    "gan-noise": "plus generator.pt noise: half the noise-mixing bank, 10 % of windows generated "
                 "noise alone",
    "gan-full": "gan-noise plus a quarter of each batch generated events labelled by the shipped "
                "picker (teacher)",
}


def write_run_json(run: Path, arm: str, epochs: int, steps: int, seed: int, quick: bool) -> None:
    """``run.json`` of an arm, so ``python -m geosentry.training export picker --run RUN`` records how the
    weights were trained (command and augmentation) in the exported contract."""
    run.mkdir(parents=True, exist_ok=True)
    cmd = (f"python -m geosentry.training evaluate gan-augmentation --arms {arm} --epochs {epochs} "
           f"--steps-per-epoch {steps} --seed {seed} --out {run.parent}" + (" --quick" if quick else ""))
    (run / "run.json").write_text(json.dumps(
        {"command": cmd, "seed": seed, "epochs": epochs, "steps_per_epoch": steps, "threads": 1,
         "augmentation": f"{arm}: {ARM_RECIPES[arm]}"}, indent=2) + "\n")


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"thresholds": m["thresholds"]}
    for ph in ("P", "S"):
        for tol in ("0.1s", "0.5s"):
            out[f"{ph}_f1_{tol}"] = m[ph][tol]["f1"]
        out[f"{ph}_precision_0.5s"] = m[ph]["0.5s"]["precision"]
        out[f"{ph}_recall_0.5s"] = m[ph]["0.5s"]["recall"]
    return out


def run(out: Path, epochs: int, steps: int, seed: int, arms: tuple[str, ...], quick: bool = False,
        generator: Path = MODELS_DIR / "generator.pt", picker: Path = MODELS_DIR / "picker.pt",
        n_bank: int = 512) -> dict[str, Any]:
    from geosentry.training.train.common import prepare_seismic
    from geosentry.training.train.loop import FitConfig, fit

    data = prepare_seismic(seed, limit=24 if quick else None)
    gen_contract = json.loads(generator.with_suffix(".json").read_text())
    gen_test = sorted(gen_contract.get("training", {}).get("test_stations", []))
    split_ok = gen_test == sorted({e.station_id for e in data.test})
    if not quick and not split_ok:
        raise SystemExit(f"{generator.name} was trained on another split (test stations {gen_test}); "
                         "retrain it with this seed first")
    gen_noise, gen_events = generate_bank(generator, 32 if quick else n_bank, seed + 7)
    labels = teacher_labels(gen_events, picker)
    kw: dict[str, Any] = (dict(window=400, batch=4, channels=(4, 8, 8), eval_per_event=2,
                               tune_per_event=1) if quick else {})
    report: dict[str, Any] = {
        "command": f"python -m geosentry.training evaluate gan-augmentation --epochs {epochs} "
                   f"--steps-per-epoch {steps} --seed {seed} --arms ARM --out {out}"
                   + (" --quick" if quick else "") + f"  (ARM in {', '.join(ARMS)}; one "
                   "invocation per arm or several comma-separated, results merged)",
        "seed": seed, "epochs": epochs, "steps_per_epoch": steps, "batch": kw.get("batch", 16),
        "split": data.summary(), "generator": str(generator), "generator_split_matches": split_ok,
        "generated_events_with_teacher_P": f"{sum(p >= 0 for p, _ in labels)}/{len(labels)}",
        "generated_events_with_teacher_S": f"{sum(s is not None for _, s in labels)}/{len(labels)}",
        "arms": {}}
    for arm in arms:
        torch.manual_seed(seed)  # same initial weights in every arm
        if arm == "baseline":
            task: PickerTask = PickerTask(data, **kw)
        elif arm == "gan-noise":
            task = GanAugmentedPicker(data, gen_noise, **kw)
        elif arm == "gan-full":
            task = GanAugmentedPicker(data, gen_noise, gen_events, labels, **kw)
        else:
            raise SystemExit(f"unknown arm {arm!r} (known: {ARMS})")
        write_run_json(out / arm, arm, epochs, steps, seed, quick)
        t0 = time.perf_counter()
        fit(task, FitConfig(epochs=epochs, steps_per_epoch=steps, seed=seed, out_dir=out / arm))
        train_s = time.perf_counter() - t0
        metrics = task.evaluate()
        (out / arm / "picker.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
        report["arms"][arm] = {**_summary(metrics), "train_seconds": round(train_s, 1)}
        log.info("%s: %s", arm, report["arms"][arm])
    _deltas(report)
    return report


def _deltas(report: dict[str, Any]) -> None:
    base = report["arms"].get("baseline")
    if base:
        for r in report["arms"].values():
            r["P_f1_0.5s_minus_baseline"] = round(r["P_f1_0.5s"] - base["P_f1_0.5s"], 4)
            r["S_f1_0.5s_minus_baseline"] = round(r["S_f1_0.5s"] - base["S_f1_0.5s"], 4)


def markdown(r: dict[str, Any]) -> str:
    lines = ["# GAN augmentation vs none (picker, held-out stations)\n",
             f"`{r['command']}` — {r['epochs']} x {r['steps_per_epoch']} steps, batch {r['batch']}, "
             f"seed {r['seed']}, test events {r['split']['test_events']}; generated events with a "
             f"teacher P: {r['generated_events_with_teacher_P']}\n",
             "| arm | P F1 ±0.1 / ±0.5 s | S F1 ±0.1 / ±0.5 s | P prec / rec ±0.5 s | "
             "S prec / rec ±0.5 s | thresholds P / S | ΔP / ΔS vs baseline (±0.5 s) | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, a in r["arms"].items():
        lines.append(
            f"| {arm} | {a['P_f1_0.1s']:.3f} / {a['P_f1_0.5s']:.3f} | {a['S_f1_0.1s']:.3f} / "
            f"{a['S_f1_0.5s']:.3f} | {a['P_precision_0.5s']:.3f} / {a['P_recall_0.5s']:.3f} | "
            f"{a['S_precision_0.5s']:.3f} / {a['S_recall_0.5s']:.3f} | {a['thresholds']['P']} / "
            f"{a['thresholds']['S']} | {a.get('P_f1_0.5s_minus_baseline', 0):+.3f} / "
            f"{a.get('S_f1_0.5s_minus_baseline', 0):+.3f} | {a['train_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate gan-augmentation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/gan-augmentation"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=100,
                   help="default 100: half the shipped picker's 200 (both arms alike)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {ARMS}")
    p.add_argument("--generator", type=Path, default=MODELS_DIR / "generator.pt")
    p.add_argument("--picker", type=Path, default=MODELS_DIR / "picker.pt", help="teacher for gan-full")
    p.add_argument("--quick", action="store_true", help="tiny data and model (smoke test)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    report = run(a.out, a.epochs, a.steps_per_epoch, a.seed, tuple(a.arms.split(",")), a.quick,
                 a.generator, a.picker)
    previous = a.out / "gan_augmentation.json"
    if previous.exists():  # arms run in separate invocations (same settings) share one report
        old = json.loads(previous.read_text())
        same = all(old.get(k) == report[k] for k in ("seed", "epochs", "steps_per_epoch", "batch"))
        if same:
            report["arms"] = {**{k: v for k, v in old["arms"].items() if k not in report["arms"]},
                              **report["arms"]}
            report["arms"] = {k: report["arms"][k] for k in ARMS if k in report["arms"]}
            _deltas(report)
    (a.out / "gan_augmentation.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (a.out / "gan_augmentation.md").write_text(markdown(report))
    print(markdown(report))
    return 0
