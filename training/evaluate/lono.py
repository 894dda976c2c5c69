"""``python -m geosentry.training evaluate picker-lono``: leave-one-network-out evaluation of the
shipped picker's recipe and of SeisBench PhaseNetLight-ETHZ on the same windows.

For each seismic network of the PhaseNet data (NC, PG, NN, PB, CI, NP, TA): the picker recipe
(:class:`geosentry.training.train.picker.PickerTask`, the shipped layout; *baseline*
augmentation, since the shipped picker's GAN noise comes from a generator trained on every
network) is trained on all the other networks and scored on that network's events: 8 windows of
3001 samples per event, P uniformly in [1 s, 29 s] (crop seed 1234). Thresholds (CNN, and
PhaseNetLight's "tuned" row) and the recursive STA/LTA are tuned on the training networks'
windows (4 per event, seed 99). PhaseNetLight-ETHZ (GPL-3.0 weights, loaded through the optional
``seisbench`` package, never vendored; trained on Swiss data, so every network here is new to
it) runs on the same windows with its own default thresholds and with tuned ones.

Headline: every event scored by a model that never saw its network, pooled over all folds
(F1 at ±0.1 / ±0.5 s, residual σ), with 95 % percentile-bootstrap intervals over events and
paired differences CNN − PhaseNetLight; then per network. Folds are written to
``--out/fold-NET/result.json`` as they finish; ``--networks NC,PG`` (re)runs some and the
report is made from every fold result in ``--out`` with the same settings (resumable). Writes
``picker_lono.json`` / ``picker_lono.md``.
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

from geosentry.training.data.windows import crop, normalise
from geosentry.training.train.tasks import PICKER_RECIPES, recipes_help
from geosentry.training.evaluate.compare import (bootstrap_f1, load_phasenetlight,
                                                 phasenetlight_probs, window_counts)
from geosentry.training.evaluate.picks import (best_threshold, extract_picks, make_pick_windows,
                                               pick_scores)
from geosentry.training.evaluate.stalta import stalta_picks, tune_stalta_picker
from geosentry.training.evaluate.timing import breakdown, markdown_lines, matched, std_diff_ci

log = logging.getLogger(__name__)
SR = 100.0
WINDOW = 3001
LABEL_SIGMA_S = 0.2  # the shipped recipe's Gaussian label width (PickerTask's sigma, 20 samples)
PICKERS = ("cnn", "phasenetlight", "phasenetlight-tuned", "stalta")
LABEL = {"cnn": "CNN picker, shipped recipe (trained without the network)",
         "phasenetlight": "SeisBench PhaseNetLight-ETHZ, its default thresholds",
         "phasenetlight-tuned": "SeisBench PhaseNetLight-ETHZ, thresholds tuned on the other "
                                "networks",
         "stalta": "recursive STA/LTA (tuned on the other networks)"}

RECIPES = {"baseline": LABEL["cnn"],
           "network": "CNN picker, shipped layout + network-imitating augmentation (trained "
                      "without the network)",
           "network-iceland": "CNN picker, shipped layout + network-imitating augmentation + "
                              "Iceland swarm (trained without the network)",
           "continuous": "CNN picker, shipped recipe with half the crops anywhere in the record "
                         "(trained without the network)",
           "early-warning": "CNN picker, shipped recipe with a third of the crops ending 0.5-3 s "
                            "after an arrival (trained without the network)"}


def _windows(events: list[Any], per_event: int, seed: int) -> tuple[list[Any], np.ndarray]:
    ws = make_pick_windows([e.itp for e in events], [e.its for e in events],
                           events[0].data.shape[1], WINDOW, per_event, seed)
    return ws, np.stack([crop(events[w.event].data, w.offset, WINDOW) for w in ws])


def _tune(prob: np.ndarray, truth: dict[str, list[Any]]) -> dict[str, float]:
    out = {}
    for k, ph in enumerate(("P", "S")):
        def f1(t: float, k: int = k, ph: str = ph) -> float:
            preds = [extract_picks(p[k], t) for p in prob]
            return float(pick_scores(truth[ph], preds, SR, (0.5,))["0.5s"]["f1"])

        out[ph] = round(best_threshold(f1, np.arange(0.1, 0.91, 0.05))[0], 2)
    return out


def _picks(prob: np.ndarray, thr: dict[str, float]) -> dict[str, list[list[int]]]:
    return {ph: [extract_picks(p[k], thr[ph]).tolist() for p in prob]
            for k, ph in enumerate(("P", "S"))}


def run_fold(net: str, events: list[Any], source: str, epochs: int, steps: int, seed: int,
             pnl: Any, quick: bool, run_dir: Path, recipe: str = "baseline",
             label_sigma_s: float = LABEL_SIGMA_S) -> dict[str, Any]:
    from geosentry.training.train.common import SeismicData, pre_event_noise, predict
    from geosentry.training.train.loop import FitConfig, fit
    from geosentry.training.train.tasks import picker_task

    train = [e for e in events if e.network != net]
    test = [e for e in events if e.network == net]
    te_w, te_raw = _windows(test, 2 if quick else 8, 1234)
    tr_w, tr_raw = _windows(train, 1 if quick else 4, 99)
    truth = {"P": [w.p for w in te_w], "S": [w.s for w in te_w]}
    tr_truth = {"P": [w.p for w in tr_w], "S": [w.s for w in tr_w]}
    result: dict[str, Any] = {
        "network": net, "test_events": len(test), "train_events": len(train),
        "test_stations": sorted({e.station_id for e in test}),
        "event_of_window": [f"{net}:{w.event}" for w in te_w], "truth": truth,
        "picks": {}, "thresholds": {}}
    torch.manual_seed(seed)
    kw: dict[str, Any] = dict(window=WINDOW, batch=4, channels=(4, 8, 8)) if quick else {}
    kw["sigma"] = label_sigma_s * SR
    data = SeismicData(train, test, source, pre_event_noise(train))
    task = picker_task(recipe, data, **kw)
    if getattr(task, "extra", None) is not None:
        result["extra_records"] = len(task.extra)
    t0 = time.perf_counter()
    fit(task, FitConfig(epochs=epochs, steps_per_epoch=steps, seed=seed, out_dir=run_dir))
    result["train_seconds"] = round(time.perf_counter() - t0, 1)
    prob, tr_prob = predict(task.model, normalise(te_raw)), predict(task.model, normalise(tr_raw))
    result["thresholds"]["cnn"] = thr = _tune(tr_prob, tr_truth)
    result["picks"]["cnn"] = _picks(prob, thr)
    if pnl is not None:
        model, sidecar = pnl
        prob, tr_prob = phasenetlight_probs(model, te_raw), phasenetlight_probs(model, tr_raw)
        default = {ph: float(sidecar["default_args"][f"{ph}_threshold"]) for ph in ("P", "S")}
        for name, t in (("phasenetlight", default), ("phasenetlight-tuned",
                                                     _tune(tr_prob, tr_truth))):
            result["thresholds"][name] = t
            result["picks"][name] = _picks(prob, t)
    params, _ = tune_stalta_picker([r[0] for r in tr_raw], tr_truth["P"], SR)
    result["thresholds"]["stalta"] = params.as_dict()
    result["picks"]["stalta"] = {"P": [stalta_picks(r[0], SR, params).tolist() for r in te_raw]}
    return result


def aggregate(folds: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    """Pooled scores over every fold's windows, bootstrap intervals over events, per network."""
    event_of = np.array([e for f in folds for e in f["event_of_window"]])
    pooled: dict[str, Any] = {}
    counts: dict[str, np.ndarray] = {}
    for name in PICKERS:
        if not all(name in f["picks"] for f in folds):
            continue
        pooled[name] = {}
        for ph in ("P", "S"):
            if ph not in folds[0]["picks"][name]:
                continue
            truth = [t for f in folds for t in f["truth"][ph]]
            preds = [np.asarray(p, dtype=np.int64) for f in folds for p in f["picks"][name][ph]]
            pooled[name][ph] = pick_scores(truth, preds, SR, (0.1, 0.5))
            for tol in (0.1, 0.5):
                counts[f"{name} {ph} {tol:g}s"] = window_counts(truth, preds, tol)
    pairs = [(f"cnn {ph} 0.5s", f"{o} {ph} 0.5s") for o in ("phasenetlight", "phasenetlight-tuned")
             for ph in ("P", "S") if f"{o} {ph} 0.5s" in counts]
    per_net = {f["network"]: {name: {ph: pick_scores(f["truth"][ph], [np.asarray(p, np.int64)
                                                                      for p in f["picks"][name][ph]],
                                                     SR, (0.1, 0.5))
                                     for ph in f["picks"][name]} for name in f["picks"]}
               for f in folds}
    return {"pooled": pooled, "bootstrap": bootstrap_f1(counts, event_of, n_boot, seed, pairs),
            "per_network": per_net, "timing": {name: {ph: _timing(folds, name, ph)
                                                      for ph in pooled[name]} for name in pooled}}


