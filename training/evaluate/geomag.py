"""``geosentry evaluate geomag``: the service's geomagnetic detectors on real observatory data.

Runs the real pipeline (IAGA-2002 -> miniSEED -> buffers -> dB/dt, SSC, artefact detectors) on

1. quiet background: 14 observatories x 2 days of 1 s data without a catalogued SSC
   (``../shared/data/geomag/intermagnet-1s-2014-04``): alerts per observatory-day per detector;
2. the catalogued SSC at BOU, 2016-01-18 21:57 UT (1 min data): onset error;
3. events and artefacts injected into quiet days at realistic amplitudes (seeded): recall and
   onset error per type.

Writes ``geomag.json`` and ``geomag.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import load_config_dict
from stream.decode.iaga import IagaFile, elements_to_mseed, parse_iaga, read_text
from stream.decode.mseed import split_records
from stream.detectors.factory import build_detectors
from stream.pipeline import Pipeline
from stream.records import NS_PER_S, Alert
from stream.sources.files import archive_records
from stream.testing import MemorySink, MemorySource
from training.paths import shared_data_dir

SSC_CATALOGUE_NS = int(np.datetime64("2016-01-18T21:57:00", "ns").astype(np.int64))
DETECTORS = [{"name": "dbdt", "type": "dbdt"}, {"name": "ssc", "type": "ssc"},
             {"name": "artefacts", "type": "artefacts"}]
INJECT_TYPES = ("ssc", "spike", "step", "flat_line", "dropout", "f_inconsistency")
MATCH_S = 120.0
#: Auroral-zone observatories (geomagnetic latitude above ~60 degrees): substorms occur on days
#: without a sudden commencement, so their "quiet" days are not quiet in dB/dt.
AURORAL = {"BRW", "DED", "CMO"}


def _ordered(payloads: list[bytes]) -> list[bytes]:
    """Records in end-time order, interleaving components as a live feed does."""
    timed = [(end or 0, p) for p, end in split_records(b"".join(payloads))]
    return [p for _, p in sorted(timed, key=lambda t: t[0])]


def _run(payloads: list[bytes]) -> list[Alert]:
    cfg = load_config_dict({"detectors": DETECTORS, "coincidence": {"enabled": False}})
    sink = MemorySink()
    asyncio.run(Pipeline(cfg, [MemorySource(payloads)], [sink], build_detectors(cfg)).run())
    return sink.alerts


def _label(a: Alert) -> str:
    """What an alert says happened: detector, or the health event / artefact type."""
    if a.kind == "health":
        return str(a.details.get("artefact") or a.details.get("event"))
    return str(a.details.get("detector"))


def quiet_background(root: Path) -> dict[str, Any]:
    files = sorted((root / "intermagnet-1s-2014-04").glob("*.sec.gz"))
    per_obs: dict[str, Counter[str]] = {}
    for f in files:
        alerts = _run([p for _, p in archive_records(f)])
        counts = per_obs.setdefault(f.name[:3].upper(), Counter())
        counts.update(_label(a) for a in alerts if _label(a) != "missing_component")
    labels = sorted({k for c in per_obs.values() for k in c})
    days_per_obs = len(files) / max(1, len(per_obs))

    def rates(observatories: list[str]) -> dict[str, float]:
        days = days_per_obs * len(observatories)
        return {k: round(7 * sum(per_obs[o][k] for o in observatories) / days, 3)
                for k in labels} if days else {}

    everyone = sorted(per_obs)
    mid_low = [o for o in everyone if o not in AURORAL]
    return {"observatory_days": len(files), "auroral": sorted(AURORAL & set(everyone)),
            "per_observatory": {o: dict(c) for o, c in per_obs.items()},
            "per_observatory_week": rates(everyone),
            "per_observatory_week_mid_low_latitude": rates(mid_low),
            "per_observatory_week_auroral": rates(sorted(AURORAL & set(everyone)))}


def catalogued_ssc(root: Path) -> dict[str, Any]:
    path = root / "usgs-geomag-algorithms" / "adjusted" / "BOU201601vmin.min"
    alerts = [a for a in _run([p for _, p in archive_records(path)])
              if a.details.get("detector") == "ssc"]
    nearest = min(alerts, key=lambda a: abs(a.time_ns - SSC_CATALOGUE_NS), default=None)
    error_s = None if nearest is None else (nearest.time_ns - SSC_CATALOGUE_NS) / NS_PER_S
    return {"catalogue_onset": "2016-01-18T21:57:00Z", "detected": error_s is not None and
            abs(error_s) <= MATCH_S, "onset_error_s": error_s,
            "amplitude_nT": None if nearest is None else nearest.details.get("amplitude_nT"),
            "other_ssc_alerts_in_month": max(0, len(alerts) - 1)}


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
    if kind == "ssc":
        return label == "ssc"
    if kind == "dropout":
        return label == "reset_gap"
    return label == kind


def injected(root: Path, n_per_file: int = 8, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    hosts = [root / "intermagnet-1s-2014-04" / f"{o}20140407vsec.sec.gz"
             for o in ("bou", "frd", "tuc", "hon")]
    out: dict[str, Any] = {}
    for kind in INJECT_TYPES:
        found, total, errors = 0, 0, []
        for path in hosts:
            f, times = _inject(parse_iaga(read_text(path)), kind, rng, n_per_file)
            alerts = [a for a in _run(_ordered(elements_to_mseed(f))) if _matches(kind, a)]
            for t in times:
                total += 1
                near = [a for a in alerts if abs(a.time_ns - t) <= MATCH_S * NS_PER_S]
                if near:
                    found += 1
                    errors.append(min((a.time_ns - t) / NS_PER_S for a in near))
        out[kind] = {"injected": total, "recall": round(found / total, 3) if total else None,
                     "onset_error_mean_s": round(float(np.mean(errors)), 1) if errors else None,
                     "onset_error_abs_max_s": round(float(np.max(np.abs(errors))), 1)
                     if errors else None}
    return out


def markdown(report: dict[str, Any]) -> str:
    q, c, inj = report["quiet"], report["catalogued_ssc"], report["injected"]
    lines = [f"Quiet background: {q['observatory_days']} observatory-days of 1 s data "
             "(2014-04-07/08, no catalogued SSC); alerts per observatory-week. `reset_gap` counts "
             "real dropouts (missing values in the files), not false alarms.", "",
             f"| alert | all | mid/low latitude | auroral ({', '.join(q['auroral'])}) |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {k} | {v} | {q['per_observatory_week_mid_low_latitude'].get(k)} | "
              f"{q['per_observatory_week_auroral'].get(k)} |"
              for k, v in q["per_observatory_week"].items()]
    lines += ["", f"Catalogued SSC {c['catalogue_onset']} (BOU, 1 min): detected {c['detected']}, "
              f"onset error {c['onset_error_s']} s, amplitude {c['amplitude_nT']} nT, "
              f"other SSC alerts that month {c['other_ssc_alerts_in_month']}", "",
              "| injected | n | recall | mean onset error (s) | max abs error (s) |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['injected']} | {v['recall']} | {v['onset_error_mean_s']} | "
              f"{v['onset_error_abs_max_s']} |" for k, v in inj.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="geosentry evaluate geomag", description=__doc__)
    parser.add_argument("--out", default="runs/eval-geomag")
    parser.add_argument("--per-file", type=int, default=8, help="injections per type and day")
    args = parser.parse_args(argv)
    root = shared_data_dir() / "geomag"
    if not root.exists():
        print(f"geomagnetic evaluation needs {root} (../shared/data); not found")
        return 2
    t0 = time.time()
    report = {"quiet": quiet_background(root), "catalogued_ssc": catalogued_ssc(root),
              "injected": injected(root, args.per_file), "detectors": DETECTORS}
    report["runtime_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "geomag.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "geomag.md").write_text(markdown(report))
    print(markdown(report))
    return 0
