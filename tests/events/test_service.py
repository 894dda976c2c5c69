"""The events stage in ``geosentry run`` (``[stations]``): config, delivery holds, unknown
stations, and the Iceland swarm replayed through the whole service (picker -> association ->
location -> ML / Mpd) from its miniSEED."""

from __future__ import annotations

import asyncio
import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np
import obspy
import pytest

from geosentry.stream.config import load_config_dict
from geosentry.stream.delivery import DeliveryTracker
from geosentry.stream.errors import ConfigError
from geosentry.stream.events.service import EventService
from geosentry.stream.events.settings import parse_stations
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef, SourceRef, Window
from geosentry.stream.sinks import open_sink
from geosentry.stream.sources import open_source
from geosentry.stream.testing import run_pipeline

ICELAND = "events/iceland-2014-dike"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "stream" / "schemas"
                     / "alert.v1.json").read_text())
PICKER = ModelRef("picker", "1", "0" * 64)
T0 = 1_700_000_000 * NS_PER_S


def write_inventory(path: Path, stations: list[tuple[str, str, float, float, float]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "station", "lat", "lon", "elevation"])
        w.writerows(stations)
    return path


# -- configuration ----------------------------------------------------------------------------
def test_stations_config_is_validated_with_one_line_errors(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "st.csv", [("XX", "A", 45.0, 10.0, 0.0)])
    cfg = load_config_dict({"stations": {"inventory": str(inv), "min_stations": 5}})
    assert cfg.stations is not None and cfg.stations.min_stations == 5
    assert len(cfg.stations.stations) == 1 and cfg.stations.model == DEFAULT_MODEL
    assert cfg.stations.travel_times().depth_km[-1] == 60.0  # the default depth bound
    shallow = load_config_dict({"stations": {"inventory": str(inv), "max_depth_km": 20.0}})
    assert shallow.stations is not None and shallow.stations.travel_times().depth_km[-1] == 20.0
    assert load_config_dict({}).stations is None
    bad = [({"inventory": str(inv), "min_stations": 2}, "stations.min_stations", ">= 3"),
           ({"inventory": str(inv), "horizon_s": 0}, "stations.horizon_s", "> 0"),
           ({"inventory": str(inv), "max_picks": 1.5}, "stations.max_picks", "integer"),
           ({"inventory": str(inv), "max_depth_km": 0}, "stations.max_depth_km", "> 0"),
           ({"inventory": str(inv), "max_depth_km": 7000}, "stations.max_depth_km", "<= 700"),
           ({"inventory": str(inv), "radius": 1}, "stations.radius", "unknown key"),
           ({}, "stations.inventory", "required"),
           ({"inventory": str(tmp_path / "none.xml")}, "stations.inventory", "No such file"),
           ({"inventory": str(inv), "velocity_model": str(inv)}, "stations.velocity_model", "")]
    for raw, key, why in bad:
        with pytest.raises(ConfigError) as err:
            load_config_dict({"stations": raw})
        assert err.value.key == key and why in err.value.why and "\n" not in str(err.value)


# -- holds: input stays uncommitted until the events its picks make are delivered --------------
def _window(net: str, sta: str, start_ns: int) -> Window:
    return Window(net, sta, "", ("HHZ", "HHN", "HHE"), start_ns, 100.0,
                  np.zeros((3, 3001), dtype=np.float32), start_ns, "picker")


def _pick_alert(p: object, window: Window) -> Alert:
    return Alert(AlertKind.PICK, p.network, p.station, "", "HHZ", p.time_ns,  # type: ignore[attr-defined]
                 0.9, 0.3, PICKER, window.newest_arrival_ns, phase=p.phase.value,  # type: ignore[attr-defined]
                 details={"detector": "picker"})


