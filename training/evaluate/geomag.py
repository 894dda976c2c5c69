"""``geosentry evaluate geomag``: the service's geomagnetic detectors on real observatory data.

Runs the real pipeline (IAGA-2002 -> miniSEED, components interleaved -> buffers -> dB/dt, SSC,
artefact detectors and, beside them, the shipped autoencoder on 1 s data) on

1. quiet background: 14 observatories x 2 days of 1 s data without a catalogued SSC
   (``../shared/data/geomag/intermagnet-1s-2014-04``): every alert is checked against the data
   (:func:`evidence`: instrument artefact, dropout, geophysical, or false), and false alarms are
   reported per observatory-day per detector;
2. the catalogued SSC at BOU, 2016-01-18 21:57 UT (1 min data): onset error, other SSC alerts;
3. held-out one-minute days (BOU 2014-11-01..07, a catalogued SI) not used for the design;
4. events and artefacts injected into quiet days at realistic amplitudes (seeded): recall and
   onset error per type (and the autoencoder's recall of the injected SSCs).

Writes ``geomag.json`` and ``geomag.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from geosentry.stream.config import load_config_dict
from geosentry.stream.decode.iaga import IagaFile, elements_to_mseed, parse_iaga, read_text
from geosentry.stream.decode.mseed import split_records
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.detectors.geomag import OBSERVATORY_MLAT_DEG, latitude_class
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.records import NS_PER_S, Alert
from geosentry.stream.sources.files import archive_records
from geosentry.stream.testing import MemorySink, MemorySource
from geosentry.training.evaluate.geomag_evidence import _label, _utc, evidence
from geosentry.training.paths import shared_data_dir

SSC_CATALOGUE_NS = int(np.datetime64("2016-01-18T21:57:00", "ns").astype(np.int64))
DETECTORS = [{"name": "dbdt", "type": "dbdt"}, {"name": "ssc", "type": "ssc"},
             {"name": "artefacts", "type": "artefacts"},
             # the shipped H, E, Z autoencoder (1 Hz, 600 s windows, stride 300 s), opt-in in the
             # service; an alert's time is its window's start, so SSC onsets are to a window
             {"name": "ae", "type": "model", "path": "builtin:anomaly-geomag"}]
AE_WINDOW_S = 600.0
INJECT_TYPES = ("ssc", "spike", "step", "flat_line", "dropout", "f_inconsistency")
MATCH_S = 120.0
#: Auroral-class observatories (the detectors' profile table): substorms on SC-free days
AURORAL = {o for o, mlat in OBSERVATORY_MLAT_DEG.items() if latitude_class(mlat) == "auroral"}


def _ordered(payloads: list[bytes]) -> list[bytes]:
    """Records in end-time order, interleaving components as a live feed does."""
    timed = [(end or 0, p) for p, end in split_records(b"".join(payloads))]
    return [p for _, p in sorted(timed, key=lambda t: t[0])]


def _run(payloads: list[bytes], autoencoder: bool = True) -> list[Alert]:
    detectors = DETECTORS if autoencoder else [d for d in DETECTORS if d["type"] != "model"]
    cfg = load_config_dict({"detectors": detectors, "coincidence": {"enabled": False}})
    sink = MemorySink()
    asyncio.run(Pipeline(cfg, [MemorySource(payloads)], [sink], build_detectors(cfg)).run())
    return sink.alerts


def _map(fn: Callable[[Any], Any], items: list[Any], jobs: int) -> list[Any]:
    """``fn`` over ``items`` in ``jobs`` processes (spawned: torch does not fork well)."""
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(fn, items))


def _day_alerts(path: Path) -> tuple[IagaFile, list[Alert]]:
    """Alerts for one IAGA file; the 1 Hz autoencoder only on 1 s data (its contract)."""
    f = parse_iaga(read_text(path))
    alerts = [a for a in _run(_ordered([p for _, p in archive_records(path)]), f.interval_s <= 1)
              if _label(a) != "missing_component"]
    return f, alerts


def quiet_background(root: Path, jobs: int = 1) -> dict[str, Any]:
    files = sorted((root / "intermagnet-1s-2014-04").glob("*.sec.gz"))
    runs = dict(zip((p.name for p in files), _map(_day_alerts, files, jobs)))
    every = [(name[:3].upper(), a) for name, (_, alerts) in runs.items() for a in alerts]
    days = {name[3:11]: {n[:3].upper(): f for n, (f, _) in runs.items() if n[3:11] == name[3:11]}
            for name in runs}
    per_obs: dict[str, Counter[str]] = {n[:3].upper(): Counter() for n in runs}
    false_per_obs: dict[str, Counter[str]] = {o: Counter() for o in per_obs}
    listed = []
    for name, (f, alerts) in runs.items():
        obs = name[:3].upper()
        per_obs[obs].update(_label(a) for a in alerts)
        for a in alerts:
            verdict, why = evidence(a, f, every, days[name[3:11]])
            if verdict == "false":
                false_per_obs[obs][_label(a)] += 1
            if verdict != "dropout":
                listed.append({"observatory": obs, "time": _utc(a.time_ns),
                               "channel": a.channel, "alert": _label(a), "score": round(a.score, 2),
                               "threshold": round(a.threshold, 2), "verdict": verdict, "why": why})
    labels = sorted({k for c in per_obs.values() for k in c} | {
        "dbdt", "ssc", "spike", "step", "flat_line", "f_inconsistency", "ae"})
    days_per_obs = len(files) / max(1, len(per_obs))
    everyone = sorted(per_obs)
    groups = {"all": everyone, "mid_low": [o for o in everyone if o not in AURORAL],
              "auroral": sorted(AURORAL & set(everyone))}

    def rate(counts: dict[str, Counter[str]], obs: list[str], k: str) -> float | None:
        return round(sum(counts[o][k] for o in obs) / (days_per_obs * len(obs)), 3) if obs else None

    return {"observatory_days": len(files), "auroral": groups["auroral"],
            "per_observatory": {o: dict(c) for o, c in per_obs.items()},
            "false_per_observatory": {o: dict(c) for o, c in false_per_obs.items()},
            "per_observatory_day": {g: {k: rate(per_obs, obs, k) for k in labels}
                                    for g, obs in groups.items()},
            "false_per_observatory_day": {g: {k: rate(false_per_obs, obs, k) for k in labels}
                                          for g, obs in groups.items()},
            "worst_false_per_observatory_day": {
                k: round(max(false_per_obs[o][k] for o in everyone) / days_per_obs, 3)
                for k in labels}, "alerts": listed}


def held_out(root: Path) -> dict[str, Any]:
    """Data not looked at while choosing thresholds: BOU 2014-11-01..07 one-minute variation
    days (catalogued SI 2014-11-01 07:05) and BOU January 2016 (one catalogued SSC)."""
    days = sorted((root / "usgs-geomag-algorithms" / "iaga2002" / "BOU" / "OneMinute").glob("*"))
    alerts = [a for p in days for a in _day_alerts(p)[1]]
    counts = Counter(_label(a) for a in alerts)
    return {"bou_2014_11_days": len(days), "alerts_per_day": {k: round(v / max(1, len(days)), 3)
                                                             for k, v in sorted(counts.items())},
            "ssc_alerts": [_utc(a.time_ns) for a in alerts if _label(a) == "ssc"],
            "alerts": [f"{_utc(a.time_ns)} {a.channel} {_label(a)} {a.score:.1f}" for a in alerts],
            "catalogued": ["2014-11-01T07:05 SI (7-14 nT low latitude)"]}


def catalogued_ssc(root: Path) -> dict[str, Any]:
    path = root / "usgs-geomag-algorithms" / "adjusted" / "BOU201601vmin.min"
    every = _run(_ordered([p for _, p in archive_records(path)]), autoencoder=False)
    alerts = [a for a in every if a.details.get("detector") == "ssc"]
    nearest = min(alerts, key=lambda a: abs(a.time_ns - SSC_CATALOGUE_NS), default=None)
    error_s = None if nearest is None else (nearest.time_ns - SSC_CATALOGUE_NS) / NS_PER_S
    return {"catalogue_onset": "2016-01-18T21:57:00Z", "detected": error_s is not None and
            abs(error_s) <= MATCH_S, "onset_error_s": error_s,
            "amplitude_nT": None if nearest is None else nearest.details.get("amplitude_nT"),
            "rise_time_s": None if nearest is None else nearest.details.get("rise_time_s"),
            "other_ssc_alerts_in_month": [_utc(a.time_ns) for a in alerts if a is not nearest],
            "alerts_in_month": dict(Counter(_label(a) for a in every))}


def _inject(f: IagaFile, kind: str, rng: np.random.Generator, n: int) -> tuple[IagaFile, list[int]]:
    """Copy of ``f`` with ``n`` events of ``kind`` at random, well separated sample indices."""
    el = {k: v.copy() for k, v in f.elements.items()}
    size = len(el["H"])
    slots = np.linspace(3600, size - 3600, n).astype(int) + rng.integers(-600, 600, n)
    for i in slots:
        if kind == "ssc":
            amp, rise = rng.uniform(10, 40), rng.uniform(60, 240)
            t = np.arange(size - i)
            el["H"][i:] += amp * np.clip(t / rise, 0, 1)
        elif kind == "spike":
            comp = str(rng.choice(["H", "E", "Z"]))
            el[comp][i] += rng.choice([-1, 1]) * rng.uniform(5, 50)
        elif kind == "step":
            comp = str(rng.choice(["H", "E", "Z"]))
            el[comp][i:] += rng.choice([-1, 1]) * rng.uniform(5, 30)
        elif kind == "flat_line":
            comp = str(rng.choice(["H", "E", "Z"]))
            el[comp][i:i + int(rng.uniform(120, 600))] = el[comp][i]
        elif kind == "dropout":
            for comp in el:
                el[comp][i:i + int(rng.uniform(60, 1800))] = np.nan
        elif kind == "f_inconsistency" and "F" in el:
            el["F"][i:] += rng.choice([-1, 1]) * rng.uniform(3, 10)
    return replace(f, elements=el), [int(f.start_ns + i * f.interval_s * NS_PER_S) for i in slots]


def _matches(kind: str, a: Alert) -> bool:
    label = _label(a)
    if kind == "ssc_autoencoder":
        return label == "ae"
    if kind == "dropout":
        return label == "reset_gap"
    return label == kind


def injected(root: Path, n_per_file: int = 8, seed: int = 0, jobs: int = 1,
             hosts_days: tuple[str, ...] = ("bou20140407", "frd20140407", "tuc20140407",
                                            "hon20140407")) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    hosts = [root / "intermagnet-1s-2014-04" / f"{o}vsec.sec.gz" for o in hosts_days]
    cases = []
    for kind in INJECT_TYPES:
        for path in hosts:
            f, times = _inject(parse_iaga(read_text(path)), kind, rng, n_per_file)
            cases.append((kind, times, _ordered(elements_to_mseed(f))))
    results = _map(_run, [payloads for _, _, payloads in cases], jobs)
    out: dict[str, Any] = {}
    for kind in (*INJECT_TYPES, "ssc_autoencoder"):
        found, total, errors = 0, 0, []
        for (k, times, _), every in zip(cases, results):
            if k != kind.removesuffix("_autoencoder"):
                continue
            alerts = [a for a in every if _matches(kind, a)]
            early = AE_WINDOW_S if kind == "ssc_autoencoder" else MATCH_S  # window starts
            for t in times:
                total += 1
                near = [(a.time_ns - t) / NS_PER_S for a in alerts
                        if -early * NS_PER_S <= a.time_ns - t <= MATCH_S * NS_PER_S]
                if near:
                    found += 1
                    errors.append(min(near, key=abs))
        out[kind] = {"injected": total, "recall": round(found / total, 3) if total else None,
                     "onset_error_mean_s": round(float(np.mean(errors)), 1) if errors else None,
                     "onset_error_abs_max_s": round(float(np.max(np.abs(errors))), 1)
                     if errors else None}
    return out


def markdown(report: dict[str, Any]) -> str:
    q, c, inj = report["quiet"], report["catalogued_ssc"], report["injected"]
    ho = report["held_out"]
    raw, false = q["per_observatory_day"], q["false_per_observatory_day"]
    lines = [f"Quiet background: {q['observatory_days']} observatory-days of 1 s data "
             "(2014-04-07/08, no catalogued SSC), alerts per observatory-day. Every alert is "
             "checked against the data (rules in `training/evaluate/geomag_evidence.py`); a "
             "false alarm is one that no rule explains. Floor: 1 per observatory-week = 0.143 "
             "per observatory-day.", "",
             f"| alert | raw, all | false, all | false, mid/low | false, auroral "
             f"({', '.join(q['auroral'])}) | false, worst observatory |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {raw['all'][k]} | {false['all'][k]} | {false['mid_low'][k]} | "
              f"{false['auroral'][k]} | {q['worst_false_per_observatory_day'][k]} |"
              for k in raw["all"]]
    lines += ["", "False alarms per observatory (alert: false/raw over the 2 days):", ""]
    lines += [f"- {o}: " + ", ".join(f"{k} {q['false_per_observatory'][o].get(k, 0)}/{n}"
                                    for k, n in sorted(counts.items()) if k != "reset_gap")
              for o, counts in sorted(q["per_observatory"].items())]
    lines += ["", "| observatory | time (UT) | channel | alert | score | threshold | verdict "
              "| evidence |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {a['observatory']} | {a['time']} | {a['channel']} | {a['alert']} | "
              f"{a['score']} | {a['threshold']} | {a['verdict']} | {a['why']} |"
              for a in q["alerts"]]
    lines += ["", f"Catalogued SSC {c['catalogue_onset']} (BOU, 1 min): detected {c['detected']}, "
              f"onset error {c['onset_error_s']} s, amplitude {c['amplitude_nT']} nT, rise time "
              f"{c['rise_time_s']} s; other SSC alerts that month: "
              f"{', '.join(c['other_ssc_alerts_in_month']) or 'none'} (catalogue: none); "
              "all alerts "
              f"that month: {c['alerts_in_month']}", "",
              f"Held out (not looked at while choosing thresholds): BOU {ho['bou_2014_11_days']} "
              f"one-minute days 2014-11-01..07, alerts per day {ho['alerts_per_day']}; SSC alerts "
              f"{ho['ssc_alerts'] or 'none'} (catalogue: {', '.join(ho['catalogued'])})", "",
              "| injected | n | recall | mean onset error (s) | max abs error (s) |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['injected']} | {v['recall']} | {v['onset_error_mean_s']} | "
              f"{v['onset_error_abs_max_s']} |" for k, v in inj.items()]
    lines += ["", "The same injections into CMO 2014-04-08 (auroral profile):", "",
              "| injected | n | recall | mean onset error (s) | max abs error (s) |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['injected']} | {v['recall']} | {v['onset_error_mean_s']} | "
              f"{v['onset_error_abs_max_s']} |" for k, v in report["injected_auroral"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="geosentry evaluate geomag", description=__doc__)
    parser.add_argument("--out", default="runs/eval-geomag")
    parser.add_argument("--per-file", type=int, default=8, help="injections per type and day")
    parser.add_argument("--jobs", type=int, default=2, help="replays run in parallel")
    args = parser.parse_args(argv)
    root = shared_data_dir() / "geomag"
    if not root.exists():
        print(f"geomagnetic evaluation needs {root} (../shared/data); not found")
        return 2
    t0 = time.time()
    report: dict[str, Any] = {"quiet": quiet_background(root, args.jobs), "catalogued_ssc": catalogued_ssc(root),
              "held_out": held_out(root),
              "injected": injected(root, args.per_file, jobs=args.jobs),
              # the same injections at an auroral observatory, under its auroral profile
              "injected_auroral": injected(root, 2 * args.per_file, jobs=args.jobs,
                                           hosts_days=("cmo20140408",)),
              "detectors": DETECTORS}
    report["runtime_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "geomag.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "geomag.md").write_text(markdown(report))
    print(markdown(report))
    return 0
