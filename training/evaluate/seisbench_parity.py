"""Parity of an imported SeisBench picker with SeisBench itself, window by window.

``seisbench_picks_on_windows`` runs SeisBench ``classify`` on each window as its own stream;
``service_picks_on_windows`` runs the exported file through the service's own model code
(``TorchScriptDetector``) and the pick rule its contract names (or another one); ``trigger_picks``
applies SeisBench's pick rule to any outputs; ``pick_agreement`` counts picks matched within a
sample. Used by ``tests/training/test_seisbench_import.py``. ``--through-run`` adds the
measurement through ``geosentry run`` on continuous traces (``seisbench_run_parity``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from geosentry.stream.inference.contract import ModelContract, contract_path_for


def seisbench_picks_on_windows(model: Any, raw: np.ndarray, sampling_rate_hz: float,
                               thresholds: dict[str, float]) -> list[dict[str, list[int]]]:
    """SeisBench ``classify`` on each raw window ``(M, C, N)`` as its own stream (so SeisBench
    cuts exactly that window): per window, phase -> sample indices of its picks."""
    import obspy

    out: list[dict[str, list[int]]] = []
    comps = list(model.component_order)
    t0 = obspy.UTCDateTime(2020, 1, 1)
    kwargs = {f"{ph}_threshold": thr for ph, thr in thresholds.items()}
    for w in raw:
        st = obspy.Stream([obspy.Trace(np.asarray(w[k], dtype=np.float64), header={
            "network": "XX", "station": "W", "channel": f"HH{c}", "starttime": t0,
            "sampling_rate": sampling_rate_hz}) for k, c in enumerate(comps)])
        picks = model.classify(st, **kwargs).picks
        got: dict[str, list[int]] = {ph: [] for ph in thresholds}
        for p in picks:
            got.setdefault(p.phase, []).append(int(round((p.peak_time - t0) * sampling_rate_hz)))
        out.append(got)
    return out


def service_picks_on_windows(pt: Path, raw: np.ndarray,
                             pick_rule: str | None = None) -> list[dict[str, list[int]]]:
    """The service's own picks (``TorchScriptDetector``: load checks, freezing, normalisation,
    the contract's pick rule, or ``pick_rule`` instead) on each raw window ``(M, C, N)``, each
    scored whole (a stream's first window with a stride of the whole window): per window,
    phase -> sample indices."""
    import dataclasses

    from geosentry.stream.detectors.registry import ModelConfig
    from geosentry.stream.inference.model import TorchScriptDetector
    from geosentry.stream.inference.pickrule import PickRule, Stacking
    from geosentry.stream.records import Window

    c = ModelContract.load(contract_path_for(pt))
    cfg = ModelConfig(name="parity", type="model", path=str(pt), stride_s=c.window_s,
                      missing_components="zeros")
    det = TorchScriptDetector(cfg, Path(pt), torch.device("cpu"), "fp32")
    if pick_rule is not None:  # windows do not overlap here: stacking changes nothing
        det.contract = dataclasses.replace(det.contract, pick_rule=PickRule(pick_rule),
                                           stacking=Stacking.NONE)
    out: list[dict[str, list[int]]] = []
    period_ns = round(1e9 / c.sampling_rate_hz)
    for i, w in enumerate(raw):
        win = Window("XX", f"W{i}", "", tuple(f"HH{k}" for k in c.components), 0,
                     c.sampling_rate_hz, np.asarray(w, np.float32), 0, "parity", first=True)
        got: dict[str, list[int]] = {ph: [] for ph in c.thresholds}
        for _w, alerts in det.process([win]):
            for a in alerts:
                got.setdefault(str(a.phase), []).append(int(round(a.time_ns / period_ns)))
        out.append(got)
    return out


def pick_agreement(ours: list[dict[str, list[int]]], theirs: list[dict[str, list[int]]],
                   tol_samples: int = 1) -> dict[str, Any]:
    """Picks of the same phase within ``tol_samples`` matched one to one, per window; the share
    agreeing is ``matched / max(ours, theirs)`` (a pick either side lacks counts against it)."""
    matched = n_ours = n_theirs = 0
    for a, b in zip(ours, theirs):
        for ph in set(a) | set(b):
            pa, pb = sorted(a.get(ph, [])), list(b.get(ph, []))
            n_ours, n_theirs = n_ours + len(pa), n_theirs + len(pb)
            for t in pa:
                j = next((k for k, u in enumerate(pb) if abs(u - t) <= tol_samples), None)
                if j is not None:
                    matched += 1
                    pb.pop(j)
    total = max(n_ours, n_theirs)
    return {"windows": len(ours), "picks_geosentry": n_ours, "picks_seisbench": n_theirs,
            "matched": matched, "agreement": round(matched / total, 4) if total else 1.0,
            "tolerance_samples": tol_samples}


def trigger_picks(probs: np.ndarray, labels: tuple[str, ...],
                  thresholds: dict[str, float]) -> list[dict[str, list[int]]]:
    """SeisBench's pick rule (``picks_from_annotations``: trigger on at the threshold, off at
    half of it, the peak of each triggered stretch) applied to outputs ``(M, L, N)``."""
    from obspy.signal.trigger import trigger_onset

    out: list[dict[str, list[int]]] = []
    for p in probs:
        got: dict[str, list[int]] = {}
        for k, label in enumerate(labels):
            if label not in thresholds:
                continue
            thr = thresholds[label]
            got[label] = [int(s0 + np.argmax(p[k, s0: s1 + 1]))
                          for s0, s1 in trigger_onset(p[k], thr, thr / 2)]
        out.append(got)
    return out


def real_windows(per_event: int = 2, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Real 3001-sample Z, N, E windows (raw counts): ``per_event`` at random offsets in each of
    the 96 PhaseNet records (NCEDC and others; 39 vertical-only) and the first 30.01 s of each
    Iceland dike-swarm station cut (Z7, 27 events x 12 stations). Returns windows and sources."""
    import obspy

    from geosentry.training.data.phasenet import load_phasenet
    from geosentry.training.paths import shared_data_dir

    rng = np.random.default_rng(seed)
    out, names = [], []
    for e in load_phasenet():
        for _ in range(per_event):
            off = int(rng.integers(0, e.data.shape[1] - 3001))
            out.append(e.data[:, off: off + 3001])
            names.append(f"phasenet:{e.name}@{off}")
    for f in sorted((shared_data_dir() / "events/iceland-2014-dike/events").glob("*.m")):
        st = obspy.read(str(f), format="MSEED")
        for sta in sorted({tr.stats.station for tr in st}):
            w = np.zeros((3, 3001), np.float32)
            for k, c in enumerate("ZNE"):
                sel = st.select(station=sta, component=c)
                if sel and sel[0].stats.npts >= 3001:
                    w[k] = sel[0].data[:3001]
            if np.any(w[0]):
                out.append(w)
                names.append(f"iceland:{f.stem}:{sta}")
    return np.stack(out).astype(np.float32), names


