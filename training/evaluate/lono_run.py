"""``python -m geosentry.training evaluate picker-lono --through-run``: the leave-one-network-out
pickers measured through ``geosentry run`` itself, as issue #19 states its floors.

For each held-out network with a fold result in ``--out`` (``fold-NET/checkpoint.pt`` and
``result.json`` from ``evaluate picker-lono``; nothing is trained here):

1. the fold's CNN is exported exactly like the shipped picker (``export_model``: TorchScript,
   parity, contract; window 3001, stride window // 2, std normalisation) with the P/S thresholds
   the fold tuned on the other networks' windows (``result.json`` ``thresholds.cnn``), and
   checked by ``verify_export`` (the service's own contract check);
2. each of the network's PhaseNet records (90.01 s, 100 Hz, raw counts) is written as a miniSEED
   file: its true network and station codes, its channels as the record names them (a
   vertical-only record is one Z trace), starting at the time in its file name (PhaseNet's
   names carry a time, not the window start: the absolute times are nominal, the picks are
   relative to the record so scoring does not depend on it);
3. ``geosentry run --source DIR --sink jsonl:... --speed 0`` runs as a subprocess (as an
   operator runs it) with a config whose only detector is the exported picker, every other
   setting the service's default (stride, lookahead, thresholds from the contract, precision,
   ``missing_components = "zeros"`` as for the shipped picker's default table);
4. the pick alerts are read back and scored against each record's reference P and S with the
   offline rules (``picks.pick_scores``: per record and phase the nearest pick within the
   tolerance is a hit, every other pick of that phase in the record is a false pick), F1 at
   ±0.1 / ±0.5 s, residuals, ``timing.breakdown``, bootstrap over events; pooled and per network.

SeisBench PhaseNetLight-ETHZ (imported once with ``geosentry models import seisbench`` from the
reference weights, its contract's defaults) runs through ``geosentry run`` on the same files when
seisbench is importable. ``--model PT`` runs one exported picker on every network instead of the
fold models (e.g. the shipped one, which saw every network: a check, not a LONO figure).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np

from geosentry.stream.inference.refine import PickRefinement
from geosentry.stream.records import NS_PER_S

log = logging.getLogger(__name__)
SR = 100.0
WINDOW = 3001
PNL = "phasenetlight"


class NoFolds(Exception):
    """The fold checkpoints the measurement needs are absent (one line)."""


def record_start(name: str) -> Any:
    """``NC_MEM_2017100709282692.npz`` -> UTCDateTime 2017-10-07T09:28:26.92."""
    import obspy

    t = Path(name).stem.split("_")[2]
    if len(t) < 14 or not t[:16].isdigit():
        raise ValueError(f"{name}: no YYYYMMDDhhmmss[cc] time in the name")
    cs = int(t[14:16]) if len(t) >= 16 else 0
    return obspy.UTCDateTime(int(t[:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]),
                             int(t[12:14])) + cs / 100.0


def crop_start(e: Any, crop: int, rng: np.random.Generator) -> int:
    """First sample of a ``crop``-sample cut of record ``e`` with its P 1 s to ``crop`` - 1 s
    from the cut's start (as the offline windows place it), within the record."""
    lo = max(int(e.itp) - crop + int(SR), 0)
    hi = min(int(e.itp) - int(SR), e.data.shape[1] - crop)
    return int(rng.integers(lo, hi + 1)) if hi >= lo else max(0, min(int(e.itp), hi))


def write_records(events: list[Any], folder: Path, crop: int | None = None,
                  rng: np.random.Generator | None = None) -> list[dict[str, Any]]:
    """One miniSEED file per record in ``folder`` (``crop``: a cut of that many samples, its P
    placed at random by ``rng``); returns what scoring needs of each (a phase whose reference
    pick is outside the cut: ``None``)."""
    import obspy

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, e in enumerate(events):
        a = 0 if crop is None else crop_start(e, crop, rng or np.random.default_rng(0))
        n = e.data.shape[1] - a if crop is None else crop
        start = record_start(e.name) + a / SR
        codes = [c for c in e.channels.split("_") if c] or ["HHZ", "HHN", "HHE"]
        st = obspy.Stream()
        for code in codes:
            row = "ZNE".index(code[-1]) if code[-1] in "ZNE" else None
            if row is None:
                raise ValueError(f"{e.name}: channel {code} is not Z, N or E")
            x = np.asarray(e.data[row, a:a + n], dtype=np.float64)
            whole = bool(np.all(x == np.round(x))) and float(np.abs(x).max(initial=0)) < 2**31
            data = x.astype(np.int32) if whole else x.astype(np.float32)
            st += obspy.Trace(data, header={"network": e.network, "station": e.station,
                                            "location": "", "channel": code, "starttime": start,
                                            "sampling_rate": SR})
        path = folder / f"{Path(e.name).stem}.mseed"
        enc = "STEIM2" if all(tr.data.dtype == np.int32 for tr in st) else "FLOAT32"
        st.write(str(path), format="MSEED", reclen=512, encoding=enc)
        ref = {ph: int(t) - a if 0 <= int(t) - a < n else None
               for ph, t in (("P", e.itp), ("S", e.its))}
        out.append({"event": f"{e.network}:{i}", "network": e.network, "station": e.station,
                    "name": e.name, "start_ns": int(start.ns), "n_samples": n, **ref,
                    "components": len(codes)})
    return out


