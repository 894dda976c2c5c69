"""Faults end in clear errors, never in a hang: refused selectors, garbage or silence from the
server, a stall inside a packet, nobody listening (with bounded exponential backoff); a client
that stops reading does not hold up the others."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from slhelpers import drain, fake_server, serving

from geosentry.stream.errors import ConfigError, SourceError
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.sources.seedlink import SelectorRefused, parse_seedlink
from geosentry.stream.testing import synthetic_mseed


@pytest.mark.parametrize("proto", ["3", "4"])
@pytest.mark.parametrize("streams, why", [
    ("XX_NOPE", "station XX_NOPE not found"),
    ("BW_UH1:B@D", "invalid selector"),
])
async def test_refused_selector_is_a_clear_error(demo_archive: Path, proto: str, streams: str,
                                                 why: str) -> None:
    async with serving(demo_archive) as server:
        with pytest.raises(SelectorRefused, match="server refused") as info:
            await drain(f"seedlink://127.0.0.1:{server.port}?streams={streams}"
                        f"&proto={proto}&dialup=1", 20)
    assert why in str(info.value)  # v3 too: the client asks for EXTREPLY (ERROR + reason)


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"SeedLink v3.1 :: SLPROTO:3.1\r\njunk\r\n")  # plausible HELLO, then junk
    await writer.drain()
    while await reader.read(100):
        writer.write(b"\x00\xffGARBAGE" * 64)
        await writer.drain()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


@pytest.mark.parametrize("behaviour, why", [(_garbage, "giving up after 2"),
                                            (_silent, "Timed out connecting")])
async def test_bad_server_fails_cleanly(behaviour: object, why: str) -> None:
    started = time.monotonic()
    async with fake_server(behaviour) as port:  # type: ignore[arg-type]
        with pytest.raises(SourceError, match=why):
            await drain(f"seedlink://127.0.0.1:{port}?streams=BW_UH1&retries=1&timeout_s=1"
                        f"&max_backoff_s=0.2", 20)
    assert time.monotonic() - started < 10


async def test_nobody_listening_fails_after_retries() -> None:
    async with fake_server(_silent) as port:
        pass  # the port is free again
    with pytest.raises(SourceError, match=r"giving up after 3 .*Could not connect"):
        await drain(f"seedlink://127.0.0.1:{port}?streams=BW_UH1&retries=2&max_backoff_s=0.1",
                    20)


async def test_slow_client_does_not_hold_up_others(demo_archive: Path,
                                                   archive_packets: Archive) -> None:
    total = len(archive_packets.packets)
    async with serving(demo_archive) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"HELLO\r\n")
        for i in range(1, 5):
            writer.write(f"STATION UH{i} BW\r\nSELECT ?HZ\r\nFETCH\r\n".encode())
        writer.write(b"END\r\n")
        await writer.drain()  # ... and now this client does not read for a while
        fast = await drain(f"seedlink://127.0.0.1:{server.port}?streams=BW_*&dialup=1", 15)
        assert len(fast) == total
        data = b""
        while not data.endswith(b"END"):  # the slow client, reading in small sips
            chunk = await asyncio.wait_for(reader.read(700), 10)
            assert chunk, "server closed on the slow client"
            data += chunk
        writer.close()
    hello_and_oks = data.index(b"SL00")
    packets = data[hello_and_oks:-3]
    assert len(packets) == total * 520
    assert [packets[i + 8:i + 520] for i in range(0, len(packets), 520)] == \
        [p.payload for p in archive_packets.packets]


def test_uri_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="streams=NET_STA"):
        parse_seedlink("seedlink://host:18000")
    with pytest.raises(ConfigError, match="NET_STA"):
        parse_seedlink("seedlink://host:18000?streams=UH1")
    with pytest.raises(ConfigError, match="unknown parameter"):
        parse_seedlink("seedlink://host?streams=BW_UH1&bogus=1")
    u = parse_seedlink("seedlink://h:1?streams=BW_UH1:SHZ+EHZ,GE_*&proto=3&state=/tmp/s&dialup=1")
    assert u.streams == [("BW_UH1", ["SHZ", "EHZ"]), ("GE_*", [])]
    assert u.port == 1 and u.dialup and u.state == Path("/tmp/s") and u.protocol.value == "3"


async def test_reconnects_back_off_exponentially_up_to_the_bound() -> None:
    accepted: list[float] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())  # ... and close at once: the handshake fails

    async with fake_server(hang_up) as port:
        with pytest.raises(SourceError, match="giving up after 4"):
            await drain(f"seedlink://127.0.0.1:{port}?streams=BW_UH1&retries=3"
                        f"&max_backoff_s=1.0&timeout_s=2", 20)
    gaps = [b - a for a, b in zip(accepted, accepted[1:])]
    assert len(gaps) == 3
    for got, want in zip(gaps, [0.5, 1.0, 1.0]):  # 0.5 s doubling, capped at max_backoff_s
        assert want * 0.9 <= got <= want + 0.6, gaps


async def _stall_mid_packet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A plausible v3 server that stops in the middle of the first data packet."""
    while True:
        line = (await reader.readline()).strip().upper()
        if not line:
            return
        if line == b"HELLO":
            writer.write(b"SeedLink v3.1 (stall) :: SLPROTO:3.1\r\nstall\r\n")
        elif line == b"END":
            record = synthetic_mseed("BW.UH1..SHZ")[:512]
            writer.write(b"SL000001" + record[:200])  # 208 of 520 bytes, then silence
            await writer.drain()
            await asyncio.sleep(30)
            return
        else:
            writer.write(b"OK\r\n")
        await writer.drain()


async def test_stall_inside_a_packet_times_out() -> None:
    started = time.monotonic()
    async with fake_server(_stall_mid_packet) as port:
        with pytest.raises(SourceError, match="giving up after 2 .*nothing read for 1 s"):
            await drain(f"seedlink://127.0.0.1:{port}?streams=BW_UH1&retries=1&proto=3"
                        f"&read_timeout_s=1&max_backoff_s=0.1", 20)
    assert time.monotonic() - started < 10


async def test_v4_auth_is_refused_as_the_spec_says(demo_archive: Path) -> None:
    """Authentication over plain TCP MUST NOT be allowed (UNEXPECTED); we offer no AUTH type."""
    async with serving(demo_archive) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"SLPROTO 4.0\r\nAUTH USERPASS someone secret\r\nBYE\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert reply.startswith(b"OK\r\nERROR UNEXPECTED AUTH needs TLS\r\n")
