"""Time windows (v3 ``TIME start end``, v4 ``DATA seq start end``) from our client and from
ObsPy's ``Client.get_waveforms``; an SDS tree served as an archive; replay pace."""

from __future__ import annotations

import time
from pathlib import Path

import obspy
import pytest
from slhelpers import by_station, drain, run_script, serving, write_sds_archive

from geosentry.stream.records import NS_PER_S
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.sources.seedlink import SeedLinkSource

HERE = Path(__file__).resolve().parent
START, END = "2010-05-27T16:25:00Z", "2010-05-27T16:26:00Z"


def _ns(text: str) -> int:
    return obspy.UTCDateTime(text).ns


@pytest.mark.parametrize("proto", ["3", "4"])
async def test_time_window_from_our_client(demo_archive: Path, archive_packets: Archive,
                                           proto: str) -> None:
    async with serving(demo_archive) as server:
        # no dialup: the source ends because the window is complete (the server sends END)
        got = await drain(f"seedlink://127.0.0.1:{server.port}?streams=BW_*&proto={proto}"
                           f"&start={START}&end={END}")
    start, end = _ns(START), _ns(END)
    want = {sid: [p.payload for p in ps if p.end_ns > start and p.start_ns < end]
            for sid, ps in archive_packets.by_station.items()}
    assert by_station(got) == want
    assert all(0 < len(v) < len(archive_packets.by_station[k]) for k, v in want.items())


async def test_obspy_get_waveforms_time_window(demo_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "window.mseed"
    async with serving(demo_archive) as server:
        await run_script(HERE / "obspy_window.py", str(server.port), START, END, str(out))
    got = obspy.read(str(out))
    want = obspy.read(str(demo_archive / "*")).trim(obspy.UTCDateTime(START),
                                                    obspy.UTCDateTime(END))
    assert sorted(tr.id for tr in got) == sorted(tr.id for tr in want) and len(want) == 4
    for tr in want:
        [mine] = got.select(id=tr.id)
        assert mine.stats.starttime == tr.stats.starttime
        assert (mine.data == tr.data).all()


async def test_sds_tree(tmp_path: Path, archive_packets: Archive) -> None:
    sds = write_sds_archive(tmp_path / "SDS")
    assert (sds / "2010" / "BW" / "UH1" / "SHZ.D" / "BW.UH1..SHZ.D.2010.147").is_file()
    async with serving(sds) as server:
        got = await drain(f"seedlink://127.0.0.1:{server.port}?streams=BW_*&dialup=1")
    assert by_station(got) == {sid: [p.payload for p in ps]
                               for sid, ps in archive_packets.by_station.items()}


@pytest.mark.parametrize("speed", [0.0, 60.0])
async def test_pace(demo_archive: Path, archive_packets: Archive, speed: float) -> None:
    """speed 0 sends the archive at once; speed 60 spreads its ~230 s over ~4 s."""
    span_s = (archive_packets.packets[-1].end_ns - archive_packets.packets[0].end_ns) / NS_PER_S
    async with serving(demo_archive, speed=speed) as server:
        source = SeedLinkSource(f"seedlink://127.0.0.1:{server.port}?streams=BW_*")
        await source.start()
        arrivals = []
        async for _ in source.records():
            arrivals.append(time.monotonic())
            if len(arrivals) == len(archive_packets.packets):
                break
        await source.stop()
    took = arrivals[-1] - arrivals[0]
    if speed == 0:
        assert took < 2.0
    else:
        assert span_s / speed * 0.9 <= took <= span_s / speed + 3.0
