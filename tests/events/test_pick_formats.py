"""Pick files as other tools write them: QuakeFlow / PhaseNet CSV (``station_id``,
``phase_time``, ``phase_type``), phase hints such as Pg / Sn, epoch-second times, and phases
association does not use (Lg, IAML), skipped and counted in one log line. Real picks: ObsPy's
bundled select.out (New Zealand analyst picks)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import obspy
import pytest

from geosentry.stream.events.evaluate import select_out_path
from geosentry.stream.events.picks import Phase, PickFileError, read_picks
from geosentry.stream.events.quakeml import picks_from_catalog


def _select_out() -> obspy.Catalog:
    return obspy.read_events(str(select_out_path()))[:6]


def _plain(picks: list) -> list[tuple[str, Phase, int]]:  # type: ignore[type-arg]
    return sorted((p.station, p.phase, p.time_ns) for p in picks)


def test_quakeflow_csv_with_regional_hints_reads_as_the_plain_csv(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cat = _select_out()
    ref = [p for ev in cat for p in ev.picks if p.phase_hint in ("P", "S")]
    assert len(ref) > 40
    plain = tmp_path / "plain.csv"
    with plain.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "station", "phase", "time"])
        for p in ref:
            w.writerow(["NZ", p.waveform_id.station_code, p.phase_hint, str(p.time)])
    flow = tmp_path / "quakeflow.csv"
    with flow.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["station_id", "phase_time", "phase_score", "phase_type"])
        for i, p in enumerate(ref):
            hint = {"P": "Pg", "S": "Sn"}[p.phase_hint] if i % 2 else p.phase_hint.lower()
            # every other time as epoch seconds, the rest ISO-8601 without a zone
            t = f"{p.time.timestamp:.6f}" if i % 3 == 0 else p.time.strftime("%Y-%m-%dT%H:%M:%S.%f")
            w.writerow([f"NZ.{p.waveform_id.station_code}..HHZ", t, "0.9", hint])
        w.writerow(["NZ.WHYM..HHZ", "2013-01-01T00:00:00", "0.5", "Lg"])
        w.writerow(["NZ.WHYM..HHZ", "2013-01-01T00:00:01", "0.5", "Lg"])
        w.writerow(["NZ.WHYM..HHZ", "2013-01-01T00:00:02", "0.5", "IAML"])
    want, _ = read_picks(plain)
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.events.picks"):
        got, _ = read_picks(flow)
    assert _plain(got) == _plain(want)
    assert {p.network for p in got} == {"NZ"} and {p.channel for p in got} == {"HHZ"}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "3 picks skipped" in lines[0] and "Lg x2" in lines[0] \
        and "IAML x1" in lines[0], lines


def test_a_file_of_other_phases_only_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "lg.csv"
    f.write_text("network,station,phase,time\nNZ,WHYM,Lg,2013-01-01T00:00:00\n")
    with pytest.raises(PickFileError, match="no P or S picks"):
        read_picks(f)


def test_quakeml_regional_hints_and_unusable_picks(caplog: pytest.LogCaptureFixture) -> None:
    cat = _select_out()
    base, _ = picks_from_catalog(cat)
    n = 0
    for ev in cat:
        for p in ev.picks:
            if p.phase_hint == "P":
                p.phase_hint = "Pn"
                n += 1
    lg = cat[0].picks[0].copy()
    lg.phase_hint, lg.resource_id = "Lg", obspy.core.event.ResourceIdentifier()
    no_time = cat[0].picks[0].copy()
    no_time.time, no_time.resource_id = None, obspy.core.event.ResourceIdentifier()
    cat[0].picks += [lg, no_time]
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.events.picks"):
        got, _ = picks_from_catalog(cat)
    assert n > 20 and _plain(got) == _plain(base)
    assert any("Lg x1" in r.getMessage() and "no time or station x1" in r.getMessage()
               for r in caplog.records)


def test_quakeflow_station_file_reads_as_stationxml(tmp_path: Path) -> None:
    """QuakeFlow's stations file (tab-separated, ``station_id`` NET.STA..CHA, ``elevation(m)``)
    gives the same stations as the StationXML it was written from (ObsPy's bundled example)."""
    from geosentry.stream.events.stations import read_inventory

    inv = obspy.read_inventory()
    xml = tmp_path / "inv.xml"
    inv.write(str(xml), format="STATIONXML")
    tsv = tmp_path / "stations.csv"
    with tsv.open("w") as f:
        f.write("station_id\tlongitude\tlatitude\televation(m)\tcomponent\n")
        for net in inv:
            for sta in net:
                f.write(f"{net.code}.{sta.code}..HH\t{sta.longitude}\t{sta.latitude}\t"
                        f"{sta.elevation}\tE,N,Z\n")
    want, got = read_inventory(xml), read_inventory(tsv)
    assert len(got) == len(want) >= 3
    for net in inv:
        for sta in net:
            a, b = want.lookup(net.code, sta.code), got.lookup(net.code, sta.code)
            assert a is not None and b is not None
            assert (b.lat_deg, b.lon_deg, b.elevation_m) == (a.lat_deg, a.lon_deg, a.elevation_m)


def test_spreadsheet_csv_reads_as_the_plain_csv(tmp_path: Path) -> None:
    """A spreadsheet's export: a UTF-8 byte-order mark, semicolons, CRLF line ends and blank
    lines give the same picks and stations as the plain file (the mark used to end up in the
    first column's name: every pick without its network)."""
    from geosentry.stream.events.stations import read_inventory

    cat = _select_out()
    ref = [p for ev in cat for p in ev.picks if p.phase_hint in ("P", "S")]
    rows = [("NZ", p.waveform_id.station_code, p.phase_hint, str(p.time)) for p in ref]
    plain = tmp_path / "plain.csv"
    plain.write_text("network,station,phase,time\n" + "".join(",".join(r) + "\n" for r in rows))
    sheet = tmp_path / "sheet.csv"
    sheet.write_bytes(b"\xef\xbb\xbf" + ("network;station;phase;time\r\n\r\n" + "".join(
        ";".join(r) + "\r\n" for r in rows)).encode())
    want, got = read_picks(plain)[0], read_picks(sheet)[0]
    assert _plain(got) == _plain(want) and {p.network for p in got} == {"NZ"}
    inv = tmp_path / "inv.csv"
    inv.write_bytes(b"\xef\xbb\xbfnetwork;station;lat;lon;elevation\r\nNZ;WHYM;-43.4;170.3;9\r\n")
    st = read_inventory(inv).lookup("NZ", "WHYM")
    assert st is not None and (st.lat_deg, st.elevation_m) == (-43.4, 9.0)


def test_text_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    from geosentry.stream.events.stations import InventoryError, read_inventory

    f = tmp_path / "latin1.csv"
    f.write_bytes("network,station,phase,time\nNZ,WHYM,P,2013-01-01T00:00:00 # Müller\n"
                  .encode("latin-1"))
    with pytest.raises(PickFileError, match=r"latin1.csv: not UTF-8 text \(byte \d+"):
        read_picks(f)
    with pytest.raises(InventoryError, match="latin1.csv: not UTF-8 text"):
        read_inventory(f)
