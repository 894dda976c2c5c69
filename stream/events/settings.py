"""``[stations]``: the events stage of ``geosentry run``, validated once into ``StationsConfig``.

```toml
[stations]
inventory = "stations.xml"      # StationXML, CSV (network,station,lat,lon,elevation) or STATION0.HYP
velocity_model = "vmodel.txt"   # depth_km,vp,vs table or STATION0.HYP (default: the inventory's
                                # STATION0.HYP model, else the IASP91 crust)
min_stations = 4                # association settings (geosentry.stream.events.associate)
min_phases = 5                  # P and S picks an event needs (with 4: a first alert at
                                # the 4th station's P, for early warning)
p_residual_s = 1.0
s_residual_s = 1.5
max_distance_km = 150.0
max_depth_km = 60.0             # deepest source the locator considers (the region's seismogenic
                                # depth: without S picks, depth trades off against origin time)
horizon_s = 120.0               # picks are re-associated while within this of the newest
update_interval_s = 1.0         # data time between association runs (longer while an
                                # update takes longer than this in wall time)
settle_margin_s = 10.0          # how late a pick may come and still seed an event
max_picks = 200000              # pool bound (oldest dropped first, counted)
counts_per_m_s = 0.0            # flat velocity gain for stations without a StationXML response
                                # (0: no Wood-Anderson amplitudes there, so no ML from them)
```

The inventory and the model are read here, so a missing or unreadable file is a one-line
configuration error at start-up naming the key.

>>> parse_stations({"inventory": "/nonexistent.csv"})
Traceback (most recent call last):
...
geosentry.stream.errors.ConfigError: config key 'stations.inventory': inventory /nonexistent.csv: No such file or directory
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from geosentry.stream.errors import ConfigError, GeosentryError
from geosentry.stream.events.associate import AssociatorConfig
from geosentry.stream.events.magnitude import MLScale
from geosentry.stream.events.stations import Inventory
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes, VelocityModel


@dataclass(frozen=True)
class StationsConfig:
    inventory: str
    velocity_model: str = ""
    min_stations: int = 4
    min_phases: int = 5
    p_residual_s: float = 1.0
    s_residual_s: float = 1.5
    max_distance_km: float = 150.0
    max_depth_km: float = 60.0
    horizon_s: float = 120.0
    update_interval_s: float = 1.0
    settle_margin_s: float = 10.0
    max_picks: int = 200_000
    counts_per_m_s: float = 0.0
    #: loaded from the files above (not TOML keys)
    stations: Inventory = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    model: VelocityModel = field(default=DEFAULT_MODEL, compare=False)
    ml_scale: MLScale = field(default_factory=MLScale, compare=False)
    #: StationXML responses by ``NET.STA.LOC.CHA`` (an ObsPy ``Inventory``), or None
    responses: Any = field(default=None, compare=False, repr=False)

    def travel_times(self) -> TravelTimes:
        """The P and S tables association and location use: the stage's reach plus 100 km (a
        pick may come from an event outside it), down to ``max_depth_km`` (the locator keeps
        its depths within the table)."""
        return TravelTimes(self.model, max_distance_km=self.max_distance_km + 100.0,
                           max_depth_km=self.max_depth_km)

    def associator_config(self) -> AssociatorConfig:
        return AssociatorConfig(min_stations=self.min_stations, min_phases=self.min_phases,
                                p_residual_s=self.p_residual_s,
                                s_residual_s=self.s_residual_s,
                                max_distance_km=self.max_distance_km)


_FILE_KEYS = ("stations", "model", "ml_scale", "responses")
#: the deepest earthquakes (about 700 km): a larger max_depth_km is a typo
MAX_DEPTH_LIMIT_KM = 700.0


def parse_stations(raw: dict[str, Any]) -> StationsConfig:
    known = [f.name for f in fields(StationsConfig) if f.name not in _FILE_KEYS]
    for key in raw:
        if key not in known:
            raise ConfigError(f"stations.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    if not isinstance(raw.get("inventory"), str) or not raw["inventory"]:
        raise ConfigError("stations.inventory", "required: a StationXML, CSV or STATION0.HYP file")
    ints = ("min_stations", "min_phases", "max_picks")
    for key in known[2:]:
        if key not in raw:
            continue
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (
                key in ints and not isinstance(v, int)):
            raise ConfigError(f"stations.{key}", f"must be a{'n integer' if key in ints else ' number'}"
                                                 f", got {v!r}")
        if v < 0 or (v == 0 and key not in ("counts_per_m_s", "settle_margin_s")):
            raise ConfigError(f"stations.{key}", f"must be > 0, got {v!r}")
    if raw.get("max_depth_km", 60.0) > MAX_DEPTH_LIMIT_KM:
        raise ConfigError("stations.max_depth_km",
                          f"must be <= {MAX_DEPTH_LIMIT_KM:g}, got {raw['max_depth_km']!r}")
    if raw.get("min_stations", 4) < 3:
        raise ConfigError("stations.min_stations", f"must be >= 3, got {raw['min_stations']}")
    if not isinstance(raw.get("velocity_model", ""), str):
        raise ConfigError("stations.velocity_model", "must be a file name")
    cfg = StationsConfig(**raw)
    from geosentry.stream.events.stations import read_inventory
    from geosentry.stream.events.velocity import read_velocity_model

    try:
        inv = read_inventory(cfg.inventory)
    except GeosentryError as exc:
        raise ConfigError("stations.inventory", str(exc)) from exc
    model, ml = DEFAULT_MODEL, MLScale()
    if cfg.inventory.lower().endswith(".hyp"):
        from geosentry.stream.events.seisan import read_station0

        s0 = read_station0(cfg.inventory)
        model, ml = s0.model, s0.ml
    if cfg.velocity_model:
        try:
            model = read_velocity_model(cfg.velocity_model)
        except GeosentryError as exc:
            raise ConfigError("stations.velocity_model", str(exc)) from exc
    responses = _responses(cfg.inventory)
    return StationsConfig(**{**raw, "stations": inv, "model": model, "ml_scale": ml,
                             "responses": responses})


def _responses(path: str) -> Any:
    """The StationXML inventory when any of its channels has an instrument response."""
    with open(path, "rb") as f:
        if not f.read(512).lstrip().startswith(b"<"):
            return None
    import obspy

    inv = obspy.read_inventory(path)
    has = any(ch.response is not None and ch.response.instrument_sensitivity is not None
              for net in inv for sta in net for ch in sta)
    return inv if has else None
