"""PyOcto reference association of a geosentry exchange folder (issue 17).

Runs in PyOcto's own virtual environment (``scripts/pyocto-env.sh`` prints its python; PyOcto
0.2.2 pins numpy < 2 on Python 3.11) and never imports geosentry::

    "$(scripts/pyocto-env.sh)" bench/pyocto_reference.py FOLDER [--out FOLDER/pyocto]

Reads what ``geosentry.stream.events.pyocto_io.export`` wrote (``stations.csv``, ``picks.csv``,
``traveltimes.pyocto``: geosentry's 1-D model as a ``VelocityModel1D`` table, ``params.json``),
associates with ``OctoAssociator.from_area`` over the exported area, and writes
``events.csv``, ``assignments.csv`` and ``run.json`` (wall time of ``associate`` alone, peak
RSS of this process and RSS before the call) to ``--out``. ``python -m
geosentry.stream.events.pyocto_compare`` runs it and compares with geosentry's associator.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def associate(folder: Path, out: Path) -> dict[str, Any]:
    # imported by name: neither is installed where the project's type checks run
    pd = import_module("pandas")
    pyocto = import_module("pyocto")
    meta = json.loads((folder / "params.json").read_text())
    prm = meta["params"]
    text = {"id": str, "network": str, "station": str, "phase": str}
    stations = pd.read_csv(folder / "stations.csv", dtype=text, keep_default_na=False)
    stations = stations.rename(columns={"lat": "latitude", "lon": "longitude"})  # elevation: m
    picks = pd.read_csv(folder / "picks.csv", dtype=text, keep_default_na=False)
    picks["time"] = picks["time_ns"].astype("int64") / 1e9
    model = pyocto.VelocityModel1D(
        path=str(folder / "traveltimes.pyocto"), tolerance=prm["tolerance_s"],
        association_cutoff_distance=prm["association_cutoff_distance_km"],
        surface_p_velocity=meta["surface_p_velocity_km_s"],
        surface_s_velocity=meta["surface_s_velocity_km_s"])
    assoc = pyocto.OctoAssociator.from_area(
        lat=tuple(meta["area_deg"]["lat"]), lon=tuple(meta["area_deg"]["lon"]),
        zlim=tuple(prm["zlim_km"]), velocity_model=model, time_before=prm["time_before_s"],
        min_node_size=prm["min_node_size_km"],
        min_node_size_location=prm["min_node_size_location_km"],
        pick_match_tolerance=prm["pick_match_tolerance_s"],
        min_interevent_time=prm["min_interevent_time_s"], n_picks=prm["n_picks"],
        n_p_picks=prm["n_p_picks"], n_s_picks=prm["n_s_picks"],
        n_p_and_s_picks=prm["n_p_and_s_picks"], min_pick_fraction=prm["min_pick_fraction"],
        time_slicing=prm["time_slicing_s"], n_threads=prm["n_threads"])
    stations = assoc.transform_stations(stations)  # x, y (km, local), z = -elevation (km)
    before = _rss_mb()
    t0 = time.perf_counter()
    events, assignments = assoc.associate(picks[["station", "phase", "time", "id"]], stations)
    wall = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    number: dict[int, int] = {}
    with (out / "events.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_ns", "lat", "lon", "depth_km", "n_picks"])
        if len(events):
            events = assoc.transform_events(events).sort_values("time")
            for k, (_, e) in enumerate(events.iterrows()):
                number[int(e["idx"])] = k
                w.writerow([round(float(e["time"]) * 1e9), repr(float(e["latitude"])),
                            repr(float(e["longitude"])), repr(float(e["depth"])),
                            int(e["picks"])])
    with (out / "assignments.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event", "pick_id"])
        for ev, pid in zip(assignments["event_idx"], assignments["id"]) if len(assignments) else ():
            w.writerow([number[int(ev)], pid])
    run = {"wall_s": wall, "peak_rss_mb": _rss_mb(), "rss_before_mb": before,
           "n_picks": len(picks), "n_events": len(events), "n_threads": prm["n_threads"],
           "associator": f"PyOcto {pyocto.__version__}",
           "numpy": import_module("numpy").__version__, "pandas": pd.__version__}
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, help="result folder (default FOLDER/pyocto)")
    a = ap.parse_args(argv)
    missing = [n for n in ("params.json", "stations.csv", "picks.csv", "traveltimes.pyocto")
               if not (a.folder / n).is_file()]
    if missing:
        print(f"pyocto_reference: {a.folder} is not an exchange folder (missing "
              f"{', '.join(missing)}; geosentry.stream.events.pyocto_io.export writes it)",
              file=sys.stderr)
        return 2
    run = associate(a.folder, a.out or a.folder / "pyocto")
    print(json.dumps(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
