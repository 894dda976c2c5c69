"""Resume against EarthScope's ringserver, whose sequence numbers are positions in one ring for
every station (ours number per station). ringserver resumes every station of a connection from
the newest number requested, so a client that sends each station its own number loses what the
others had between; ours resumes all of them from the lowest and drops what each already has
(counted). A live feed: records appended file by file into ringserver's scanned folder.
Skipped when ``../shared/tools`` is absent."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from ringhelpers import NEEDS_RINGSERVER, Feed, ringserver

from geosentry.stream.sources.seedlink import SeedLinkSource

HERE = Path(__file__).resolve().parent
pytestmark = NEEDS_RINGSERVER
STATIONS = "BW_UH1,BW_UH2,BW_UH3,BW_UH4"


async def _consumer(uri: str, out: Path, total: int, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "sl_consumer.py"), uri, str(out), str(total),
            stdout=asyncio.subprocess.DEVNULL, stderr=err)


def _written(out: Path) -> int:
    return len(list(out.glob("*_*/[0-9]*")))


async def _until(cond, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def test_sigkill_mid_stream_then_resume_loses_nothing(tmp_path: Path) -> None:
    feed, out, log = Feed(), tmp_path / "out", tmp_path / "consumer.log"
    total = len(feed.records)
    out.mkdir()
    async with ringserver(tmp_path / "rs") as ring:
        uri = (f"seedlink://127.0.0.1:{ring.port}?streams={STATIONS}"
               f"&state={tmp_path / 'consumer.state'}&read_timeout_s=10")
        first = await _consumer(uri, out, total, log)
        await asyncio.sleep(1.5)  # connected (no state: new data only) before the feed starts
        feeding = asyncio.create_task(feed.run(ring.scan))
        await _until(lambda: _written(out) >= total // 3, 60, "a third of the records")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        written = _written(out)
        assert 0 < written < total
        second = await _consumer(uri, out, total, log)
        await feeding
        await asyncio.wait_for(second.wait(), 60)
        assert second.returncode == 0, log.read_text()[-3000:]
    for sid, payloads in feed.by_station().items():  # every record of every station, in order
        files = sorted((out / sid).iterdir())
        assert b"".join(f.read_bytes() for f in files) == b"".join(payloads), sid
    delivered = (out / "delivered.log").read_text().split("\n")[:-1]
    assert total <= len(delivered) <= total + 1  # at most the record in flight at the kill
    summary = json.loads(next(out.glob("summary-*.json")).read_text())
    # one ring position for all: what the stations ahead of the slowest had is sent again and
    # dropped (>= 1: the stations' last numbers differ), and nothing is reported missing
    assert summary["duplicates"] >= 1 and summary["gaps"] == []


async def _read(source: SeedLinkSource, n: int | None, timeout_s: float,
                hold: str | None = None) -> list[tuple[str, bytes]]:
    """Up to ``n`` records, or what arrives before ``timeout_s`` of silence, committing each
    except station ``hold``'s after its third (as the pipeline holds a station whose window is
    still open while it commits the others)."""
    got: list[tuple[str, bytes]] = []
    records = source.records()
    while n is None or len(got) < n:
        try:
            raw = await asyncio.wait_for(anext(records), timeout_s)
        except TimeoutError:
            break
        assert raw.ref is not None and raw.key is not None
        sid = raw.key.replace(".", "_")
        got.append((sid, raw.payload))
        if sid != hold or sum(s == hold for s, _ in got) <= 3:
            await source.commit({raw.ref.partition: raw.ref.offset + 1})
    return got


@pytest.mark.parametrize("resume", ["station", "auto"])
async def test_resume_from_a_state_file(tmp_path: Path, resume: str) -> None:
    """The same cut, deterministic: per-station numbers (what libslink and the client used to
    send) lose records against ringserver; ``auto`` (ring) loses none and counts the repeats."""
    feed = Feed()
    async with ringserver(tmp_path / "rs") as ring:
        uri = (f"seedlink://127.0.0.1:{ring.port}?streams={STATIONS}&resume={resume}"
               f"&state={tmp_path / 'sl.state'}")
        async with SeedLinkSource(uri) as first:
            await asyncio.sleep(1.0)
            feeding = asyncio.create_task(feed.run(ring.scan, 8, 0.3))  # stations interleave
            first_got = await _read(first, 60, 10, hold="BW_UH1")
        await feeding
        async with SeedLinkSource(uri) as second:
            again = await _read(second, None, 3)
            dropped = second.duplicates
    want = feed.by_station()
    committed = {}  # what the first run acknowledged, per station, then what the second got
    for sid, payload in first_got:
        committed.setdefault(sid, [])
        if sid != "BW_UH1" or len(committed[sid]) < 3:
            committed[sid].append(payload)
    assert len(committed["BW_UH1"]) == 3 and sum(s == "BW_UH1" for s, _ in first_got) > 3
    have = {sid: list(ps) for sid, ps in committed.items()}
    for sid, payload in again:
        have.setdefault(sid, []).append(payload)
    if resume == "station":  # ringserver went on from the newest number asked for
        assert len(have["BW_UH1"]) < len(want["BW_UH1"])
        assert have["BW_UH1"] != want["BW_UH1"]
    else:  # every station complete, each record once
        assert have == want
        assert dropped >= 1
