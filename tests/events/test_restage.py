"""``latency --restage``: a kept run's pick alerts through the events stage alone, each at its
own ``emitted_at`` on the run's replay clock (``geosentry.stream.events.restage``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geosentry.stream.events.latency import Reference, measure
from geosentry.stream.events.restage import pick_alert, restage
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef, ns_to_iso

DATA0 = 1_408_838_400 * NS_PER_S  # 2014-08-24T00:00:00Z
WALL0 = 1_796_606_131 * NS_PER_S  # the replay clock: wall = data + (WALL0 - DATA0)
DELAY_S = 2.0  # each pick alert 2 s after its pick (a picker's window and lookahead)


def _kept_run(folder: Path) -> tuple[Origin, list[int]]:
    """A kept run's folder: config, replay clock line, pick alerts of one earthquake."""
    inv = grid_network(12, 12.0, seed=3)
    rows = ["network,station,lat,lon,elevation"] + [
        f"{s.network},{s.station},{s.lat_deg},{s.lon_deg},{s.elevation_m}"
        for s in inv.stations.values()]
    (folder / "stations.csv").write_text("\n".join(rows) + "\n")
    (folder / "latency.toml").write_text(
        f'[stations]\ninventory = "{folder / "stations.csv"}"\nupdate_interval_s = 0.5\n')
    (folder / "run.log").write_text(
        f"INFO files: paced replay at speed 1: data time {ns_to_iso(DATA0)} is wall time "
        f"{ns_to_iso(WALL0)}\n")
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
    o = Origin(DATA0 + 60 * NS_PER_S, 45.01, 10.03, 6.0)
    picks = picks_for(o, inv, tt, noise_s=0.05, rng=np.random.default_rng(2), tag="x:")
    model = ModelRef("picker", "1", "0" * 64)
    with (folder / "alerts.jsonl").open("w") as f:
        for p in sorted(picks, key=lambda p: p.time_ns):
            emitted = p.time_ns + int(DELAY_S * NS_PER_S) + (WALL0 - DATA0)
            a = Alert(AlertKind.PICK, p.network, p.station, "", "HHZ", p.time_ns, 0.9, 0.3,
                      model, emitted - 100_000_000, p.phase.value, {"detector": "picker"},
                      emitted_ns=emitted)
            f.write(a.to_json().decode() + "\n")
    return o, sorted(p.time_ns for p in picks if p.phase.value == "P")


def test_restage_locates_the_earthquake_at_the_cadence_after_its_picks(tmp_path: Path) -> None:
    origin, p_ns = _kept_run(tmp_path)
    alerts, offset_ns, counts = restage(tmp_path)
    assert offset_ns == WALL0 - DATA0 and counts["pick_alerts"] == 24
    events = [a for a in alerts if a["kind"] == "event" and not a["details"]["deleted"]]
    assert events, "no event alert"
    ref = Reference("x", origin.time_ns, origin.lat_deg, origin.lon_deg, tuple(p_ns))
    row = measure([ref], alerts, offset_ns)[0]
    # the 5th pick (min_phases 5) arrives DELAY_S after it; the next update within 0.5 s
    fifth = sorted(json.loads(line)["time"] for line in
                   (tmp_path / "alerts.jsonl").read_text().splitlines())[4]
    from obspy import UTCDateTime

    wait_s = row["after_4th_p_s"] - (UTCDateTime(fifth).ns - p_ns[3]) / 1e9
    assert DELAY_S <= wait_s <= DELAY_S + 0.5 + 0.06, row


def test_a_pick_alert_that_does_not_reproduce_its_id_is_refused(tmp_path: Path) -> None:
    _kept_run(tmp_path)
    d = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[0])
    assert pick_alert(d).id == d["id"]
    d["id"] = "0" * 32
    with pytest.raises(SystemExit, match="does not reproduce its id"):
        pick_alert(d)


def test_unrefine_puts_refined_picks_back_where_the_model_put_them(tmp_path: Path) -> None:
    """``latency --restage DIR --unrefine``: the onset refinement's move undone (same
    emission time), its id that of the unmoved pick; a pick it did not move stays."""
    _kept_run(tmp_path)
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    d = json.loads(lines[0])
    model_ns = pick_alert(d).time_ns
    moved = pick_alert(d)
    moved.time_ns += 240_000_000  # the refinement moved it 0.24 s later
    moved.details = {**moved.details, "onset": "aic", "moved_s": 0.24}
    e = json.loads(moved.to_json())
    back = pick_alert(e, unrefine=True)
    assert back.time_ns == model_ns and back.id == d["id"] and back.emitted_ns == moved.emitted_ns
    assert "moved_s" not in back.details and pick_alert(e).time_ns == model_ns + 240_000_000
    assert pick_alert(json.loads(lines[1]), unrefine=True).id == json.loads(lines[1])["id"]
    (tmp_path / "alerts.jsonl").write_text("\n".join([json.dumps(e), *lines[1:]]) + "\n")
    got, _, _ = restage(tmp_path, unrefine=True)
    assert [a["id"] for a in got if a["kind"] == "pick"][0] == d["id"]
