"""``python -m geosentry.training evaluate precision``: do the shipped models give the same answers at
bfloat16 as at float32, on held-out data, run exactly as the service runs them?

Each model is loaded by the service's own :class:`geosentry.stream.inference.model.TorchScriptDetector`
(contract check, freezing, normalisation) and run on the same held-out windows at both
precisions (``infer_array(raw, precision)``), so what is validated is what ``geosentry run``
executes:

* ``picker`` -- the held-out windows of ``evaluate picker-compare`` (seed-0 station split, 8 per
  event, crop seed 1234): P/S F1 at ±0.1 s and ±0.5 s with the contract's thresholds, the largest
  probability difference, and how far each float32 pick moves.
* ``anomaly`` -- the held-out windows of ``train anomaly``'s evaluation (every pre-event noise
  window at a 1 s stride, and P-in-first-half event windows): false-alarm rate and recall at the
  contract's threshold, windows whose flag changes, the largest relative score difference.

Acceptance (``RULE``, the usual one for reduced precision: a bounded loss): no F1 or recall
figure lower, and no false-alarm rate higher, than float32's by more than ``MAX_METRIC_DIFF``, and
at most ``MAX_FLIP_SHARE`` of the picks (moved by more than 0.1 s, appeared or vanished) or
anomaly flags changing. (A first, two-sided version of the rule also bounded gains; it rejected
the picker because bfloat16 moved 2 P and 4 S picks to within ±0.1 s of the analyst's, raising
the ±0.1 s F1 by 0.013 and 0.029.) With
``--write-contracts`` an accepted model's contract gets ``precisions.bf16`` (this evidence plus
the load-time ``tolerance``), which the service needs before it runs that model at bfloat16; a
rejected model's entry is removed. The ``.pt`` files are not touched (their sha256 stays).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geosentry.training.evaluate.picks import extract_picks, make_pick_windows, pick_scores
from geosentry.training.paths import MODELS_DIR

log = logging.getLogger(__name__)
MAX_METRIC_DIFF = 0.01
MAX_FLIP_SHARE = 0.01
TOLERANCE_FACTOR = 4.0  # load-time tolerance = this x the largest difference seen here ...
MIN_TOLERANCE = 0.02  # ... but at least this (random probe batches differ from real data)
RULE = (f"accepted when no F1 or recall is lower, and no false-alarm rate higher, than float32's by "
        f"more than {MAX_METRIC_DIFF}, and at most {MAX_FLIP_SHARE:.0%} of the picks (moved by "
        f"> 0.1 s, new or gone) or anomaly flags change")
SR = 100.0


def load_service_model(name: str, models_dir: Path = MODELS_DIR) -> Any:
    """The shipped model ``name`` as the service loads it (float32 chosen at load; the
    evaluation picks the precision per call)."""
    from geosentry.stream.detectors.registry import ModelConfig
    from geosentry.stream.inference.model import TorchScriptDetector

    cfg = ModelConfig(name=name, path=str(models_dir / f"{name}.pt"))
    return TorchScriptDetector(cfg, models_dir / f"{name}.pt", torch.device("cpu"), "fp32")


def _nearest(picks: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Distance in samples from each of ``picks`` to the nearest of ``others`` (inf if none)."""
    if not others.size:
        return np.full(len(picks), np.inf)
    return np.abs(picks[:, None] - others[None, :]).min(axis=1)


def _tolerance(max_diff: float) -> float:
    return round(min(0.5, max(MIN_TOLERANCE, TOLERANCE_FACTOR * max_diff)), 4)


