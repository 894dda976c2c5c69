"""Archive replay (``FileSource``) on folders as users have them."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from geosentry.stream.records import ns_to_iso
from geosentry.stream.sources.files import FileSource
from geosentry.stream.testing import demo_stream, mseed_records


async def test_paced_replay_of_a_folder_with_other_files_keeps_its_clock(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A README or station file beside the miniSEED used to set the replay clock to 1970, so a
    paced replay never released a record."""
    (tmp_path / "README.txt").write_text("swarm waveforms, see stations.csv\n")
    tr = demo_stream()[0]
    tr.trim(tr.stats.starttime, tr.stats.starttime + 20)
    (tmp_path / "UH1.mseed").write_bytes(b"".join(mseed_records(tr)))
    src = FileSource(tmp_path, speed=10.0)  # 20 s of data: about 2 s
    caplog.set_level(logging.INFO, logger="geosentry.stream.sources.files")
    t0, t0_ns = time.monotonic(), time.time_ns()
    got = []

    async def read() -> None:
        async for raw in src.records():
            got.append(raw)

    await asyncio.wait_for(read(), timeout=30)
    assert time.monotonic() - t0 < 10
    assert len(got) == len(mseed_records(tr)) + 1  # the text file is one (undecodable) payload
    # the replay clock, logged once: the first record's end (data time) is when it started
    clock = [r.getMessage() for r in caplog.records if "paced replay at speed 10" in r.getMessage()]
    assert len(clock) == 1, clock
    data_iso, wall_iso = clock[0].split("data time ")[1].split(" is wall time ")
    start = tr.stats.starttime
    assert ns_to_iso(start.ns) < data_iso < ns_to_iso((start + 20).ns)
    assert ns_to_iso(t0_ns) <= wall_iso <= ns_to_iso(time.time_ns())
