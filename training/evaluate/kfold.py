"""``python -m geosentry.training evaluate picker-kfold`` / ``detector-kfold``: k-fold cross-validation by
station of the picker (P/S F1, residuals vs tuned STA/LTA) or the RNN event detector (window event
F1, false alarms vs tuned STA/LTA).

Stations are shuffled with ``--seed`` and assigned greedily (most events first) to the fold with
the fewest events, so every event of a station lands in the same fold and folds hold about the
same number of events. For each fold the picker recipe (:class:`geosentry.training.train.picker.PickerTask`,
the *baseline* augmentation: the GAN-noise recipe of the shipped picker needs a generator trained
without the fold's stations, i.e. one GAN per fold, which the budget does not allow) is trained on
the other folds with a reduced budget (default 10 x 100 steps of 16 windows, half the shipped
picker's) and evaluated exactly like ``train picker``: thresholds and the recursive STA/LTA tuned
on training-fold windows, scored on 8 windows per held-out event (P uniformly in [1 s, 29 s]).

The detector folds train :class:`geosentry.training.train.detector.DetectorTask` (default budget 10 x 100
steps of 32 windows, 40 % of the shipped detector's 10 x 250) and evaluate like ``train
detector`` (threshold and STA/LTA tuned on training folds; 6 event + 3 noise windows per
held-out event).

Writes ``TASK_kfold.json`` / ``TASK_kfold.md`` (per fold + mean +- std over folds, std with
ddof=1) and ``TASK_kfold.png`` into ``--out``; fold runs (checkpoints, ``TASK.json``) go to
``--out/fold-K``. ``--folds-only 0,2`` trains a subset (results are merged with an earlier report
of the same settings, so an interrupted run can be completed fold by fold).
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

from geosentry.training.data.phasenet import PhaseNetEvent

log = logging.getLogger(__name__)

METRICS: tuple[tuple[str, str, str], ...] = (
    # (key in the fold summary, source phase in PickerTask.evaluate(), tolerance)
    ("P_f1_0.1s", "P", "0.1s"), ("P_f1_0.5s", "P", "0.5s"),
    ("S_f1_0.1s", "S", "0.1s"), ("S_f1_0.5s", "S", "0.5s"),
    ("STALTA_P_f1_0.1s", "stalta_P", "0.1s"), ("STALTA_P_f1_0.5s", "stalta_P", "0.5s"),
)


def station_folds(events: list[PhaseNetEvent], k: int, seed: int = 0) -> list[list[int]]:
    """``k`` lists of event indices; no station in two folds; event counts balanced greedily."""
    stations = sorted({e.station_id for e in events})
    rng = np.random.default_rng(seed)
    rng.shuffle(stations)
    counts = {s: sum(e.station_id == s for e in events) for s in stations}
    order = sorted(stations, key=lambda s: -counts[s])  # stable: ties keep the shuffled order
    folds_st: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for s in order:
        j = int(np.argmin(sizes))
        folds_st[j].append(s)
        sizes[j] += counts[s]
    return [[i for i, e in enumerate(events) if e.station_id in set(st)] for st in folds_st]


def summarise(m: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one fold's ``PickerTask.evaluate()`` that the k-fold table reports."""
    out: dict[str, Any] = {key: m[ph][tol]["f1"] for key, ph, tol in METRICS}
    for ph in ("P", "S"):
        out[f"{ph}_residual_mean_s"] = m[ph]["residual_mean_s"]
        out[f"{ph}_residual_std_s"] = m[ph]["residual_std_s"]
    out["STALTA_P_residual_mean_s"] = m["stalta_P"]["residual_mean_s"]
    out["STALTA_P_residual_std_s"] = m["stalta_P"]["residual_std_s"]
    out["P_minus_STALTA_0.5s"] = round(out["P_f1_0.5s"] - out["STALTA_P_f1_0.5s"], 4)
    out["thresholds"] = m["thresholds"]
    out["stalta_params"] = m["stalta_params"]
    out["test_windows"] = m["test_windows"]
    return out


