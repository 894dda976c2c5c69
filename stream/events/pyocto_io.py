"""Files exchanged with the PyOcto reference associator (``bench/pyocto_reference.py``).

PyOcto (MIT) pins numpy < 2 on Python 3.11, so it runs in its own virtual environment
(``scripts/pyocto-env.sh``) and never imports geosentry: this module writes one folder per data
set, the reference reads it and writes its events back in the same form as geosentry's run on
the same folder (``run_geosentry``), and ``read_result`` reads either.

Input folder:

* ``stations.csv``: ``id,network,station,lat,lon,elevation`` (id = ``NET.STA``, elevation in m)
* ``picks.csv``: ``id,station,phase,time_ns`` (station = the station's id; picks at stations
  not in the inventory are left out and counted in ``params.json``)
* ``model.csv``: ``depth_km,vp,vs``, the layered model geosentry uses
* ``traveltimes.pyocto``: that model's first-arrival table in PyOcto's ``VelocityModel1D``
  binary layout (``int32 nx, int32 nz, float64 delta_km``, then P then S times as
  ``float64[nx][nz]``, distance major), computed by geosentry's ``TravelTimes`` for a receiver
  at sea level; PyOcto adds ``elevation / surface velocity`` per station, and the surface
  velocities in ``params.json`` are chosen so that this equals geosentry's vertical correction
* ``params.json``: ``PyOctoParams`` and the table's and area's sizes

Result folder (``geosentry/`` or ``pyocto/``): ``events.csv`` (``time_ns,lat,lon,depth_km,
n_picks``), ``assignments.csv`` (``event,pick_id``) and ``run.json`` (``wall_s`` of the
association call alone, ``peak_rss_mb`` of the process, ``rss_before_mb`` before the call).
"""

from __future__ import annotations

import csv
import json
import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geosentry.stream.errors import GeosentryError
from geosentry.stream.events.locate import Projection
from geosentry.stream.events.picks import Pick
from geosentry.stream.events.stations import Inventory
from geosentry.stream.events.velocity import TravelTimes, VelocityModel

STATIONS = "stations.csv"
PICKS = "picks.csv"
MODEL = "model.csv"
TABLE = "traveltimes.pyocto"
PARAMS = "params.json"
EVENTS = "events.csv"
ASSIGNMENTS = "assignments.csv"
RUN = "run.json"


class ExchangeError(GeosentryError):
    """An exchange folder or result that cannot be read (one line, names the file)."""


@dataclass(frozen=True)
class PyOctoParams:
    """PyOcto's settings for the comparison, matched to geosentry's ``AssociatorConfig`` where
    PyOcto has a counterpart:

    * ``association_cutoff_distance_km`` = ``max_distance_km`` (150): stations farther from a
      candidate volume take no part in it;
    * ``tolerance_s`` (velocity model, 1.0) = ``p_residual_s``; ``pick_match_tolerance_s``
      (1.5) = ``s_residual_s``;
    * ``zlim_km`` 0-40 (geosentry's table depth; PyOcto's 1-D model allows no source above sea
      level); ``time_before_s`` 60 (>= the S travel time to the cutoff distance, the longest a
      pick can follow its volume);
    * ``min_interevent_time_s`` 0.5 (PyOcto's default 3 s drops one of two events that close
      in time anywhere in the network: at 10 events/min over 1,000 stations that lost 2 of 10
      events in a minute, and it merges the New Zealand pair 1.1 s apart);
    * the pick counts: PyOcto counts picks, not stations, and its search slows steeply as they
      drop (the synthetic minute with 10/5/2/2: 30 s instead of 5 s, one false event more).
      This default (``SPARSE``) is for the analyst and automatic sets of 10-20 picks per event:
      ``n_picks`` 5 (geosentry's 5 phases), ``n_p_picks`` 2, no S needed (4 P picks lost a
      third of the New Zealand events); ``DENSE`` (20 picks, 10 P, 5 S, 5 stations with both)
      for the 1,000-station network, whose events have 100-250 picks;
    * PyOcto's defaults otherwise (``min_node_size`` 10 km, location 1.5 km,
      ``min_pick_fraction`` 0.25, ``time_slicing`` 1200 s); ``n_threads`` 1, as geosentry's
      associator is single-threaded and the machine is shared.
    """

    time_before_s: float = 60.0
    zlim_km: tuple[float, float] = (0.0, 40.0)
    tolerance_s: float = 1.0
    association_cutoff_distance_km: float = 150.0
    pick_match_tolerance_s: float = 1.5
    n_picks: int = 5
    n_p_picks: int = 2
    n_s_picks: int = 0
    n_p_and_s_picks: int = 0
    min_node_size_km: float = 10.0
    min_node_size_location_km: float = 1.5
    min_pick_fraction: float = 0.25
    min_interevent_time_s: float = 0.5
    time_slicing_s: float = 1200.0
    n_threads: int = 1


