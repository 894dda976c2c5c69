"""Our server against an independent implementation: ObsPy's SeedLink client (protocol 3),
numbering from 1 and from just below the 24-bit wrap of protocol 3 sequence numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from slhelpers import run_script, serving

from geosentry.stream.seedlink.archive import Archive

HERE = Path(__file__).resolve().parent
M = 1 << 24


@pytest.mark.parametrize("first_seq", [1, M - 21])
async def test_obspy_receives_every_record_bytes_identical(
        demo_archive: Path, tmp_path: Path, first_seq: int) -> None:
    archive = Archive(demo_archive, first_seq=first_seq)
    uh1 = archive.by_station["BW_UH1"]
    resume = uh1[19].seq % M  # resume after the 20th record (FFFFFF when numbering near wrap)
    async with serving(demo_archive, first_seq=first_seq) as server:
        await run_script(HERE / "obspy_fetch.py", str(server.port), str(tmp_path), f"{resume:X}")
    got = (tmp_path / "records.bin").read_bytes()
    want = [p.payload for p in archive.packets]
    assert len(got) == 512 * len(want) and len(want) == 153
    assert [got[i:i + 512] for i in range(0, len(got), 512)] == want  # same bytes, same order
    on_disk = sorted(f.read_bytes() for f in demo_archive.iterdir())
    assert sorted(b"".join(p for p in want if p[8:20] == f.read_bytes()[8:20])
                  for f in demo_archive.iterdir()) == on_disk
    seqs = [int(s) for s in (tmp_path / "seqs.txt").read_text().split()]
    assert seqs == [p.seq % M for p in archive.packets]
    resumed = [int(s) for s in (tmp_path / "resume_seqs.txt").read_text().split()]
    assert resumed == [p.seq % M for p in uh1[20:]]  # across the wrap: no gap, no repeat

    caps = (tmp_path / "capabilities.txt").read_text().split()
    assert {"dialup", "info:gaps", "info:connections"} <= set(caps)
    stations = etree.fromstring((tmp_path / "stations.xml").read_bytes())
    assert [(s.get("network"), s.get("name"), s.get("end_seq")) for s in stations] == [
        ("BW", f"UH{i}", f"{(archive.by_station[f'BW_UH{i}'][-1].seq + 1) % M:06X}")
        for i in range(1, 5)]
    for level in ("streams", "gaps", "all"):
        doc = etree.fromstring((tmp_path / f"{level}.xml").read_bytes())
        assert [s.find("stream").get("seedname") for s in doc.findall("station")] == \
            ["SHZ", "SHZ", "SHZ", "EHZ"]
        assert doc.findall(".//gap") == []  # the demo recordings are continuous
    connections = etree.fromstring((tmp_path / "connections.xml").read_bytes())
    assert connections.tag == "seedlink" and connections.get("software").startswith("SeedLink")