def main(argv: list[str]) -> int:
    """``python -m geosentry.training evaluate seisbench-parity``: import a SeisBench picker and
    compare its picks with SeisBench ``classify`` on real windows (``real_windows``)."""
    import argparse
    import json
    import os
    import platform
    import tempfile

    from geosentry.training.export.seisbench_import import (import_seisbench, load_checkpoint,
                                                             ImportRefused)
    from geosentry.training.paths import shared_data_dir

    p = argparse.ArgumentParser(prog="python -m geosentry.training evaluate seisbench-parity")
    p.add_argument("--model", default="PhaseNetLight")
    p.add_argument("--weights", type=Path,
                   default=shared_data_dir() / "reference/seisbench-phasenetlight-ethz/ethz")
    p.add_argument("--version", default="2")
    p.add_argument("--out", type=Path, default=Path("runs/seisbench-parity"))
    p.add_argument("--through-run", action="store_true",
                   help="also run geosentry run on continuous Iceland traces (as recorded and "
                        "aligned to the service's window grid) against SeisBench classify")
    p.add_argument("--stations", type=int, default=None,
                   help="--through-run: the first N Iceland stations (default all 12)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pt, js = import_seisbench(a.model, a.weights, Path(tmp), a.version)
            c = ModelContract.load(js)
            raw, names = real_windows()
            model = load_checkpoint(a.model, a.weights, a.version)
            theirs = seisbench_picks_on_windows(model, raw, c.sampling_rate_hz, c.thresholds)
            ours = service_picks_on_windows(pt, raw)
            peaks = service_picks_on_windows(pt, raw, "peaks")
            from geosentry.stream.detectors.registry import ModelConfig
            from geosentry.stream.inference.model import TorchScriptDetector

            det = TorchScriptDetector(ModelConfig(name="p", type="model", path=str(pt),
                                                  stride_s=c.window_s), pt,
                                      torch.device("cpu"), "fp32")
            probs = det.infer_array(raw)
            runs = {}
            if a.through_run:
                from geosentry.training.evaluate.seisbench_run_parity import through_run

                for key, aligned in (("aligned_to_grid", True), ("as_recorded", False)):
                    runs[key] = through_run(pt, model, a.out / f"run-{key}", a.stations,
                                            aligned=aligned)
    except ImportRefused as exc:
        raise SystemExit(f"seisbench-parity: {exc}") from exc
    with torch.no_grad():
        ref = model(model.annotate_batch_pre(torch.from_numpy(raw), {})).numpy()
    report = {"command": "python -m geosentry.training evaluate seisbench-parity --model "
                         f"{a.model} --weights {a.weights} --version {a.version}"
                         + (" --through-run" if a.through_run else "")
                         + (f" --stations {a.stations}" if a.stations else ""),
              "machine": f"{platform.machine()} {platform.processor() or ''} "
                         f"{os.cpu_count()} cores, torch threads 1".replace("  ", " "),
              "windows": len(raw), "phasenet_windows": sum(n.startswith("phasenet") for n in names),
              "iceland_windows": sum(n.startswith("iceland") for n in names),
              "max_abs_probability_difference": float(np.abs(probs - ref).max()),
              "contract_pick_rule": c.pick_rule.value,
              "service_scoring_contract_rule": pick_agreement(ours, theirs),
              "service_scoring_peaks_rule": pick_agreement(peaks, theirs),
              "seisbench_pick_rule_on_service_outputs": pick_agreement(
                  trigger_picks(probs, c.labels, c.thresholds), theirs),
              "through_geosentry_run": runs,
              "differences_service_rule": [
                  {"window": names[i], "geosentry": a_, "seisbench": b_}
                  for i, (a_, b_) in enumerate(zip(ours, theirs))
                  if {k: sorted(v) for k, v in a_.items()} != {k: sorted(v) for k, v in b_.items()}]}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "seisbench_parity.json").write_text(json.dumps(report, indent=2) + "\n")
    short = {k: v for k, v in report.items() if k not in ("differences_service_rule",
                                                          "through_geosentry_run")}
    short["through_geosentry_run"] = {k: {f: x for f, x in r.items() if not f.startswith(
        "unmatched")} for k, r in runs.items()}
    print(json.dumps(short, indent=2))
    print(f"wrote {a.out / 'seisbench_parity.json'}")
    return 0