#: ``--early-warning``: the detector settings of ``stream.events.latency`` (a pick reported with
#: 1-1.5 s of data after it)
EARLY_WARNING = "stride_s = 0.5\nlookahead_s = 1.0\n"


def run_service(pt: Path, src: Path, work: Path, timeout_s: float, settings: str = ""
                ) -> tuple[list[dict[str, Any]], float]:
    """``geosentry run`` over ``src`` with ``pt`` as the only detector (the service's defaults
    otherwise, ``settings`` TOML lines of its table): its pick alerts and wall time; a failed run
    raises with its log's tail."""
    from geosentry.training.evaluate.seisbench_run_parity import run_service as serve

    return serve(pt, src, work, timeout_s, name="picker", extra_config=settings)


def _ns(text: str) -> int:
    import obspy

    return int(obspy.UTCDateTime(text).ns)


def placed(records: list[dict[str, Any]], alerts: list[dict[str, Any]]
           ) -> Iterator[tuple[int | None, str, int, dict[str, Any]]]:
    """Each alert as ``(record index or None, phase, sample in the record, alert)``: the record
    of its station whose span holds its time."""
    period = NS_PER_S / SR
    by_sta: dict[str, list[int]] = {}
    for k, r in enumerate(records):
        by_sta.setdefault(f"{r['network']}.{r['station']}", []).append(k)
    for a in alerts:
        t = _ns(a["time"])
        hit = next((i for i in by_sta.get(f"{a['network']}.{a['station']}", [])
                    if 0 <= t - records[i]["start_ns"] < records[i]["n_samples"] * period), None)
        sample = round((t - records[hit]["start_ns"]) / period) if hit is not None else 0
        yield hit, str(a.get("phase")), sample, a