def _matched(folds: list[dict[str, Any]], name: str, ph: str) -> tuple[np.ndarray, np.ndarray]:
    """Residuals (s) of ``name``'s ``ph`` matches over every fold and the event of each."""
    truth = [t for f in folds for t in f["truth"][ph]]
    preds = [np.asarray(p, np.int64) for f in folds for p in f["picks"][name][ph]]
    idx, res = matched(truth, preds, SR)
    return res, np.array([w for f in folds for w in f["event_of_window"]])[idx]


def _timing(folds: list[dict[str, Any]], name: str, ph: str) -> dict[str, Any]:
    res, ev = _matched(folds, name, ph)
    return breakdown(res, ev, np.array([e.split(":")[0] for e in ev.tolist()]))


def against(folds: list[dict[str, Any]], other_dir: Path, n_boot: int,
            seed: int) -> dict[str, Any]:
    """Paired bootstrap differences, this run's CNN minus ``other_dir``'s, on the same windows
    (the fold results of both must hold the same windows)."""
    other = {f["network"]: f for f in (json.loads(p.read_text())
                                       for p in sorted(other_dir.glob("fold-*/result.json")))}
    missing = [f["network"] for f in folds if f["network"] not in other]
    if missing:
        raise SystemExit(f"--against {other_dir}: no fold results for {missing}")
    counts: dict[str, np.ndarray] = {}
    for tag, runs in (("this", folds), ("other", [other[f["network"]] for f in folds])):
        if [w for f in runs for w in f["event_of_window"]] != \
                [w for f in folds for w in f["event_of_window"]] or \
                [t for f in runs for t in f["truth"]["P"]] != [t for f in folds for t in f["truth"]["P"]]:
            raise SystemExit(f"--against {other_dir}: not the same windows")
        for ph in ("P", "S"):
            truth = [t for f in runs for t in f["truth"][ph]]
            preds = [np.asarray(p, np.int64) for f in runs for p in f["picks"]["cnn"][ph]]
            for tol in (0.1, 0.5):
                counts[f"{tag} {ph} {tol:g}s"] = window_counts(truth, preds, tol)
    event_of = np.array([w for f in folds for w in f["event_of_window"]])
    pairs = [(f"this {ph} {t}", f"other {ph} {t}") for ph in ("P", "S") for t in ("0.1s", "0.5s")]
    boot = bootstrap_f1(counts, event_of, n_boot, seed, pairs)
    runs = [other[f["network"]] for f in folds]
    sigma = {ph: std_diff_ci(*_matched(folds, "cnn", ph), *_matched(runs, "cnn", ph), n_boot, seed)
             for ph in ("P", "S")}
    return {"other": str(other_dir), "recipe": next(iter(other.values()))["settings"].get(
        "recipe", "baseline"), "differences": {k: v for k, v in boot.items() if " - " in k},
        "sigma_differences": sigma}


