"""Real data: ObsPy's select.out (50 NZ events, analyst picks) with STATION0.HYP from
../shared; the offline command on QuakeML and CSV pick files."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import obspy
import pytest

from geosentry.stream.events.evaluate import evaluate, load_nz, select_out_path
from geosentry.stream.events.seisan import read_station0
from geosentry.stream.events.stations import read_inventory
from geosentry.stream.events.velocity import read_velocity_model

STATION0 = "events/nz-2013-alpine-fault/STATION0.HYP"


@pytest.mark.shared
def test_station0_is_read(shared_data: Callable[[str], Path]) -> None:
    s0 = read_station0(shared_data(STATION0))
    whym = s0.inventory.lookup("", "WHYM")
    assert whym is not None and whym.lat_deg == pytest.approx(-(43 + 26.472 / 60), abs=1e-6)
    assert whym.elevation_m == 906.0
    assert s0.model.top_km == (0.0, 5.0, 35.0, 48.0) and s0.model.vp_km_s[0] == 5.5
    assert s0.model.vs_km_s[0] == pytest.approx(5.5 / 1.7)
    assert (s0.ml.b, s0.ml.c, s0.ml.d) == (1.0, 0.0041, -1.0)
    assert read_velocity_model(shared_data(STATION0)) == s0.model


@pytest.mark.shared
def test_iceland_inventory_and_model(shared_data: Callable[[str], Path]) -> None:
    inv = read_inventory(shared_data("events/iceland-2014-dike/stations.csv"))
    assert len(inv) == 12 and inv.lookup("Z7", "DYJN").elevation_m == pytest.approx(1381.0)
    m = read_velocity_model(shared_data("events/iceland-2014-dike/vmodel.txt"))
    assert m.top_km[0] == -3.0 and m.vp_km_s[-1] == 7.4 and len(m.top_km) == 19


@pytest.mark.shared
def test_select_out_pooled_and_shuffled_meets_the_floors(
        shared_data: Callable[[str], Path]) -> None:
    shared_data(STATION0)
    ds = load_nz(shared_data(".").resolve())
    r = evaluate(ds, seed=3)
    assert r["recall"] >= 0.9 and r["precision"] >= 0.9, r
    assert r["median_epicentral_km_gap_lt_180"] <= 3.0, r
    assert r["ml_residual_std"] <= 0.3, r


def _cli(*args: str, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    with (tmp / "out.log").open("wb") as log:
        done = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", *args],
                              stdout=log, stderr=subprocess.STDOUT, timeout=300)
    done.stdout = (tmp / "out.log").read_bytes()
    return done


@pytest.mark.shared
def test_associate_command_on_quakeml_and_csv(shared_data: Callable[[str], Path],
                                              tmp_path: Path) -> None:
    station0 = shared_data(STATION0)
    cat = obspy.read_events(str(select_out_path()))[:6]
    qml = tmp_path / "picks.xml"
    cat.write(str(qml), format="QUAKEML")
    out = tmp_path / "events.xml"
    done = _cli("associate", "--picks", str(qml), "--inventory", str(station0), "--out",
                str(out), tmp=tmp_path)
    assert done.returncode == 0, done.stdout
    got = obspy.read_events(str(out))
    assert 4 <= len(got) <= 6
    e = got[0]
    assert e.origins[0].quality.used_station_count >= 4 and e.origins[0].arrivals
    assert e.magnitudes[0].magnitude_type == "ML" and e.magnitudes[0].station_count >= 3
    assert len(e.amplitudes) == len(e.station_magnitudes) >= 3
    # the same picks as CSV (amplitudes in nm) give the same origins
    rows = []
    for ev in cat:
        amp_by_pick = {str(a.pick_id): a for a in ev.amplitudes}
        for p in ev.picks:
            a = amp_by_pick.get(str(p.resource_id))
            rows.append({"network": "", "station": p.waveform_id.station_code,
                         "phase": "" if a else p.phase_hint, "time": str(p.time),
                         "amplitude": f"{a.generic_amplitude * 1e9:g}" if a else "",
                         "period": a.period if a else ""})
    with (tmp_path / "picks.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["network", "station", "phase", "time", "amplitude", "period"])
        w.writeheader()
        w.writerows(r for r in rows if r["phase"] in ("", "P", "S"))
    done = _cli("associate", "--picks", str(tmp_path / "picks.csv"), "--inventory",
                str(station0), "--out", str(tmp_path / "csv.xml"), tmp=tmp_path)
    assert done.returncode == 0, done.stdout
    got_csv = obspy.read_events(str(tmp_path / "csv.xml"))
    assert [str(e.origins[0].time)[:21] for e in got_csv] == \
        [str(e.origins[0].time)[:21] for e in got]
    assert [e.magnitudes[0].mag for e in got_csv] == [e.magnitudes[0].mag for e in got]


def test_bad_pick_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "picks.csv").write_text("network,station,phase,time\nNZ,WHYM,P,not-a-time\n")
    (tmp_path / "inv.csv").write_text("network,station,lat,lon,elevation\nNZ,WHYM,-43.4,170.3,9\n")
    done = _cli("associate", "--picks", str(tmp_path / "picks.csv"), "--inventory",
                str(tmp_path / "inv.csv"), "--out", str(tmp_path / "o.xml"), tmp=tmp_path)
    assert done.returncode == 2
    assert b"picks.csv row 2" in done.stdout and b"Traceback" not in done.stdout


def test_picks_of_no_inventory_station_are_one_line_exit_2(tmp_path: Path) -> None:
    """Before, a pick file whose stations the inventory does not hold (another network code,
    another file) wrote an empty catalogue with exit status 0."""
    (tmp_path / "picks.csv").write_text("network,station,phase,time\n"
                                        "XX,ABC,P,2013-01-01T00:00:00\n"
                                        "XX,ABD,S,2013-01-01T00:00:03\n")
    (tmp_path / "inv.csv").write_text("network,station,lat,lon,elevation\n"
                                      "NZ,WHYM,-43.4,170.3,9\n")
    done = _cli("associate", "--picks", str(tmp_path / "picks.csv"), "--inventory",
                str(tmp_path / "inv.csv"), "--out", str(tmp_path / "o.xml"), tmp=tmp_path)
    assert done.returncode == 2, done.stdout
    assert b"none of the 2 picks' stations is in the inventory" in done.stdout
    assert b"XX.ABC" in done.stdout and b"Traceback" not in done.stdout
    assert not (tmp_path / "o.xml").exists()


@pytest.mark.shared
def test_a_runs_event_alerts_scored_against_the_reference(
        shared_data: Callable[[str], Path], tmp_path: Path) -> None:
    """``geosentry evaluate events --dataset iceland --alerts FILE``: the last version of each
    event id, deleted ones left out, matched one to one."""
    import json

    from geosentry.stream.events.evaluate import load_iceland, score_alerts

    ds = load_iceland(shared_data("events/iceland-2014-dike").parents[1])
    r = ds.reference[0]

    def event(eid: str, update: int, lat: float, deleted: bool = False) -> str:
        t = str(obspy.UTCDateTime(r.time_ns / 1e9) + 0.5)
        return json.dumps({"kind": "event", "details": {
            "event_id": eid, "update": update, "deleted": deleted,
            "origin": {"time": t, "latitude": lat, "longitude": r.lon_deg}}})

    def pick(phase: str, at: str) -> str:  # a pick labelled phase at a modelled arrival
        m = next(m for m in ds.modelled if m.phase.value == at)
        return json.dumps({"kind": "pick", "phase": phase, "station": m.station,
                           "time": str(obspy.UTCDateTime(m.time_ns / 1e9))})

    lines = [json.dumps({"kind": "pick"}), pick("S", "P"), pick("P", "S"),
             event("a", 0, r.lat_deg + 1.0),                                # 111 km off ...
             event("a", 1, r.lat_deg),                                      # ... then right
             event("b", 0, r.lat_deg), event("b", 1, r.lat_deg, deleted=True),
             event("c", 0, r.lat_deg + 0.5)]                                # 56 km off
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    got = score_alerts(ds, path)
    assert got.startswith("iceland: 3 picks, 2 events, 1 of 27 reference earthquakes matched: "
                          "precision 0.50, recall 0.04"), got
    # the phase labels against the modelled arrivals: one S at a P, one P at an S
    assert "P picks at P 0, P picks at S 1, P picks at none 0, S picks at P 1," in got, got
