"""``python -m geosentry.training evaluate picker-lono --through-run --threshold-sweep``: which P
and S thresholds the leave-one-network-out pickers need on whole records served by
``geosentry run`` (issue #19: the through-run F1 is lost to precision, not recall).

Each held-out network's fold model is exported and served as ``--through-run`` does (the
records, the service's defaults), but at thresholds ``--floor`` (0.1), and every pick alert is
kept with its score. The run at threshold ``t`` is then the pick alerts scoring ``>= t``: the
service's peak rule (``find_peaks(height=t, distance=MIN_PICK_SEPARATION_S)``) keeps the same
peaks above ``t`` whatever lower peaks there are, except where a lower pick less than
``MIN_PICK_SEPARATION_S`` earlier took its place, or a lower pick of the same arrival decided
which pick stays (a refined onset within ``MIN_PICK_SEPARATION_S`` of the phase's last pick; a P
and an S within ``PHASE_CONFLICT_S``, ``scoring.drop_phase_conflicts``); the report's check row
(the folds' own tuned thresholds, filtered) is there to be compared with ``--through-run``'s real
run at them.

Every fold model is scored on its own network only (it never saw it). Pooled over the networks:

* each fixed threshold of the grid (0.10 ... 0.90): F1, precision, recall at ±0.5 s, P σ;
* **nested**: each network scored at the threshold that maximised F1 on the *other* networks'
  held-out records (ties: nearest 0.5), so no record chooses its own threshold;
* the folds' tuned thresholds (``result.json``: tuned on the training networks' windows).

``--with DIR`` (repeatable) averages each fold with the same network's fold of another recipe
folder (:class:`~geosentry.training.models.ensemble.PickerEnsemble`): an ensemble whose every
member never saw the held-out network.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geosentry.training.evaluate.picks import pick_scores

SR = 100.0
GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))
PHASES = ("P", "S")
Scored = dict[str, list[list[tuple[int, float]]]]  # phase -> per record [(sample, score)]


def scored_picks(records: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> Scored:
    """Per phase and record the picks that fall in it, ``(sample in the record, score)``."""
    from geosentry.training.evaluate.lono_run import placed

    out: Scored = {ph: [[] for _ in records] for ph in PHASES}
    for hit, ph, sample, a in placed(records, alerts):
        if hit is not None and ph in out:
            out[ph][hit].append((sample, float(a["score"])))
    return out


def scores_at(records: dict[str, list[dict[str, Any]]], picks: dict[str, Scored], phase: str,
              threshold: Callable[[str], float], nets: list[str] | None = None) -> dict[str, Any]:
    """``pick_scores`` of ``phase`` over ``nets``' records, each network's picks kept at
    ``threshold(network)``."""
    truth, preds = [], []
    for n in nets if nets is not None else list(records):
        t = threshold(n)
        for rec, got in zip(records[n], picks[n][phase]):
            truth.append(rec[phase])
            preds.append(np.asarray([s for s, sc in got if sc >= t], np.int64))
    return pick_scores(truth, preds, SR, (0.1, 0.5))


def nested_choice(records: dict[str, list[dict[str, Any]]], picks: dict[str, Scored],
                  phase: str) -> dict[str, float]:
    """Each network's threshold: the grid's best F1 ±0.5 s on the other networks' records (ties:
    nearest 0.5)."""
    out = {}
    for n in records:
        others = [m for m in records if m != n]
        out[n] = max(GRID, key=lambda t: (
            scores_at(records, picks, phase, lambda _: t, others)["0.5s"]["f1"], -abs(t - 0.5)))
    return out


def _const(t: float) -> Callable[[str], float]:
    return lambda _: t


def sweep(records: dict[str, list[dict[str, Any]]], picks: dict[str, Scored],
          fold_thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"fixed": {}, "nested": {}, "fold_tuned": {}}
    for ph in PHASES:
        out["fixed"][ph] = {f"{t:.2f}": scores_at(records, picks, ph, _const(t)) for t in GRID}
        chosen = nested_choice(records, picks, ph)
        out["nested"][ph] = {"chosen": chosen,
                             "scores": scores_at(records, picks, ph, chosen.__getitem__)}
        tuned = {n: fold_thresholds[n][ph] for n in records}
        out["fold_tuned"][ph] = {"chosen": tuned,
                                 "scores": scores_at(records, picks, ph, tuned.__getitem__)}
    return out


def _cells(s: dict[str, Any]) -> str:
    m = s["0.5s"]
    sd = s.get("residual_std_s")
    return (f"{m['f1']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | "
            + (f"{1000 * sd:.0f} ms" if sd is not None else "–"))


def markdown(r: dict[str, Any]) -> str:
    sw = r["sweep"]
    lines = ["# Thresholds of the leave-one-network-out pickers through `geosentry run`\n",
             f"`{r['command']}` ({r['wall_s']} s, {r['machine']}). {r['records']} records of "
             f"90.01 s, networks {r['network_events']}; picker: {r['picker']}; every fold model "
             f"served at threshold {r['floor']} and scored on its own (held-out) network only; "
             "the picks at threshold t are its pick alerts scoring >= t. ±0.5 s.\n",
             "| P/S threshold | P F1 | P precision | P recall | P σ | S F1 | S precision | "
             "S recall | S σ |", "|---|---|---|---|---|---|---|---|---|"]
    for t in sw["fixed"]["P"]:
        lines.append(f"| {t} | {_cells(sw['fixed']['P'][t])} | {_cells(sw['fixed']['S'][t])} |")
    tuned = ("the first folder's folds' tuned thresholds (the ensemble was tuned on nothing)"
             if r.get("ensemble") else
             "the folds' tuned thresholds (check: `--through-run`'s own run at them)")
    for key, label in (("nested", "nested: each network at the threshold best on the other "
                                  "networks' records"), ("fold_tuned", tuned)):
        lines.append(f"| {label} | {_cells(sw[key]['P']['scores'])} | "
                     f"{_cells(sw[key]['S']['scores'])} |")
    for key in ("nested", "fold_tuned"):
        lines.append(f"\n{key} thresholds (P; S): "
                     + ", ".join(f"{n} {sw[key]['P']['chosen'][n]:g}; {sw[key]['S']['chosen'][n]:g}"
                                 for n in sw[key]["P"]["chosen"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from geosentry.training.data.phasenet import load_events
    from geosentry.training.evaluate.lono_run import (NoFolds, fold_dirs, fold_model,
                                                      run_service, write_records)

    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate picker-lono "
                                "--through-run --threshold-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--through-run", action="store_true", help="(this command)")
    p.add_argument("--threshold-sweep", action="store_true", help="(this command)")
    p.add_argument("--out", type=Path, default=Path("runs/picker-lono"),
                   help="the picker-lono folder with fold-NET/ (default runs/picker-lono); "
                        "results go to OUT/through-run/thresholds[-with-...].{json,md}")
    p.add_argument("--with", dest="also", type=Path, action="append", default=[],
                   help="another picker-lono folder: average each fold with its fold there")
    p.add_argument("--floor", type=float, default=0.1, help="threshold served (default 0.1)")
    p.add_argument("--networks", help="comma-separated held-out networks (default: every one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per geosentry run")
    a = p.parse_args(argv)
    if not 0.0 < a.floor <= min(GRID):
        print(f"picker-lono --threshold-sweep: --floor must be in (0, {min(GRID)}], got "
              f"{a.floor}", file=sys.stderr)
        return 2
    events, source = load_events(seed=a.seed)
    nets: dict[str, list[Any]] = {}
    for e in events:
        nets.setdefault(e.network, []).append(e)
    todo = a.networks.split(",") if a.networks else sorted(nets, key=lambda n: -len(nets[n]))
    if set(todo) - set(nets):
        print(f"picker-lono --threshold-sweep: --networks {sorted(set(todo) - set(nets))} not "
              f"in the data ({sorted(nets)})", file=sys.stderr)
        return 2
    try:
        folds = fold_dirs(a.out, todo)
        others = [fold_dirs(d, todo) for d in a.also]
    except NoFolds as exc:
        print(exc, file=sys.stderr)
        return 2
    tag = "thresholds" + "".join(f"-with-{d.name}" for d in a.also)
    work = a.out / "through-run"
    t0 = time.monotonic()
    records, picks, fold_thr = {}, {}, {}
    for n in todo:
        records[n] = write_records(nets[n], work / "mseed" / n)
        floor = {"P": a.floor, "S": a.floor}
        pt, _, _ = fold_model(folds[n], work / "models" / tag, floor,
                              tuple(o[n] for o in others))
        alerts, _ = run_service(pt, work / "mseed" / n, work / "run" / f"{tag}-{n}", a.timeout_s)
        picks[n] = scored_picks(records[n], alerts)
        result = json.loads((folds[n] / "result.json").read_text())
        fold_thr[n] = {ph: float(result.get("thresholds", {}).get("cnn", {}).get(ph, 0.5))
                       for ph in PHASES}
    recipe = json.loads((folds[todo[0]] / "result.json").read_text()).get(
        "settings", {}).get("recipe", "shipped")
    report = {
        "command": "python -m geosentry.training evaluate picker-lono --through-run "
                   f"--threshold-sweep --out {a.out}" + "".join(f" --with {d}" for d in a.also)
                   + (f" --networks {a.networks}" if a.networks else "")
                   + (f" --floor {a.floor:g}" if a.floor != 0.1 else ""),
        "data_source": source, "picker": f"recipe {recipe} fold models"
        + "".join(f" averaged with {d}'s" for d in a.also),
        "network_events": ", ".join(f"{n} ({len(records[n])})" for n in todo),
        "records": sum(len(v) for v in records.values()), "floor": a.floor,
        "ensemble": bool(a.also),
        "machine": f"{platform.machine()}, {platform.system()}",
        "sweep": sweep(records, picks, fold_thr)}
    report["wall_s"] = round(time.monotonic() - t0, 1)
    (work / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report)
    (work / f"{tag}.md").write_text(md)
    print(md)
    print(f"wrote {work / f'{tag}.json'} and {work / f'{tag}.md'}")
    return 0
