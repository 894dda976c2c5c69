"""``geosentry train picker --init MODEL --data DIR --out DIR``: fine-tune a picker on a network's
own picks, with a station-held-out evaluation before and after.

``MODEL``: a shipped picker (``picker``, ``builtin:picker``), a trained, imported or fine-tuned
one by name (``geosentry models list --path``, ``$GEOSENTRY_MODEL_PATH``) or a ``.pt`` path.
``DIR``: miniSEED files (any name; every file ObsPy reads as miniSEED) and picks: ``*.csv``
(``network,station,phase,time[,event_id]``) and/or QuakeML (``*.xml``, ``*.qml``,
``*.quakeml``), read by :mod:`geosentry.training.data.mseed`.

Steps:

1. every (event, station) with a P pick becomes a record of two windows around P at the
   model's rate, components in the model's order (missing ones zero, as the service sends);
2. stations are split with ``--seed``: ``--test-fraction`` of them (at least one) are held out;
3. **before**: the init model with its own thresholds on the held-out windows (8 per event,
   P uniformly placed; ±0.1 / ±0.5 s F1, residuals);
4. the TorchScript module itself is trained (any picker the service runs: shipped, imported from
   SeisBench, earlier fine-tunes; batch-norm statistics and dropout stay as exported): soft-label
   cross entropy against Gaussian P/S labels (``--sigma-s``) on random crops of the training
   stations' records (85 % holding P), with gain, polarity and zeroed-horizontal augmentation;
5. thresholds re-tuned on training-station windows; **after**: same held-out windows;
6. exported (``NAME.pt`` + contract, ``forward_range`` re-checked when the init model has it,
   the service's load check) only when neither held-out P nor S F1 (±0.5 s) got worse, unless
   ``--force``. ``NAME.finetune.json`` / ``.md`` (the evaluation) are written beside it either
   way; a refusal exits 2 naming the drop.

The contract's ``provenance`` says ``fine-tuned``, the init model (name, sha256, its own
provenance), the data and what the model was trained on before.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geosentry.stream.inference.contract import ModelContract, load_contract, sha256_file
from geosentry.training.data.windows import crop, normalise
from geosentry.training.evaluate.picks import (best_threshold, extract_picks, make_pick_windows,
                                               pick_scores)
from geosentry.training.export.exporter import range_parity, verify_export, versions

log = logging.getLogger(__name__)
PICK_SUFFIXES = (".csv", ".xml", ".qml", ".quakeml")
TOLERANCES = (0.1, 0.5)


class FineTuneRefused(Exception):
    """Bad input, or a model that got worse (one line)."""


def resolve_model(spec: str) -> Path:
    """``picker`` / ``builtin:picker`` / a listed model's name / a ``.pt`` path -> the file."""
    from geosentry.stream.catalog import list_models

    path = Path(spec).expanduser()
    if path.suffix == ".pt" and path.exists():
        return path
    name = spec.removeprefix("builtin:")
    for m in list_models():
        if not m.get("error") and name in (m["name"], Path(m["path"]).stem):
            return Path(m["path"])
    raise FineTuneRefused(f"--init {spec!r}: no such model file, and no shipped or listed model "
                          "of that name (geosentry models list; $GEOSENTRY_MODEL_PATH)")


