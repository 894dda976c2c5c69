"""Archive replay (``FileSource``) on folders as users have them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from geosentry.stream.sources.files import FileSource
from geosentry.stream.testing import demo_stream, mseed_records


async def test_paced_replay_of_a_folder_with_other_files_keeps_its_clock(tmp_path: Path) -> None:
    """A README or station file beside the miniSEED used to set the replay clock to 1970, so a
    paced replay never released a record."""
    (tmp_path / "README.txt").write_text("swarm waveforms, see stations.csv\n")
    tr = demo_stream()[0]
    tr.trim(tr.stats.starttime, tr.stats.starttime + 20)
    (tmp_path / "UH1.mseed").write_bytes(b"".join(mseed_records(tr)))
    src = FileSource(tmp_path, speed=10.0)  # 20 s of data: about 2 s
    t0 = time.monotonic()
    got = []

    async def read() -> None:
        async for raw in src.records():
            got.append(raw)

    await asyncio.wait_for(read(), timeout=30)
    assert time.monotonic() - t0 < 10
    assert len(got) == len(mseed_records(tr)) + 1  # the text file is one (undecodable) payload