SPARSE = PyOctoParams()
DENSE = PyOctoParams(n_picks=20, n_p_picks=10, n_s_picks=5, n_p_and_s_picks=5)


@dataclass(frozen=True)
class Exported:
    folder: Path
    n_picks: int  # written
    n_unknown_station: int  # left out: station not in the inventory


@dataclass(frozen=True)
class Found:
    """One event from an exchange result."""

    time_ns: int
    lat_deg: float
    lon_deg: float
    depth_km: float
    n_picks: int


@dataclass(frozen=True)
class Result:
    events: list[Found]
    pick_ids: set[str]  # associated
    wall_s: float
    peak_rss_mb: float
    rss_before_mb: float
    info: dict[str, Any]


def surface_velocities(tt: TravelTimes, elevations_m: list[float]) -> tuple[float, float]:
    """PyOcto's P and S surface velocities: the ones that turn its elevation correction
    (``elevation / v``) into geosentry's vertical-ray time from sea level up to the station
    (median over stations; exact when they all lie in one layer)."""
    out = []
    for phase in ("P", "S"):
        ratios = []
        for e in elevations_m:
            if abs(e) < 1.0:
                continue
            d = np.array([0.0, -e / 1000.0])
            dt = float(tt.vertical_s(phase, d[:1])[0] - tt.vertical_s(phase, d[1:])[0])
            ratios.append((e / 1000.0) / dt)
        layer = max(int(np.searchsorted(np.asarray(tt.model.top_km), 0.0, "right")) - 1, 0)
        v0 = float(tt.model.velocities(phase)[layer])  # the layer at sea level
        out.append(float(np.median(ratios)) if ratios else v0)
    return out[0], out[1]


def write_table(path: Path, model: VelocityModel, xdist_km: float, zdist_km: float,
                delta_km: float = 0.5) -> TravelTimes:
    """PyOcto's binary 1-D table of ``model``, from geosentry's ``TravelTimes`` (receiver at sea
    level, sources 0..``zdist_km`` deep, 0..``xdist_km`` away)."""
    tt = TravelTimes(model, max_distance_km=xdist_km, max_depth_km=zdist_km, step_km=delta_km)
    nx, nz = int(xdist_km / delta_km) + 1, int(zdist_km / delta_km) + 1
    x, z = np.meshgrid(np.arange(nx) * delta_km, np.arange(nz) * delta_km, indexing="ij")
    with path.open("wb") as f:
        f.write(struct.pack("<iid", nx, nz, delta_km))
        for phase in ("P", "S"):
            sea = float(tt.vertical_s(phase, np.zeros(1))[0])
            t = tt.time(phase, x.ravel(), z.ravel()).reshape(nx, nz) - sea
            f.write(np.ascontiguousarray(t, dtype="<f8").tobytes())
    return tt


