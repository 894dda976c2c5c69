"""A SeedLink consumer process for the resume test: ``python sl_consumer.py URI OUT_DIR N``.

For every record: write it to ``OUT_DIR/NET_STA/SEQ`` (atomically), log ``NET_STA SEQ`` to
``OUT_DIR/delivered.log``, then commit it (the state file advances). Exits after N records
have been written in total (this run and earlier, killed ones). On a clean exit, writes
``OUT_DIR/summary-PID.json``: the duplicates the source dropped and the gaps it reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path


async def main(uri: str, out: Path, total: int) -> None:
    from geosentry.stream.sources.seedlink import SeedLinkSource

    source = SeedLinkSource(uri)
    await source.start()
    log = (out / "delivered.log").open("a")
    try:
        async for raw in source.records():
            assert raw.ref is not None and raw.key is not None
            station = out / raw.key.replace(".", "_")
            station.mkdir(parents=True, exist_ok=True)
            tmp = station / f".{raw.ref.offset}.tmp"
            tmp.write_bytes(raw.payload)
            os.replace(tmp, station / f"{raw.ref.offset:08d}")
            log.write(f"{raw.key} {raw.ref.offset}\n")
            log.flush()
            await source.commit({raw.ref.partition: raw.ref.offset + 1})
            if sum(1 for _ in out.glob("*_*/[0-9]*")) >= total:
                break
    finally:
        await source.stop()
    (out / f"summary-{os.getpid()}.json").write_text(json.dumps({
        "duplicates": source.duplicates,
        "gaps": [[g.sid, g.after_ns, g.until_ns] for g in source.gaps]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
