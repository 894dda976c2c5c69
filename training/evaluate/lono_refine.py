"""``python -m geosentry.training evaluate picker-lono --refine-sweep``: does the onset refinement
(``stream/inference/refine.py``) bring the leave-one-network-out P picks closer to the analysts',
and at which settings?

Nothing is trained or served: the fold results of ``evaluate picker-lono`` (``OUT/fold-NET/
result.json``: each held-out window's CNN P picks) and the same windows (rebuilt from the data
with the same seeds) are enough. Each P pick is moved by the service's own
:func:`~geosentry.stream.inference.refine.aic_onset` on the window's vertical trace, for every
setting of a small grid (search half-window × band-pass), and scored with the offline rules
(``picks.pick_scores``; σ and its parts from ``timing``). Reported, pooled over the held-out
networks:

* each setting: F1 at ±0.1 s and ±0.5 s, residual mean / σ, robust σ, picks beyond 0.2 s;
* **nested**: each network refined at the setting with the smallest σ on the *other* networks'
  windows (no network chooses its own setting): the honest figure for a setting chosen here;
* the shipped setting (:class:`~geosentry.stream.inference.refine.PickRefinement` defaults);
* the other pickers of the folds (PhaseNetLight-ETHZ, STA/LTA) with and without the shipped
  setting: a check on picks the setting was not chosen on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from geosentry.stream.inference.refine import PickRefinement, aic_onset
from geosentry.training.evaluate.picks import pick_scores
from geosentry.training.evaluate.timing import MAD_TO_STD, TAIL_S, matched

SR = 100.0
HALF_WINDOWS_S = (0.3, 0.5, 0.8)
BANDS_HZ = ((1.0, 20.0), (1.0, 30.0), (0.5, 20.0), (3.0, 20.0))
NONE = "model picks (no refinement)"


def _name(half: float, band: tuple[float, float]) -> str:
    return f"±{half:g} s, {band[0]:g}-{band[1]:g} Hz"


#: the shipped setting's row name (``PickRefinement``'s defaults)
SHIPPED = _name(PickRefinement().half_window_s, PickRefinement().band_hz)


def settings() -> dict[str, PickRefinement | None]:
    out: dict[str, PickRefinement | None] = {NONE: None}
    for half in HALF_WINDOWS_S:
        for band in BANDS_HZ:
            out[_name(half, band)] = PickRefinement(half_window_s=half, band_hz=band)
    return out


OTHERS = {"phasenetlight-tuned": "PhaseNetLight-ETHZ, tuned thresholds",
          "phasenetlight": "PhaseNetLight-ETHZ, default thresholds",
          "stalta": "STA/LTA, tuned"}


def refined_picks(out: Path, networks: list[str], events: list[Any]
                  ) -> tuple[list[int | None], list[str], dict[str, list[np.ndarray]],
                             dict[str, dict[str, list[np.ndarray]]]]:
    """(true P per window, network per window, setting -> the CNN's P picks per window,
    other picker -> {"none"/"shipped" -> its P picks per window})."""
    from geosentry.training.evaluate.lono import _windows

    truth: list[int | None] = []
    nets: list[str] = []
    grid = settings()
    picks: dict[str, list[np.ndarray]] = {k: [] for k in grid}
    shipped = PickRefinement()
    results = {net: json.loads((out / f"fold-{net}" / "result.json").read_text())
               for net in networks}
    # the other pickers every fold has (a fold run with --no-seisbench has no PhaseNetLight)
    others: dict[str, dict[str, list[np.ndarray]]] = {
        name: {"none": [], "shipped": []} for name in OTHERS
        if all(name in r["picks"] for r in results.values())}
    for net in networks:
        r = results[net]
        quick = bool(r.get("settings", {}).get("quick"))
        wins, raw = _windows([e for e in events if e.network == net], 2 if quick else 8, 1234)
        model = r["picks"]["cnn"]["P"]
        if len(model) != len(wins):
            raise SystemExit(f"refine-sweep: fold {net} has {len(model)} windows, the data "
                             f"{len(wins)} (a fold of other data or settings)")
        for w, x, pk in zip(wins, raw, model):
            truth.append(w.p)
            nets.append(net)
            for name, ref in grid.items():
                picks[name].append(_moved(x[0], pk, ref))
        for name, d in others.items():
            for x, pk in zip(raw, r["picks"][name]["P"]):
                d["none"].append(_moved(x[0], pk, None))
                d["shipped"].append(_moved(x[0], pk, shipped))
    return truth, nets, picks, others


def _moved(z: np.ndarray, pk: list[int], ref: PickRefinement | None) -> np.ndarray:
    """Picks ``pk`` moved by ``ref`` on trace ``z`` (kept where it gives None)."""
    moved = [None if ref is None else aic_onset(z, SR, int(p), ref) for p in pk]
    return np.asarray([int(p) if q is None else q for p, q in zip(pk, moved)], dtype=np.int64)


def summary(truth: list[int | None], preds: list[np.ndarray]) -> dict[str, Any]:
    s = pick_scores(truth, preds, SR, (0.1, 0.5))
    _, r = matched(truth, preds, SR)
    mad = MAD_TO_STD * float(np.median(np.abs(r - np.median(r)))) if r.size else float("nan")
    return {"f1_0.1s": s["0.1s"]["f1"], "f1_0.5s": s["0.5s"]["f1"], "n": int(r.size),
            "mean_ms": round(1000 * float(r.mean()), 1) if r.size else None,
            "std_ms": round(1000 * float(r.std()), 1) if r.size else None,
            "robust_std_ms": round(1000 * mad, 1), "tails": int((np.abs(r) > TAIL_S).sum())}


def sweep(truth: list[int | None], nets: list[str],
          picks: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    def part(name: str, keep: set[str]) -> tuple[list[int | None], list[np.ndarray]]:
        rows = [i for i, n in enumerate(nets) if n in keep]
        return [truth[i] for i in rows], [picks[name][i] for i in rows]

    every = list(dict.fromkeys(nets))
    rows = {name: summary(truth, p) for name, p in picks.items()}
    chosen: dict[str, str] = {}
    nested_t: list[int | None] = []
    nested_p: list[np.ndarray] = []
    for net in every:
        others = set(every) - {net}
        cands = {k: summary(*part(k, others))["std_ms"] for k in picks if k != NONE}
        chosen[net] = min(cands, key=lambda k: (cands[k] if cands[k] is not None else 1e9, k))
        t, p = part(chosen[net], {net})
        nested_t += t
        nested_p += p
    return {"settings": rows, "nested": summary(nested_t, nested_p), "nested_choice": chosen,
            "shipped": SHIPPED,
            "per_network": {net: {k: summary(*part(k, {net}))["std_ms"]
                                  for k in (NONE, SHIPPED)}
                            for net in every}}


def markdown(r: dict[str, Any], command: str) -> str:
    head = ("| P picks, pooled over the held-out networks | F1 ±0.1 s | F1 ±0.5 s | n | mean | σ | "
            "MAD × 1.4826 | picks \\|r\\| > 0.2 s |\n|---|---|---|---|---|---|---|---|\n")

    def row(label: str, s: dict[str, Any]) -> str:
        return (f"| {label} | {s['f1_0.1s']:.3f} | {s['f1_0.5s']:.3f} | {s['n']} | "
                f"{s['mean_ms']:+.0f} ms | {s['std_ms']:.0f} ms | {s['robust_std_ms']:.0f} ms | "
                f"{s['tails']} |\n")

    lines = [f"# Onset refinement of the leave-one-network-out P picks\n\n`{command}`\n\n", head]
    for name, s in r["settings"].items():
        label = name + (" (shipped)" if name == r["shipped"] else "")
        lines.append(row(label, s))
    lines.append(row("**nested** (each network at the setting best on the others)", r["nested"]))
    lines.append("\nNested choices: " + ", ".join(f"{n}: {k}" for n, k in
                                                 r["nested_choice"].items()) + ".\n\n")
    lines.append("P σ per held-out network, model picks → shipped setting: " + ", ".join(
        f"{n} {v[NONE]} → {v[r['shipped']]} ms" for n, v in r["per_network"].items()) + ".\n")
    if r.get("others"):
        lines.append("\nOther pickers' P picks on the same windows, with and without the shipped "
                     "setting (not chosen on them):\n\n" + head)
        for name, d in r["others"].items():
            lines.append(row(f"{OTHERS[name]}", d["none"]))
            lines.append(row(f"{OTHERS[name]} + shipped refinement", d["shipped"]))
    return "".join(lines)


def main(argv: list[str]) -> int:
    from geosentry.training.data.phasenet import load_events

    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate picker-lono "
                                "--refine-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refine-sweep", action="store_true", help="(this command)")
    p.add_argument("--out", type=Path, default=Path("runs/picker-lono"),
                   help="the picker-lono folder with fold-NET/result.json (default "
                        "runs/picker-lono); the report goes there as refine_sweep.{json,md}")
    p.add_argument("--seed", type=int, default=0, help="the data seed the folds were run with")
    a = p.parse_args(argv)
    events, _ = load_events(seed=a.seed)
    order: dict[str, int] = {}
    for e in events:
        order[e.network] = order.get(e.network, 0) + 1
    nets = [n for n in sorted(order, key=lambda n: -order[n])
            if (a.out / f"fold-{n}" / "result.json").exists()]
    if not nets:
        print(f"picker-lono --refine-sweep: no fold results in {a.out} (run `python -m "
              f"geosentry.training evaluate picker-lono --out {a.out}` first)", file=sys.stderr)
        return 2
    truth, where, picks, others = refined_picks(a.out, nets, events)
    report = sweep(truth, where, picks)
    report["others"] = {name: {k: summary(truth, v) for k, v in d.items()}
                        for name, d in others.items()}
    command = f"python -m geosentry.training evaluate picker-lono --refine-sweep --out {a.out}"
    report["command"], report["networks"] = command, nets
    (a.out / "refine_sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report, command)
    (a.out / "refine_sweep.md").write_text(md)
    print(md)
    return 0