def assign(records: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per record and phase the picks (sample index in the record) that fall in it; picks in no
    record are counted (``outside``)."""
    picks: dict[str, list[list[int]]] = {"P": [[] for _ in records], "S": [[] for _ in records]}
    outside = 0
    for hit, ph, sample, _ in placed(records, alerts):
        if hit is None or ph not in picks:
            outside += 1
            continue
        picks[ph][hit].append(sample)
    return {"picks": picks, "outside": outside}


def fold_model(fold_dir: Path, work: Path, thresholds: dict[str, float] | None = None,
               also: tuple[Path, ...] = (), refine: bool = True
               ) -> tuple[Path, dict[str, float], str]:
    """Export ``fold_dir``'s CNN like the shipped picker; ``(pt, thresholds, where from)``.
    ``thresholds`` replace the fold's tuned ones; ``also``: other recipes' folds of the same
    network, averaged with it (:class:`PickerEnsemble`); ``refine``: with the shipped picker's
    onset refinement (``stream/inference/refine.py``)."""
    import torch

    from geosentry.training.export.exporter import export_model, verify_export
    from geosentry.training.export.reexport import picker_from_state
    from geosentry.training.models.ensemble import PickerEnsemble

    nets: list[torch.nn.Module] = []
    for d in (fold_dir, *also):
        ckpt = torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=False)
        nets.append(picker_from_state(ckpt["modules"]["model"], ("Z", "N", "E"),
                                      ("P", "S", "N"), SR, WINDOW))
    net = nets[0] if len(nets) == 1 else PickerEnsemble(nets).eval()
    result = json.loads((fold_dir / "result.json").read_text())
    thr = result.get("thresholds", {}).get("cnn")
    origin = "tuned by the fold on the other networks (result.json)"
    if thresholds is not None:
        thr, origin = thresholds, "given (threshold sweep)"
    elif not thr:
        thr, origin = {"P": 0.5, "S": 0.5}, "none recorded: the export default 0.5"
    pt, _ = export_model(
        net, name="picker", kind="picker", sampling_rate_hz=SR, components=("Z", "N", "E"),
        window_samples=WINDOW, stride_samples=WINDOW // 2, labels=("P", "S", "N"),
        thresholds=thr, out_dir=work, normalisation={"method": "std", "demean": True, "eps": 1e-8},
        training={"lono_fold": str(fold_dir), "held_out_network": result.get("network"),
                  "settings": result.get("settings", {}),
                  "ensemble_with": [str(d) for d in also]},
        file_stem=f"picker-lono-{result.get('network')}",
        refine=PickRefinement().to_dict() if refine else None)
    verify_export(pt)
    return pt, {k: float(v) for k, v in thr.items()}, origin


def phasenetlight_model(work: Path) -> Path | str:
    """PhaseNetLight-ETHZ imported (``models import seisbench``) into ``work``, or why not."""
    from geosentry.training.export.exporter import verify_export
    from geosentry.training.export.seisbench_import import ImportRefused, import_seisbench
    from geosentry.training.paths import shared_data_dir

    weights = shared_data_dir() / "reference/seisbench-phasenetlight-ethz/ethz"
    pt = work / "phasenetlight-ethz.pt"
    if pt.exists():
        try:
            verify_export(pt)
            return pt
        except AssertionError:
            pass
    if not weights.with_name("ethz.json.v2").exists():
        return f"PhaseNetLight weights not found ({weights}.json.v2 absent)"
    try:
        pt, _ = import_seisbench("PhaseNetLight", weights, work, "2")
    except ImportRefused as exc:
        return str(exc)
    return pt


def fold_dirs(out: Path, networks: list[str]) -> dict[str, Path]:
    """``{network: fold dir}`` for ``networks``; :class:`NoFolds` naming those without one."""
    missing = [n for n in networks if not (out / f"fold-{n}" / "checkpoint.pt").exists()
               or not (out / f"fold-{n}" / "result.json").exists()]
    if missing:
        raise NoFolds(f"picker-lono --through-run: no fold checkpoint/result for {missing} in "
                      f"{out} (run `python -m geosentry.training evaluate picker-lono --out "
                      f"{out}` first)")
    return {n: out / f"fold-{n}" for n in networks}


def folds_recipe(folds: dict[str, Path]) -> str:
    """The training recipe the folds' ``result.json`` records (``baseline`` where none: folds
    written before ``--recipe`` existed, or no folds, ``--model``)."""
    if not folds:
        return "baseline"
    result = json.loads((next(iter(folds.values())) / "result.json").read_text())
    return str(result.get("settings", {}).get("recipe", "baseline"))


def main(argv: list[str]) -> int:
    from geosentry.training.data.phasenet import load_events
    from geosentry.training.evaluate.lono_run_report import markdown, score

    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate picker-lono "
                                "--through-run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--through-run", action="store_true", help="(this command)")
    p.add_argument("--out", type=Path, default=Path("runs/picker-lono"),
                   help="the picker-lono folder with fold-NET/checkpoint.pt (default "
                        "runs/picker-lono); results go to OUT/through-run")
    p.add_argument("--networks", help="comma-separated held-out networks (default: every one)")
    p.add_argument("--model", type=Path, help="one exported picker for every network instead "
                                              "of the fold models (not a LONO figure)")
    p.add_argument("--no-seisbench", action="store_true", help="leave PhaseNetLight out")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per geosentry run")
    p.add_argument("--early-warning", action="store_true",
                   help="serve the CNNs at stride_s 0.5, lookahead_s 1 (the early-warning "
                        "replay's settings; results go to OUT/through-run-early-warning; "
                        "PhaseNetLight left out: its contract stacks windows)")
    p.add_argument("--crop-s", type=float,
                   help="serve each record cut to this many seconds with its P at a random time "
                        "1 s to CROP_S - 1 s from the cut's start (seeded: --seed), as the "
                        "offline windows do: short records, arrivals anywhere (results go to "
                        "OUT/through-run-crop-CROP_S)")
    p.add_argument("--no-refine", action="store_true",
                   help="fold models without the shipped picker's onset refinement (results go "
                        "to OUT/through-run-unrefined)")
    a = p.parse_args(argv)
    events, source = load_events(seed=a.seed)
    nets: dict[str, list[Any]] = {}
    for e in events:
        nets.setdefault(e.network, []).append(e)
    order = sorted(nets, key=lambda n: -len(nets[n]))
    todo = a.networks.split(",") if a.networks else order
    if set(todo) - set(nets):
        print(f"picker-lono --through-run: --networks {sorted(set(todo) - set(nets))} not in "
              f"the data ({order})", file=sys.stderr)
        return 2
    try:
        folds = {} if a.model is not None else fold_dirs(a.out, todo)
    except NoFolds as exc:
        print(exc, file=sys.stderr)
        return 2
    if a.crop_s is not None and not 2.0 < a.crop_s <= 90.0:
        print(f"picker-lono --through-run: --crop-s {a.crop_s} is not in (2, 90] s",
              file=sys.stderr)
        return 2
    crop = None if a.crop_s is None else round(a.crop_s * SR)
    rng = np.random.default_rng(a.seed)
    work = a.out / ("through-run" + ("-unrefined" if a.no_refine else "")
                    + ("-early-warning" if a.early_warning else "")
                    + (f"-crop-{a.crop_s:g}" if crop else ""))
    settings = EARLY_WARNING if a.early_warning else ""
    t0 = time.monotonic()
    records: dict[str, list[dict[str, Any]]] = {}
    picks: dict[str, dict[str, Any]] = {"cnn": {}}
    runs: dict[str, Any] = {}
    for n in todo:
        records[n] = write_records(nets[n], work / "mseed" / n, crop, rng)
        if a.model is not None:
            pt, thr, origin = a.model, None, "the model's contract"
        else:
            pt, thr, origin = fold_model(folds[n], work / "models", refine=not a.no_refine)
        alerts, wall = run_service(pt, work / "mseed" / n, work / "run" / f"cnn-{n}", a.timeout_s,
                                   settings)
        picks["cnn"][n] = assign(records[n], alerts)
        runs[f"cnn {n}"] = {"model": str(pt), "thresholds": thr, "thresholds_from": origin,
                            "wall_s": round(wall, 1), "pick_alerts": len(alerts)}
        log.info("through-run %s: %d pick alerts in %.1f s", n, len(alerts), wall)
    skipped = {}
    pnl = ("disabled (--no-seisbench)" if a.no_seisbench else
           "left out (--early-warning: its contract stacks windows, lookahead_s does not apply)"
           if a.early_warning else phasenetlight_model(work / "models"))
    if isinstance(pnl, Path):
        alerts, wall = run_service(pnl, work / "mseed", work / "run" / PNL, a.timeout_s)
        all_recs = [r for n in todo for r in records[n]]
        got = assign(all_recs, alerts)
        picks[PNL], k = {}, 0
        for n in todo:
            m = len(records[n])
            picks[PNL][n] = {"picks": {ph: got["picks"][ph][k:k + m] for ph in ("P", "S")},
                             "outside": got["outside"] if n == todo[0] else 0}  # counted once
            k += m
        runs[PNL] = {"model": str(pnl), "thresholds_from": "the import's contract (the weights' "
                     "default_args)", "wall_s": round(wall, 1), "pick_alerts": len(alerts)}
    else:
        skipped[PNL] = pnl
    report = {
        "command": "python -m geosentry.training evaluate picker-lono --through-run --out "
                   f"{a.out}" + (f" --networks {a.networks}" if a.networks else "")
                   + (f" --model {a.model}" if a.model else "")
                   + (" --no-seisbench" if a.no_seisbench else "")
                   + (" --no-refine" if a.no_refine else "")
                   + (" --early-warning" if a.early_warning else "")
                   + (f" --crop-s {a.crop_s:g}" if crop else ""),
        "data_source": source, "networks": todo, "recipe": folds_recipe(folds),
        "network_events": {n: len(records[n]) for n in todo}, "runs": runs, "skipped": skipped,
        "record_s": None if crop is None else crop / SR,
        "machine": f"{platform.machine()}, {platform.system()}", "fold_models": a.model is None,
        "wall_s": None, "bootstrap": a.bootstrap, "scores": score(records, picks, a.bootstrap, a.seed)}
    offline = a.out / "picker_lono.json"
    if offline.exists() and a.model is None and crop is None:  # the offline windows' figures
        off = json.loads(offline.read_text())
        if set(off.get("network_events", {})) == set(todo):
            report["offline"] = off["aggregate"]["pooled"]
    report["wall_s"] = round(time.monotonic() - t0, 1)
    (work / "picker_lono_run.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report)
    (work / "picker_lono_run.md").write_text(md)
    print(md)
    print(f"wrote {work / 'picker_lono_run.json'} and {work / 'picker_lono_run.md'}")
    return 0