def picker_case(data: Any, models_dir: Path, per_event: int = 8) -> dict[str, Any]:
    from geosentry.training.data.windows import crop

    det = load_service_model("picker", models_dir)
    c = det.contract
    wins = make_pick_windows([e.itp for e in data.test], [e.its for e in data.test],
                             data.test[0].data.shape[1], c.window_samples, per_event, 1234)
    raw = np.stack([crop(data.test[w.event].data, w.offset, c.window_samples) for w in wins])
    truth = {"P": [w.p for w in wins], "S": [w.s for w in wins]}
    probs = {p: np.concatenate([det.infer_array(raw[i: i + 32], p) for i in range(0, len(raw), 32)])
             for p in ("fp32", "bf16")}
    out: dict[str, Any] = {"windows": len(wins), "thresholds": dict(c.thresholds), "f1": {},
                           "scores": {}}
    diffs, flips, moved, n_picks = [], 0, [], 0
    for k, ph in enumerate(c.labels[:2]):
        thr = float(c.thresholds[ph])
        picks = {p: [extract_picks(pr[k], thr) for pr in probs[p]] for p in probs}
        sc = {p: pick_scores(truth[ph], picks[p], SR, (0.1, 0.5)) for p in probs}
        out["scores"][ph] = sc
        for tol in ("0.1s", "0.5s"):  # loss of F1 (a gain counts as 0)
            f1 = {p: sc[p][tol]["f1"] for p in probs}
            out["f1"][f"{ph} {tol}"] = f1
            diffs.append(f1["fp32"] - f1["bf16"])
        for a, b in zip(picks["fp32"], picks["bf16"]):
            n_picks += len(a)
            to_b, to_a = _nearest(a, b), _nearest(b, a)
            # a pick with no pick of the other precision within 0.1 s has changed (or is new)
            flips += int((to_b > 0.1 * SR).sum() + (to_a > 0.1 * SR).sum())
            moved += [int(d) for d in to_b if d <= 0.1 * SR]
    max_diff = float(np.abs(probs["bf16"] - probs["fp32"]).max())
    out.update({"max_abs_probability_diff": round(max_diff, 5),
                "max_metric_loss": round(max(0.0, *diffs), 4),
                "picks_fp32": n_picks, "picks_changed": flips,
                "pick_shift_samples": {
                    "max": max(moved, default=0),
                    "p95": float(np.percentile(moved, 95)) if moved else 0.0,
                    "mean": round(float(np.mean(moved)) if moved else 0.0, 3),
                    "unchanged_share": round(float(np.mean(np.asarray(moved) == 0)), 3)
                    if moved else 1.0}})
    out["accepted"] = bool(out["max_metric_loss"] <= MAX_METRIC_DIFF
                           and flips <= MAX_FLIP_SHARE * max(n_picks, 1))
    out["tolerance"] = _tolerance(max_diff)
    return out


def anomaly_case(data: Any, models_dir: Path) -> dict[str, Any]:
    from geosentry.training.train.anomaly import SeismicAnomalyTask

    det = load_service_model("anomaly", models_dir)
    thr = float(det.contract.thresholds["anomaly"])
    task = SeismicAnomalyTask(data, window=det.contract.window_samples)
    noise_raw, _ = task._tiled_noise(data.test)
    event_raw = task._windows(data.test, 1235, True, raw=True)
    scores = {p: {k: np.concatenate([det.infer_array(x[i: i + 64], p) for i in range(0, len(x), 64)])
                  for k, x in (("noise", noise_raw), ("events", event_raw))} for p in ("fp32", "bf16")}
    out: dict[str, Any] = {"threshold": thr, "noise_windows": len(noise_raw),
                           "event_windows": len(event_raw)}
    for p, s in scores.items():
        out[f"false_alarm_rate_{p}"] = round(float((s["noise"] > thr).mean()), 4)
        out[f"recall_{p}"] = round(float((s["events"] > thr).mean()), 4)
    a = np.r_[scores["fp32"]["noise"], scores["fp32"]["events"]]
    b = np.r_[scores["bf16"]["noise"], scores["bf16"]["events"]]
    flips = int(((a > thr) != (b > thr)).sum())
    rel = float((np.abs(b - a) / np.maximum(a, 1e-12)).max())
    metric_loss = max(0.0, out["false_alarm_rate_bf16"] - out["false_alarm_rate_fp32"],
                      out["recall_fp32"] - out["recall_bf16"])
    out.update({"flags_changed": flips, "max_relative_score_diff": round(rel, 5),
                "max_metric_loss": round(metric_loss, 4),
                "accepted": bool(metric_loss <= MAX_METRIC_DIFF and flips <= MAX_FLIP_SHARE * len(a)),
                "tolerance": _tolerance(rel)})
    return out


