"""Our server against an independent implementation: ObsPy's SeedLink client (protocol 3)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from lxml import etree
from slhelpers import serving

from stream.seedlink.archive import Archive

HERE = Path(__file__).resolve().parent


async def test_obspy_receives_every_record_bytes_identical(
        demo_archive: Path, archive_packets: Archive, tmp_path: Path) -> None:
    async with serving(demo_archive) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "obspy_fetch.py"), str(server.port), str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
    assert proc.returncode == 0, err.decode()[-3000:]
    got = (tmp_path / "records.bin").read_bytes()
    want = [p.payload for p in archive_packets.packets]
    assert len(got) == 512 * len(want) and len(want) == 153
    assert [got[i:i + 512] for i in range(0, len(got), 512)] == want  # same bytes, same order
    on_disk = sorted(f.read_bytes() for f in demo_archive.iterdir())
    assert sorted(b"".join(p for p in want if p[8:20] == f.read_bytes()[8:20])
                  for f in demo_archive.iterdir()) == on_disk
    seqs = [int(s) for s in (tmp_path / "seqs.txt").read_text().split()]
    assert seqs == [p.seq for p in archive_packets.packets]
    assert "dialup" in (tmp_path / "capabilities.txt").read_text().split()
    stations = etree.fromstring((tmp_path / "stations.xml").read_bytes())
    assert [(s.get("network"), s.get("name"), s.get("end_seq")) for s in stations] == [
        ("BW", f"UH{i}", f"{len(archive_packets.by_station[f'BW_UH{i}']) + 1:06X}")
        for i in range(1, 5)]
