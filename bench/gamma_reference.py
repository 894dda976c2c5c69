"""GaMMA reference association of a geosentry exchange folder (issue 17).

Runs in GaMMA's own virtual environment (``scripts/gamma-env.sh`` prints its python; gmma
1.2.17 pins scikit-learn 1.7 and needs numba) and never imports geosentry::

    "$(scripts/gamma-env.sh)" bench/gamma_reference.py FOLDER [--out FOLDER/gamma]

Reads what ``geosentry.stream.events.pyocto_io.export`` wrote (``stations.csv``, ``picks.csv``,
``model.csv``, the area in ``params.json``) and ``gamma.json`` (``gamma_io.write_params``),
projects stations to km (pyproj ``sterea`` about the area's centre, z = -elevation), runs
``gamma.utils.association`` with the 1-D model as its ``eikonal`` option (layers as steps), and
writes ``events.csv``, ``assignments.csv`` and ``run.json`` (wall time of ``association``
alone, which includes GaMMA's eikonal table, peak RSS of this process and RSS before the call)
to ``--out`` in the form the PyOcto reference writes. GaMMA writes an empty ``eikonal/`` folder
in its working directory: this runs in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import Any

NEEDED = ("params.json", "gamma.json", "stations.csv", "picks.csv", "model.csv")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_model(folder: Path, z_max_km: float) -> dict[str, list[float]]:
    """``model.csv``'s layers as GaMMA's ``eikonal`` ``vel`` (it interpolates linearly between
    the depths given: each layer is given at its top and just above the next one's)."""
    with (folder / "model.csv").open(newline="") as f:
        rows = [(float(r["depth_km"]), float(r["vp"]), float(r["vs"])) for r in csv.DictReader(f)]
    z: list[float] = []
    p: list[float] = []
    s: list[float] = []
    for k, (top, vp, vs) in enumerate(rows):
        bottom = rows[k + 1][0] - 1e-3 if k + 1 < len(rows) else max(z_max_km, top + 1.0)
        z += [top, bottom]
        p += [vp, vp]
        s += [vs, vs]
    return {"z": z, "p": p, "s": s}


def mean_velocity(vel: dict[str, list[float]], phase: str, z_km: float = 20.0) -> float:
    """Mean velocity over 0..z_km (travel-time average: z over the vertical time)."""
    np = import_module("numpy")
    zz = np.linspace(0.0, z_km, 401)
    v = np.interp(zz, vel["z"], vel[phase])
    return float(z_km / np.trapezoid(1.0 / v, zz))


def associate(folder: Path, out: Path) -> dict[str, Any]:
    # imported by name: none is installed where the project's type checks run
    pd = import_module("pandas")
    np = import_module("numpy")
    pyproj = import_module("pyproj")
    gutils = import_module("gamma.utils")
    meta = json.loads((folder / "params.json").read_text())
    prm = json.loads((folder / "gamma.json").read_text())
    text = {"id": str, "network": str, "station": str, "phase": str}
    stations = pd.read_csv(folder / "stations.csv", dtype=text, keep_default_na=False)
    picks = pd.read_csv(folder / "picks.csv", dtype=text, keep_default_na=False)
    lat, lon = meta["area_deg"]["lat"], meta["area_deg"]["lon"]
    lat0, lon0 = (lat[0] + lat[1]) / 2, (lon[0] + lon[1]) / 2
    proj = pyproj.Proj(f"+proj=sterea +lon_0={lon0} +lat_0={lat0} +units=km")
    sx, sy = proj(stations["lon"].astype(float).to_numpy(), stations["lat"].astype(float).to_numpy())
    stations["x(km)"], stations["y(km)"] = sx, sy
    stations["z(km)"] = -stations["elevation"].astype(float) / 1000.0
    stations = stations[["id", "x(km)", "y(km)", "z(km)"]]
    cx, cy = proj(np.array([lon[0], lon[1], lon[0], lon[1]]), np.array([lat[0], lat[0], lat[1], lat[1]]))
    xlim = (float(min(cx.min(), sx.min())), float(max(cx.max(), sx.max())))
    ylim = (float(min(cy.min(), sy.min())), float(max(cy.max(), sy.max())))
    zlim = tuple(prm["zlim_km"])
    deepest_station_km = float(max(0.0, stations["z(km)"].max()))
    highest_station_km = float(max(0.0, -stations["z(km)"].min()))
    vel1d = step_model(folder, zlim[1] + highest_station_km + 10.0)
    vel = {"p": mean_velocity(vel1d, "p"), "s": mean_velocity(vel1d, "s")}
    table = pd.DataFrame({
        "id": picks["station"],
        "timestamp": pd.to_datetime(picks["time_ns"].astype("int64"), unit="ns", utc=True),
        "type": picks["phase"].str.lower(), "prob": 1.0})
    eps = prm["dbscan_eps_s"]
    if eps is None:
        eps = float(gutils.estimate_eps(stations, vel["p"], sigma=2.0))
    config = {
        "dims": ["x(km)", "y(km)", "z(km)"], "x(km)": xlim, "y(km)": ylim, "z(km)": zlim,
        "use_amplitude": prm["use_amplitude"], "use_dbscan": True, "dbscan_eps": eps,
        "dbscan_min_samples": prm["dbscan_min_samples"], "method": prm["method"],
        "oversample_factor": prm["oversample_factor"], "vel": vel,
        "eikonal": {"vel": vel1d, "h": prm["eikonal_h_km"], "xlim": xlim, "ylim": ylim,
                    "zlim": (-deepest_station_km, zlim[1] + highest_station_km + 5.0)},
        "bfgs_bounds": ((xlim[0] - 1, xlim[1] + 1), (ylim[0] - 1, ylim[1] + 1),
                        (zlim[0], zlim[1] + 1), (None, None)),
        "min_picks_per_eq": prm["min_picks_per_eq"],
        "min_p_picks_per_eq": prm["min_p_picks_per_eq"],
        "min_s_picks_per_eq": prm["min_s_picks_per_eq"],
        "max_sigma11": prm["max_sigma11_s"], "ncpu": prm["ncpu"]}
    if prm.get("covariance_prior_s2") is not None:  # else GaMMA's own, from the cluster's size
        config["covariance_prior"] = [prm["covariance_prior_s2"]] * 2
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # GaMMA makes ./eikonal
    before = _rss_mb()
    t0 = time.perf_counter()
    events, assignments = gutils.association(table, stations, config, method=prm["method"])
    wall = time.perf_counter() - t0
    events = sorted(events, key=lambda e: (e["time"], e["event_index"]))
    number = {int(e["event_index"]): k for k, e in enumerate(events)}
    with (out / "events.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_ns", "lat", "lon", "depth_km", "n_picks"])
        for e in events:
            elon, elat = proj(e["x(km)"], e["y(km)"], inverse=True)
            t_ns = pd.Timestamp(e["time"], tz="UTC").value
            w.writerow([t_ns, repr(float(elat)), repr(float(elon)), repr(float(e["z(km)"])),
                        int(e["num_picks"])])
    with (out / "assignments.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event", "pick_id"])
        for pick_idx, ev, _prob in assignments:
            w.writerow([number[int(ev)], picks["id"].iloc[int(pick_idx)]])
    run = {"wall_s": wall, "peak_rss_mb": _rss_mb(), "rss_before_mb": before,
           "n_picks": len(picks), "n_events": len(events), "n_threads": prm["ncpu"],
           "associator": f"GaMMA {import_module('importlib.metadata').version('gmma')}",
           "dbscan_eps_s": eps, "vel_km_s": vel, "method": prm["method"],
           "numpy": np.__version__, "pandas": pd.__version__,
           "scikit-learn": import_module("sklearn").__version__}
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, help="result folder (default FOLDER/gamma)")
    a = ap.parse_args(argv)
    missing = [n for n in NEEDED if not (a.folder / n).is_file()]
    if missing:
        print(f"gamma_reference: {a.folder} is not a GaMMA exchange folder (missing "
              f"{', '.join(missing)}; geosentry.stream.events.pyocto_io.export and "
              f"gamma_io.write_params write it)", file=sys.stderr)
        return 2
    run = associate(a.folder.resolve(), (a.out or a.folder / "gamma").resolve())
    print(json.dumps(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
