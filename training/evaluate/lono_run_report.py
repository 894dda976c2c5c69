"""Scores and report of ``evaluate picker-lono --through-run`` (``training.evaluate.lono_run``):
the pick alerts of ``geosentry run`` per record scored with the offline rules."""

from __future__ import annotations

from typing import Any

import numpy as np

from geosentry.training.evaluate.compare import bootstrap_f1, window_counts
from geosentry.training.evaluate.picks import pick_scores
from geosentry.training.evaluate.timing import breakdown, markdown_lines, matched

SR = 100.0
WINDOW = 3001  # the fold models' window (the shipped picker's)
FLOORS = {"P F1 ±0.5 s": 0.90, "S F1 ±0.5 s": 0.80, "P residual σ": 0.040}
LABEL = {"cnn": "CNN, shipped recipe, fold model (never saw the network)",
         "phasenetlight": "SeisBench PhaseNetLight-ETHZ, its contract's defaults",
         "offline cnn": "offline windows (picker-lono): CNN, shipped recipe",
         "offline phasenetlight": "offline windows (picker-lono): PhaseNetLight-ETHZ, default "
                                  "thresholds"}


#: where a false pick (±0.5 s) lies in its record, first rule that applies (report order)
FALSE_PICK_PLACES = {
    "near": "0.5-2 s from its phase's reference pick",
    "other phase": "within 0.5 s of the other phase's reference pick (label swapped)",
    "record start": "in the record's first 10 s (where a stream starts)",
    "event": "elsewhere from 2 s before the P to 10 s after the S",
    "away": "more than 2 s before the P or 10 s after the S",
}


def false_pick_places(records: list[dict[str, Any]], picks: dict[str, list[list[int]]]
                      ) -> dict[str, dict[str, int]]:
    """Per phase, the false picks (every pick but the nearest within ±0.5 s of the reference)
    counted by :data:`FALSE_PICK_PLACES`.

    >>> rec = [{"P": 3000, "S": 3500}]
    >>> false_pick_places(rec, {"P": [[3000, 3100, 3490, 500, 4200, 8000]], "S": [[]]})["P"]
    {'near': 1, 'other phase': 1, 'record start': 1, 'event': 1, 'away': 1}
    """
    tol, near, start, before, after = (round(x * SR) for x in (0.5, 2.0, 10.0, 2.0, 10.0))
    out = {ph: dict.fromkeys(FALSE_PICK_PLACES, 0) for ph in ("P", "S")}
    far = 10**9  # a reference pick outside the record (a cut): nothing is near it
    for ph, other in (("P", "S"), ("S", "P")):
        for r, got in zip(records, picks[ph]):
            ref = far if r[ph] is None else r[ph]
            hit = min(got, key=lambda k: abs(k - ref), default=None)
            p_s = (far if r["P"] is None else r["P"], far if r["S"] is None else r["S"])
            for k in got:
                if k == hit and abs(k - ref) <= tol:
                    continue
                place = ("near" if abs(k - ref) <= near else
                         "other phase" if r[other] is not None and abs(k - r[other]) <= tol else
                         "record start" if k < start else
                         "event" if p_s[0] - before <= k <= p_s[1] + after else "away")
                out[ph][place] += 1
    return out


