"""Sources below the crust: found where ``[stations] max_depth_km`` reaches them, and an event
located on that bound said so (service: a counted metric and one log line per event; the
offline command: one line), instead of a silently wrong origin."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pytest

from geosentry.stream.delivery import DeliveryTracker
from geosentry.stream.events.associate import Associator
from geosentry.stream.events.picks import Pick
from geosentry.stream.events.service import EventService
from geosentry.stream.events.settings import parse_stations
from geosentry.stream.events.stations import Inventory
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef, Window
from tests.events.test_stage import as_alert

T0 = 1_700_000_000 * NS_PER_S
#: where the synthetic picks come from: sources to 300 km
DEEP = TravelTimes(DEFAULT_MODEL, max_distance_km=300.0, max_depth_km=300.0)
PICKER = ModelRef("picker", "1", "0" * 64)


def _network() -> Inventory:
    return grid_network(49, 20.0, seed=3)


def _picks(inv: Inventory, depth_km: float) -> list[Pick]:
    return picks_for(Origin(T0, 45.0, 10.05, depth_km), inv, DEEP, noise_s=0.05,
                     rng=np.random.default_rng(1))


@pytest.mark.parametrize("depth_km", [80.0, 120.0, 200.0])
def test_a_deep_source_is_one_event_where_the_table_reaches_it(depth_km: float) -> None:
    inv = _network()
    picks = _picks(inv, depth_km)
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=300.0)
    events, rest = Associator(inv, tt).associate(picks)
    assert len(events) == 1 and rest == [], [(e.depth_km, e.n_phases) for e in events]
    ev = events[0]
    assert ev.n_phases == len(picks)  # its far S picks too, 50-60 s after the origin
    assert abs(ev.depth_km - depth_km) < 3.0 and abs(ev.time_ns - T0) / NS_PER_S < 0.1
    assert not tt.at_bottom(ev.depth_km)


def test_a_source_below_the_bound_is_located_on_it() -> None:
    """With the default 60 km bound an 80 km source splits into events on the bound, seconds
    late: what the flag below reports (before the deep grid nodes and the bound's flag, a
    300 km table found a 200 km source as two events, its P and its S)."""
    inv = _network()
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0)  # max_depth_km 60, the default's
    events, _ = Associator(inv, tt).associate(_picks(inv, 80.0))
    assert events and all(tt.at_bottom(e.depth_km) for e in events)


def _inventory_csv(inv: Inventory, path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "station", "lat", "lon", "elevation"])
        w.writerows((s.network, s.station, s.lat_deg, s.lon_deg, s.elevation_m)
                    for s in inv.stations.values())
    return path


def _take(svc: EventService, picks: list[Pick]) -> list[Alert]:
    results = []
    for key in sorted({p.key for p in picks}):
        net, sta = key.split(".")
        w = Window(net, sta, "", ("HHZ", "HHN", "HHE"), T0, 100.0,
                   np.zeros((3, 3001), dtype=np.float32), T0, "picker")
        results.append((w, [Alert(AlertKind.PICK, p.network, p.station, "", "HHZ", p.time_ns,
                                  0.9, 0.3, PICKER, w.newest_arrival_ns, phase=p.phase.value,
                                  details={"detector": "picker"})
                            for p in picks if p.key == key]))
    out, _ = svc.take(results, [a for _, b in results for a in b])
    later = [(Window("SY", "S0000", "", ("HHZ", "HHN", "HHE"), T0 + 300 * NS_PER_S, 100.0,
                     np.zeros((3, 3001), dtype=np.float32), T0 + 300 * NS_PER_S, "picker"),
              [])]
    out += svc.take(later, [])[0]
    return [a for a in out if a.kind is AlertKind.EVENT]


def test_the_service_counts_and_logs_an_event_on_the_bound_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inv = _network()
    path = _inventory_csv(inv, tmp_path / "st.csv")
    picks = _picks(inv, 80.0)
    metrics = Metrics()
    svc = EventService(parse_stations({"inventory": str(path), "horizon_s": 60.0}),
                       DeliveryTracker(), metrics)
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.events.service"):
        events = _take(svc, picks)
    ids = {a.details["event_id"] for a in events if not a.details["deleted"]}
    assert ids and all(a.details["origin"]["depth_km"] == 60.0 for a in events
                       if not a.details["deleted"])
    lines = [r.getMessage() for r in caplog.records if "max_depth_km" in r.getMessage()]
    assert len(lines) == len(ids), lines  # once per event, not once per update
    assert all("it may be deeper" in line for line in lines)
    count = metrics.registry.get_sample_value("geosentry_event_depth_at_bound_total")
    assert count == len(ids)
    # the bound where the source is: one event at its depth, nothing counted
    deep = EventService(parse_stations({"inventory": str(path), "horizon_s": 60.0,
                                        "max_depth_km": 150.0}), DeliveryTracker(), Metrics())
    finals = {a.details["event_id"]: a for a in _take(deep, picks)}
    assert len(finals) == 1
    (final,) = finals.values()
    assert abs(final.details["origin"]["depth_km"] - 80.0) < 3.0
    assert deep.depth_at_bottom._value.get() == 0  # type: ignore[attr-defined]


def _associate(*args: str, log: Path) -> subprocess.CompletedProcess[bytes]:
    with log.open("wb") as f:
        done = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", "associate", *args],
                              stdout=f, stderr=subprocess.STDOUT, timeout=300)
    done.stdout = log.read_bytes()
    return done


def test_the_offline_command_takes_the_depth_bound_and_says_when_an_event_sits_on_it(
        tmp_path: Path) -> None:
    inv = _network()
    stations = _inventory_csv(inv, tmp_path / "st.csv")
    picks = tmp_path / "picks.csv"
    with picks.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "station", "phase", "time"])
        w.writerows((p.network, p.station, p.phase.value, p.time_ns / NS_PER_S)
                    for p in _picks(inv, 120.0))
    out = tmp_path / "events.xml"
    base = ("--picks", str(picks), "--inventory", str(stations), "--out", str(out))
    done = _associate(*base, log=tmp_path / "a.log")
    assert done.returncode == 0, done.stdout
    assert b"located at 60 km, the deepest source --max-depth-km allows" in done.stdout
    done = _associate(*base, "--max-depth-km", "250", log=tmp_path / "b.log")
    assert done.returncode == 0 and b"deepest source" not in done.stdout, done.stdout
    (ev,) = obspy.read_events(str(out))
    origin = ev.preferred_origin() or ev.origins[0]
    assert abs(origin.depth / 1000.0 - 120.0) < 3.0
    assert abs(origin.time - obspy.UTCDateTime(T0 / NS_PER_S)) < 0.1
    done = _associate(*base, "--max-depth-km", "900", log=tmp_path / "c.log")
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "option --max-depth-km: must be <= 700" \
        in lines[0], lines


def test_the_offline_options_show_the_services_defaults() -> None:
    from dataclasses import fields

    from geosentry.stream.events.offline import SETTINGS
    from geosentry.stream.events.settings import StationsConfig

    defaults = {f.name: f.default for f in fields(StationsConfig)}
    assert SETTINGS == {key: defaults[key] for key in SETTINGS}


def test_a_deep_source_through_the_incremental_stage() -> None:
    """A 600 km source: its S reach stations 60 s after its first P, later than a P seed's
    search reaches and settles (``seed_reach_s`` + ``settle_margin_s``); fed second by second
    with false picks, the stage still ends with one event holding every pick, at its depth."""
    from geosentry.stream.events.stage import EventStage
    from geosentry.stream.events.synthetic import false_picks

    source = TravelTimes(DEFAULT_MODEL, max_distance_km=300.0, max_depth_km=700.0)
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=700.0)
    inv = grid_network(100, 25.0, seed=3, jitter_km=5.0)
    origin = Origin(T0 + 60 * NS_PER_S, 45.1, 10.0, 600.0)
    picks = picks_for(origin, inv, source, noise_s=0.1, p_detect=0.8,
                      rng=np.random.default_rng(1))
    true_ids = {p.id for p in picks}
    picks += false_picks(inv, T0, 400.0, 0.002, np.random.default_rng(2))
    picks.sort(key=lambda p: p.time_ns)
    stage = EventStage(Associator(inv, tt), horizon_s=120.0, update_interval_s=1.0)
    late_s = (max(p.time_ns for p in picks if p.id in true_ids) - min(
        p.time_ns for p in picks if p.id in true_ids)) / NS_PER_S
    assert late_s > Associator(inv, tt).seed_reach_s + 10.0  # the case this test is about
    out: list[Alert] = []
    t, i = T0, 0
    while i < len(picks):
        batch = []
        while i < len(picks) and picks[i].time_ns < t + NS_PER_S:
            batch.append(as_alert(picks[i]))
            i += 1
        out += (stage.add(batch) if batch else []) + stage.advance(t + NS_PER_S)
        t += NS_PER_S
    out += stage.flush()
    last = {a.details["event_id"]: a for a in out}
    finals = [a for a in last.values() if not a.details["deleted"]]
    assert len(finals) == 1
    (ev,) = finals
    assert abs(ev.details["origin"]["depth_km"] - 600.0) < 3.0
    assert abs(ev.time_ns - origin.time_ns) / NS_PER_S < 0.1
    assert ev.details["phase_count"] >= 0.98 * len(true_ids)