def read_dataset(folder: Path, contract: ModelContract) -> list[Any]:
    """Event records ``(C, 2 * window)`` in the contract's component order."""
    import obspy

    from geosentry.training.data.mseed import COMPONENT_ROWS, mseed_events, read_picks

    if not folder.is_dir():
        raise FineTuneRefused(f"--data {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    pick_files = [p for p in files if p.suffix.lower() in PICK_SUFFIXES]
    if not pick_files:
        raise FineTuneRefused(f"--data {folder}: no pick files ({', '.join(PICK_SUFFIXES)})")
    picks = [p for f in pick_files for p in read_picks(f)]
    st = obspy.Stream()
    for f in files:
        if f in pick_files:
            continue
        try:
            st += obspy.read(str(f), format="MSEED")
        except Exception as exc:  # not miniSEED (a README, ...): said once per file
            log.warning("--data: %s skipped (not miniSEED: %s)", f, type(exc).__name__)
    if not st:
        raise FineTuneRefused(f"--data {folder}: no miniSEED waveforms")
    rows = []
    for c in contract.components:
        if c not in COMPONENT_ROWS:
            raise FineTuneRefused(f"model component {c!r}: the miniSEED reader gives Z, N, E")
        rows.append(COMPONENT_ROWS[c])
    w = contract.window_s
    events = mseed_events(st, picks, before_s=w, after_s=w,
                          sampling_rate_hz=contract.sampling_rate_hz)
    for e in events:
        e.data = e.data[rows]
    log.info("--data %s: %d picks, %d event records from %d stations", folder, len(picks),
             len(events), len({e.station_id for e in events}))
    return events


def station_split(events: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    stations = sorted({e.station_id for e in events})
    if len(stations) < 2:
        raise FineTuneRefused(f"--data: picks at {len(stations)} station(s); a station-held-out "
                              "evaluation needs at least 2")
    rng = np.random.default_rng(seed)
    rng.shuffle(stations)
    k = min(len(stations) - 1, max(1, int(round(fraction * len(stations)))))
    test = set(stations[:k])
    return ([e for e in events if e.station_id not in test],
            [e for e in events if e.station_id in test])


def label_rows(contract: ModelContract) -> tuple[int, int, int]:
    labels = list(contract.labels)
    if len(labels) != 3 or "P" not in labels or "S" not in labels:
        raise FineTuneRefused(f"labels {labels}: fine-tuning needs a softmax picker with P, S "
                              "and one noise label")
    p, s = labels.index("P"), labels.index("S")
    return p, s, 3 - p - s


class Windows:
    """Raw windows of some events with their true P/S sample positions."""

    def __init__(self, events: list[Any], n: int, per_event: int, seed: int) -> None:
        ws = make_pick_windows([e.itp for e in events], [e.its if e.its >= 0 else -10**9
                                                         for e in events],
                               events[0].data.shape[1], n, per_event, seed)
        self.raw = np.stack([crop(events[w.event].data, w.offset, n) for w in ws])
        self.truth = {"P": [w.p for w in ws], "S": [w.s for w in ws]}


@torch.no_grad()
def probabilities(module: Any, contract: ModelContract, raw: np.ndarray,
                  batch: int = 32) -> np.ndarray:
    norm = contract.normalisation
    out = []
    for i in range(0, len(raw), batch):
        x = normalise(raw[i: i + batch], norm.method, norm.demean, norm.eps)
        out.append(module(torch.from_numpy(x)).float().numpy())
    return np.concatenate(out)


def scores(prob: np.ndarray, truth: dict[str, list[int | None]], rows: dict[str, int],
           thresholds: dict[str, float], rate: float) -> dict[str, Any]:
    return {ph: pick_scores(truth[ph], [extract_picks(p[rows[ph]], thresholds[ph]) for p in prob],
                            rate, TOLERANCES) for ph in ("P", "S")}


def tune(prob: np.ndarray, truth: dict[str, list[int | None]], rows: dict[str, int],
         rate: float) -> dict[str, float]:
    out = {}
    for ph in ("P", "S"):
        def f1(t: float, ph: str = ph) -> float:
            picks = [extract_picks(p[rows[ph]], t) for p in prob]
            return float(pick_scores(truth[ph], picks, rate, (0.5,))["0.5s"]["f1"])

        out[ph] = round(best_threshold(f1, np.arange(0.1, 0.91, 0.05))[0], 2)
    return out


def finetune(a: argparse.Namespace) -> int:
    torch.manual_seed(a.seed)
    init_pt = resolve_model(a.init)
    init = load_contract(init_pt)
    if init.kind != "picker":
        raise FineTuneRefused(f"--init {a.init}: kind {init.kind!r}, not a picker")
    p_row, s_row, n_row = label_rows(init)
    rows = {"P": p_row, "S": s_row}
    events = read_dataset(Path(a.data), init)
    train, test = station_split(events, a.test_fraction, a.seed)
    if not train or not test:
        raise FineTuneRefused("--data: too few events for a station split")
    n, rate = init.window_samples, init.sampling_rate_hz
    held_out = Windows(test, n, 8, 1234)
    tuning = Windows(train, n, 4, 99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(init_pt), map_location="cpu")
    module.eval()  # batch-norm statistics and dropout as exported
    before = scores(probabilities(module, init, held_out.raw), held_out.truth, rows,
                    init.thresholds, rate)
    params = [p for p in module.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=a.lr)
    rng = np.random.default_rng(a.seed)
    sigma = a.sigma_s * rate
    t = np.arange(n, dtype=np.float32)
    norm = init.normalisation
    t0 = time.perf_counter()
    history = []
    for step in range(a.epochs * a.steps_per_epoch):
        xs, ys = [], []
        for _ in range(a.batch):
            ev = train[int(rng.integers(len(train)))]
            length = ev.data.shape[1]
            off = ev.itp - int(rng.integers(20, n - 20)) if rng.random() < 0.85 else \
                int(rng.integers(0, max(1, length - n + 1)))
            off = int(np.clip(off, 0, max(0, length - n)))
            x = crop(ev.data, off, n) * rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0, (3, 1))
            if rng.random() < 0.15:
                x[1:] = 0.0  # a vertical-only station
            y = np.zeros((3, n), np.float32)
            for row, pos in ((p_row, ev.itp - off), (s_row, ev.its - off if ev.its >= 0 else None)):
                if pos is not None:
                    y[row] = np.exp(-0.5 * ((t - pos) / sigma) ** 2)
            y[n_row] = np.clip(1.0 - y[p_row] - y[s_row], 0.0, 1.0)
            xs.append(normalise(x.astype(np.float32), norm.method, norm.demean, norm.eps))
            ys.append(y)
        prob = module(torch.from_numpy(np.stack(xs)))
        loss = -(torch.from_numpy(np.stack(ys)) * torch.log(prob.clamp_min(1e-7))).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % a.steps_per_epoch == 0:
            history.append({"epoch": (step + 1) // a.steps_per_epoch, "loss": round(loss.item(), 5),
                            "elapsed_s": round(time.perf_counter() - t0, 1)})
            log.info("fine-tune %s", history[-1])
    for p in params:
        p.requires_grad_(False)
    thresholds = tune(probabilities(module, init, tuning.raw), tuning.truth, rows, rate)
    after = scores(probabilities(module, init, held_out.raw), held_out.truth, rows, thresholds,
                   rate)
    drops = {ph: round(after[ph]["0.5s"]["f1"] - before[ph]["0.5s"]["f1"], 4) for ph in ("P", "S")
             if after[ph]["0.5s"]["f1"] < before[ph]["0.5s"]["f1"]}
    name = a.name or f"{init.name}-ft"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "geosentry train picker " + " ".join(sys.argv[3:] if a.argv is None else a.argv),
        "init": {"path": str(init_pt), "name": init.name, "sha256": init.sha256},
        "data": str(a.data), "train_events": len(train), "test_events": len(test),
        "train_stations": sorted({e.station_id for e in train}),
        "test_stations": sorted({e.station_id for e in test}),
        "held_out_windows": len(held_out.raw), "seed": a.seed, "lr": a.lr, "batch": a.batch,
        "epochs": a.epochs, "steps_per_epoch": a.steps_per_epoch, "history": history,
        "before": {"thresholds": init.thresholds, **before},
        "after": {"thresholds": thresholds, "threshold_source": "tuned on training stations",
                  **after},
        "worse": drops, "forced": bool(drops and a.force),
        "exported": not drops or a.force}
    (out / f"{name}.finetune.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / f"{name}.finetune.md").write_text(markdown(report))
    print(markdown(report))
    if drops and not a.force:
        raise FineTuneRefused(f"not exported: held-out F1 (±0.5 s) got worse ({drops}); "
                              f"see {out / (name + '.finetune.md')}; --force exports anyway")
    export(module, init, init_pt, out / f"{name}.pt", name, thresholds, report)
    return 0


def export(module: Any, init: ModelContract, init_pt: Path, pt: Path, name: str,
           thresholds: dict[str, float], report: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, str(pt))
        reloaded = torch.jit.load(str(pt), map_location="cpu")
    if init.forward_range:
        x = torch.randn(2, len(init.components), init.window_samples,
                        generator=torch.Generator().manual_seed(0))
        diff = range_parity(reloaded, x)
        if diff > 1e-4:
            pt.unlink()
            raise FineTuneRefused(f"forward_range differs from forward by {diff:.3g}")
    raw = init.to_dict()
    init_prov = dict(init.provenance) or {"source": "shipped" if init_pt.parent.name == "models"
                                          else "trained"}
    before_on = init_prov.get("trained_on") or init.training.get("data_source", "?")
    summary = {ph: {k: report[k][ph]["0.5s"]["f1"] for k in ("before", "after")} for ph in "PS"}
    raw.update({
        "name": name, "file": pt.name, "sha256": sha256_file(pt), "thresholds": thresholds,
        "precisions": {}, "versions": versions(),
        "metrics": {"headline": {f"{ph}_f1_0.5s_{k}": v for ph, d in summary.items()
                                 for k, v in d.items()}, "finetune": report},
        "training": {"command": report["command"], "init_sha256": init.sha256,
                     "train_events": report["train_events"], "seed": report["seed"],
                     "history": report["history"]},
        "provenance": {
            "source": "fine-tuned", "forced": report["forced"],
            "init": {"name": init.name, "path": str(init_pt), "sha256": init.sha256,
                     "provenance": init_prov},
            "trained_on": f"{before_on}; fine-tuned on {report['data']} ({report['train_events']}"
                          f" records, {len(report['train_stations'])} stations)",
            "evaluation": f"{pt.stem}.finetune.json"},
    })
    ModelContract.from_dict(json.loads(json.dumps(raw, default=str))).write(pt.with_suffix(".json"))
    verify_export(pt)
    print(f"exported {pt} and {pt.with_suffix('.json')}")


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Fine-tuning {r['init']['name']} on {r['data']}\n",
             f"{r['train_events']} training records ({len(r['train_stations'])} stations), "
             f"{r['test_events']} held-out records ({len(r['test_stations'])} stations: "
             f"{', '.join(r['test_stations'])}), {r['held_out_windows']} held-out windows.\n",
             "| model | phase | F1 ±0.1 s | F1 ±0.5 s | precision / recall ±0.5 s | residual mean / σ (s) "
             "| threshold |", "|---|---|---|---|---|---|---|"]
    for k in ("before", "after"):
        for ph in ("P", "S"):
            s = r[k][ph]
            res = "—" if s["residual_mean_s"] is None else \
                f"{s['residual_mean_s']:+.3f} / {s['residual_std_s']:.3f}"
            lines.append(f"| {k} | {ph} | {s['0.1s']['f1']:.3f} | {s['0.5s']['f1']:.3f} | "
                         f"{s['0.5s']['precision']:.3f} / {s['0.5s']['recall']:.3f} | {res} | "
                         f"{r[k]['thresholds'][ph]:.3g} |")
    verdict = ("exported" if not r["worse"] else
               "exported anyway (--force)" if r["forced"] else "NOT exported")
    lines.append(f"\n{verdict}" + (f": worse on {r['worse']}" if r["worse"] else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="geosentry train picker --init", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", required=True, metavar="MODEL")
    p.add_argument("--data", required=True, type=Path, metavar="DIR")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument("--name", help="exported model's name (default INIT-ft)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--sigma-s", type=float, default=0.2, help="label width (Gaussian sigma)")
    p.add_argument("--test-fraction", type=float, default=0.25,
                   help="share of stations held out for the before/after evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="export even if held-out F1 dropped")
    a = p.parse_args(argv)
    a.argv = argv
    try:
        return finetune(a)
    except FineTuneRefused as exc:
        print(f"geosentry train picker: {exc}", file=sys.stderr)
        return 2
