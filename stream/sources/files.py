"""Replay miniSEED (or IAGA-2002) files or directories as a stream, ordered by record end time.

``speed = 1`` releases each record when it would have arrived live (its last sample's time,
relative to the first), ``speed = 10`` ten times faster, ``speed = 0`` as fast as possible.

Corrupt or truncated bytes cost only themselves: ``split_records_at`` resumes at the next
parseable record header at any byte offset, and yields the bad stretch as one payload that the
pipeline counts as a decode error. Each ``RawRecord`` carries ``ref = SourceRef(file, 0, byte
offset)``, so a decode warning names the file and where in it the bad record starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from geosentry.stream.decode.iaga import iaga_to_mseed, is_iaga
from geosentry.stream.decode.mseed import split_records_at
from geosentry.stream.errors import SourceError
from geosentry.stream.records import NS_PER_S, RawRecord, SourceRef, now_ns, ns_to_iso
from geosentry.stream.sources import FiniteSource

log = logging.getLogger(__name__)


def list_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    raise SourceError(f"no such file or directory: {path}")


def archive_entries(path: str | Path) -> list[tuple[int, bytes, SourceRef]]:
    """Every record under ``path`` as ``(end_ns, payload, ref)``, sorted by end time (stable);
    ``ref`` names the file and the payload's byte offset in it (for IAGA-2002 files: in the
    miniSEED converted from it). A corrupt stretch sorts with the record before it.

    IAGA-2002 files (``.sec``/``.min``, gzipped or not) are converted to miniSEED records on the
    way in, so everything downstream sees one format."""
    out: list[tuple[int, bytes, SourceRef]] = []
    for f in list_files(Path(path)):
        last, name = 0, str(f)
        raw = b"".join(iaga_to_mseed(f)) if is_iaga(f) else f.read_bytes()
        for offset, payload, end_ns in split_records_at(raw):
            last = end_ns if end_ns is not None else last
            out.append((last, payload, SourceRef(name, 0, offset)))
    out.sort(key=lambda item: item[0])
    return out


def archive_records(path: str | Path) -> list[tuple[int, bytes]]:
    """``archive_entries`` without the refs: ``(end_ns, payload)``."""
    return [(end_ns, payload) for end_ns, payload, _ in archive_entries(path)]


def replay_start_ns(records: list[tuple[int, bytes]]) -> int:
    """The data time a paced replay's clock starts at: the first record's end (0: none)."""
    return next((end_ns for end_ns, _ in records if end_ns > 0), 0)


def paced(records: list[tuple[int, bytes]], speed: float) -> Iterator[tuple[float, bytes]]:
    """(seconds to wait since the start, payload) for each record at ``speed``. Payloads
    without a time (bytes that are not a record: another file in the folder, a corrupt
    stretch before any record) go at once and do not set the clock.

    >>> [round(t, 1) for t, _ in paced([(0, b"junk"), (10**9, b"a"), (3 * 10**9, b"b")], 2.0)]
    [0.0, 0.0, 1.0]
    """
    t0 = replay_start_ns(records)
    for end_ns, payload in records:
        yield (max(0.0, (end_ns - t0) / NS_PER_S / speed) if speed > 0 else 0.0), payload


class FileSource(FiniteSource):
    def __init__(self, path: str | Path, speed: float = 0.0) -> None:
        self.path = Path(path)
        self.speed = speed
        self.name = "files"

    async def start(self) -> None:
        list_files(self.path)  # fail early, with the path in the message

    async def records(self) -> AsyncIterator[RawRecord]:
        loaded = await asyncio.to_thread(archive_entries, self.path)
        refs = [ref for _, _, ref in loaded]
        started = time.monotonic()
        timed_records = [(end_ns, payload) for end_ns, payload, _ in loaded]
        timed = paced(timed_records, self.speed)
        if self.speed > 0:  # the replay clock, for whoever measures latency against it
            log.info("files: paced replay at speed %g: data time %s is wall time %s", self.speed,
                     ns_to_iso(replay_start_ns(timed_records)), ns_to_iso(now_ns()))
        for (due_s, payload), ref in zip(timed, refs):
            while not self._stopping and (delay := due_s - (time.monotonic() - started)) > 0:
                await asyncio.sleep(min(delay, 0.5))  # short naps keep SIGTERM responsive
            if self._stopping:
                return
            yield RawRecord(payload, now_ns(), key=None, ref=ref)

