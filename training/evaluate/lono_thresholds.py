"""``python -m geosentry.training evaluate picker-lono --through-run --threshold-sweep``: which P
and S thresholds the leave-one-network-out pickers need on whole records served by
``geosentry run`` (issue #19: the through-run F1 is lost to precision, not recall).

Each held-out network's fold model is exported and served as ``--through-run`` does (the
records, the service's defaults) in one ``geosentry run`` with one detector per threshold: the
fold's tuned thresholds (the ``--through-run`` run itself) and every threshold ``t`` of the grid
(``thresholds = {P = t, S = t}``); the nested choice (below) is then served in a second run. So
each row is a real run at its thresholds: the service's rules that let one pick decide which of
an arrival's picks stays (the first of two on one onset, P or S of a pair within
``PHASE_CONFLICT_S``) act as they would at that threshold, which filtering one low-threshold
run by score cannot reproduce.

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


def grid_key(t: float) -> str:
    """The detector (and run) name of grid threshold ``t``."""
    return f"t{t:.2f}"


def by_detector(records: list[dict[str, Any]], alerts: list[dict[str, Any]]
                ) -> dict[str, Scored]:
    """One multi-detector run's pick alerts, scored per detector name."""
    names: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        names.setdefault(str(a.get("details", {}).get("detector", "")), []).append(a)
    return {name: scored_picks(records, got) for name, got in names.items()}


def scores_at(records: dict[str, list[dict[str, Any]]], picks: dict[str, dict[str, Scored]],
              phase: str, run: Callable[[str], str], nets: list[str] | None = None
              ) -> dict[str, Any]:
    """``pick_scores`` of ``phase`` over ``nets``' records, each network's picks those of its run
    ``run(network)`` (``picks[network][run]``; a run with no picks has none)."""
    truth, preds = [], []
    for n in nets if nets is not None else list(records):
        got_n = picks[n].get(run(n), {ph: [[] for _ in records[n]] for ph in PHASES})
        for rec, got in zip(records[n], got_n[phase]):
            truth.append(rec[phase])
            preds.append(np.asarray([s for s, _ in got], np.int64))
    return pick_scores(truth, preds, SR, (0.1, 0.5))


def nested_choice(records: dict[str, list[dict[str, Any]]], picks: dict[str, dict[str, Scored]],
                  phase: str) -> dict[str, float]:
    """Each network's threshold: the grid's best F1 ±0.5 s on the other networks' records (ties:
    nearest 0.5). The grid's runs serve P and S at one threshold; the nested run then serves
    each phase at its own choice (the P/S pair rule couples them a little, so that pair's
    scores are its run's, not the grid's)."""
    out = {}
    for n in records:
        others = [m for m in records if m != n]
        out[n] = max(GRID, key=lambda t: (scores_at(records, picks, phase, _const(grid_key(t)),
                                                    others)["0.5s"]["f1"], -abs(t - 0.5)))
    return out


def _const(key: str) -> Callable[[str], str]:
    return lambda _: key


def sweep(records: dict[str, list[dict[str, Any]]], picks: dict[str, dict[str, Scored]],
          nested: dict[str, dict[str, float]], fold_thresholds: dict[str, dict[str, float]]
          ) -> dict[str, Any]:
    """The report's rows from the runs ``picks[network]``: ``t0.10`` ... (the grid), ``tuned``
    (the folds' thresholds ``fold_thresholds``), ``nested`` (served at ``nested``)."""
    out: dict[str, Any] = {"fixed": {}, "nested": {}, "fold_tuned": {}}
    for ph in PHASES:
        out["fixed"][ph] = {f"{t:.2f}": scores_at(records, picks, ph, _const(grid_key(t)))
                            for t in GRID}
        out["nested"][ph] = {"chosen": {n: nested[n][ph] for n in records},
                             "scores": scores_at(records, picks, ph, _const("nested"))}
        out["fold_tuned"][ph] = {"chosen": {n: fold_thresholds[n][ph] for n in records},
                                 "scores": scores_at(records, picks, ph, _const("tuned"))}
    return out


def detectors_toml(pt: Path, runs: dict[str, dict[str, float]]) -> str:
    """``[[detectors]]`` tables serving ``pt`` once per run name at its thresholds."""
    return "".join(f'[[detectors]]\nname = "{name}"\ntype = "model"\npath = "{pt.resolve()}"\n'
                   f'missing_components = "zeros"\nthresholds = {{ P = {thr["P"]}, S = '
                   f'{thr["S"]} }}\n\n' for name, thr in runs.items())


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
             "scored on its own (held-out) network only; each row a `geosentry run` of it at "
             "the row's thresholds. ±0.5 s.\n",
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
    from geosentry.training.evaluate.lono_run import NoFolds, fold_dirs, fold_model, write_records
    from geosentry.training.evaluate.seisbench_run_parity import run_service as serve

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
    p.add_argument("--networks", help="comma-separated held-out networks (default: every one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per geosentry run")
    a = p.parse_args(argv)
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
    records: dict[str, list[dict[str, Any]]] = {}
    picks: dict[str, dict[str, Scored]] = {}
    fold_thr: dict[str, dict[str, float]] = {}
    pts: dict[str, Path] = {}
    grid = {grid_key(t): {"P": t, "S": t} for t in GRID}
    for n in todo:  # the folds' tuned thresholds (the contract's) and the grid, one run
        records[n] = write_records(nets[n], work / "mseed" / n)
        pts[n], thr, _ = fold_model(folds[n], work / "models" / tag, None,
                                    tuple(o[n] for o in others))
        fold_thr[n] = {ph: float(thr.get(ph, 0.5)) for ph in PHASES}
        alerts, _ = serve(pts[n], work / "mseed" / n, work / "run" / f"{tag}-{n}", a.timeout_s,
                          name="tuned", extra_config=detectors_toml(pts[n], grid))
        picks[n] = by_detector(records[n], alerts)
    chosen = {ph: nested_choice(records, picks, ph) for ph in PHASES}
    nested = {n: {ph: chosen[ph][n] for ph in PHASES} for n in todo}
    for n in todo:  # each network at the thresholds the others chose
        thr_line = f'thresholds = {{ P = {nested[n]["P"]}, S = {nested[n]["S"]} }}\n'
        alerts, _ = serve(pts[n], work / "mseed" / n, work / "run" / f"{tag}-{n}-nested",
                          a.timeout_s, name="nested", extra_config=thr_line)  # its own table
        picks[n].update(by_detector(records[n], alerts))
    recipe = json.loads((folds[todo[0]] / "result.json").read_text()).get(
        "settings", {}).get("recipe", "shipped")
    report = {
        "command": "python -m geosentry.training evaluate picker-lono --through-run "
                   f"--threshold-sweep --out {a.out}" + "".join(f" --with {d}" for d in a.also)
                   + (f" --networks {a.networks}" if a.networks else ""),
        "data_source": source, "picker": f"recipe {recipe} fold models"
        + "".join(f" averaged with {d}'s" for d in a.also),
        "network_events": ", ".join(f"{n} ({len(records[n])})" for n in todo),
        "records": sum(len(v) for v in records.values()),
        "ensemble": bool(a.also),
        "machine": f"{platform.machine()}, {platform.system()}",
        "sweep": sweep(records, picks, nested, fold_thr)}
    report["wall_s"] = round(time.monotonic() - t0, 1)
    (work / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report)
    (work / f"{tag}.md").write_text(md)
    print(md)
    print(f"wrote {work / f'{tag}.json'} and {work / f'{tag}.md'}")
    return 0
