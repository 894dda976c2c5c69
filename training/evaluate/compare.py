"""``python -m geosentry.training evaluate picker-compare``: the shipped picker, tuned STA/LTA and SeisBench
PhaseNetLight side by side on the same held-out windows, with bootstrap confidence intervals.

Windows are exactly those of ``train picker``'s evaluation (seed-0 station split, 8 windows of
3001 samples per held-out event with P uniformly in [1 s, 29 s], crop seed 1234); the split is
checked against the shipped picker's contract. Pickers:

* ``cnn`` -- ``stream/models/picker.pt`` (TorchScript) with its contract's normalisation and
  thresholds (tuned on training-station windows when it was trained).
* ``stalta`` -- recursive STA/LTA on Z, grid-tuned for P F1 on training-station windows
  (:func:`geosentry.training.evaluate.stalta.tune_stalta_picker`), P only.
* ``phasenetlight`` -- SeisBench ``PhaseNetLight`` with the ETHZ weights (GPL-3.0) loaded at run
  time from ``<shared>/reference/seisbench-phasenetlight-ethz`` through the optional
  ``seisbench`` package (never vendored). Its sidecar says 3001 samples, 100 Hz, component
  order ZNE, phases PSN, norm "peak": each window is demeaned and divided by its per-channel peak
  (SeisBench's ``annotate_batch_pre``); outputs are P, S, N probabilities like ours. Two rows:
  the sidecar's default thresholds, and thresholds tuned on our training-station windows with
  the same rule as the CNN. Off the shelf: trained on Swiss data, not fine-tuned.

Confidence intervals: percentile bootstrap over held-out *events* (all windows of a resampled
event go together, since they share the waveform), ``--bootstrap`` resamples (default 2000),
fixed seed; paired differences (CNN minus each other picker) use the same resamples.
Writes ``picker_compare.{json,md}``, ``picker_compare_residuals.png`` and
``picker_compare_pr.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from geosentry.training.data.windows import crop, normalise
from geosentry.training.evaluate.picks import (best_threshold, extract_picks, make_pick_windows,
                                     matched_residuals, pick_scores)
from geosentry.training.evaluate.stalta import stalta_picks, tune_stalta_picker
from geosentry.training.paths import MODELS_DIR, shared_data_dir

log = logging.getLogger(__name__)
SR = 100.0
WINDOW = 3001
TOLERANCES = (0.1, 0.5)
PNL_DIR = "reference/seisbench-phasenetlight-ethz"


def load_phasenetlight(folder: Path | None = None) -> tuple[Any, dict[str, Any]] | str:
    """``(model, sidecar)`` or the reason it cannot be loaded (no seisbench / no weights)."""
    folder = folder or shared_data_dir() / PNL_DIR
    sidecar = folder / "ethz.json.v2"
    if not sidecar.exists():
        return f"PhaseNetLight weights not found ({sidecar} absent)"
    try:
        import seisbench.models as sbm
    except ImportError as e:  # optional dependency
        return f"seisbench not installed ({e}); pip install seisbench to compare"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sbm.PhaseNetLight.load(str(folder / "ethz"), version_str="2")
    model.eval()
    return model, json.loads(sidecar.read_text())


@torch.no_grad()
def phasenetlight_probs(model: Any, raw: np.ndarray, batch: int = 32) -> np.ndarray:
    """``(M, 3, 3001)`` raw Z, N, E windows -> ``(M, 3, 3001)`` P, S, N probabilities.

    Prepared as SeisBench does for this model (demean, per-channel peak; the sidecar's
    ``component_order`` ZNE is our row order; ``phases`` PSN is our label order)."""
    if raw.shape[1:] != (3, int(model.in_samples)):
        raise ValueError(f"PhaseNetLight wants (M, 3, {model.in_samples}), got {raw.shape}")
    x = raw.astype(np.float32) - raw.mean(axis=-1, keepdims=True, dtype=np.float64).astype(np.float32)
    x = x / (np.abs(x).max(axis=-1, keepdims=True) + 1e-10)
    outs = [model(torch.from_numpy(np.ascontiguousarray(x[i: i + batch]))).numpy()
            for i in range(0, len(x), batch)]
    return np.concatenate(outs).astype(np.float32)


@torch.no_grad()
def torchscript_probs(path: Path, raw: np.ndarray, batch: int = 32) -> tuple[np.ndarray, dict[str, Any]]:
    """Run a shipped picker on raw windows as the service does (contract normalisation)."""
    contract = json.loads(path.with_suffix(".json").read_text())
    norm = contract["normalisation"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.jit.load(str(path), map_location="cpu").eval()
    x = normalise(raw, norm["method"], norm.get("demean", True), norm.get("eps", 1e-8))
    outs = [model(torch.from_numpy(np.ascontiguousarray(x[i: i + batch]))).numpy()
            for i in range(0, len(x), batch)]
    return np.concatenate(outs), contract


def window_counts(truth: list[int | None], preds: list[np.ndarray], tol_s: float) -> np.ndarray:
    """Per window ``(tp, fp, fn)`` at ``tol_s`` (the rule of :func:`pick_scores`), ``(M, 3)``."""
    out = np.zeros((len(truth), 3), dtype=np.int64)
    for i, (t, pr) in enumerate(zip(truth, preds)):
        hit = False
        if t is not None and pr.size:
            hit = bool(np.min(np.abs(pr - t)) <= tol_s * SR)
        out[i] = (int(hit), int(pr.size) - int(hit), int(t is not None and not hit))
    return out


def _f1(c: np.ndarray) -> np.ndarray:
    """F1 from summed counts ``(..., 3)``."""
    tp, fp, fn = c[..., 0].astype(float), c[..., 1].astype(float), c[..., 2].astype(float)
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def bootstrap_f1(counts: dict[str, np.ndarray], event_of_window: np.ndarray, n_boot: int = 2000,
                 seed: int = 0, pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Percentile 95 % intervals of F1 for every ``counts[name]`` ``(M, 3)`` (tp, fp, fn per window),
    resampling events with replacement; ``pairs`` ``(a, b)`` also get intervals of F1(a) - F1(b)
    on the same resamples."""
    events = np.unique(event_of_window)
    per_event = {k: np.stack([c[event_of_window == e].sum(axis=0) for e in events])
                 for k, c in counts.items()}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(events), size=(n_boot, len(events)))
    f1s = {k: _f1(v[idx].sum(axis=1)) for k, v in per_event.items()}
    out: dict[str, Any] = {}
    for k, v in f1s.items():
        lo, hi = np.percentile(v, [2.5, 97.5])
        out[k] = {"f1": round(float(_f1(counts[k].sum(axis=0))), 4),
                  "ci95": [round(float(lo), 4), round(float(hi), 4)]}
    for a, b in pairs or []:
        d = f1s[a] - f1s[b]
        lo, hi = np.percentile(d, [2.5, 97.5])
        out[f"{a} - {b}"] = {"diff": round(float(_f1(counts[a].sum(0)) - _f1(counts[b].sum(0))), 4),
                             "ci95": [round(float(lo), 4), round(float(hi), 4)],
                             "p_le_0": round(float((d <= 0).mean()), 4)}
    return out


