"""geosentry's associator against PyOcto and GaMMA on the same picks (issue 17's offline
references).

``python -m geosentry.stream.events.pyocto_compare [--dataset synthetic|nz|iceland|all]
[--associator pyocto|gamma|all] [--minutes 3] [--stations 1000] [--threads 1] [--workdir DIR]
[--markdown]``

For each data set it writes an exchange folder (``pyocto_io.export``: picks, stations, the
1-D model and its PyOcto travel-time table), runs geosentry's ``Associator`` on it in a child
process of this interpreter and ``bench/pyocto_reference.py`` in PyOcto's own environment
(``scripts/pyocto-env.sh``; ``GEOSENTRY_PYOCTO_VENV`` or ``--pyocto-python`` to move it) and/or
``bench/gamma_reference.py`` in GaMMA's (``scripts/gamma-env.sh``, ``GEOSENTRY_GAMMA_VENV``,
``--gamma-python``; settings ``gamma_io.GammaParams``), and prints, per associator: events, precision and recall (matched within 3 s and 10 km by
``evaluate.match_events``, as ``geosentry evaluate events``), median epicentral error, picks in
events, wall time of the association call alone and picks/s, and peak RSS of its process (RSS
before the call in brackets: interpreter, libraries and inputs). A reference that runs past
``--timeout-s`` gets a row saying so instead of failing the whole comparison.

Data sets: ``synthetic``, the association benchmark's scale set (``synthetic.scale_scenario``:
1,000 stations, 10 events/min, 1 false pick per station-minute); ``nz`` and ``iceland``, the
pick sets ``geosentry evaluate events`` uses (``../shared/data/events``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from geosentry.stream.errors import GeosentryError
from geosentry.stream.events import gamma_io, pyocto_io
from geosentry.stream.events.evaluate import (RefEvent, _km, load_iceland, load_nz,
                                              match_events, reference_groups, shared_data_dir)
from geosentry.stream.events.picks import Pick
from geosentry.stream.events.stations import Inventory
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes, VelocityModel

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "bench" / "pyocto_reference.py"
GAMMA_REFERENCE = ROOT / "bench" / "gamma_reference.py"
ENV_SCRIPT = "scripts/pyocto-env.sh"
GAMMA_ENV_SCRIPT = "scripts/gamma-env.sh"
MODULE = "geosentry.stream.events.pyocto_compare"


class CompareError(GeosentryError):
    """A comparison that cannot run (one line; exit status in ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class RanPastTimeout(CompareError):
    """An associator's process killed at the per-run timeout."""

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


@dataclass(frozen=True)
class PickSet:
    name: str
    source: str
    picks: list[Pick]
    inventory: Inventory
    model: VelocityModel
    reference: list[RefEvent]


def _venv_python(label: str, env_var: str, default: str, script: object, flag: str,
                 explicit: str | None) -> Path:
    """A reference's venv interpreter (``explicit``, else ``$env_var``, else ROOT/``default``);
    ``CompareError`` (exit 2) naming its setup script when it is absent."""
    if explicit:
        py = Path(explicit)
    else:
        venv = os.environ.get(env_var)
        py = (Path(venv) if venv else ROOT / default) / "bin" / "python"
    if not py.is_file() or not os.access(py, os.X_OK):
        raise CompareError(f"{label} environment not found ({py} is missing): create it with "
                           f"{script} (or set {env_var} / {flag})", 2)
    return py


def pyocto_python(explicit: str | None = None) -> Path:
    """The PyOcto venv's interpreter (``_venv_python``)."""
    return _venv_python("PyOcto", "GEOSENTRY_PYOCTO_VENV", ".venv-pyocto", ENV_SCRIPT,
                        "--pyocto-python", explicit)


def gamma_python(explicit: str | None = None) -> Path:
    """The GaMMA venv's interpreter (``_venv_python``)."""
    return _venv_python("GaMMA", "GEOSENTRY_GAMMA_VENV", ".venv-gamma", GAMMA_ENV_SCRIPT,
                        "--gamma-python", explicit)


def synthetic_set(minutes: float = 3.0, stations: int = 1000, seed: int = 0,
                  rate_per_min: float = 10.0, false_per_station_min: float = 1.0) -> PickSet:
    from geosentry.stream.events.synthetic import scale_scenario

    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
    sc = scale_scenario(tt, stations=stations, minutes=minutes, rate_per_min=rate_per_min,
                        false_per_station_min=false_per_station_min, seed=seed)
    ref = [RefEvent(o.time_ns, o.lat_deg, o.lon_deg, o.depth_km, None, f"synthetic {k}", {})
           for k, o in enumerate(sc.origins)]
    return PickSet("synthetic", f"synthetic {stations} stations, {minutes:g} min, "
                   f"{rate_per_min:g} events/min, {sc.n_event_picks} event + "
                   f"{len(sc.picks) - sc.n_event_picks} false picks",
                   sc.picks, sc.inventory, DEFAULT_MODEL, ref)


def check_shared(name: str, shared: Path) -> None:
    folder = shared / "events" / ("nz-2013-alpine-fault" if name == "nz"
                                  else "iceland-2014-dike")
    if not folder.is_dir():
        raise CompareError(f"data set {name}: {folder} is absent (set GEOSENTRY_SHARED_DATA "
                           f"or --shared)", 2)


def shared_set(name: str, shared: Path) -> PickSet:
    check_shared(name, shared)
    ds = load_nz(shared) if name == "nz" else load_iceland(shared)
    return PickSet(name, ds.source, ds.picks, ds.inventory, ds.model, ds.reference)


def _run(cmd: list[str], log: Path, timeout_s: float) -> float:
    t0 = time.perf_counter()
    with (log.with_suffix(".out")).open("w") as out, log.with_suffix(".err").open("w") as err:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired as exc:
            raise RanPastTimeout(f"{cmd[1]} ran past {timeout_s:g} s (log "
                                 f"{log.with_suffix('.err')})", timeout_s) from exc
    if rc != 0:
        lines = log.with_suffix(".err").read_text(errors="replace").strip().splitlines()
        raise CompareError(f"{' '.join(cmd[:3])} failed with status {rc}: "
                           f"{lines[-1] if lines else 'no message'} (log {log.with_suffix('.err')})")
    return time.perf_counter() - t0


def run_geosentry(folder: Path, out: Path) -> None:
    """geosentry's ``Associator`` on an exchange folder (the child process)."""
    import resource

    from geosentry.stream.events.associate import Associator
    from geosentry.stream.events.stations import read_inventory
    from geosentry.stream.events.velocity import read_velocity_model

    picks = pyocto_io.read_picks(folder)
    inv = read_inventory(folder / pyocto_io.STATIONS)
    tt = TravelTimes(read_velocity_model(folder / pyocto_io.MODEL), max_distance_km=250.0,
                     max_depth_km=40.0)
    assoc = Associator(inv, tt)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    events, _ = assoc.associate(picks)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    found = [(pyocto_io.Found(e.time_ns, e.lat_deg, e.lon_deg, e.depth_km, e.n_phases),
              e.pick_ids) for e in sorted(events, key=lambda e: (e.time_ns, e.pick_ids))]
    pyocto_io.write_result(
        out, [f for f, _ in found], [(k, pid) for k, (_, ids) in enumerate(found) for pid in ids],
        {"wall_s": wall, "peak_rss_mb": peak, "rss_before_mb": before, "n_picks": len(picks),
         "n_events": len(events), "n_threads": 1, "associator": "geosentry Associator"})


def score(ps: PickSet, res: pyocto_io.Result) -> dict[str, Any]:
    groups = reference_groups(ps.reference)
    pairs = match_events(res.events, ps.reference, groups)
    epi = [_km(res.events[ei].lat_deg, res.events[ei].lon_deg, ps.reference[ri].lat_deg,
               ps.reference[ri].lon_deg) for ei, ri in pairs]
    n_ref = len(set(groups))
    n = len(ps.picks)
    return {"events": len(res.events), "matched": len(pairs), "earthquakes": n_ref,
            "precision": len(pairs) / len(res.events) if res.events else 0.0,
            "recall": len(pairs) / n_ref if n_ref else 0.0,
            "median_epicentral_km": statistics.median(epi) if epi else math.nan,
            "picks_in_events": len(res.pick_ids), "wall_s": res.wall_s,
            "picks_per_s": n / res.wall_s if res.wall_s > 0 else math.inf,
            "peak_rss_mb": res.peak_rss_mb, "rss_before_mb": res.rss_before_mb,
            "associator": str(res.info.get("associator", "?")),
            "threads": int(res.info.get("n_threads", 1))}


def compare(ps: PickSet, folder: Path, py: Path | None, threads: int = 1,
            timeout_s: float = 600.0, params: pyocto_io.PyOctoParams | None = None,
            gamma_py: Path | None = None,
            gamma_params: gamma_io.GammaParams | None = None) -> list[dict[str, Any]]:
    """geosentry, PyOcto (``py``, when given) and GaMMA (``gamma_py``, when given) on ``ps``:
    one row each. Settings: ``params`` / ``gamma_params``, else the ``DENSE`` ones for the
    synthetic network and the ``SPARSE`` ones for the others. A reference past ``timeout_s``
    gets a row with ``timed_out_s``."""
    dense = ps.name == "synthetic"
    params = params or (pyocto_io.DENSE if dense else pyocto_io.SPARSE)
    gamma_params = gamma_params or (gamma_io.DENSE if dense else gamma_io.SPARSE)
    exp = pyocto_io.export(folder, ps.picks, ps.inventory, ps.model,
                           replace(params, n_threads=threads))
    if exp.n_unknown_station:
        print(f"{ps.name}: {exp.n_unknown_station} picks at stations not in the inventory "
              f"left out", file=sys.stderr)
    runs: list[tuple[str, str, list[str]]] = [
        ("geosentry", "geosentry Associator",
         [sys.executable, "-m", MODULE, "--associate-geosentry", str(folder)])]
    if py is not None:
        runs.append(("pyocto", "PyOcto", [str(py), str(REFERENCE), str(folder)]))
    if gamma_py is not None:
        gamma_io.write_params(folder, replace(gamma_params, ncpu=threads))
        runs.append(("gamma", "GaMMA", [str(gamma_py), str(GAMMA_REFERENCE), str(folder)]))
    rows = []
    for name, label, cmd in runs:
        try:
            _run(cmd, folder / name, timeout_s)
        except RanPastTimeout as exc:
            if name == "geosentry":
                raise
            print(f"{ps.name}: {exc}", file=sys.stderr)
            rows.append({"dataset": ps.name, "source": ps.source, "picks": len(ps.picks),
                         "associator": label, "threads": threads,
                         "timed_out_s": exc.timeout_s})
            continue
        r = score(ps, pyocto_io.read_result(folder / name))
        r.update(dataset=ps.name, source=ps.source, picks=len(ps.picks))
        rows.append(r)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| data set | picks | associator | events (reference) | precision | recall | median "
           "epicentral error | picks in events | association time | picks/s | peak RSS "
           "(before) |", "|" + " --- |" * 11]
    for r in rows:
        who = (f"| {r['source']} | {r['picks']} | {r['associator']} ({r['threads']} "
               f"thread{'s' if r['threads'] > 1 else ''}) |")
        if "timed_out_s" in r:
            out.append(f"{who} not finished within {r['timed_out_s']:g} s (stopped) |"
                       + " |" * 8)
            continue
        out.append(f"{who} {r['events']} "
                   f"({r['earthquakes']}) | {r['precision']:.3f} | {r['recall']:.3f} | "
                   f"{r['median_epicentral_km']:.2f} km | {r['picks_in_events']} | "
                   f"{r['wall_s']:.2f} s | {r['picks_per_s']:,.0f} | {r['peak_rss_mb']:.0f} MB "
                   f"({r['rss_before_mb']:.0f} MB) |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m geosentry.stream.events.pyocto_compare",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("synthetic", "nz", "iceland", "all"), default="all")
    ap.add_argument("--minutes", type=float, default=3.0, help="synthetic: minutes of data")
    ap.add_argument("--stations", type=int, default=1000, help="synthetic: stations")
    ap.add_argument("--seed", type=int, default=0, help="synthetic: random seed")
    ap.add_argument("--associator", choices=("pyocto", "gamma", "all"), default="pyocto",
                    help="reference(s) to compare geosentry with (default pyocto)")
    ap.add_argument("--threads", type=int, default=1,
                    help="PyOcto threads / GaMMA processes (default 1)")
    ap.add_argument("--shared", help="shared data folder (default ../shared/data)")
    ap.add_argument("--pyocto-python", help="PyOcto's interpreter (default: the venv of "
                    f"{ENV_SCRIPT}, .venv-pyocto or $GEOSENTRY_PYOCTO_VENV)")
    ap.add_argument("--gamma-python", help="GaMMA's interpreter (default: the venv of "
                    f"{GAMMA_ENV_SCRIPT}, .venv-gamma or $GEOSENTRY_GAMMA_VENV)")
    ap.add_argument("--workdir", help="keep the exchange folders here (default: a temporary "
                    "folder, removed)")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="per associator run")
    ap.add_argument("--markdown", action="store_true", help="only the README table")
    ap.add_argument("--associate-geosentry", metavar="FOLDER", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    try:
        if a.associate_geosentry:
            folder = Path(a.associate_geosentry)
            run_geosentry(folder, folder / "geosentry")
            return 0
        if a.threads < 1:
            raise CompareError(f"--threads must be >= 1, got {a.threads}", 2)
        py = pyocto_python(a.pyocto_python) if a.associator in ("pyocto", "all") else None
        gpy = gamma_python(a.gamma_python) if a.associator in ("gamma", "all") else None
        shared = Path(a.shared) if a.shared else shared_data_dir()
        names = ["synthetic", "nz", "iceland"] if a.dataset == "all" else [a.dataset]
        for name in names[1:] if names[0] == "synthetic" else names:
            check_shared(name, shared)  # before the long runs, not after them
        with tempfile.TemporaryDirectory(prefix="pyocto-compare-") as tmp:
            work = Path(a.workdir) if a.workdir else Path(tmp)
            rows = []
            for name in names:
                ps = (synthetic_set(a.minutes, a.stations, a.seed) if name == "synthetic"
                      else shared_set(name, shared))
                new = compare(ps, work / name, py, a.threads, a.timeout_s, gamma_py=gpy)
                rows += new
                if not a.markdown:
                    for r in new:
                        print({k: (round(v, 4) if isinstance(v, float) else v)
                               for k, v in r.items()}, flush=True)
        print(table(rows))
    except (CompareError, pyocto_io.ExchangeError) as exc:
        print(f"pyocto_compare: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CompareError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
