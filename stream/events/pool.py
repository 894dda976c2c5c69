"""The associator's settings and its pick pool (``Associator``'s input, sorted and indexed).

>>> AssociatorConfig().min_phases
5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geosentry.stream.events.picks import Pick
from geosentry.stream.events.stations import Station
from geosentry.stream.events.velocity import F64


@dataclass(frozen=True)
class AssociatorConfig:
    min_stations: int = 4
    #: phases (P and S picks) an event needs besides ``min_stations`` stations; 4 lets the
    #: 4th station's P alone make an early-warning first alert instead of the 5th pick)
    min_phases: int = 5
    p_residual_s: float = 1.0
    s_residual_s: float = 1.5
    tolerance_s: float = 0.75  # implied origin times agreeing with the seed's, on the fine grid
    max_distance_km: float = 150.0
    grid_radius_km: float = 40.0
    grid_nodes: int = 17  # per side of the coarse grid
    grid_depths_km: tuple[float, ...] = (3.0, 10.0, 20.0, 35.0)
    max_rms_s: float = 1.0
    min_sigma_s: float = 0.05
    #: of the stations that sent picks and lie within the distance of the event's
    #: ``min_stations``-th nearest station, at least this fraction must have a pick in the event
    #: (random coincidences of false picks are spread out, with silent stations between them)
    min_station_ratio: float = 0.5
    active_window_s: float = 600.0  # a station "sent picks" within this of the origin time
    #: stations above the number random picks would give, in standard deviations
    #: (``acceptance.significant``)
    min_significance: float = 3.0
    duplicate_s: float = 0.3  # a pick this close to a kept one (station, phase) is a duplicate
    #: events of at most this many phases drop the picks the others do not predict
    #: (``crossval``: leave-one-out residuals; 0: off)
    crossval_max_phases: int = 12

    def check(self) -> None:
        from geosentry.stream.errors import ConfigError

        if self.min_stations < 3:
            raise ConfigError("events.min_stations", f"must be >= 3, got {self.min_stations}")
        if self.crossval_max_phases < 0:
            raise ConfigError("events.crossval_max_phases",
                              f"must be >= 0 (0: off), got {self.crossval_max_phases}")
        if not 0.0 <= self.min_station_ratio <= 1.0:
            raise ConfigError("events.min_station_ratio",
                              f"must be in [0, 1], got {self.min_station_ratio}")
        for name in ("p_residual_s", "s_residual_s", "tolerance_s", "max_distance_km",
                     "grid_radius_km", "max_rms_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"events.{name}", f"must be > 0, got {getattr(self, name)}")


@dataclass
class Pool:
    """Picks sorted by (time, station, phase, id) with their stations, as arrays."""

    picks: list[Pick]
    sta: list[Station]
    t: F64  # s after ref
    is_s: np.ndarray
    lat: F64
    lon: F64
    elev_km: F64
    ref_ns: int
    sidx: np.ndarray  # per pick, its station's row in ``st_lat``/``st_lon``
    st_lat: F64
    st_lon: F64
    corr_s: F64 | None = None  # per pick, the elevation correction of its phase
    p_times: dict[str, np.ndarray] | None = None  # P pick rows by station
