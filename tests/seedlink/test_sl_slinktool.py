"""EarthScope's ``slinktool`` (libslink: what slarchive, SeisComP's and Earthworm's SeedLink
clients use) as a client of ``geosentry serve-seedlink``, both protocols: INFO, dial-up,
multi-station with selectors (libslink's v4 ``*_S_H_Z.D`` included), time windows and statefile
resume. Before, libslink could not talk to the server at all (a 200-character HELLO line put
every later reply one line off). Skipped when ``../shared/tools`` is absent."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from slhelpers import serving

from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.seedlink.protocol import MAX_HELLO_LINE, hello_reply

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("GEOSENTRY_SHARED_TOOLS", ROOT.parent / "shared" / "tools"))
SLINKTOOL = TOOLS / "seedlink-peers" / "slinktool"
pytestmark = [pytest.mark.shared,
              pytest.mark.skipif(not SLINKTOOL.exists(),
                                 reason=f"EarthScope's slinktool not found at {SLINKTOOL} "
                                        "(../shared/tools/seedlink-peers)")]


def test_hello_lines_fit_libslink() -> None:
    lines = hello_reply("o" * 400).decode().split("\r\n")
    assert all(len(line) <= MAX_HELLO_LINE < 199 for line in lines)


async def _slinktool(*args: str, timeout_s: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(SLINKTOOL), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    return proc.returncode or 0, out.decode(errors="replace")


def _records(path: Path) -> dict[str, int]:
    """Records per station id in a file slinktool wrote (``-o``)."""
    from geosentry.stream.decode.mseed import decode_payload, split_records

    out: dict[str, int] = {}
    for payload, _ in split_records(path.read_bytes()):
        for rec in decode_payload(payload, 0):
            key = f"{rec.network}_{rec.station}"
            out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("proto", ["-3", "-4"])
async def test_info_and_dialup_multistation(demo_archive: Path, archive_packets: Archive,
                                            tmp_path: Path, proto: str) -> None:
    async with serving(demo_archive) as server:
        addr = f"127.0.0.1:{server.port}"
        rc, info = await _slinktool(proto, "-I", addr)
        assert rc == 0 and "geosentry" in info, info
        out = tmp_path / "got.mseed"
        rc, log = await _slinktool(proto, "-d", "-S", "BW_UH1:SHZ,BW_UH4:EHZ", "-o", str(out),
                                   addr)
    assert rc == 0, log
    assert _records(out) == {s: len(archive_packets.by_station[s]) for s in ("BW_UH1", "BW_UH4")}


async def test_v4_data_subformat_selector(demo_archive: Path, archive_packets: Archive,
                                          tmp_path: Path) -> None:
    async with serving(demo_archive) as server:
        out = tmp_path / "got.mseed"
        rc, log = await _slinktool("-4", "-d", "-S", "BW_UH2:*_S_H_Z.D", "-o", str(out),
                                   f"127.0.0.1:{server.port}")
    assert rc == 0, log
    assert _records(out) == {"BW_UH2": len(archive_packets.by_station["BW_UH2"])}


@pytest.mark.parametrize("proto", ["-3", "-4"])
async def test_time_window(demo_archive: Path, archive_packets: Archive, tmp_path: Path,
                           proto: str) -> None:
    packets = archive_packets.by_station["BW_UH3"]
    async with serving(demo_archive) as server:
        out = tmp_path / "window.mseed"
        rc, log = await _slinktool(proto, "-S", "BW_UH3", "-tw",
                                   "2010,05,27,16,25,00:2010,05,27,16,26,00", "-o", str(out),
                                   f"127.0.0.1:{server.port}")
    assert rc == 0, log
    got = _records(out).get("BW_UH3", 0)
    assert 0 < got < len(packets)


@pytest.mark.parametrize("proto", ["-3", "-4"])
async def test_statefile_resume(demo_archive: Path, archive_packets: Archive, tmp_path: Path,
                                proto: str) -> None:
    state = tmp_path / "slinktool.state"
    async with serving(demo_archive) as server:
        addr = f"127.0.0.1:{server.port}"
        first, second = tmp_path / "first.mseed", tmp_path / "second.mseed"
        rc, log = await _slinktool(proto, "-d", "-S", "BW_UH1,BW_UH2", "-x", str(state),
                                   "-o", str(first), addr)
        assert rc == 0, log
        assert state.exists() and state.read_text().strip()
        rc, log = await _slinktool(proto, "-d", "-S", "BW_UH1,BW_UH2", "-x", str(state),
                                   "-o", str(second), addr)
    assert rc == 0, log
    assert _records(first) == {s: len(archive_packets.by_station[s]) for s in ("BW_UH1", "BW_UH2")}
    # resumed after the last record it had: nothing again (slinktool writes no file for nothing)
    assert not second.exists() or _records(second) == {}