def test_picks_hold_their_input_until_the_final_event_is_delivered(tmp_path: Path) -> None:
    inv = grid_network(16, 15.0, seed=2)
    path = write_inventory(tmp_path / "st.csv", [(s.network, s.station, s.lat_deg, s.lon_deg,
                                                  s.elevation_m) for s in inv.stations.values()])
    cfg = parse_stations({"inventory": str(path), "horizon_s": 60.0})
    tracker = DeliveryTracker()
    svc = EventService(cfg, tracker, Metrics())
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0)
    origin = Origin(T0 + 20 * NS_PER_S, 45.1, 10.1, 8.0)
    picks = picks_for(origin, cfg.stations, tt, noise_s=0.02, rng=np.random.default_rng(0))
    # one input record per station, ending where its window starts + 1 s: needed by that window
    stations = sorted({p.key for p in picks})
    start = T0
    for off, key in enumerate(stations):
        net, sta = key.split(".")
        w = _window(net, sta, start)
        tracker.record(SourceRef("k", 0, off), w.instrument, start + NS_PER_S)
    results = []
    for key in stations:
        net, sta = key.split(".")
        w = _window(net, sta, start)
        results.append((w, [_pick_alert(p, w) for p in picks if p.key == key]))
    tokens = [tracker.begin(w.instrument, w.start_ns) for w, _ in results]
    out, ends = svc.take(results, [a for _, b in results for a in b])
    events = [a for a in out if a.kind is AlertKind.EVENT]
    assert len(events) == 1 and not events[0].details["deleted"]
    jsonschema.validate(json.loads(events[0].to_json()), SCHEMA)
    assert ends == [] and svc.held == len(picks)
    for (w, _), t in zip(results, tokens):  # the windows' own alerts are delivered
        tracker.end(w.instrument, t)
    assert tracker.committable(lambda i: None) == {}, "committed before the event was final"
    # data time moves on past the horizon: the event is final, its picks leave the stage
    # (data time is what min_stations - 1 stations have reached: events/clock.py)
    later = [(_window(*key.split("."), T0 + 200 * NS_PER_S), []) for key in stations[:3]]
    out, ends = svc.take(later, [])
    assert len(ends) == len(picks) and svc.held == 0
    assert tracker.committable(lambda i: None) == {}, "ends run only once delivered"
    for inst, token in ends:  # what the pipeline does when the batch is delivered
        tracker.end(inst, token)
    assert tracker.committable(lambda i: None) == {"k": {0: len(stations)}}


# -- the whole service on real data ------------------------------------------------------------
def _iceland_config(root: Path, inventory: Path) -> dict[str, object]:
    return {"coincidence": {"enabled": False},
            "detectors": [{"name": "picker", "type": "model", "path": "builtin:picker",
                           "missing_components": "zeros", "highpass_hz": 2.0}],
            "stations": {"inventory": str(inventory),
                         "velocity_model": str(root / "vmodel.txt"),
                         "counts_per_m_s": 4.6e9, "max_depth_km": 20.0}}


def _reference(root: Path) -> list[tuple[float, float, float, float]]:
    out = []
    for f in sorted((root / "events").glob("*.event")):
        row = f.read_text().splitlines()[1].split(",")
        out.append((obspy.UTCDateTime(row[1]).timestamp, float(row[3]), float(row[2]),
                    float(row[20] or "nan")))
    return out


def _finals(alerts: list[Alert]) -> list[Alert]:
    last: dict[str, Alert] = {}
    for a in alerts:
        if a.kind is AlertKind.EVENT:
            last[a.details["event_id"]] = a
    return [a for a in last.values() if not a.details["deleted"]]


def _match(events: list[Alert], ref: list[tuple[float, float, float, float]]
           ) -> list[tuple[Alert, float, float]]:
    """(event, epicentral error km, ML - reference ML) within 3 s and 10 km, one to one."""
    used: set[int] = set()
    out = []
    for a in sorted(events, key=lambda a: a.time_ns):
        o = a.details["origin"]
        t = a.time_ns / NS_PER_S
        for i, (rt, rlat, rlon, rml) in enumerate(ref):
            dk = math.hypot((o["latitude"] - rlat) * 111.2,
                            (o["longitude"] - rlon) * 111.2 * math.cos(math.radians(rlat)))
            if i not in used and abs(t - rt) <= 3.0 and dk <= 10.0:
                used.add(i)
                ml = {m["type"]: m["value"] for m in a.details["magnitudes"]}.get("ML")
                out.append((a, dk, (ml - rml) if ml is not None else math.nan))
                break
    return out


