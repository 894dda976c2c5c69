"""QuakeML in and out through ObsPy: picks/amplitudes from a catalogue, events to a catalogue.

Amplitudes read from QuakeML are taken as Wood-Anderson ground displacement (``generic_amplitude``
in m, as ObsPy's Nordic reader gives SEISAN's IAML readings) and kept in nm.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from geosentry.stream.events.picks import Amplitude, Phase, Pick, log_skipped, phase_of, pick_id
from geosentry.stream.events.types import Event


def picks_from_catalog(cat: Any) -> tuple[list[Pick], list[Amplitude]]:
    picks: list[Pick] = []
    amps: list[Amplitude] = []
    skipped: dict[str, int] = {}
    for ev in cat:
        by_id = {}
        amp_picks = {str(a.pick_id) for a in ev.amplitudes if a.pick_id}
        for p in ev.picks:
            by_id[str(p.resource_id)] = p
            hint = (p.phase_hint or "").strip()
            wid = p.waveform_id
            phase = phase_of(hint)
            if phase is None or p.time is None or wid is None or not wid.station_code:
                if str(p.resource_id) not in amp_picks:  # an amplitude's pick (IAML) is used
                    why = hint if phase is None else "no time or station"
                    skipped[why] = skipped.get(why, 0) + 1  # Lg, unknown phases, ...
                continue
            pt = int(p.time.ns)
            pid = str(p.resource_id.id) if p.resource_id else pick_id(
                wid.network_code or "", wid.station_code, phase, pt)
            picks.append(Pick(pid, wid.network_code or "", wid.station_code, phase, pt,
                              wid.location_code or "", wid.channel_code or ""))
        for a in ev.amplitudes:
            if a.generic_amplitude is None or (a.type or "").upper() not in ("AML", "IAML", "ML",
                                                                             "A", ""):
                continue
            wid = a.waveform_id
            ref = by_id.get(str(a.pick_id)) if a.pick_id else None
            t: int | None = int(ref.time.ns) if ref is not None else (
                int(a.time_window.reference.ns) if a.time_window and a.time_window.reference
                else None)
            if t is None or wid is None:
                continue
            amps.append(Amplitude(str(a.resource_id.id), wid.network_code or "",
                                  wid.station_code, float(a.generic_amplitude) * 1e9,
                                  float(a.period) if a.period else None, t))
    log_skipped("QuakeML", skipped)
    return picks, amps


def _safe(key: str) -> str:
    """A QuakeML-URI-safe form of an id (ids from other agencies, ``smi:local/...``, hashed)."""
    if re.fullmatch(r"[A-Za-z0-9._/-]+", key) and "//" not in key:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def events_to_catalog(events: list[Event], agency: str = "geosentry") -> Any:
    from obspy import UTCDateTime
    from obspy.core.event import (Amplitude as QAmplitude, Arrival, Catalog, CreationInfo,
                                  Event as QEvent, Magnitude, Origin, OriginQuality,
                                  OriginUncertainty, Pick as QPick, QuantityError,
                                  ResourceIdentifier, StationMagnitude,
                                  StationMagnitudeContribution, WaveformStreamID)
    from obspy.geodetics import kilometer2degrees

    def rid(kind: str, key: str) -> ResourceIdentifier:
        return ResourceIdentifier(f"smi:{agency}/{kind}/{_safe(key)}")

    cat = Catalog(creation_info=CreationInfo(agency_id=agency))
    for e in events:
        qe = QEvent(resource_id=rid("event", e.id), event_type="earthquake")
        o = Origin(resource_id=rid("origin", f"{e.id}/{e.update}"),
                   time=UTCDateTime(ns=e.time_ns), latitude=e.lat_deg, longitude=e.lon_deg,
                   depth=e.depth_km * 1000.0, depth_type="from location",
                   method_id=rid("method", "associate-geiger"),
                   earth_model_id=rid("earthmodel", e.velocity_model.replace(" ", "_")),
                   evaluation_mode="automatic",
                   time_errors=QuantityError(uncertainty=e.err_time_s),
                   latitude_errors=QuantityError(uncertainty=kilometer2degrees(e.err_lat_km)),
                   longitude_errors=QuantityError(uncertainty=kilometer2degrees(e.err_lon_km)),
                   depth_errors=QuantityError(uncertainty=e.err_depth_km * 1000.0),
                   origin_uncertainty=OriginUncertainty(
                       horizontal_uncertainty=1000.0 * max(e.err_lat_km, e.err_lon_km),
                       preferred_description="horizontal uncertainty"),
                   quality=OriginQuality(associated_phase_count=e.n_phases,
                                         used_phase_count=e.n_phases,
                                         associated_station_count=e.n_stations,
                                         used_station_count=e.n_stations,
                                         standard_error=e.rms_s, azimuthal_gap=e.gap_deg))
        qpick_ids: dict[str, ResourceIdentifier] = {}
        for a in e.arrivals:
            p = a.pick
            pr = rid("pick", p.id)
            qpick_ids[p.key] = pr
            qe.picks.append(QPick(resource_id=pr, time=UTCDateTime(ns=p.time_ns),
                                  waveform_id=WaveformStreamID(p.network, p.station,
                                                               p.location or None,
                                                               p.channel or None),
                                  phase_hint=p.phase.value, evaluation_mode="automatic"))
            o.arrivals.append(Arrival(resource_id=rid("arrival", f"{e.id}/{p.id}"), pick_id=pr,
                                      phase=p.phase.value, time_residual=a.residual_s,
                                      distance=kilometer2degrees(a.distance_km),
                                      azimuth=a.azimuth_deg))
        qe.origins.append(o)
        qe.preferred_origin_id = o.resource_id
        if e.ml is not None:
            mag = Magnitude(resource_id=rid("magnitude", f"{e.id}/{e.update}/ML"), mag=e.ml,
                            magnitude_type="ML", origin_id=o.resource_id,
                            station_count=len(e.ml_stations), method_id=rid(
                                "method", e.ml_scale.replace(" ", "_")))
            for sm in e.ml_stations:
                amp = sm.amplitude
                ar = rid("amplitude", amp.id)
                qe.amplitudes.append(QAmplitude(
                    resource_id=ar, generic_amplitude=amp.amplitude_nm * 1e-9, type="AML",
                    unit="m", period=amp.period_s, magnitude_hint="ML",
                    waveform_id=WaveformStreamID(amp.network, amp.station)))
                smr = rid("stationmagnitude", f"{e.id}/{amp.id}")
                qe.station_magnitudes.append(StationMagnitude(
                    resource_id=smr, origin_id=o.resource_id, mag=round(sm.ml, 3),
                    station_magnitude_type="ML", amplitude_id=ar,
                    waveform_id=WaveformStreamID(amp.network, amp.station)))
                mag.station_magnitude_contributions.append(
                    StationMagnitudeContribution(station_magnitude_id=smr, weight=1.0))
            qe.magnitudes.append(mag)
            qe.preferred_magnitude_id = mag.resource_id
        for m in e.extra.get("magnitudes", ()):  # Mpd (early warning): after ML, not preferred
            qe.magnitudes.append(Magnitude(
                resource_id=rid("magnitude", f"{e.id}/{e.update}/{m['type']}"), mag=m["value"],
                magnitude_type=m["type"], origin_id=o.resource_id,
                station_count=m["station_count"],
                method_id=rid("method", str(m.get("scale", m["type"])).replace(" ", "_"))))
            if qe.preferred_magnitude_id is None:
                qe.preferred_magnitude_id = qe.magnitudes[-1].resource_id
        cat.append(qe)
    return cat


def _iso_ns(text: str) -> int:
    from obspy import UTCDateTime

    return int(UTCDateTime(text).ns)


def event_from_details(d: dict[str, Any]) -> Event:
    """The ``Event`` an event alert's ``details`` describe (``Event.summary`` read back)."""
    from geosentry.stream.events.types import Arrival, StationMagnitude

    o, u = d["origin"], d["uncertainty"]
    arrivals = tuple(Arrival(Pick(a["pick_id"], a["network"], a["station"], Phase(a["phase"]),
                                  _iso_ns(a["time"]), a["location"], a["channel"]),
                             a["residual_s"], a["distance_km"], a["azimuth_deg"])
                     for a in d["arrivals"])
    ml = next((m for m in d["magnitudes"] if m["type"] == "ML"), None)
    sms = tuple(StationMagnitude(Amplitude(f"{d['event_id']}-{m['network']}.{m['station']}-wa",
                                           m["network"], m["station"], m["amplitude_nm"],
                                           m["period_s"], _iso_ns(m["time"])),
                                 m["value"], m["hypo_distance_km"])
                for m in d.get("station_magnitudes", ()))
    return Event(d["event_id"], _iso_ns(o["time"]), o["latitude"], o["longitude"], o["depth_km"],
                 u["time_s"], u["latitude_km"], u["longitude_km"], u["depth_km"], d["rms_s"],
                 d["azimuthal_gap_deg"], arrivals, d["velocity_model"],
                 ml=None if ml is None else ml["value"], ml_stations=sms,
                 ml_scale="" if ml is None else ml.get("scale", ""), update=d["update"],
                 extra={"magnitudes": [m for m in d["magnitudes"] if m["type"] != "ML"]})


def write_quakeml(events: list[Event], path: str | Path) -> None:
    events_to_catalog(events).write(str(path), format="QUAKEML")