def score(records: dict[str, list[dict[str, Any]]], picks: dict[str, dict[str, Any]],
          n_boot: int, seed: int) -> dict[str, Any]:
    """Pooled and per-network scores of every picker in ``picks`` (``{name: {network:
    assign(...)}}``), bootstrap intervals over events, the residual σ taken apart."""
    nets = list(records)
    recs = [r for n in nets for r in records[n]]
    event_of = np.array([r["event"] for r in recs])
    truth = {ph: [r[ph] for r in recs] for ph in ("P", "S")}
    out: dict[str, Any] = {"records": len(recs), "pooled": {}, "per_network": {}, "timing": {},
                           "picks_in_no_record": {},
                           "hours": round(sum(r["n_samples"] for r in recs) / SR / 3600, 4)}
    counts: dict[str, np.ndarray] = {}
    for name, by_net in picks.items():
        out["picks_in_no_record"][name] = sum(by_net[n]["outside"] for n in nets)
        out["pooled"][name], out["timing"][name] = {}, {}
        for ph in ("P", "S"):
            preds = [np.asarray(x, np.int64) for n in nets for x in by_net[n]["picks"][ph]]
            out["pooled"][name][ph] = pick_scores(truth[ph], preds, SR, (0.1, 0.5))
            for tol in (0.1, 0.5):
                counts[f"{name} {ph} {tol:g}s"] = window_counts(truth[ph], preds, tol)
            idx, res = matched(truth[ph], preds, SR)
            ev = event_of[idx]
            out["timing"][name][ph] = breakdown(res, ev, np.array([e.split(":")[0] for e in
                                                                  ev.tolist()]))
        out["per_network"][name] = {
            n: {ph: pick_scores([r[ph] for r in records[n]],
                                [np.asarray(x, np.int64) for x in by_net[n]["picks"][ph]], SR,
                                (0.1, 0.5)) for ph in ("P", "S")} for n in nets}
    pairs = [(f"cnn {ph} 0.5s", f"phasenetlight {ph} 0.5s") for ph in ("P", "S")
             if "phasenetlight" in picks and "cnn" in picks]
    out["false_picks"] = {name: false_pick_places(recs, {
        ph: [x for n in nets for x in by_net[n]["picks"][ph]] for ph in ("P", "S")})
        for name, by_net in picks.items()}
    out["bootstrap"] = bootstrap_f1(counts, event_of, n_boot, seed, pairs)
    return out


def _f1(s: dict[str, Any] | None, tol: str, ci: dict[str, Any] | None = None) -> str:
    if s is None:
        return "—"
    c = f" [{ci['ci95'][0]:.3f}, {ci['ci95'][1]:.3f}]" if ci else ""
    return f"{s[tol]['f1']:.3f}{c}"


def _ms(s: dict[str, Any] | None) -> str:
    if s is None or s.get("residual_std_s") is None:
        return "—"
    return f"{1000 * s['residual_mean_s']:+.0f} / {1000 * s['residual_std_s']:.0f} ms"