CASES = {"picker": picker_case, "anomaly": anomaly_case}


def write_contract(models_dir: Path, name: str, case: dict[str, Any], command: str) -> None:
    """Record (accepted) or remove (rejected) ``precisions.bf16`` in ``name``'s contract."""
    from geosentry.stream.inference.contract import ModelContract, contract_path_for

    path = contract_path_for(models_dir / f"{name}.pt")
    raw = json.loads(path.read_text())
    precisions = dict(raw.get("precisions", {}))
    precisions.pop("bf16", None)
    if case["accepted"]:
        precisions["bf16"] = {"tolerance": case["tolerance"], "command": command, "rule": RULE,
                              "evidence": {k: v for k, v in case.items()
                                           if k not in ("tolerance", "scores")}}
    raw["precisions"] = precisions
    ModelContract.from_dict(raw)  # still a valid contract
    path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")


def run(models_dir: Path = MODELS_DIR, seed: int = 0, quick: bool = False) -> dict[str, Any]:
    from geosentry.training.train.common import prepare_seismic

    data = prepare_seismic(seed, limit=24 if quick else None)
    report: dict[str, Any] = {"split": data.summary(), "rule": RULE, "models": {}}
    for name, case in CASES.items():
        if (models_dir / f"{name}.pt").exists():
            report["models"][name] = (picker_case(data, models_dir, 2) if quick and name == "picker"
                                      else case(data, models_dir))
    return report


def markdown(r: dict[str, Any]) -> str:
    lines = ["# bfloat16 vs float32 on held-out data\n", f"`{r['command']}`; {r['rule']}.\n",
             "| model | figure | float32 | bfloat16 |", "|---|---|---|---|"]
    p = r["models"].get("picker")
    if p:
        for key, f1 in p["f1"].items():
            ph, tol = key.split()
            lines.append(f"| picker | {ph} F1 ±{tol[:-1]} s | {f1['fp32']:.4f} | {f1['bf16']:.4f} |")
        lines.append(f"| picker | picks changed (of {p['picks_fp32']}) | | {p['picks_changed']} |")
        lines.append(f"| picker | largest probability difference | | {p['max_abs_probability_diff']} |")
        sh = p["pick_shift_samples"]
        lines.append(f"| picker | pick shift (samples): unchanged share / mean / p95 / max | | "
                     f"{sh['unchanged_share']} / {sh['mean']} / {sh['p95']:g} / {sh['max']} |")
    a = r["models"].get("anomaly")
    if a:
        lines.append(f"| anomaly | false-alarm rate ({a['noise_windows']} noise windows) | "
                     f"{a['false_alarm_rate_fp32']} | {a['false_alarm_rate_bf16']} |")
        lines.append(f"| anomaly | recall ({a['event_windows']} event windows) | {a['recall_fp32']} | "
                     f"{a['recall_bf16']} |")
        lines.append(f"| anomaly | flags changed | | {a['flags_changed']} |")
        lines.append(f"| anomaly | largest relative score difference | | {a['max_relative_score_diff']} |")
    lines.append("")
    lines += [f"{name}: {'accepted' if m['accepted'] else 'rejected'} (load-time tolerance "
              f"{m['tolerance']})" for name, m in r["models"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m geosentry.training evaluate precision", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/precision"))
    ap.add_argument("--models", type=Path, default=MODELS_DIR, help="folder of .pt + .json")
    ap.add_argument("--seed", type=int, default=0, help="station split seed (the shipped models': 0)")
    ap.add_argument("--quick", action="store_true", help="24 events (smoke test)")
    ap.add_argument("--write-contracts", action="store_true",
                    help="record the verdicts in the contracts (precisions.bf16)")
    a = ap.parse_args(argv)
    command = "python -m geosentry.training evaluate precision" + (" --quick" if a.quick else "")
    r = run(a.models, a.seed, a.quick)
    r["command"] = command
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "precision.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    (a.out / "precision.md").write_text(markdown(r))
    print(markdown(r))
    if a.write_contracts:
        for name, case in r["models"].items():
            write_contract(a.models, name, case, command)
            print(f"{name}: contract {'records' if case['accepted'] else 'does not list'} bf16")
    return 0
