"""Protocol 3 sequence numbers are 24-bit (``SL`` + 6 hex digits) and wrap after ``FFFFFF``:
with a server numbering from just below the wrap, our client hands on 64-bit sequence numbers
that keep increasing, and resumes across the wrap with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from slhelpers import drain, serving

from geosentry.stream.seedlink import protocol as P
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.sources.seedlink import save_state

FIRST = 0xFFFFFF - 20  # each station has ~38 records: every station wraps


@pytest.fixture(scope="module")
def wrapped(demo_archive: Path) -> Archive:
    archive = Archive(demo_archive, first_seq=FIRST)
    assert all(ps[0].seq < 1 << 24 <= ps[-1].seq for ps in archive.by_station.values())
    return archive


@pytest.mark.parametrize("proto", ["3", "4"])
async def test_fetch_across_the_wrap(demo_archive: Path, wrapped: Archive, tmp_path: Path,
                                     proto: str) -> None:
    state = tmp_path / "sl.state"
    async with serving(demo_archive, first_seq=FIRST) as server:
        got = await drain(f"seedlink://127.0.0.1:{server.port}?streams=BW_*&proto={proto}"
                          f"&dialup=1&state={state}", seq=True, commit=True)
    assert sorted(got) == sorted((p.station_id, p.seq, p.payload) for p in wrapped.packets)
    assert sorted(state.read_text().splitlines()[1:]) == sorted(
        f"{sid} {ps[-1].seq}" for sid, ps in wrapped.by_station.items())


@pytest.mark.parametrize("proto", ["3", "4"])
async def test_resume_across_the_wrap(demo_archive: Path, wrapped: Archive, tmp_path: Path,
                                      proto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    last = {"BW_UH1": 0xFFFFFF,  # the last record before the wrap: resume at 000000
            "BW_UH2": 0xFFFFFE,  # resume at FFFFFF, then wrap
            "BW_UH3": 0x1000003,  # after the wrap (the state file holds 64-bit numbers)
            "BW_UH4": FIRST + 2}
    state = tmp_path / "sl.state"
    save_state(state, last)
    sent: list[str] = []
    parse_seq = P.parse_seq

    def spy(text: str, v4: bool) -> int | None:
        sent.append(text)
        return parse_seq(text, v4)

    monkeypatch.setattr(P, "parse_seq", spy)
    async with serving(demo_archive, first_seq=FIRST) as server:
        got = await drain(f"seedlink://127.0.0.1:{server.port}?streams=BW_*&proto={proto}"
                          f"&dialup=1&state={state}", seq=True, commit=True)
    want = [(p.station_id, p.seq, p.payload) for p in wrapped.packets
            if p.seq > last[p.station_id]]
    assert sorted(got) == sorted(want)  # no gap, no duplicate
    assert len(got) == len({(sid, seq) for sid, seq, _ in got})
    if proto == "3":  # what a v3 server expects: the next number's low 24 bits, in hex
        assert sorted(int(t, 16) for t in sent) == sorted([0, 0xFFFFFF, 4, FIRST + 3])
    else:
        assert sorted(int(t) for t in sent) == sorted(seq + 1 for seq in last.values())


async def test_raw_v3_headers_wrap(demo_archive: Path, wrapped: Archive) -> None:
    """On the wire: ``FFFFFF`` is followed by ``000000``; ``DATA 000001`` means the record
    after the wrap."""
    async with serving(demo_archive, first_seq=FIRST) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"STATION UH1 BW\r\nFETCH 000001\r\nEND\r\n")
        await writer.drain()
        data = b""
        while not data.endswith(b"END"):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            assert chunk
            data += chunk
        writer.close()
    body = data[data.index(b"SL"):-3]
    headers = [body[i:i + 8] for i in range(0, len(body), 520)]
    uh1 = wrapped.by_station["BW_UH1"]
    assert headers == [b"SL%06X" % (p.seq % (1 << 24)) for p in uh1 if p.seq > 1 << 24]
    assert headers[0] == b"SL000001"