def _cell(s: dict[str, Any] | None, key: str) -> str:
    if s is None:
        return "—"
    if key == "sigma":
        return "—" if s["residual_std_s"] is None else f"{1000 * s['residual_std_s']:.0f} ms"
    return f"{s[key]['f1']:.3f}"


def markdown(r: dict[str, Any]) -> str:
    agg, boot = r["aggregate"], r["aggregate"]["bootstrap"]
    lines = ["# Leave-one-network-out: every event scored by a model that never saw its network\n",
             f"`{r['command']}`. Data: {r['data_source']}, {r['events']} events, networks "
             f"{', '.join(f'{n} ({k})' for n, k in r['network_events'].items())}; per fold the CNN "
             f"trains {r['epochs']} x {r['steps_per_epoch']} steps of {4 if r['quick'] else 16} windows "
             f"on the other networks; {2 if r['quick'] else 8} windows of 30.01 s per event, P anywhere in [1 s, 29 s]. 95 % intervals: "
             f"bootstrap over events ({r['bootstrap']} resamples).\n",
             "| picker | P F1 ±0.1 s | P F1 ±0.5 s [95 % CI] | P residual σ | S F1 ±0.1 s | "
             "S F1 ±0.5 s [95 % CI] | S residual σ |", "|---|---|---|---|---|---|---|"]
    for name, by_ph in agg["pooled"].items():
        cells = []
        for ph in ("P", "S"):
            s = by_ph.get(ph)
            b = boot.get(f"{name} {ph} 0.5s")
            ci = f" [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}]" if b else ""
            cells += [_cell(s, "0.1s"), (_cell(s, "0.5s") + ci) if s else "—", _cell(s, "sigma")]
        label = LABEL[name] if name != "cnn" else RECIPES[r.get("recipe", "baseline")]
        if name == "cnn" and r.get("label_sigma_s") is not None:
            label += f", labels σ {r['label_sigma_s']:g} s"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    diffs = [(k, v) for k, v in boot.items() if " - " in k]
    if diffs:
        lines += ["", "| paired difference at ±0.5 s | F1 diff | 95 % CI |", "|---|---|---|"]
        lines += [f"| {k.replace(' 0.5s', '')} | {v['diff']:+.3f} | [{v['ci95'][0]:+.3f}, "
                  f"{v['ci95'][1]:+.3f}] |" for k, v in diffs]
    lines += ["", "Per held-out network (F1 ±0.5 s, P / S):", "",
              "| network | events | " + " | ".join(agg["pooled"]) + " |",
              "|---|---|" + "---|" * len(agg["pooled"])]
    for net, by_name in agg["per_network"].items():
        cells = [" / ".join(_cell(by_name.get(n, {}).get(ph), "0.5s") for ph in ("P", "S")
                            if ph in by_name.get(n, {})) for n in agg["pooled"]]
        lines.append(f"| {net} | {r['network_events'][net]} | " + " | ".join(cells) + " |")
    if r.get("against"):
        lines += ["", f"CNN of this run minus the CNN of `{r['against']['other']}` (recipe "
                  f"{r['against']['recipe']}), same windows, paired bootstrap:", "",
                  "| difference | F1 diff | 95 % CI |", "|---|---|---|"]
        lines += [f"| {k.split(' - ')[0].replace('this ', '')} | {v['diff']:+.3f} | "
                  f"[{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] |"
                  for k, v in r["against"]["differences"].items()]
        lines += [f"| {ph} residual σ | {1000 * v['diff_s']:+.1f} ms | [{1000 * v['ci95_s'][0]:+.1f}, "
                  f"{1000 * v['ci95_s'][1]:+.1f}] ms |"
                  for ph, v in r["against"].get("sigma_differences", {}).items()]
    lines += markdown_lines(agg.get("timing", {}), {"cnn": "CNN", "phasenetlight": "PhaseNetLight",
                                                    "phasenetlight-tuned": "PhaseNetLight tuned",
                                                    "stalta": "STA/LTA"})
    for k, why in r.get("skipped", {}).items():
        lines.append(f"\n{k} skipped: {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from geosentry.training.data.phasenet import load_events

    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate picker-lono",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/picker-lono"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=200, help="default: the shipped budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--networks", help="comma-separated networks to (re)run (default: all)")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--no-seisbench", action="store_true", help="leave PhaseNetLight out")
    p.add_argument("--quick", action="store_true", help="tiny model, 2 windows per event")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: the report from the fold results already in --out")
    p.add_argument("--against", type=Path, metavar="DIR",
                   help="another picker-lono --out (same windows, e.g. another recipe): paired "
                        "bootstrap differences of the two CNNs")
    p.add_argument("--recipe", choices=tuple(PICKER_RECIPES), default="baseline",
                   help=recipes_help("CNN training recipe: "))
    p.add_argument("--label-sigma-s", type=float, default=LABEL_SIGMA_S,
                   help="σ of the CNN's Gaussian P/S training labels, seconds (default: the "
                        "shipped recipe's 0.2 s)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    events, source = load_events(seed=a.seed)
    nets: dict[str, int] = {}
    for e in events:
        nets[e.network] = nets.get(e.network, 0) + 1
    nets = dict(sorted(nets.items(), key=lambda kv: -kv[1]))
    todo = [] if a.report_only else a.networks.split(",") if a.networks else list(nets)
    unknown = set(todo) - set(nets)
    if unknown:
        raise SystemExit(f"--networks {sorted(unknown)} not in the data ({list(nets)})")
    loaded = "disabled (--no-seisbench)" if a.no_seisbench else load_phasenetlight()
    pnl = None if isinstance(loaded, str) else loaded
    settings = {"epochs": a.epochs, "steps_per_epoch": a.steps_per_epoch, "seed": a.seed,
                "quick": a.quick, "phasenetlight": pnl is not None, "recipe": a.recipe}
    if a.label_sigma_s != LABEL_SIGMA_S:  # folds written before the option match the default
        settings["label_sigma_s"] = a.label_sigma_s
    for net in todo:
        d = a.out / f"fold-{net}"
        d.mkdir(parents=True, exist_ok=True)
        fold = run_fold(net, events, source, a.epochs, a.steps_per_epoch, a.seed, pnl, a.quick, d,
                        a.recipe, a.label_sigma_s)
        (d / "result.json").write_text(json.dumps({"settings": settings, **fold}) + "\n")
        log.info("fold %s done (%s s)", net, fold["train_seconds"])
    folds = []
    for net in nets:
        f = a.out / f"fold-{net}" / "result.json"
        if f.exists() and {"recipe": "baseline",  # folds written before --recipe existed
                           **(r := json.loads(f.read_text()))["settings"]} == settings:
            folds.append(r)
    if not folds:
        raise SystemExit(f"picker-lono: no fold results in {a.out} with these settings {settings} "
                         "(a report needs the options the folds were run with)")
    report = {"command": "python -m geosentry.training evaluate picker-lono "
                         f"--epochs {a.epochs} --steps-per-epoch {a.steps_per_epoch} --seed {a.seed}"
                         + (" --no-seisbench" if a.no_seisbench else "")
                         + (" --quick" if a.quick else "")
                         + (f" --recipe {a.recipe}" if a.recipe != "baseline" else "")
                         + (f" --label-sigma-s {a.label_sigma_s:g}"
                            if a.label_sigma_s != LABEL_SIGMA_S else "")
                         + f" --out {a.out}",
              "data_source": source, "events": sum(f["test_events"] for f in folds),
              "network_events": {f["network"]: f["test_events"] for f in folds},
              "folds_missing": [n for n in nets if n not in {f["network"] for f in folds}],
              **settings, "bootstrap": a.bootstrap,
              "skipped": {} if pnl is not None else {"phasenetlight": loaded},
              "train_seconds": {f["network"]: f["train_seconds"] for f in folds},
              "thresholds": {f["network"]: f["thresholds"] for f in folds}}
    report["aggregate"] = aggregate(folds, a.bootstrap, a.seed)
    if a.against is not None:
        report["against"] = against(folds, a.against, a.bootstrap, a.seed)
    (a.out / "picker_lono.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (a.out / "picker_lono.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {a.out / 'picker_lono.json'} and {a.out / 'picker_lono.md'}")
    return 0