@pytest.mark.shared
def test_iceland_swarm_through_the_whole_service(shared_data: Callable[[str], Path],
                                                 tmp_path: Path) -> None:
    root = shared_data(ICELAND)
    waves = tmp_path / "waves"
    waves.mkdir()
    for f in (root / "events").glob("*.m"):
        (waves / f.name).symlink_to(f)
    cfg = load_config_dict(_iceland_config(root, root / "stations.csv"))
    run = asyncio.run(run_pipeline([open_source(str(waves), 0.0)], cfg, timeout_s=120.0))
    assert run.summary.exit_code == 0 and run.summary.decode_errors == 0
    picks = [a for a in run.sink.alerts if a.kind is AlertKind.PICK]
    events = _finals(run.sink.alerts)
    for a in run.sink.alerts:
        if a.kind is AlertKind.EVENT:
            jsonschema.validate(json.loads(a.to_json()), SCHEMA)
    pick_ids = {p.id for p in picks}
    assert all(set(e.details["pick_ids"]) <= pick_ids for e in events)
    # the 2 Hz high-pass (as deploy/events/iceland.toml) lifts the shipped picker's P picks
    # within 0.5 s of QuakeMigrate's from 71 to 118 of 196 (measured 2026-12-06)
    ref_p = [(r["Station"], obspy.UTCDateTime(r["PickTime"]).timestamp)
             for f in sorted((root / "events").glob("*.picks"))
             for r in csv.DictReader(f.open()) if r["Phase"] == "P" and r["PickTime"] != "-1"]
    ours = [(a.station, a.time_ns / 1e9) for a in picks if a.phase == "P"]
    hit = sum(any(s == sta and abs(t - rt) <= 0.5 for sta, t in ours) for s, rt in ref_p)
    assert hit >= 100, (hit, len(ref_p))
    # the shipped contract's onset refinement (stream/inference/refine.py) moves them closer to
    # QuakeMigrate's: residual σ 49 ms, 60 ms without it (measured 2026-12-07); a network the
    # picker never saw, so not where the refinement's settings were chosen
    res = [min((t - rt for sta, t in ours if sta == s), key=abs, default=9.9) for s, rt in ref_p]
    res = [r for r in res if abs(r) <= 0.5]
    assert float(np.std(res)) <= 0.054, float(np.std(res))
    # deploy/events/iceland.toml's depth bound: no event slides below it (one P-only event was
    # located at 54 km under the default 60 km)
    assert all(a.details["origin"]["depth_km"] <= 20.0 for a in events), [
        a.details["origin"] for a in events]
    matched = _match(events, _reference(root))
    # measured 2026-12-06: 16 events, 8 of the 27 reference events matched (the shipped
    # picker's 205 picks: see README Events); floors well below, so a regression shows
    assert len(matched) >= 5, [a.details["origin"] for a in events]
    assert float(np.median([dk for _, dk, _ in matched])) <= 6.0
    phase = {p.id: p.phase for p in picks}
    for a, _, _ in matched:
        types = {m["type"]: m for m in a.details["magnitudes"]}
        assert "ML" in types and types["ML"]["station_count"] >= 3, a.details
        # Mpd is measured after P picks: an event of S picks alone has none (00:07:33 with
        # the picker ensemble of README Models, 10 S picks, measured 2026-12-07)
        if any(phase[i] == "P" for i in a.details["pick_ids"]):
            assert types["Mpd"]["window_s"] == 3.0, a.details
        else:
            assert "Mpd" not in types, a.details
    dml = [d for _, _, d in matched if not math.isnan(d)]
    assert abs(float(np.median(dml))) <= 0.7, dml  # counts_per_m_s from the reference's amps
    assert run.metrics.value("geosentry_event_alerts_total", action="new") >= len(events)
    # the same alerts through the quakeml:DIR sink: one file per surviving event, with ML
    qdir = tmp_path / "quakeml"
    qdir.mkdir()
    sink = open_sink(f"quakeml:{qdir}")

    async def write() -> None:
        await sink.start()
        await sink.send([a for a in run.sink.alerts if a.kind is AlertKind.EVENT])

    asyncio.run(write())
    files = sorted(qdir.glob("*.xml"))
    assert len(files) == len(events)
    cat = obspy.read_events(str(files[0]))
    assert cat[0].preferred_magnitude().magnitude_type == "ML" and cat[0].picks
    assert run.metrics.value("geosentry_event_picks_total", outcome="taken") == len(picks)
    assert run.metrics.value("geosentry_event_update_seconds_count") > 0


