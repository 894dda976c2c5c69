"""``python -m training evaluate picker-kfold``: k-fold cross-validation of the picker by station.

Stations are shuffled with ``--seed`` and assigned greedily (most events first) to the fold with
the fewest events, so every event of a station lands in the same fold and folds hold about the
same number of events. For each fold the picker recipe (:class:`training.train.picker.PickerTask`,
the *baseline* augmentation: the GAN-noise recipe of the shipped picker needs a generator trained
without the fold's stations, i.e. one GAN per fold, which the budget does not allow) is trained on
the other folds with a reduced budget (default 10 x 100 steps of 16 windows, half the shipped
picker's) and evaluated exactly like ``train picker``: thresholds and the recursive STA/LTA tuned
on training-fold windows, scored on 8 windows per held-out event (P uniformly in [1 s, 29 s]).

Writes ``picker_kfold.json`` / ``picker_kfold.md`` (per fold + mean +- std over folds, std with
ddof=1) and ``picker_kfold.png`` into ``--out``; fold runs (checkpoints, ``picker.json``) go to
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

from training.data.phasenet import PhaseNetEvent

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
    keep = ("window", "batch", "lr", "sigma", "channels", "down_stride", "widen_first")
    out: dict[str, Any] = {k: v.default for k, v in sig.parameters.items()
                           if k in keep and v.default is not inspect.Parameter.empty}
    out["params"] = int(sum(p.numel() for p in task.model.parameters()))
    return out


def run(out: Path, k: int, epochs: int, steps: int, seed: int, quick: bool = False,
        only: list[int] | None = None) -> dict[str, Any]:
    from training.train.common import SeismicData, pre_event_noise
    from training.data.phasenet import load_events
    from training.train.loop import FitConfig, fit
    from training.train.picker import PickerTask

    events, source = load_events(seed=seed)
    if quick:
        events = events[:24]
    folds = station_folds(events, k, seed)
    kw: dict[str, Any] = (dict(window=400, batch=4, channels=(4, 8, 8), eval_per_event=2,
                               tune_per_event=1) if quick else {})
    report: dict[str, Any] = {
        "command": f"python -m training evaluate picker-kfold --folds {k} --epochs {epochs} "
                   f"--steps-per-epoch {steps} --seed {seed} --out {out}" + (" --quick" if quick else ""),
        "data_source": source, "folds": k, "seed": seed, "epochs": epochs, "steps_per_epoch": steps,
        "batch": kw.get("batch", 16), "recipe": "picker baseline augmentation (no GAN), "
        "thresholds and STA/LTA tuned on training-fold windows",
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
        task = PickerTask(data, **kw)
        report.setdefault("picker", _architecture(task))
        run_dir = out / f"fold-{j}"
        t0 = time.perf_counter()
        fit(task, FitConfig(epochs=epochs, steps_per_epoch=steps, seed=seed, out_dir=run_dir))
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = task.evaluate()
        eval_s = time.perf_counter() - t1
        (run_dir / "picker.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
        report["per_fold"][str(j)] = {**summarise(metrics), "test_events": len(test),
                                      "test_stations": len({e.station_id for e in test}),
                                      "train_seconds": round(train_s, 1),
                                      "eval_seconds": round(eval_s, 1)}
        log.info("fold %d: %s", j, report["per_fold"][str(j)])
    return report


def markdown(r: dict[str, Any]) -> str:
    agg = r.get("mean_std", {})
    lines = ["# Picker k-fold cross-validation by station\n",
             f"`{r['command']}` — {r['folds']} folds (events per fold {r['fold_events']}, stations "
             f"{r['fold_stations']}), {r['epochs']} x {r['steps_per_epoch']} steps of {r['batch']} "
             f"windows per fold, seed {r['seed']}; {r['recipe']}; picker {r.get('picker')}.\n",
             "| fold | test events / windows | CNN P F1 ±0.1 / ±0.5 s | CNN S F1 ±0.1 / ±0.5 s | "
             "STA/LTA P F1 ±0.1 / ±0.5 s | CNN − STA/LTA P ±0.5 s | P resid. mean / σ (s) | "
             "S resid. mean / σ (s) | train s |",
             "|---|---|---|---|---|---|---|---|---|"]

    def fmt(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}"

    for j, f in r["per_fold"].items():
        lines.append(
            f"| {j} | {f['test_events']} / {f['test_windows']} | {fmt(f['P_f1_0.1s'])} / "
            f"{fmt(f['P_f1_0.5s'])} | {fmt(f['S_f1_0.1s'])} / {fmt(f['S_f1_0.5s'])} | "
            f"{fmt(f['STALTA_P_f1_0.1s'])} / {fmt(f['STALTA_P_f1_0.5s'])} | "
            f"{f['P_minus_STALTA_0.5s']:+.3f} | {fmt(f['P_residual_mean_s'])} / "
            f"{fmt(f['P_residual_std_s'])} | {fmt(f['S_residual_mean_s'])} / "
            f"{fmt(f['S_residual_std_s'])} | {f['train_seconds']} |")
    if agg:
        def ms(key: str) -> str:
            a = agg.get(key)
            return "—" if a is None else f"{a['mean']:.3f} ± {a['std']:.3f}"

        lines.append(
            f"| **mean ± std** | | {ms('P_f1_0.1s')} / **{ms('P_f1_0.5s')}** | {ms('S_f1_0.1s')} / "
            f"**{ms('S_f1_0.5s')}** | {ms('STALTA_P_f1_0.1s')} / **{ms('STALTA_P_f1_0.5s')}** | "
            f"{ms('P_minus_STALTA_0.5s')} | {ms('P_residual_mean_s')} / {ms('P_residual_std_s')} | "
            f"{ms('S_residual_mean_s')} / {ms('S_residual_std_s')} | |")
    return "\n".join(lines) + "\n"


def figure(r: dict[str, Any], path: Path) -> Path | None:
    """Per-fold F1 at ±0.5 s (CNN P, CNN S, STA/LTA P) with the mean as a dashed line."""
    from training.evaluate.figures import plt_or_none

    plt = plt_or_none()
    if plt is None or not r["per_fold"]:
        return None
    folds = list(r["per_fold"])
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    width = 0.27
    for i, (key, label) in enumerate((("P_f1_0.5s", "CNN P"), ("S_f1_0.5s", "CNN S"),
                                      ("STALTA_P_f1_0.5s", "STA/LTA P"))):
        vals = [r["per_fold"][f][key] for f in folds]
        xs = np.arange(len(folds)) + (i - 1) * width
        bars = ax.bar(xs, vals, width, label=label)
        ax.axhline(float(np.mean(vals)), color=bars[0].get_facecolor(), ls="--", lw=1)
    ax.set_xticks(np.arange(len(folds)), [f"fold {f}" for f in folds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (±0.5 s)")
    ax.set_title("Picker k-fold by station (dashed: mean over folds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m training evaluate picker-kfold", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/picker-kfold"))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=100,
                   help="default 100: half the shipped picker's 200 (~4-5 min per fold on one thread)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds-only", default=None, help="comma-separated fold numbers to (re)run")
    p.add_argument("--quick", action="store_true", help="tiny data and model (smoke test)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    only = [int(x) for x in a.folds_only.split(",")] if a.folds_only else None
    report = run(a.out, a.folds, a.epochs, a.steps_per_epoch, a.seed, a.quick, only)
    previous = a.out / "picker_kfold.json"
    if only is not None and previous.exists():
        old = json.loads(previous.read_text())
        same = lambda k: old.get(k) == json.loads(json.dumps(report.get(k), default=str))  # noqa: E731
        if all(same(k) for k in ("folds", "seed", "epochs", "steps_per_epoch",
                                                      "batch", "picker")):
            report["per_fold"] = {**old["per_fold"], **report["per_fold"]}
    report["per_fold"] = dict(sorted(report["per_fold"].items(), key=lambda kv: int(kv[0])))
    if report["per_fold"]:
        report["mean_std"] = aggregate(report["per_fold"])
    (a.out / "picker_kfold.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (a.out / "picker_kfold.md").write_text(markdown(report))
    png = figure(report, a.out / "picker_kfold.png")
    print(markdown(report))
    print(f"wrote {a.out / 'picker_kfold.json'}, {a.out / 'picker_kfold.md'}" + (f", {png}" if png else ""))
    return 0
