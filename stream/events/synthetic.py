"""Synthetic networks and picks from known origins (tests and the association benchmark).

Travel times come from the same ``TravelTimes`` the associator uses, plus Gaussian pick noise;
false picks are uniform in time over the stations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geosentry.stream.events.locate import Projection
from geosentry.stream.events.picks import Phase, Pick
from geosentry.stream.events.stations import Inventory, Station
from geosentry.stream.events.velocity import TravelTimes
from geosentry.stream.records import NS_PER_S


@dataclass(frozen=True)
class Origin:
    time_ns: int
    lat_deg: float
    lon_deg: float
    depth_km: float

    def error(self, lat_deg: float, lon_deg: float, time_ns: int) -> tuple[float, float]:
        """(epicentral distance km, time difference s) of a located origin from this one."""
        x, y = Projection(self.lat_deg, self.lon_deg).to_xy(np.array([lat_deg]),
                                                             np.array([lon_deg]))
        return float(np.hypot(x, y)[0]), (time_ns - self.time_ns) / NS_PER_S


def grid_network(n: int, spacing_km: float, lat0: float = 45.0, lon0: float = 10.0,
                 jitter_km: float = 0.0, seed: int = 0, network: str = "SY") -> Inventory:
    """About ``n`` stations on a square grid ``spacing_km`` apart centred on (lat0, lon0)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    proj = Projection(lat0, lon0)
    out = []
    for k in range(n):
        i, j = divmod(k, side)
        x = (j - (side - 1) / 2) * spacing_km + rng.normal(0, jitter_km)
        y = (i - (side - 1) / 2) * spacing_km + rng.normal(0, jitter_km)
        lat, lon = proj.to_latlon(float(x), float(y))
        out.append(Station(network, f"S{k:04d}", lat, lon, float(rng.uniform(0, 500))))
    return Inventory(out)


def picks_for(origin: Origin, inventory: Inventory, tt: TravelTimes, *, noise_s: float = 0.0,
              max_distance_km: float = 150.0, s_picks: bool = True, p_detect: float = 1.0,
              rng: np.random.Generator | None = None, tag: str = "") -> list[Pick]:
    """P (and S) picks of every station within ``max_distance_km`` of the origin."""
    rng = rng or np.random.default_rng(0)
    sts = list(inventory.stations.values())
    proj = Projection(origin.lat_deg, origin.lon_deg)
    x, y = proj.to_xy(np.array([s.lat_deg for s in sts]), np.array([s.lon_deg for s in sts]))
    d = np.hypot(x, y)
    elev = np.array([s.elevation_m / 1000.0 for s in sts])
    out: list[Pick] = []
    for phase in (Phase.P, Phase.S) if s_picks else (Phase.P,):
        t = tt.time(phase.value, d, np.full(d.shape, origin.depth_km)) - tt.vertical_s(
            phase.value, -elev)
        for k, s in enumerate(sts):
            if d[k] > max_distance_km or rng.random() > p_detect:
                continue
            tn = origin.time_ns + int(round((t[k] + rng.normal(0, noise_s) if noise_s else t[k])
                                            * NS_PER_S))
            out.append(Pick(f"{tag}{s.key}.{phase.value}.{tn}", s.network, s.station, phase, tn))
    return out


def false_picks(inventory: Inventory, start_ns: int, duration_s: float, rate_per_station_s: float,
                rng: np.random.Generator) -> list[Pick]:
    sts = list(inventory.stations.values())
    n = int(rng.poisson(rate_per_station_s * duration_s * len(sts)))
    out = []
    for _ in range(n):
        s = sts[int(rng.integers(len(sts)))]
        tn = start_ns + int(rng.uniform(0, duration_s) * NS_PER_S)
        ph = Phase.P if rng.random() < 0.6 else Phase.S
        out.append(Pick(f"false.{s.key}.{ph.value}.{tn}", s.network, s.station, ph, tn))
    return out


#: start of the scale scenario's data (``bench.T0``)
SCALE_T0_NS = 1_700_000_000 * NS_PER_S


@dataclass(frozen=True)
class ScaleScenario:
    inventory: Inventory
    origins: list[Origin]
    picks: list[Pick]  # shuffled; event picks and false picks
    n_event_picks: int


def scale_scenario(tt: TravelTimes, stations: int = 1000, minutes: float = 3.0,
                   rate_per_min: float = 10.0, false_per_station_min: float = 1.0,
                   seed: int = 0, spacing_km: float = 20.0) -> ScaleScenario:
    """The association benchmark's data set (``python -m geosentry.stream.events.bench``, the
    same random draws in the same order, so the same picks for the same arguments): stations on
    a grid ``spacing_km`` apart (3 km jitter), events uniform inside it at 2-25 km depth, P and S
    picks within 120 km detected with p = 0.9 and 0.1 s noise, false picks uniform in time."""
    import random

    rng = np.random.default_rng(seed)
    inv = grid_network(stations, spacing_km, jitter_km=3.0, seed=seed)
    half = spacing_km * (np.sqrt(stations) - 1) / 2
    proj = Projection(45.0, 10.0)
    origins = []
    for _ in range(int(minutes * rate_per_min)):
        lat, lon = proj.to_latlon(float(rng.uniform(-half, half)), float(rng.uniform(-half, half)))
        origins.append(Origin(SCALE_T0_NS + int(rng.uniform(0, minutes * 60) * NS_PER_S), lat,
                              lon, float(rng.uniform(2, 25))))
    picks = [p for k, o in enumerate(origins) for p in picks_for(
        o, inv, tt, noise_s=0.1, max_distance_km=120.0, p_detect=0.9, rng=rng, tag=f"e{k}:")]
    n_true = len(picks)
    picks += false_picks(inv, SCALE_T0_NS, minutes * 60, false_per_station_min / 60.0, rng)
    random.Random(seed).shuffle(picks)
    return ScaleScenario(inv, origins, picks, n_true)
