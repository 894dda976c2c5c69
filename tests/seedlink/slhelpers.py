"""Helpers shared by the SeedLink tests: a demo archive, an in-process server, a fake server."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from geosentry.stream.seedlink.server import SeedLinkServer
from geosentry.stream.testing import demo_stream, mseed_records

GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]


def write_demo_archive(directory: Path) -> Path:
    """ObsPy's BW.UH1-UH4 recordings as 512-byte miniSEED files, one per station."""
    directory.mkdir(parents=True, exist_ok=True)
    for tr in demo_stream():
        (directory / f"{tr.id}.mseed").write_bytes(b"".join(mseed_records(tr)))
    return directory


def write_gappy_archive(directory: Path, station: str = "BW.UH1", drop: int = 5) -> Path:
    """The demo archive with record ``drop`` of ``station`` left out (one gap)."""
    directory.mkdir(parents=True, exist_ok=True)
    for tr in demo_stream():
        records = mseed_records(tr)
        if tr.id.startswith(station + "."):
            del records[drop]
        (directory / f"{tr.id}.mseed").write_bytes(b"".join(records))
    return directory


def write_sds_archive(directory: Path) -> Path:
    """The demo archive in an SDS tree: YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY."""
    for tr in demo_stream():
        s, t = tr.stats, tr.stats.starttime
        day = directory / f"{t.year}" / s.network / s.station / f"{s.channel}.D"
        day.mkdir(parents=True, exist_ok=True)
        name = f"{tr.id}.D.{t.year}.{t.julday:03d}"
        (day / name).write_bytes(b"".join(mseed_records(tr)))
    return directory


@contextlib.asynccontextmanager
async def serving(archive: Path, port: int = 0, speed: float = 0.0,
                  **kwargs: object) -> AsyncIterator[SeedLinkServer]:
    server = SeedLinkServer(archive, "127.0.0.1", port, speed, **kwargs)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def fake_server(
        behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running ``behaviour`` per connection; yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def by_station(payloads: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for sid, p in payloads:
        out.setdefault(sid, []).append(p)
    return out


async def drain(uri: str, timeout_s: float = 30.0, *, seq: bool = False,
                commit: bool = False) -> list[tuple[Any, ...]]:
    """Every record a finite ``seedlink://`` source delivers, as ``(NET_STA, payload)``, or
    ``(NET_STA, sequence number, payload)`` with ``seq``; ``commit`` commits each record once
    read (the state file advances). ``TimeoutError`` after ``timeout_s``."""
    from geosentry.stream.sources.seedlink import SeedLinkSource

    source = SeedLinkSource(uri)
    await source.start()

    async def read() -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        async for raw in source.records():
            assert raw.key is not None
            sid = raw.key.replace(".", "_")
            if not (seq or commit):
                out.append((sid, raw.payload))
                continue
            assert raw.ref is not None
            out.append((sid, raw.ref.offset, raw.payload) if seq else (sid, raw.payload))
            if commit:
                await source.commit({raw.ref.partition: raw.ref.offset + 1})
        return out

    try:
        return await asyncio.wait_for(read(), timeout_s)
    finally:
        await source.stop()


async def run_script(script: Path, *args: str, timeout_s: float = 60.0) -> None:
    """Run a helper script (e.g. ObsPy's client) in its own interpreter; fail with its stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-3000:]
