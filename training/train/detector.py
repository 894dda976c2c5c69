"""Train, evaluate and export the CRED-class (conv + BiGRU) event detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geosentry.training.data.augment import Augmenter
from geosentry.training.data.windows import crop, downsample_mask, event_mask, normalise
from geosentry.training.evaluate.picks import best_threshold, detection_scores
from geosentry.training.evaluate.stalta import tuned_stalta_detection
from geosentry.training.export import export_model
from geosentry.training.models.rnn import EventDetector
from geosentry.training.train.common import SeismicData, cosine_lr, predict

SR = 100.0
COMPONENTS = ("Z", "N", "E")


class DetectorTask:
    """Per-step BCE on event masks (P .. S + 1.4 (S - P)); 30 % pure pre-event noise windows."""

    name = "detector"

    def __init__(self, data: SeismicData, window: int = 2000, batch: int = 32, lr: float = 3e-3,
                 quick: bool = False) -> None:
        self.data, self.window, self.batch, self.base_lr = data, window, batch, lr
        if quick:
            self.window, self.batch = 500, 4
        self.model = EventDetector(COMPONENTS, SR, self.window, hidden=8 if quick else 32)
        self.step = self.model.output_step_samples
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        self.aug = Augmenter(noise_bank=data.noise_bank)
        self._test_per_event = 2 if quick else 6
        self._test = self._windows(data.test, seed=1234, per_event=self._test_per_event)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def _noise_offset_max(self, ev: Any) -> int:
        return ev.itp - self.window - 20

    def _target(self, ev: Any, off: int) -> np.ndarray:
        m = event_mask(self.window, ev.itp - off, ev.its - off)
        return downsample_mask(m, self.step).astype(np.float32)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        n = self.window
        for _ in range(self.batch):
            ev = self.data.train[int(rng.integers(len(self.data.train)))]
            length = ev.data.shape[1]
            hi = self._noise_offset_max(ev)
            if rng.random() < 0.3 and hi > 0:
                off = int(rng.integers(0, hi + 1))
            elif rng.random() < 0.8:
                off = ev.itp - int(rng.integers(20, n - 20))
            else:
                off = int(rng.integers(0, length - n + 1))
            off = int(np.clip(off, 0, length - n))
            xs.append(normalise(self.aug(crop(ev.data, off, n), rng)))
            ys.append(self._target(ev, off)[None])
        return np.stack(xs), np.stack(ys)

    def train_step(self, rng: np.random.Generator, progress: float) -> dict[str, float]:
        x, y = self.sample(rng)
        lr = cosine_lr(self.opt, self.base_lr, progress)
        loss = F.binary_cross_entropy_with_logits(self.model.logits(torch.from_numpy(x)),
                                                  torch.from_numpy(y))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.item()), "lr": lr}

    def _windows(self, events: list[Any], seed: int,
                 per_event: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per event: ``per_event`` windows with P in [1 s, N - 5 s] (positives) and
        ``per_event // 2`` pre-event noise windows (negatives). Returns raw, normalised,
        window truth, per-step targets."""
        rng = np.random.default_rng(seed)
        raws, truth, targets = [], [], []
        n = self.window
        for ev in events:
            length = ev.data.shape[1]
            offs = [(ev.itp - int(rng.integers(100, max(n - 500, 101))), True)
                    for _ in range(per_event)]
            hi = self._noise_offset_max(ev)
            offs += [(int(rng.integers(0, hi + 1)), False) for _ in range(per_event // 2) if hi > 0]
            for off, pos in offs:
                off = int(np.clip(off, 0, length - n))
                raws.append(crop(ev.data, off, n))
                truth.append(pos)
                targets.append(self._target(ev, off))
        raw = np.stack(raws)
        return raw, normalise(raw), np.asarray(truth), np.stack(targets)

    def _test_counts(self, ev: Any) -> list[int]:
        """One entry per window :meth:`_windows` cuts from held-out ``ev`` (events first, then
        noise when the record has room for it)."""
        per_event = self._test_per_event
        return [0] * (per_event + (per_event // 2 if self._noise_offset_max(ev) > 0 else 0))

    def validate(self) -> dict[str, float]:
        _, x, _, y = self._test
        p = torch.from_numpy(predict(self.model, x)[:, 0]).clamp(1e-6, 1 - 1e-6)
        return {"loss": float(F.binary_cross_entropy(p, torch.from_numpy(y)).item())}

    def evaluate(self) -> dict[str, Any]:
        """Window-level event F1 on held-out stations; threshold + STA/LTA tuned on train."""
        tr_raw, tr_x, tr_t, _ = self._windows(self.data.train, seed=99, per_event=2)
        te_raw, te_x, te_t, te_y = self._test
        tr_s = predict(self.model, tr_x)[:, 0].max(axis=1)
        te_prob = predict(self.model, te_x)[:, 0]
        te_s = te_prob.max(axis=1)
        grid = np.arange(0.05, 0.96, 0.05)
        thr, _ = best_threshold(lambda t: detection_scores(tr_t, tr_s, t)["f1"], grid)
        res: dict[str, Any] = {"threshold": round(thr, 2),
                               "event": detection_scores(te_t, te_s, thr),
                               "test_windows": int(len(te_t)), "test_positive": int(te_t.sum())}
        step_pred = te_prob >= thr
        step_true = te_y >= 0.5
        tp = int((step_pred & step_true).sum())
        res["step_iou"] = round(tp / max(int((step_pred | step_true).sum()), 1), 4)
        base = tuned_stalta_detection([r[0] for r in tr_raw], tr_t, [r[0] for r in te_raw], te_t, SR)
        res["stalta_event"] = base["scores"]
        res["stalta_params"] = base["params"]
        res["beats_stalta"] = bool(res["event"]["f1"] > res["stalta_event"]["f1"])
        res["beats_stalta_rule"] = "event F1 > tuned STA/LTA event F1 on the same held-out windows"
        from geosentry.training.evaluate.compare import detection_bootstrap

        ev_of = np.concatenate([[k] * (len(self._test_counts(ev))) for k, ev in enumerate(self.data.test)])
        if len(ev_of) == len(te_t):
            res["bootstrap_f1"] = detection_bootstrap(
                te_t, {"detector": te_s >= thr,
                       "stalta": base["test_scores"] >= res["stalta_event"]["threshold"]}, ev_of)
            res["bootstrap_rule"] = "95 % percentile intervals, 2000 resamples of held-out events"
        self._last = {"truth": np.asarray(te_t, bool), "score": te_s, "threshold": thr}
        return res

    def figures(self, out_dir: str | Path) -> list[Path]:
        """After :meth:`evaluate`: ``detector_scores.png`` (held-out window max probability,
        noise vs event windows) and ``detector_pr_threshold.png`` (held-out precision / recall /
        F1 vs threshold; dotted: the threshold tuned on training stations)."""
        from geosentry.training.evaluate.figures import pr_vs_threshold, score_histograms

        last = getattr(self, "_last", None)
        if not last:
            return []
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        t, sc, thr = last["truth"], last["score"], last["threshold"]
        paths = [score_histograms({"noise windows": sc[~t], "event windows": sc[t]},
                                  out / "detector_scores.png", thr,
                                  "RNN detector: max event probability per held-out window", log_x=False),
                 pr_vs_threshold({"detector": lambda x: detection_scores(t, sc, x)},
                                 np.arange(0.05, 0.96, 0.05), out / "detector_pr_threshold.png",
                                 {"detector": thr}, "Held-out window detection vs threshold")]
        return [p for p in paths if p is not None]

    def export(self, out_dir: str | Path, metrics: dict[str, Any], training: dict[str, Any],
               name: str = "detector") -> tuple[Path, Path]:
        return export_model(
            self.model, name=name, kind="detector", sampling_rate_hz=SR, components=COMPONENTS,
            window_samples=self.window, stride_samples=self.window // 2, labels=("event",),
            thresholds={"event": metrics.get("threshold", 0.5)}, out_dir=out_dir,
            output_step_samples=self.step,
            training={**training, **self.data.summary(),
                      "label": "event mask from P to S + 1.4 (S - P), mean per output step",
                      "params": sum(p.numel() for p in self.model.parameters())},
            metrics=metrics)
