"""What association produces: events with an origin, arrivals and magnitudes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geosentry.stream.events.picks import Amplitude, Pick
from geosentry.stream.records import NS_PER_S, ns_to_iso


@dataclass(frozen=True, slots=True)
class Arrival:
    pick: Pick
    residual_s: float
    distance_km: float
    azimuth_deg: float


@dataclass(frozen=True, slots=True)
class StationMagnitude:
    amplitude: Amplitude
    ml: float
    hypo_distance_km: float


@dataclass(frozen=True)
class Event:
    id: str
    time_ns: int
    lat_deg: float
    lon_deg: float
    depth_km: float
    err_time_s: float
    err_lat_km: float
    err_lon_km: float
    err_depth_km: float
    rms_s: float
    gap_deg: float
    arrivals: tuple[Arrival, ...]
    velocity_model: str
    ml: float | None = None
    ml_stations: tuple[StationMagnitude, ...] = ()
    ml_scale: str = ""
    update: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_phases(self) -> int:
        return len(self.arrivals)

    @property
    def n_stations(self) -> int:
        return len({a.pick.key for a in self.arrivals})

    @property
    def pick_ids(self) -> tuple[str, ...]:
        return tuple(sorted(a.pick.id for a in self.arrivals))

    @property
    def first_pick_ns(self) -> int:
        return min(a.pick.time_ns for a in self.arrivals)

    def summary(self) -> dict[str, Any]:
        """JSON-ready origin, uncertainties and magnitudes (the ``details`` of event alerts)."""
        out: dict[str, Any] = {
            "event_id": self.id, "update": self.update,
            "origin": {"time": ns_to_iso(self.time_ns), "latitude": round(self.lat_deg, 5),
                       "longitude": round(self.lon_deg, 5), "depth_km": round(self.depth_km, 2)},
            "uncertainty": {"time_s": round(self.err_time_s, 3),
                            "latitude_km": round(self.err_lat_km, 2),
                            "longitude_km": round(self.err_lon_km, 2),
                            "depth_km": round(self.err_depth_km, 2)},
            "rms_s": round(self.rms_s, 3), "azimuthal_gap_deg": round(self.gap_deg, 1),
            "phase_count": self.n_phases, "station_count": self.n_stations,
            "velocity_model": self.velocity_model,
            "pick_ids": list(self.pick_ids),
            "arrivals": [{"pick_id": a.pick.id, "network": a.pick.network,
                          "station": a.pick.station, "location": a.pick.location,
                          "channel": a.pick.channel, "phase": a.pick.phase.value,
                          "time": ns_to_iso(a.pick.time_ns), "residual_s": a.residual_s,
                          "distance_km": a.distance_km, "azimuth_deg": a.azimuth_deg}
                         for a in sorted(self.arrivals, key=lambda a: (a.pick.time_ns,
                                                                       a.pick.id))],
            "station_magnitudes": [
                {"network": m.amplitude.network, "station": m.amplitude.station,
                 "amplitude_nm": round(m.amplitude.amplitude_nm, 3),
                 "period_s": m.amplitude.period_s, "time": ns_to_iso(m.amplitude.time_ns),
                 "type": "ML", "value": round(m.ml, 3),
                 "hypo_distance_km": round(m.hypo_distance_km, 2)} for m in self.ml_stations],
            "magnitudes": ([] if self.ml is None else [
                {"type": "ML", "value": round(self.ml, 2), "station_count": len(self.ml_stations),
                 "scale": self.ml_scale}]) + list(self.extra.get("magnitudes", ())),
        }
        return out

    @property
    def time_s(self) -> float:
        return self.time_ns / NS_PER_S