def export(folder: Path, picks: list[Pick], inventory: Inventory, model: VelocityModel,
           params: PyOctoParams | None = None, margin_km: float = 30.0) -> Exported:
    """Write the exchange folder for ``picks`` (see the module doc)."""
    params = params or PyOctoParams()
    folder.mkdir(parents=True, exist_ok=True)
    rows, unknown = [], 0
    used: dict[str, Any] = {}
    for p in sorted(picks, key=lambda p: (p.time_ns, p.id)):
        s = inventory.lookup(p.network, p.station)
        if s is None:
            unknown += 1
            continue
        used[s.key] = s
        rows.append((p.id, s.key, p.phase.value, p.time_ns))
    if not rows:
        raise ExchangeError(f"exchange {folder}: no picks at inventory stations "
                            f"({unknown} at unknown stations)")
    with (folder / PICKS).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "station", "phase", "time_ns"])
        w.writerows(rows)
    with (folder / STATIONS).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "network", "station", "lat", "lon", "elevation"])
        for s in inventory.stations.values():
            w.writerow([s.key, s.network, s.station, repr(s.lat_deg), repr(s.lon_deg),
                        repr(s.elevation_m)])
    with (folder / MODEL).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["depth_km", "vp", "vs"])
        w.writerows(zip(model.top_km, model.vp_km_s, model.vs_km_s))
    # the search area: the stations with picks, and a margin
    lat = np.array([s.lat_deg for s in used.values()])
    lon = np.array([s.lon_deg for s in used.values()])
    proj = Projection(float(lat.mean()), float(lon.mean()))
    dlat = margin_km / 111.2
    dlon = margin_km / (111.2 * max(math.cos(math.radians(float(lat.mean()))), 0.05))
    area = (float(lat.min()) - dlat, float(lat.max()) + dlat,
            float(lon.min()) - dlon, float(lon.max()) + dlon)
    x, y = proj.to_xy(np.array(area[:2]), np.array(area[2:]))
    diagonal_km = float(np.hypot(x[1] - x[0], y[1] - y[0]))
    xdist = math.ceil(diagonal_km * 1.1 + 10.0)
    zdist = params.zlim_km[1] + 10.0
    tt = write_table(folder / TABLE, model, xdist, zdist)
    vp, vs = surface_velocities(tt, [s.elevation_m for s in used.values()])
    meta = {"params": asdict(params), "area_deg": {"lat": area[:2], "lon": area[2:]},
            "table": {"xdist_km": xdist, "zdist_km": zdist, "delta_km": tt.step_km},
            "surface_p_velocity_km_s": vp, "surface_s_velocity_km_s": vs,
            "model": model.name, "n_picks": len(rows), "n_unknown_station": unknown}
    (folder / PARAMS).write_text(json.dumps(meta, indent=1))
    return Exported(folder, len(rows), unknown)


def read_picks(folder: Path) -> list[Pick]:
    """The exported picks, with the station's network and code (geosentry's side)."""
    from geosentry.stream.events.picks import Phase

    out = []
    path = folder / PICKS
    try:
        with path.open(newline="") as f:
            for n, r in enumerate(csv.DictReader(f), start=2):
                try:
                    net, sta = r["station"].split(".", 1)
                    out.append(Pick(r["id"], net, sta, Phase(r["phase"]), int(r["time_ns"])))
                except (KeyError, ValueError) as exc:
                    raise ExchangeError(f"{path} row {n}: {exc}") from exc
    except OSError as exc:
        raise ExchangeError(f"{path}: {exc.strerror or exc}") from exc
    return out


def write_result(out: Path, events: list[Found], assignments: list[tuple[int, str]],
                 run: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / EVENTS).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_ns", "lat", "lon", "depth_km", "n_picks"])
        for e in events:
            w.writerow([e.time_ns, repr(e.lat_deg), repr(e.lon_deg), repr(e.depth_km), e.n_picks])
    with (out / ASSIGNMENTS).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["event", "pick_id"])
        w.writerows(assignments)
    (out / RUN).write_text(json.dumps(run, indent=1))


def read_result(out: Path) -> Result:
    try:
        run = json.loads((out / RUN).read_text())
        with (out / EVENTS).open(newline="") as f:
            events = [Found(int(r["time_ns"]), float(r["lat"]), float(r["lon"]),
                            float(r["depth_km"]), int(r["n_picks"])) for r in csv.DictReader(f)]
        with (out / ASSIGNMENTS).open(newline="") as f:
            ids = {r["pick_id"] for r in csv.DictReader(f)}
        return Result(events, ids, float(run["wall_s"]), float(run["peak_rss_mb"]),
                      float(run["rss_before_mb"]), run)
    except (OSError, ValueError, KeyError) as exc:
        raise ExchangeError(f"result {out}: unreadable ({type(exc).__name__}: {exc})") from exc