@pytest.mark.shared
def test_station_without_metadata_one_health_alert_picks_kept_out(
        shared_data: Callable[[str], Path], tmp_path: Path) -> None:
    root = shared_data(ICELAND)
    waves = tmp_path / "waves"
    waves.mkdir()
    for f in sorted((root / "events").glob("*.m"))[:8]:
        (waves / f.name).symlink_to(f)
    rows = list(csv.DictReader((root / "stations.csv").open()))
    inv = write_inventory(tmp_path / "st.csv", [
        ("Z7", r["Name"], float(r["Latitude"]), float(r["Longitude"]),
         1000 * float(r["Elevation"])) for r in rows if r["Name"] != "FLUR"])
    cfg = load_config_dict(_iceland_config(root, inv))
    run = asyncio.run(run_pipeline([open_source(str(waves), 0.0)], cfg, timeout_s=120.0))
    flur = {a.id for a in run.sink.alerts if a.kind is AlertKind.PICK and a.station == "FLUR"}
    assert flur, "FLUR has picks in these cuts"
    health = [a for a in run.sink.alerts if a.kind is AlertKind.HEALTH
              and a.details.get("event") == "station_unknown"]
    assert [(a.network, a.station) for a in health] == [("Z7", "FLUR")]
    assert run.metrics.value("geosentry_event_picks_total", outcome="unknown_station") \
        == len(flur)
    events = _finals(run.sink.alerts)
    assert events and not any(flur & set(e.details["pick_ids"]) for e in events)


