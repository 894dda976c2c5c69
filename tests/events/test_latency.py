"""The early-warning latency measurement (``geosentry.stream.events.latency``): which alert is
an event's first, what it is measured from, and when its magnitude settled."""

from __future__ import annotations

import tomllib
from pathlib import Path

from obspy import UTCDateTime

from geosentry.stream.events.latency import CLOCK, Reference, measure, summary

T0 = UTCDateTime("2014-08-24T00:02:33.4")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "events" / "early-warning.toml"


def _event(eid: str, update: int, emitted_s: float, ml: float | None, mpd: float,
           lat: float = 64.80, offset_s: float = 0.3) -> dict:
    mags = [{"type": "Mpd", "value": mpd}] + ([{"type": "ML", "value": ml}] if ml else [])
    return {"kind": "event", "time": str(T0 + offset_s),
            "emitted_at": str(T0 + emitted_s), "details": {
                "event_id": eid, "update": update, "deleted": False, "station_count": 4 + update,
                "origin": {"time": str(T0 + offset_s), "latitude": lat, "longitude": -16.90},
                "magnitudes": mags}}


def test_first_alert_after_the_fourth_p_and_when_the_magnitude_settles() -> None:
    p = tuple(int((T0 + 2.0 + 0.5 * i).ns) for i in range(6))  # P at +2.0, 2.5, 3.0, 3.5 ...
    refs = [Reference("a", int(T0.ns), 64.80, -16.90, p),
            Reference("b", int((T0 + 60).ns), 64.80, -16.90, p)]  # nothing near it: unmatched
    offset_ns = 10**9  # wall = data time + 1 s
    alerts = [
        {"kind": "pick", "time": str(T0 + 2.0)},
        _event("e1", 0, 1.0 + 6.5, None, 2.1),       # first alert: 3.0 s after the 4th P
        _event("e1", 1, 1.0 + 8.0, 1.2, 1.0),        # Mpd off by 0.8, ML arrives 1.5 s later
        _event("e1", 2, 1.0 + 9.0, 1.5, 1.4),        # final ML 1.5
        _event("x", 0, 1.0 + 7.0, None, 1.0, lat=65.5),  # 70 km away: matches nothing
    ]
    rows = measure(refs, alerts, offset_ns)
    assert rows[0]["after_4th_p_s"] == 3.0 and rows[0]["after_1st_p_s"] == 4.5
    assert rows[0]["final_ml"] == 1.5 and rows[0]["magnitude_s"] == 1.5
    assert "after_4th_p_s" not in rows[1]
    s = summary(rows)
    assert s["measured"] == 1 and s["within_4_s_of_4th_p"] == 1


def test_the_replay_clock_line_is_read_as_the_file_source_writes_it() -> None:
    line = ("files: paced replay at speed 1: data time 2014-08-24T00:01:01.140000Z is wall time "
            "2026-12-06T18:47:32.485577Z")
    m = CLOCK.search(line)
    assert m is not None and m.group(2) == "2014-08-24T00:01:01.140000Z"


def test_continuous_data_before_the_first_four_p() -> None:
    """A picker reports a P once a whole window holds it: events whose first stations had
    just (re)started streaming are told apart (``summary(rows, warm_s)``)."""
    from geosentry.stream.events.latency import _common

    s = 10**9
    ref = Reference("a", 0, 0.0, 0.0, (100 * s, 101 * s, 102 * s, 103 * s, 150 * s),
                    ("A", "B", "C", "D", "E"))
    # A's components: one from 0, one from 40 s (where all are: 40 s); B from 95 s; C none
    segments = {"A": _common([(0, 200 * s), (40 * s, 200 * s)]), "B": [(0, 50 * s),
                (95 * s, 200 * s)], "D": [(0, 200 * s)], "E": [(149 * s, 200 * s)]}
    assert segments["A"] == [(40 * s, 200 * s)]
    assert ref.data_before_s(segments) == 0.0         # C has no data at its P
    segments["C"] = [(0, 200 * s)]
    assert ref.data_before_s(segments) == 6.0         # B restarted at 95 s, its P at 101 s
    rows = [{"after_4th_p_s": 2.0, "data_before_s": 60.0},
            {"after_4th_p_s": 20.0, "data_before_s": 6.0}, {"event": "missed"}]
    assert summary(rows, 30.0)["measured"] == 1 and summary(rows)["measured"] == 2


def test_the_replay_runs_the_shipped_early_warning_config(tmp_path: Path) -> None:
    """``latency``'s defaults are ``deploy/events/early-warning.toml``'s settings: the two
    configs load into the same detector, inference and events settings (only the data's paths
    differ)."""
    from geosentry.stream.config import load_config_dict
    from geosentry.stream.events.latency import config_text, parser

    (tmp_path / "stations.csv").write_text("network,station,lat,lon,elevation\n"
                                          "Z7,A,64.8,-16.9,500\n")
    (tmp_path / "vmodel.txt").write_text("depth_km,vp,vs\n0,5.8,3.4\n20,6.5,3.7\n")
    shipped = tomllib.loads(DEPLOY.read_text())
    shipped["stations"].update(inventory=str(tmp_path / "stations.csv"),
                               velocity_model=str(tmp_path / "vmodel.txt"))
    replay = tomllib.loads(config_text(parser().parse_args([]), tmp_path))
    a, b = load_config_dict(shipped), load_config_dict(replay)
    assert a.detectors == b.detectors and a.inference == b.inference
    assert a.stations is not None and b.stations is not None
    assert a.stations == b.stations and a.stations.min_phases == 4
    assert a.coincidence == b.coincidence
