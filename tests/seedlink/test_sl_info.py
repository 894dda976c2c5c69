"""INFO from our client (``seedlink_info``) against our server: STATIONS / STREAMS with v4
patterns, GAPS (protocol 3 only, as the v4 spec removed it), CONNECTIONS in both protocols."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slhelpers import serving, write_gappy_archive

from geosentry.stream.records import RawRecord
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.seedlink.info import _v3_time
from geosentry.stream.sources.seedlink import SeedLinkSource, seedlink_info


def _v3_stations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{s['network']}_{s['name']}": s for s in doc["seedlink"].get("station", [])}


async def test_stations_and_streams_both_protocols(demo_archive: Path,
                                                   archive_packets: Archive) -> None:
    async with serving(demo_archive) as server:
        base = f"seedlink://127.0.0.1:{server.port}"
        v4 = await seedlink_info(f"{base}?proto=4", "STREAMS")
        v4_one = await seedlink_info(f"{base}?proto=4", "STREAMS BW_UH? *_E_H_Z")
        v4_none = await seedlink_info(f"{base}?proto=4", "STATIONS XX_*")
        v3 = await seedlink_info(f"{base}?proto=3", "STREAMS")
    counts = {sid: len(ps) for sid, ps in archive_packets.by_station.items()}
    assert {s["id"]: (s["start_seq"], s["end_seq"]) for s in v4["station"]} == \
        {sid: (1, n + 1) for sid, n in counts.items()}
    assert {s["id"]: [x["id"] for x in s["stream"]] for s in v4["station"]} == {
        "BW_UH1": ["_S_H_Z"], "BW_UH2": ["_S_H_Z"], "BW_UH3": ["_S_H_Z"], "BW_UH4": ["_E_H_Z"]}
    assert {s["id"]: [x["id"] for x in s["stream"]] for s in v4_one["station"]} == {
        "BW_UH1": [], "BW_UH2": [], "BW_UH3": [], "BW_UH4": ["_E_H_Z"]}
    assert v4_none["station"] == []
    stations = _v3_stations(v3)
    assert {sid: int(s["end_seq"], 16) for sid, s in stations.items()} == \
        {sid: n + 1 for sid, n in counts.items()}
    assert stations["BW_UH4"]["stream"][0]["seedname"] == "EHZ"
    assert stations["BW_UH1"]["stream"][0]["begin_time"].startswith("2010/05/27 16:24:03")


async def test_gaps(tmp_path: Path) -> None:
    archive = write_gappy_archive(tmp_path / "gappy", "BW.UH1", drop=5)
    packets = Archive(archive).by_station["BW_UH1"]
    async with serving(archive) as server:
        base = f"seedlink://127.0.0.1:{server.port}"
        v3 = await seedlink_info(f"{base}?proto=3", "GAPS")
        v3_all = await seedlink_info(f"{base}?proto=3", "ALL")
        v4 = await seedlink_info(f"{base}?proto=4", "GAPS")
    for doc in (v3, v3_all):
        stations = _v3_stations(doc)
        [stream] = stations["BW_UH1"]["stream"]
        [gap] = stream["gap"]
        before, after = packets[4], packets[5]  # record 5 of the file is missing
        assert (gap["begin_time"], gap["end_time"]) == (_v3_time(before.end_ns),
                                                        _v3_time(after.start_ns))
        assert all("gap" not in s for sid, st in stations.items() if sid != "BW_UH1"
                   for s in st["stream"])
    assert v4["error"]["code"] == "UNSUPPORTED"


async def test_connections_both_protocols(demo_archive: Path, archive_packets: Archive) -> None:
    wanted = ("BW_UH1", "BW_UH2")
    total = sum(len(archive_packets.by_station[s]) for s in wanted)
    async with serving(demo_archive) as server:
        base = f"seedlink://127.0.0.1:{server.port}"
        source = SeedLinkSource(f"{base}?streams={','.join(wanted)}&proto=4")  # real time
        await source.start()
        got = 0
        records = source.records()
        async for _ in records:
            got += 1
            if got == total:
                break
        v4 = await seedlink_info(f"{base}?proto=4", "CONNECTIONS")
        v4_uh3 = await seedlink_info(f"{base}?proto=4", "CONNECTIONS BW_UH3")
        v3 = await seedlink_info(f"{base}?proto=3", "CONNECTIONS")
        await records.aclose()
        await source.stop()
        await asyncio.sleep(0.2)
        after = await seedlink_info(f"{base}?proto=4", "CONNECTIONS")
    # ringserver's key names: what libslink and the seedlink-client parsers read
    clients = v4["connections"]["client"]
    assert v4["connections"]["client_count"] == len(clients)
    [streaming] = [c for c in clients if c["state"] == "real-time"]
    assert streaming["protocol_version"] == "4.0" and streaming["tls"] is False
    assert "geosentry" in streaming["client_id"]
    assert streaming["transmit_packets"] == total
    assert {s["id"]: s["current_seq"] for s in streaming["station"]} == {
        sid: archive_packets.by_station[sid][-1].seq for sid in wanted}
    assert any(c["state"] == "handshake" for c in clients)  # the INFO client itself
    assert v4_uh3["connections"]["client"] == []
    stations = _v3_stations(v3)
    for sid in wanted:
        [conn] = stations[sid]["connection"]
        assert int(conn["current_seq"], 16) == archive_packets.by_station[sid][-1].seq
        assert conn["realtime"] == "yes" and int(conn["txcount"]) == total
    assert "connection" not in stations["BW_UH3"]
    assert [c["state"] for c in after["connections"]["client"]] == ["handshake"]  # streamer gone


@pytest.mark.parametrize("proto", ["3", "4"])
async def test_keepalive_while_idle(demo_archive: Path, proto: str) -> None:
    """An idle real-time connection sends INFO ID keepalives; the server answers them during
    data transfer and the connection stays up (no reconnect, nothing handed on twice)."""
    async with serving(demo_archive) as server:
        source = SeedLinkSource(f"seedlink://127.0.0.1:{server.port}?streams=BW_*&proto={proto}"
                                f"&keepalive_s=0.3&read_timeout_s=30")
        await source.start()
        records = source.records()
        n = 0
        async for _ in records:
            n += 1
            if n == 153:
                break
        await asyncio.sleep(3.5)  # idle: the archive is exhausted
        [conn] = [c for c in server.connections() if c.state == "real-time"]
        extra = [r async for r in _take(records, 0.5)]
        await source.stop()
    assert server.info_requests >= 2
    assert conn.packets == 153 and not extra


async def _take(records: AsyncIterator[RawRecord], seconds: float) -> AsyncIterator[RawRecord]:
    try:
        async with asyncio.timeout(seconds):
            async for r in records:
                yield r
    except TimeoutError:
        return