def detection_counts(truth: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Per window ``(tp, fp, fn)`` of a window-level detector, ``(M, 3)``."""
    t, f = np.asarray(truth, bool), np.asarray(flagged, bool)
    return np.stack([f & t, f & ~t, ~f & t], axis=1).astype(np.int64)


def detection_bootstrap(truth: np.ndarray, flagged: dict[str, np.ndarray], event_of_window: np.ndarray,
                        n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Event-bootstrap 95 % intervals of window-detection F1 for each detector in ``flagged``
    (name -> bool per window) and of the first one minus each other."""
    counts = {k: detection_counts(truth, v) for k, v in flagged.items()}
    names = list(flagged)
    return bootstrap_f1(counts, np.asarray(event_of_window), n_boot, seed,
                        [(names[0], b) for b in names[1:]])


def _tune(prob: np.ndarray, truth: list[int | None], k: int) -> float:
    def f1(thr: float) -> float:
        return pick_scores(truth, [extract_picks(p[k], thr) for p in prob], SR, (0.5,))["0.5s"]["f1"]

    return round(best_threshold(f1, np.arange(0.1, 0.91, 0.05))[0], 2)


def run(out: Path, seed: int = 0, picker: Path = MODELS_DIR / "picker.pt", n_boot: int = 2000,
        use_seisbench: bool = True, quick: bool = False, pnl_dir: Path | None = None) -> dict[str, Any]:
    from geosentry.training.train.common import prepare_seismic

    data = prepare_seismic(seed, limit=24 if quick else None)
    per_event = 2 if quick else 8
    test_w = make_pick_windows([e.itp for e in data.test], [e.its for e in data.test],
                               data.test[0].data.shape[1], WINDOW, per_event, 1234)
    train_w = make_pick_windows([e.itp for e in data.train], [e.its for e in data.train],
                                data.train[0].data.shape[1], WINDOW, 1 if quick else 4, 99)
    te_raw = np.stack([crop(data.test[w.event].data, w.offset, WINDOW) for w in test_w])
    tr_raw = np.stack([crop(data.train[w.event].data, w.offset, WINDOW) for w in train_w])
    truth = {"P": [w.p for w in test_w], "S": [w.s for w in test_w]}
    tr_truth = {"P": [w.p for w in train_w], "S": [w.s for w in train_w]}
    event_of = np.array([w.event for w in test_w])

    report: dict[str, Any] = {
        "command": f"python -m geosentry.training evaluate picker-compare --seed {seed} --bootstrap {n_boot} "
                   f"--out {out}" + (" --quick" if quick else ""),
        "split": data.summary(), "test_windows": len(test_w), "windows_per_event": per_event,
        "bootstrap": {"resamples": n_boot, "unit": "held-out event (all its windows)",
                      "interval": "percentile 2.5-97.5", "seed": seed},
        "pickers": {}, "skipped": {}}
    preds: dict[str, dict[str, list[np.ndarray]]] = {}
    probs: dict[str, np.ndarray] = {}
    thresholds: dict[str, dict[str, float]] = {}

    if picker.exists():
        prob, contract = torchscript_probs(picker, te_raw)
        test_st = sorted(contract.get("training", {}).get("test_stations", []))
        report["cnn_split_matches_contract"] = test_st == sorted({e.station_id for e in data.test})
        if not quick and not report["cnn_split_matches_contract"]:
            log.warning("%s was trained on another split: its numbers here are not held-out", picker)
        thr = {k: float(v) for k, v in contract["thresholds"].items() if k in ("P", "S")}
        probs["cnn"], thresholds["cnn"] = prob, thr
        preds["cnn"] = {ph: [extract_picks(p[k], thr[ph]) for p in prob] for k, ph in enumerate(("P", "S"))}
        report["pickers"]["cnn"] = {"model": str(picker), "sha256": contract.get("sha256"),
                                    "thresholds": thr, "threshold_source": "shipped contract"}
    else:
        report["skipped"]["cnn"] = f"{picker} absent"

    params, train_f1 = tune_stalta_picker([r[0] for r in tr_raw], tr_truth["P"], SR)
    preds["stalta"] = {"P": [stalta_picks(r[0], SR, params) for r in te_raw]}
    report["pickers"]["stalta"] = {"params": params.as_dict(), "train_P_f1_0.5s": round(train_f1, 4)}

    loaded = load_phasenetlight(pnl_dir) if use_seisbench else "disabled (--no-seisbench)"
    if isinstance(loaded, str):
        report["skipped"]["phasenetlight"] = loaded
        log.warning("PhaseNetLight skipped: %s", loaded)
    else:
        model, sidecar = loaded
        prob = phasenetlight_probs(model, te_raw)
        tr_prob = phasenetlight_probs(model, tr_raw)
        default = {"P": float(sidecar["default_args"]["P_threshold"]),
                   "S": float(sidecar["default_args"]["S_threshold"])}
        tuned = {ph: _tune(tr_prob, tr_truth[ph], k) for k, ph in enumerate(("P", "S"))}
        probs["phasenetlight"] = prob
        for name, thr in (("phasenetlight", default), ("phasenetlight-tuned", tuned)):
            thresholds[name] = thr
            preds[name] = {ph: [extract_picks(p[k], thr[ph]) for p in prob]
                           for k, ph in enumerate(("P", "S"))}
        import seisbench

        common = {"weights": str(pnl_dir or shared_data_dir() / PNL_DIR), "seisbench": seisbench.__version__,
                  "model_args": sidecar.get("model_args"), "licence": "GPL-3.0 (loaded at run time, not vendored)"}
        report["pickers"]["phasenetlight"] = {**common, "thresholds": default,
                                              "threshold_source": "SeisBench sidecar default_args"}
        report["pickers"]["phasenetlight-tuned"] = {**common, "thresholds": tuned,
                                                    "threshold_source": "tuned on training-station windows "
                                                                        "(as the CNN)"}

    counts: dict[str, np.ndarray] = {}
    residuals: dict[str, list[float]] = {}
    for name, by_phase in preds.items():
        for ph, pr in by_phase.items():
            report["pickers"][name][ph] = pick_scores(truth[ph], pr, SR, TOLERANCES)
            residuals[f"{name} {ph}"] = matched_residuals(truth[ph], pr, SR, 0.5)
            for tol in TOLERANCES:
                counts[f"{name} {ph} {tol:g}s"] = window_counts(truth[ph], pr, tol)
    pairs = [(f"cnn {ph} {tol:g}s", f"{other} {ph} {tol:g}s") for other in preds if other != "cnn"
             for ph in ("P", "S") for tol in TOLERANCES
             if "cnn" in preds and f"{other} {ph} {tol:g}s" in counts]
    report["bootstrap_f1"] = bootstrap_f1(counts, event_of, n_boot, seed, pairs)
    _figures(out, residuals, probs, truth, thresholds)
    return report


def _figures(out: Path, residuals: dict[str, list[float]], probs: dict[str, np.ndarray],
             truth: dict[str, list[int | None]], thresholds: dict[str, dict[str, float]]) -> None:
    from geosentry.training.evaluate.figures import pr_vs_threshold, residual_histograms

    out.mkdir(parents=True, exist_ok=True)
    residual_histograms(residuals, out / "picker_compare_residuals.png",
                        "Held-out pick residuals (predicted − true) within ±0.5 s")
    curves: dict[str, Callable[[float], dict[str, Any]]] = {}
    chosen: dict[str, float] = {}
    for name, prob in probs.items():
        for k, ph in enumerate(("P", "S")):
            def curve(t: float, prob: np.ndarray = prob, k: int = k, ph: str = ph) -> dict[str, Any]:
                return pick_scores(truth[ph], [extract_picks(p[k], t) for p in prob], SR, (0.5,))["0.5s"]

            curves[f"{name} {ph}"] = curve
            chosen[f"{name} {ph}"] = thresholds[name][ph]
    pr_vs_threshold(curves, np.arange(0.05, 0.96, 0.05), out / "picker_compare_pr.png", chosen,
                    "Held-out precision / recall / F1 (±0.5 s) vs threshold (dotted: threshold used)")


def _fmt_thr(name: str, thr: Any) -> str:
    if name == "stalta":
        return f"on {thr}"
    return f"{thr:.3g}" if isinstance(thr, float) else str(thr)


def markdown(r: dict[str, Any]) -> str:
    b = r["bootstrap_f1"]
    lines = ["# Pickers side by side on the same held-out windows\n",
             f"`{r['command']}` — {r['split']['test_events']} held-out events "
             f"({len(r['split']['test_stations'])} stations), {r['test_windows']} windows; 95 % "
             f"intervals: bootstrap over events ({r['bootstrap']['resamples']} resamples).\n",
             "| picker | phase | F1 ±0.1 s [95 % CI] | F1 ±0.5 s [95 % CI] | precision / recall ±0.5 s | "
             "residual mean / σ (s) | thresholds |", "|---|---|---|---|---|---|---|"]
    for name, p in r["pickers"].items():
        for ph in ("P", "S"):
            if ph not in p:
                continue
            s = p[ph]

            def ci(tol: str, name: str = name, ph: str = ph) -> str:
                e = b[f"{name} {ph} {tol}"]
                return f"{e['f1']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"

            thr = p.get("thresholds", {}).get(ph, p.get("params", {}).get("on", ""))
            res = ("—" if s["residual_mean_s"] is None
                   else f"{s['residual_mean_s']:+.3f} / {s['residual_std_s']:.3f}")
            lines.append(f"| {name} | {ph} | {ci('0.1s')} | {ci('0.5s')} | "
                         f"{s['0.5s']['precision']:.3f} / {s['0.5s']['recall']:.3f} | {res} | "
                         f"{_fmt_thr(name, thr)} |")
    diffs = [(k, v) for k, v in b.items() if " - " in k]
    if diffs:
        lines += ["", "| paired difference (same resamples) | F1 diff | 95 % CI | share of resamples ≤ 0 |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {v['diff']:+.3f} | [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] | {v['p_le_0']:.3f} |"
                  for k, v in diffs]
    for k, why in r.get("skipped", {}).items():
        lines.append(f"\n{k} skipped: {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate picker-compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/picker-compare"))
    p.add_argument("--seed", type=int, default=0, help="station split seed (the shipped picker's: 0)")
    p.add_argument("--picker", type=Path, default=MODELS_DIR / "picker.pt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--no-seisbench", action="store_true", help="leave PhaseNetLight out")
    p.add_argument("--phasenetlight-dir", type=Path, default=None,
                   help=f"folder with ethz.json.v2 / ethz.pt.v2 (default <shared>/{PNL_DIR})")
    p.add_argument("--quick", action="store_true", help="24 events, 2 windows each (smoke test)")
    a = p.parse_args(argv)
    r = run(a.out, a.seed, a.picker, a.bootstrap, not a.no_seisbench, a.quick, a.phasenetlight_dir)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "picker_compare.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    (a.out / "picker_compare.md").write_text(markdown(r))
    print(markdown(r))
    print(f"wrote {a.out}/picker_compare.json, picker_compare.md, picker_compare_residuals.png, "
          "picker_compare_pr.png")
    return 0