def summarise_detector(m: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one fold's ``DetectorTask.evaluate()`` the k-fold table reports."""
    e, b = m["event"], m["stalta_event"]
    return {"event_f1": e["f1"], "event_precision": e["precision"], "event_recall": e["recall"],
            "false_alarm_rate": e["false_alarm_rate"], "STALTA_event_f1": b["f1"],
            "STALTA_false_alarm_rate": b["false_alarm_rate"],
            "event_f1_minus_STALTA": round(e["f1"] - b["f1"], 4), "step_iou": m["step_iou"],
            "threshold": m["threshold"], "stalta_params": m["stalta_params"],
            "test_windows": m["test_windows"]}


def aggregate(folds: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample std (ddof=1; 0 for one fold) of every numeric fold summary value."""
    keys = [k for k, v in next(iter(folds.values())).items() if isinstance(v, (int, float))
            and k != "test_windows"]
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        vals = np.array([f[k] for f in folds.values() if f.get(k) is not None], dtype=float)
        if vals.size:
            out[k] = {"mean": round(float(vals.mean()), 4),
                      "std": round(float(vals.std(ddof=1)) if vals.size > 1 else 0.0, 4),
                      "min": round(float(vals.min()), 4), "max": round(float(vals.max()), 4),
                      "n": int(vals.size)}
    return out


def _architecture(task: Any) -> dict[str, Any]:
    """The picker's constructor settings in force (channels, strides, ...) and its size."""
    import inspect

    sig = inspect.signature(type(task).__init__)
    keep = ("window", "batch", "lr", "sigma", "channels", "down_stride", "widen_first", "hidden")
    out: dict[str, Any] = {k: v.default for k, v in sig.parameters.items()
                           if k in keep and v.default is not inspect.Parameter.empty}
    out["params"] = int(sum(p.numel() for p in task.model.parameters()))
    return out


def run(out: Path, k: int, epochs: int, steps: int, seed: int, quick: bool = False,
        only: list[int] | None = None, task_name: str = "picker") -> dict[str, Any]:
    from geosentry.training.train.common import SeismicData, pre_event_noise
    from geosentry.training.data.phasenet import load_events
    from geosentry.training.train.loop import FitConfig, fit
    from geosentry.training.train.detector import DetectorTask
    from geosentry.training.train.picker import PickerTask

    events, source = load_events(seed=seed)
    if quick:
        events = events[:24]
    folds = station_folds(events, k, seed)
    kw: dict[str, Any] = (dict(window=400, batch=4, channels=(4, 8, 8), eval_per_event=2,
                               tune_per_event=1) if quick else {})
    if task_name == "detector":
        kw = {"quick": True} if quick else {}
    report: dict[str, Any] = {
        "task": task_name,
        "command": f"python -m geosentry.training evaluate {task_name}-kfold --folds {k} --epochs {epochs} "
                   f"--steps-per-epoch {steps} --seed {seed} --out {out}" + (" --quick" if quick else ""),
        "data_source": source, "folds": k, "seed": seed, "epochs": epochs, "steps_per_epoch": steps,
        "batch": (kw.get("batch", 16) if task_name == "picker" else (4 if quick else 32)),
        "recipe": ("picker baseline augmentation (no GAN), thresholds and STA/LTA tuned on "
                   "training-fold windows" if task_name == "picker" else
                   "detector recipe as shipped, threshold and STA/LTA tuned on training-fold windows"),
        "fold_events": [len(f) for f in folds],
        "fold_stations": [len({events[i].station_id for i in f}) for f in folds],
        "per_fold": {}}
    for j, test_idx in enumerate(folds):
        if only is not None and j not in only:
            continue
        test_set = set(test_idx)
        train = [e for i, e in enumerate(events) if i not in test_set]
        test = [events[i] for i in test_idx]
        data = SeismicData(train, test, source, pre_event_noise(train))
        torch.manual_seed(seed)
        task = PickerTask(data, **kw) if task_name == "picker" else DetectorTask(data, **kw)
        report.setdefault(task_name, _architecture(task))
        run_dir = out / f"fold-{j}"
        t0 = time.perf_counter()
        fit(task, FitConfig(epochs=epochs, steps_per_epoch=steps, seed=seed, out_dir=run_dir))
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = task.evaluate()
        eval_s = time.perf_counter() - t1
        (run_dir / f"{task_name}.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
        summary = summarise(metrics) if task_name == "picker" else summarise_detector(metrics)
        report["per_fold"][str(j)] = {**summary, "test_events": len(test),
                                      "test_stations": len({e.station_id for e in test}),
                                      "train_seconds": round(train_s, 1),
                                      "eval_seconds": round(eval_s, 1)}
        log.info("fold %d: %s", j, report["per_fold"][str(j)])
    return report


#: Markdown columns per task: (header, [(summary key, bold in the mean row), ...], signed).
COLUMNS: dict[str, list[tuple[str, list[tuple[str, bool]], bool]]] = {
    "picker": [
        ("CNN P F1 ±0.1 / ±0.5 s", [("P_f1_0.1s", False), ("P_f1_0.5s", True)], False),
        ("CNN S F1 ±0.1 / ±0.5 s", [("S_f1_0.1s", False), ("S_f1_0.5s", True)], False),
        ("STA/LTA P F1 ±0.1 / ±0.5 s", [("STALTA_P_f1_0.1s", False), ("STALTA_P_f1_0.5s", True)], False),
        ("CNN − STA/LTA P ±0.5 s", [("P_minus_STALTA_0.5s", False)], True),
        ("P resid. mean / σ (s)", [("P_residual_mean_s", False), ("P_residual_std_s", False)], False),
        ("S resid. mean / σ (s)", [("S_residual_mean_s", False), ("S_residual_std_s", False)], False),
    ],
    "detector": [
        ("RNN event F1", [("event_f1", True)], False),
        ("precision / recall", [("event_precision", False), ("event_recall", False)], False),
        ("false-alarm rate", [("false_alarm_rate", True)], False),
        ("STA/LTA F1", [("STALTA_event_f1", True)], False),
        ("STA/LTA false-alarm rate", [("STALTA_false_alarm_rate", True)], False),
        ("RNN − STA/LTA F1", [("event_f1_minus_STALTA", False)], True),
        ("step IoU", [("step_iou", False)], False),
    ],
}
#: Bars of the per-fold figure: (summary key, label).
BARS = {"picker": (("P_f1_0.5s", "CNN P"), ("S_f1_0.5s", "CNN S"), ("STALTA_P_f1_0.5s", "STA/LTA P")),
        "detector": (("event_f1", "RNN detector"), ("STALTA_event_f1", "STA/LTA"))}
TITLES = {"picker": "Picker", "detector": "RNN event detector"}


def markdown(r: dict[str, Any]) -> str:
    task = r.get("task", "picker")
    cols = COLUMNS[task]
    agg = r.get("mean_std", {})
    lines = [f"# {TITLES[task]} k-fold cross-validation by station\n",
             f"`{r['command']}` — {r['folds']} folds (events per fold {r['fold_events']}, stations "
             f"{r['fold_stations']}), {r['epochs']} x {r['steps_per_epoch']} steps of {r['batch']} "
             f"windows per fold, seed {r['seed']}; {r['recipe']}; model {r.get(task)}.\n",
             "| fold | test events / windows | " + " | ".join(c[0] for c in cols) + " | train s |",
             "|---|---|" + "---|" * len(cols) + "---|"]

    def fmt(v: Any, signed: bool) -> str:
        return "—" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")

    for j, f in r["per_fold"].items():
        cells = [" / ".join(fmt(f.get(k), signed) for k, _ in keys) for _, keys, signed in cols]
        lines.append(f"| {j} | {f['test_events']} / {f['test_windows']} | " + " | ".join(cells)
                     + f" | {f['train_seconds']} |")
    if agg:
        def ms(key: str, bold: bool) -> str:
            a = agg.get(key)
            text = "—" if a is None else f"{a['mean']:.3f} ± {a['std']:.3f}"
            return f"**{text}**" if bold and a is not None else text

        cells = [" / ".join(ms(k, b) for k, b in keys) for _, keys, _ in cols]
        lines.append("| **mean ± std** | | " + " | ".join(cells) + " | |")
    return "\n".join(lines) + "\n"


def figure(r: dict[str, Any], path: Path) -> Path | None:
    """Per-fold F1 bars (picker: ±0.5 s CNN P, CNN S, STA/LTA P; detector: RNN, STA/LTA) with
    the mean over folds as a dashed line."""
    from geosentry.training.evaluate.figures import plt_or_none

    plt = plt_or_none()
    task = r.get("task", "picker")
    if plt is None or not r["per_fold"]:
        return None
    folds = list(r["per_fold"])
    bars_spec = BARS[task]
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    width = 0.8 / len(bars_spec)
    for i, (key, label) in enumerate(bars_spec):
        vals = [r["per_fold"][f][key] for f in folds]
        xs = np.arange(len(folds)) + (i - (len(bars_spec) - 1) / 2) * width
        bars = ax.bar(xs, vals, width, label=label)
        ax.axhline(float(np.mean(vals)), color=bars[0].get_facecolor(), ls="--", lw=1)
    ax.set_xticks(np.arange(len(folds)), [f"fold {f}" for f in folds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (±0.5 s)" if task == "picker" else "window event F1")
    ax.set_title(f"{TITLES[task]} k-fold by station (dashed: mean over folds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str], task: str = "picker") -> int:
    p = argparse.ArgumentParser(prog=f"python -m geosentry.training evaluate {task}-kfold", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(f"runs/{task}-kfold"))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=100,
                   help="default 100: picker half, detector 40 %% of the shipped budget "
                        "(~2-4 min per fold on one thread)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds-only", default=None, help="comma-separated fold numbers to (re)run")
    p.add_argument("--quick", action="store_true", help="tiny data and model (smoke test)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    only = [int(x) for x in a.folds_only.split(",")] if a.folds_only else None
    report = run(a.out, a.folds, a.epochs, a.steps_per_epoch, a.seed, a.quick, only, task)
    stem = f"{task}_kfold"
    previous = a.out / f"{stem}.json"
    if only is not None and previous.exists():
        old = json.loads(previous.read_text())
        same = lambda k: old.get(k) == json.loads(json.dumps(report.get(k), default=str))  # noqa: E731
        if all(same(k) for k in ("folds", "seed", "epochs", "steps_per_epoch", "batch", task)):
            report["per_fold"] = {**old["per_fold"], **report["per_fold"]}
    report["per_fold"] = dict(sorted(report["per_fold"].items(), key=lambda kv: int(kv[0])))
    if report["per_fold"]:
        report["mean_std"] = aggregate(report["per_fold"])
    (a.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (a.out / f"{stem}.md").write_text(markdown(report))
    png = figure(report, a.out / f"{stem}.png")
    print(markdown(report))
    print(f"wrote {a.out / (stem + '.json')}, {a.out / (stem + '.md')}" + (f", {png}" if png else ""))
    return 0