@pytest.mark.shared
def test_a_station_whose_clock_is_an_hour_ahead_stops_nothing(
        shared_data: Callable[[str], Path], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The swarm with DYSA's recordings dated an hour late (a digitiser that lost its GPS
    time), replayed from files: DYSA's picks are counted as ``future`` with one line naming
    the station, and kept out of events. (A file replay reads records in time order, so here
    DYSA's come last: before ``events/clock.py`` this lost 1 of 10 matches and 17 picks were
    late; in a live feed it stopped the stage, ``tests/integration/test_events_clock.py``.)"""
    import logging

    root = shared_data(ICELAND)
    waves = tmp_path / "waves"
    waves.mkdir()
    for f in sorted((root / "events").glob("*.m")):
        st = obspy.read(str(f))
        for tr in st.select(station="DYSA"):
            tr.stats.starttime += 3600.0
        st.write(str(waves / f.name), format="MSEED")
    cfg = load_config_dict(_iceland_config(root, root / "stations.csv"))
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.events.stage"):
        run = asyncio.run(run_pipeline([open_source(str(waves), 0.0)], cfg, timeout_s=120.0))
    assert run.summary.exit_code == 0
    dysa = {a.id for a in run.sink.alerts if a.kind is AlertKind.PICK and a.station == "DYSA"}
    assert dysa, "DYSA has picks in these cuts"
    assert run.metrics.value("geosentry_event_picks_total", outcome="future") == len(dysa)
    assert run.metrics.value("geosentry_event_picks_total", outcome="late") == 0
    lines = [r.getMessage() for r in caplog.records if "future_picks" in r.getMessage()]
    assert len(lines) == 1 and "Z7.DYSA" in lines[0], lines
    events = _finals(run.sink.alerts)
    assert not any(dysa & set(e.details["pick_ids"]) for e in events)
    matched = _match(events, _reference(root))
    assert len(matched) >= 5, [a.details["origin"] for a in events]  # as the swarm's own test


def test_gain_from_stationxml_responses_else_configured(tmp_path: Path) -> None:
    """ObsPy's bundled example inventory (BW.RJOB, GR.FUR with responses): Wood-Anderson
    amplitudes use its sensitivity; a channel it lacks uses counts_per_m_s."""
    from geosentry.stream.events.waveforms import AmplitudeBins, GainLookup

    path = tmp_path / "inv.xml"
    obspy.read_inventory().write(str(path), format="STATIONXML")
    cfg = parse_stations({"inventory": str(path), "counts_per_m_s": 1e9})
    assert cfg.responses is not None and cfg.stations.lookup("BW", "RJOB") is not None
    gain = GainLookup(cfg.responses, cfg.counts_per_m_s)
    t = obspy.UTCDateTime(2010, 1, 1).ns
    w = Window("BW", "RJOB", "", ("EHZ", "EHN", "EHE"), t, 100.0,
               np.zeros((3, 10), dtype=np.float32), t, "picker")
    assert gain(w, 0) == pytest.approx(2516800000.0)
    other = Window("XX", "NONE", "", ("HHZ",), t, 100.0, np.zeros((1, 10)), t, "picker")
    assert gain(other, 0) == 1e9
    # a 1 Hz sine of 1 um/s ground velocity on the horizontals: WA displacement amplitude is
    # |H(1 Hz)| * 1e3 nm/s (WA response to velocity: s / (s^2 + 2 h w0 s + w0^2))
    n = 3000
    v = np.sin(2 * np.pi * 1.0 * np.arange(n) / 100.0) * 1e-6 * 2516800000.0
    w = Window("BW", "RJOB", "", ("EHZ", "EHN", "EHE"), t, 100.0,
               np.stack([np.zeros(n), v, v]).astype(np.float32), t, "picker")
    bins = AmplitudeBins(gain, 300.0)
    bins.add(w)
    rows = bins.span("BW.RJOB", t + 20 * NS_PER_S, t + 29 * NS_PER_S)
    assert rows is not None
    s, w0 = 2j * np.pi, 2 * np.pi / 0.8
    expected = abs(s / (s * s + 2 * 0.7 * w0 * s + w0 * w0)) * 1e3
    assert float(np.nanmax(rows[:, 0])) == pytest.approx(expected, rel=0.03)


def test_an_accelerometer_is_integrated_to_velocity(tmp_path: Path) -> None:
    """A StationXML channel whose sensitivity is per m/s**2 (a strong-motion accelerometer):
    its counts are integrated once, so its Wood-Anderson amplitude equals a velocity sensor's on
    the same ground motion (before, no amplitudes were measured on it)."""
    from obspy.core.inventory import (Channel, Inventory, InstrumentSensitivity, Network,
                                      Response, Station)

    from geosentry.stream.events.waveforms import AmplitudeBins, GainLookup, Motion

    gain_counts = 4.0e5  # counts per m/s**2
    chans = [Channel(f"HN{c}", "", 64.0, -21.0, 100.0, 0.0, sample_rate=100.0,
                     response=Response(instrument_sensitivity=InstrumentSensitivity(
                         gain_counts, 1.0, "M/S**2", "COUNTS")))
             for c in "ZNE"]
    inv = Inventory([Network("XA", [Station("ACC", 64.0, -21.0, 100.0, channels=chans)])],
                    source="test")
    path = tmp_path / "acc.xml"
    inv.write(str(path), format="STATIONXML")
    cfg = parse_stations({"inventory": str(path)})
    gain = GainLookup(cfg.responses, cfg.counts_per_m_s)
    t = obspy.UTCDateTime(2010, 1, 1).ns
    n, f_hz, v_amp = 3000, 1.0, 1e-6  # 1 um/s ground velocity at 1 Hz
    k = np.arange(n) / 100.0
    acc = v_amp * 2 * np.pi * f_hz * np.cos(2 * np.pi * f_hz * k) * gain_counts  # counts
    w = Window("XA", "ACC", "", ("HNZ", "HNN", "HNE"), t, 100.0,
               np.stack([acc, acc, acc]).astype(np.float32), t, "picker")
    assert gain(w, 1) == pytest.approx(gain_counts) and gain.motion(w, 1) is Motion.ACCELERATION
    bins = AmplitudeBins(gain, 300.0)
    bins.add(w)
    rows = bins.span("XA.ACC", t + 20 * NS_PER_S, t + 29 * NS_PER_S)
    assert rows is not None
    s, w0 = 2j * np.pi * f_hz, 2 * np.pi / 0.8
    expected = abs(s / (s * s + 2 * 0.7 * w0 * s + w0 * w0)) * v_amp * 1e9
    assert float(np.nanmax(rows[:, 0])) == pytest.approx(expected, rel=0.05)
    # Pd: peak vertical displacement v / (2 pi f), in cm
    assert float(np.nanmax(rows[:, 1])) == pytest.approx(v_amp / (2 * np.pi * f_hz) * 100,
                                                         rel=0.05)


def test_a_short_period_response_is_removed_in_full(tmp_path: Path) -> None:
    """ObsPy's bundled BW.RTSH StationXML (a 1 Hz sensor, 200 Hz): its velocity response at
    0.7 Hz is under half its sensitivity, so dividing by the sensitivity alone would give half
    the Wood-Anderson amplitude; the full response is removed and the amplitude is the ground's.
    A broadband (BW.RJOB, GR.FUR: flat over 0.2-10 Hz) keeps the causal sensitivity path."""
    import os

    from geosentry.stream.events.response import GUARD_S
    from geosentry.stream.events.waveforms import AmplitudeBins, GainLookup

    src = os.path.join(os.path.dirname(obspy.__file__), "signal", "tests", "data",
                       "BW_RTSH.xml")
    inv = obspy.read_inventory(src)
    path = tmp_path / "rtsh.xml"
    inv.write(str(path), format="STATIONXML")
    gain = GainLookup(parse_stations({"inventory": str(path)}).responses, 0.0)
    t = obspy.UTCDateTime(2009, 1, 1).ns
    rate, f_hz, v_amp, n = 200.0, 0.7, 1e-6, 6000  # 1 um/s ground velocity at 0.7 Hz, 30 s
    resp = inv.get_response("BW.RTSH..EHN", obspy.UTCDateTime(2009, 1, 1))
    r = complex(resp.get_evalresp_response_for_frequencies(np.array([f_hz]), output="VEL")[0])
    sens = resp.instrument_sensitivity.value
    assert abs(r) / sens < 0.5  # the test is about a response far from flat here
    k = np.arange(n) / rate
    counts = v_amp * abs(r) * np.sin(2 * np.pi * f_hz * k + np.angle(r))
    w = Window("BW", "RTSH", "", ("EHZ", "EHN", "EHE"), t, rate,
               np.stack([counts, counts, counts]).astype(np.float32), t, "picker")
    assert gain.deconvolved(w, 1)
    bins = AmplitudeBins(gain, 300.0)
    bins.add(w)
    rows = bins.span("BW.RTSH", t + 12 * NS_PER_S, t + 30 * NS_PER_S)
    assert rows is not None
    measured = rows[~np.isnan(rows[:, 0])]
    # the window's last GUARD_S are left for the next window
    assert bins.measured_until_ns("BW.RTSH") <= w.end_ns + 1 - GUARD_S * NS_PER_S
    s, w0 = 2j * np.pi * f_hz, 2 * np.pi / 0.8
    expected = abs(s / (s * s + 2 * 0.7 * w0 * s + w0 * w0)) * v_amp * 1e9
    assert float(measured[:, 0].max()) == pytest.approx(expected, rel=0.05)
    assert float(np.median(measured[:, 0])) == pytest.approx(expected, rel=0.1)
    # Pd: peak vertical displacement v / (2 pi f), in cm, once the 0.075 Hz high-pass of the
    # integration has settled (as for any sensor)
    late = bins.span("BW.RTSH", t + 18 * NS_PER_S, t + 30 * NS_PER_S)
    assert late is not None
    assert float(np.nanmax(late[:, 1])) == pytest.approx(v_amp / (2 * np.pi * f_hz) * 100,
                                                         rel=0.1)
    bb = obspy.read_inventory()
    bb_path = tmp_path / "bb.xml"
    bb.write(str(bb_path), format="STATIONXML")
    bb_gain = GainLookup(parse_stations({"inventory": str(bb_path)}).responses, 0.0)
    t2 = obspy.UTCDateTime(2010, 1, 1).ns
    for sta, ch in (("RJOB", "EHN"), ("FUR", "HHN")):
        net = "BW" if sta == "RJOB" else "GR"
        w2 = Window(net, sta, "", (ch,), t2, 100.0, np.zeros((1, 10)), t2, "picker")
        assert not bb_gain.deconvolved(w2, 0)


def test_a_slow_channel_gives_no_amplitudes_and_no_error() -> None:
    """A 0.1 Hz three-component channel (valid, e.g. a long-period or state-of-health stream):
    its windows are skipped for amplitudes (its filters cannot be built), a 1 Hz one is
    measured."""
    from geosentry.stream.events.waveforms import AmplitudeBins, GainLookup

    bins = AmplitudeBins(GainLookup(None, 1e9), 300.0)
    rng = np.random.default_rng(0)
    for sta, rate in (("SLOW", 0.1), ("LH", 1.0)):
        n = int(600 * rate)
        bins.add(Window("XX", sta, "", ("LHZ", "LHN", "LHE"), 0, rate,
                        rng.standard_normal((3, n)).astype(np.float32), 0, "picker"))
    assert bins.span("XX.SLOW", 0, 600 * NS_PER_S) is None
    assert bins.span("XX.LH", 0, 600 * NS_PER_S) is not None
