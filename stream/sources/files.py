"""Replay miniSEED (or IAGA-2002) files or directories as a stream, ordered by record end time.

``speed = 1`` releases each record when it would have arrived live (its last sample's time,
relative to the first), ``speed = 10`` ten times faster, ``speed = 0`` as fast as possible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from stream.decode.iaga import iaga_to_mseed, is_iaga
from stream.decode.mseed import split_records
from stream.errors import SourceError
from stream.records import NS_PER_S, RawRecord, now_ns
from stream.sources import FiniteSource



def list_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    raise SourceError(f"no such file or directory: {path}")


def archive_records(path: str | Path) -> list[tuple[int, bytes]]:
    """Every record under ``path`` as ``(end_ns, payload)``, sorted by end time (stable).

    IAGA-2002 files (``.sec``/``.min``, gzipped or not) are converted to miniSEED records on the
    way in, so everything downstream sees one format."""
    out: list[tuple[int, bytes]] = []
    for f in list_files(Path(path)):
        last = 0
        raw = b"".join(iaga_to_mseed(f)) if is_iaga(f) else f.read_bytes()
        for payload, end_ns in split_records(raw):
            last = end_ns if end_ns is not None else last
            out.append((last, payload))
    out.sort(key=lambda item: item[0])
    return out


def paced(records: list[tuple[int, bytes]], speed: float) -> Iterator[tuple[float, bytes]]:
    """(seconds to wait since the start, payload) for each record at ``speed``."""
    t0 = records[0][0] if records else 0
    for end_ns, payload in records:
        yield ((end_ns - t0) / NS_PER_S / speed if speed > 0 else 0.0), payload


class FileSource(FiniteSource):
    def __init__(self, path: str | Path, speed: float = 0.0) -> None:
        self.path = Path(path)
        self.speed = speed
        self.name = "files"

    async def start(self) -> None:
        list_files(self.path)  # fail early, with the path in the message

    async def records(self) -> AsyncIterator[RawRecord]:
        loaded = await asyncio.to_thread(archive_records, self.path)
        started = time.monotonic()
        for due_s, payload in paced(loaded, self.speed):
            while not self._stopping and (delay := due_s - (time.monotonic() - started)) > 0:
                await asyncio.sleep(min(delay, 0.5))  # short naps keep SIGTERM responsive
            if self._stopping:
                return
            yield RawRecord(payload, now_ns(), key=None, ref=None)