def floors(s: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    """Issue #19's floors against pooled scores ``s`` (``{"P": ..., "S": ...}``)."""
    got = {"P F1 ±0.5 s": s["P"]["0.5s"]["f1"], "S F1 ±0.5 s": s["S"]["0.5s"]["f1"],
           "P residual σ": s["P"]["residual_std_s"]}
    return {k: (v, v <= FLOORS[k] if "σ" in k else v >= FLOORS[k]) for k, v in got.items()}


def markdown(r: dict[str, Any]) -> str:
    sc, boot = r["scores"], r["scores"]["bootstrap"]
    ev = ", ".join(f"{n} ({k})" for n, k in r["network_events"].items())
    who = "each network's fold model (trained without it)" if r["fold_models"] else \
        f"one model for every network ({r['runs'][next(iter(r['runs']))]['model']}): not LONO"
    lines = ["# Leave-one-network-out through `geosentry run`\n",
             f"`{r['command']}` ({r['wall_s']} s, {r['machine']}). Data: {r['data_source']}, "
             f"{sc['records']} records of " + (
                 "90.01 s (P at 30 s)" if r.get("record_s") is None else
                 f"{r['record_s']:g} s cut from them (P at random, 1 s from either end)")
             + f" written as miniSEED, networks {ev}; picker: "
             f"{who}. Each record scored whole: per record and phase the nearest pick "
             "within the tolerance is a hit, every other pick a false one. 95 % intervals: "
             f"bootstrap over events ({r['bootstrap']} resamples).\n",
             "| picker | P F1 ±0.1 s | P F1 ±0.5 s [95 % CI] | P residual mean / σ | "
             "S F1 ±0.1 s | S F1 ±0.5 s [95 % CI] | S residual mean / σ |",
             "|---|---|---|---|---|---|---|"]
    recipe = r.get("recipe", "baseline")  # the folds' training recipe
    labels = {k: v if recipe == "baseline" else v.replace("shipped recipe", f"`{recipe}` recipe")
             for k, v in LABEL.items()}
    rows = [(f"{labels[n]}, through `geosentry run`", sc["pooled"][n], n) for n in sc["pooled"]]
    rows += [(labels[f"offline {n}"], s, None) for n, s in r.get("offline", {}).items()
             if f"offline {n}" in labels]
    for label, s, name in rows:
        cells = []
        for ph in ("P", "S"):
            b = boot.get(f"{name} {ph} 0.5s") if name else None
            cells += [_f1(s.get(ph), "0.1s"), _f1(s.get(ph), "0.5s", b), _ms(s.get(ph))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    diffs = [(k, v) for k, v in boot.items() if " - " in k]
    if diffs:
        lines += ["", "| paired difference at ±0.5 s, through `geosentry run` | F1 diff | 95 % CI |",
                  "|---|---|---|"]
        lines += [f"| {k.replace(' 0.5s', '')} | {v['diff']:+.3f} | [{v['ci95'][0]:+.3f}, "
                  f"{v['ci95'][1]:+.3f}] |" for k, v in diffs]
    if "cnn" in sc["pooled"]:
        lines += ["", "Issue #19 floors, CNN through `geosentry run`: " + "; ".join(
            f"{k} {v:.3f} {'met' if ok else 'NOT met'}" if "F1" in k else
            f"{k} {1000 * v:.0f} ms {'met' if ok else 'NOT met'} (floor 40 ms)"
            for k, (v, ok) in floors(sc["pooled"]["cnn"]).items()) + "."]
    rate = [f"{n} through `geosentry run` P {s['P']['0.5s']['fp'] / sc['hours']:.1f} / S "
            f"{s['S']['0.5s']['fp'] / sc['hours']:.1f}" for n, s in sc["pooled"].items()]
    rate += [f"offline {n} P {s['P']['0.5s']['fp'] / (s['P']['n_windows'] * WINDOW / SR / 3600):.1f}"
             + (f" / S {s['S']['0.5s']['fp'] / (s['S']['n_windows'] * WINDOW / SR / 3600):.1f}"
                if "S" in s else "") for n, s in r.get("offline", {}).items()
             if f"offline {n}" in LABEL]
    lines += ["", f"False picks (±0.5 s) per hour of data scored ({sc['hours']:.2f} h of records "
              "here; offline: 30.01 s per window): " + "; ".join(rate) + "."]
    if sc.get("false_picks"):
        lines += ["", "Where the false picks (±0.5 s) lie in their records, first rule that "
                  "applies (P / S):", "", "| picker | " + " | ".join(FALSE_PICK_PLACES.values())
                  + " |", "|---|" + "---|" * len(FALSE_PICK_PLACES)]
        lines += [f"| {n} | " + " | ".join(f"{fp['P'][k]} / {fp['S'][k]}" for k in
                                           FALSE_PICK_PLACES) + " |"
                  for n, fp in sc["false_picks"].items()]
    lines += ["", "Per held-out network (F1 ±0.5 s P / S; P residual σ):", "",
              "| network | records | " + " | ".join(sc["per_network"]) + " |",
              "|---|---|" + "---|" * len(sc["per_network"])]
    for n, k in r["network_events"].items():
        cells = [f"{_f1(by[n]['P'], '0.5s')} / {_f1(by[n]['S'], '0.5s')}; "
                 + ("—" if by[n]["P"]["residual_std_s"] is None else
                    f"{1000 * by[n]['P']['residual_std_s']:.0f} ms")
                 for by in sc["per_network"].values()]
        lines.append(f"| {n} | {k} | " + " | ".join(cells) + " |")
    lines += markdown_lines(sc["timing"], {"cnn": "CNN (run)", "phasenetlight":
                                           "PhaseNetLight (run)"})
    lines += ["", "Runs: " + "; ".join(
        f"{k}: {v['pick_alerts']} pick alerts, {v['wall_s']} s, thresholds "
        f"{v.get('thresholds') or ''} ({v['thresholds_from']})" for k, v in r["runs"].items()) + ".",
              f"Pick alerts in no record: {sc['picks_in_no_record']}."]
    for k, why in r.get("skipped", {}).items():
        lines.append(f"\n{k} skipped: {why}")
    return "\n".join(lines) + "\n"
