"""SeedLink over TLS on 127.0.0.1 with a self-signed certificate made for the test: protocol 3
and 4 through ``seedlinks://``, certificate checks, and plain/TLS mismatches failing cleanly."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from slhelpers import GEOSENTRY, by_station, drain, serving

from geosentry.stream.errors import SourceError
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.sources.seedlink import SeedLinkSource, parse_seedlink, seedlink_info


def _want(archive: Archive) -> dict[str, list[bytes]]:
    return {sid: [p.payload for p in ps] for sid, ps in archive.by_station.items()}


@pytest.mark.parametrize("proto", ["3", "4"])
async def test_tls_client_server_both_protocols(demo_archive: Path, archive_packets: Archive,
                                                tls_cert: tuple[Path, Path], proto: str) -> None:
    cert, key = tls_cert
    async with serving(demo_archive, tls_cert=cert, tls_key=key) as server:
        base = f"seedlinks://127.0.0.1:{server.port}?ca_file={cert}&proto={proto}"
        got = await drain(f"{base}&streams=BW_*&dialup=1")
        info = await seedlink_info(base, "ID")
    assert by_station(got) == _want(archive_packets)
    doc = info.get("seedlink", info)  # v3: XML root element; v4: JSON document
    assert doc["organization"] == "geosentry archive replay"


async def test_tls_noverify_skips_the_certificate_check(demo_archive: Path,
                                                        archive_packets: Archive,
                                                        tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    async with serving(demo_archive, tls_cert=cert, tls_key=key) as server:
        got = await drain(f"seedlink://127.0.0.1:{server.port}?tls=1&tls_noverify=1"
                           f"&streams=BW_UH1&dialup=1")
    assert [p for _, p in got] == _want(archive_packets)["BW_UH1"]


async def test_untrusted_certificate_stops_at_once(demo_archive: Path,
                                                   tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    started = time.monotonic()
    async with serving(demo_archive, tls_cert=cert, tls_key=key) as server:
        # no ca_file: the system trust store does not know this certificate; no retries limit,
        # yet the source must not keep retrying what cannot succeed
        with pytest.raises(SourceError, match="TLS certificate not trusted .*ca_file=PATH"):
            await drain(f"seedlinks://127.0.0.1:{server.port}?streams=BW_UH1&dialup=1", 10)
        with pytest.raises(SourceError, match="TLS certificate not trusted"):
            await seedlink_info(f"seedlinks://127.0.0.1:{server.port}", "ID")
    assert time.monotonic() - started < 8


async def test_plain_and_tls_mismatch_fail_cleanly(demo_archive: Path,
                                                   tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    common = "streams=BW_UH1&dialup=1&retries=1&max_backoff_s=0.1&timeout_s=3"
    async with serving(demo_archive, tls_cert=cert, tls_key=key) as server:
        with pytest.raises(SourceError, match="giving up after 2"):  # plain client, TLS port
            await drain(f"seedlink://127.0.0.1:{server.port}?{common}", 15)
    async with serving(demo_archive) as server:
        with pytest.raises(SourceError, match="giving up after 2"):  # TLS client, plain port
            await drain(f"seedlinks://127.0.0.1:{server.port}?{common}&ca_file={cert}", 15)


async def test_cli_serves_tls_and_answers_info(demo_archive: Path, archive_packets: Archive,
                              tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server = subprocess.Popen(GEOSENTRY + ["serve-seedlink", str(demo_archive), "--port", "0",
                                           "--speed", "0", "--tls-cert", str(cert),
                                           "--tls-key", str(key)],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(server.stderr.readline), 60)
        assert "(TLS)" in line, line
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        got = await drain(f"seedlinks://127.0.0.1:{port}?streams=BW_*&dialup=1&ca_file={cert}")
        info = await asyncio.to_thread(
            subprocess.run, GEOSENTRY + ["seedlink-info", f"seedlinks://127.0.0.1:{port}?proto=4"
                                         f"&ca_file={cert}", "STREAMS", "BW_*", "*_E_H_Z"],
            capture_output=True, text=True, timeout=60)
    finally:
        server.terminate()
        server.wait(10)
    assert by_station(got) == _want(archive_packets)
    assert info.returncode == 0, info.stderr[-2000:]
    assert {s["id"]: [x["id"] for x in s["stream"]] for s in json.loads(info.stdout)["station"]} \
        == {"BW_UH1": [], "BW_UH2": [], "BW_UH3": [], "BW_UH4": ["_E_H_Z"]}


def test_tls_uri_options() -> None:
    u = parse_seedlink("seedlinks://example.org?streams=GE_*&ca_file=/etc/ca.pem")
    assert (u.port, u.tls, u.ca_file) == (18500, True, Path("/etc/ca.pem"))
    assert parse_seedlink("seedlink://example.org?streams=GE_*").tls is None  # TLS on 18500 only
    assert parse_seedlink("seedlink://example.org:18500?streams=GE_*&tls=0").tls is False


async def test_raw_tls_session_v4(demo_archive: Path, tls_cert: tuple[Path, Path]) -> None:
    """A bare TLS socket (Python ssl, no seedlink-client): HELLO, AUTH (no type offered, so
    UNSUPPORTED even over TLS), INFO ID as a v4 JSON packet."""
    cert, key = tls_cert
    context = ssl.create_default_context(cafile=str(cert))
    async with serving(demo_archive, tls_cert=cert, tls_key=key) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        writer.write(b"HELLO\r\nSLPROTO 4.0\r\nAUTH USERPASS someone secret\r\nINFO ID\r\nBYE\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    hello, org, ok, auth, packet = reply.split(b"\r\n", 4)
    assert b"SLPROTO:4.0" in hello and org == b"geosentry archive replay" and ok == b"OK"
    assert auth.startswith(b"ERROR UNSUPPORTED")
    assert packet[:4] == b"SEJI"
    assert json.loads(packet[packet.index(b"{"):])["organization"] == "geosentry archive replay"


async def test_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    source = SeedLinkSource(f"seedlinks://127.0.0.1:1?streams=BW_UH1&ca_file={tmp_path}/none.pem")
    with pytest.raises(SourceError, match="ca_file .*none.pem is not a file"):
        await source.start()


async def test_geosentry_run_with_an_untrusted_certificate_exits_1(
        demo_archive: Path, tls_cert: tuple[Path, Path]) -> None:
    # used to log the error and exit 0 with 0 records, as if the feed had simply ended
    cert, key = tls_cert
    async with serving(demo_archive, tls_cert=cert, tls_key=key) as server:
        proc = await asyncio.create_subprocess_exec(
            *GEOSENTRY, "run", "--source", f"seedlinks://127.0.0.1:{server.port}?streams=BW_UH1",
            "--sink", "jsonl:/dev/null", stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    text = err.decode()
    assert proc.returncode == 1, text[-3000:]
    assert "TLS certificate not trusted" in text and "Traceback" not in text, text[-3000:]
