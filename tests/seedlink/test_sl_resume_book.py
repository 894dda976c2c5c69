"""The client's resume bookkeeping without a server: ring detection, sequence numbers, gaps
found from record times, the resume file beside the state file, the URI's resume= and the
users-file helper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from geosentry.stream.errors import ConfigError
from geosentry.stream.resume import ResumeMark
from geosentry.stream.seedlink.resume import (ResumeBook, ResumeMode, record_span, resume_path,
                                              ring_numbered)
from geosentry.stream.seedlink.users import _verify
from geosentry.stream.sources.seedlink import parse_seedlink
from geosentry.stream.testing import demo_stream, mseed_records


@pytest.fixture(scope="module")
def uh1() -> list[bytes]:
    return mseed_records(demo_stream()[0])


def test_ring_numbered_servers() -> None:
    assert ring_numbered("SeedLink v4.0 (RingServer/4.5.3)")
    assert not ring_numbered("SeedLink v4.0 (geosentry 0.1)") and not ring_numbered(None)
    assert parse_seedlink("seedlink://h?streams=BW_*").resume is ResumeMode.AUTO
    assert parse_seedlink("seedlink://h?streams=BW_*&resume=ring").resume is ResumeMode.RING
    with pytest.raises(ConfigError, match="resume must be auto, station or ring"):
        parse_seedlink("seedlink://h?streams=BW_*&resume=sometimes")


def test_sequences_and_ring_position(uh1: list[bytes]) -> None:
    book = ResumeBook()
    assert book.ring_position() is None
    for seq, sid in ((7, "BW_UH1"), (9, "BW_UH2"), (12, "BW_UH1")):
        book.hand_on(sid, seq, uh1[0])
    assert book.ring_position() == 9  # the lowest last number over the stations
    assert book.sequence("BW_UH1", 12, v3=False) is None  # had it
    assert book.sequence("BW_UH1", 13, v3=False) == 13
    book.delivered["BW_UH3"] = 0xFFFFFF
    assert book.sequence("BW_UH3", 0, v3=True) == 0x1000000  # across the 24-bit wrap
    assert book.sequence("BW_UH3", 0xFFFFF0, v3=True) is None  # older: a repeat


def test_gaps_from_record_times(uh1: list[bytes]) -> None:
    book = ResumeBook()
    assert [book.hand_on("BW_UH1", i + 1, p) for i, p in enumerate(uh1[:3])] == [None] * 3
    book.connected()  # a reconnect: the next record continues, no gap
    assert book.hand_on("BW_UH1", 4, uh1[3]) is None
    book.connected()  # records 5 and 6 never come
    gap = book.hand_on("BW_UH1", 7, uh1[6])
    first, last = record_span(uh1[3]), record_span(uh1[6])
    assert first is not None and last is not None and gap is not None
    assert (gap.sid, gap.after_ns, gap.until_ns) == ("BW.UH1..SHZ", first.last_ns, last.start_ns)
    assert book.hand_on("BW_UH1", 9, uh1[8]) is None  # once per channel and connection


def test_resume_file_round_trip(uh1: list[bytes], tmp_path: Path) -> None:
    state = tmp_path / "sl.state"
    book = ResumeBook()
    for i, p in enumerate(uh1[:4]):
        book.hand_on("BW_UH1", i + 1, p)
    assert book.committed == {"BW_UH1": 0}  # where the station began
    book.commit("BW_UH1", 2)
    book.marks_out["BW_UH1"] = ResumeMark(123, 3)
    book.save(state)
    assert state.read_text().splitlines() == ["#V2 StationID  Sequence  [Timestamp]", "BW_UH1 2"]
    again = ResumeBook()
    again.load({"BW_UH1": 2}, resume_path(state))
    assert again.marks_in == {"BW_UH1": ResumeMark(123, 3)}
    # records 3.. were handed on but not acknowledged: re-read from 3 on, no gap; from 4, a gap
    assert again.hand_on("BW_UH1", 3, uh1[2]) is None
    other = ResumeBook()
    other.load({"BW_UH1": 2}, resume_path(state))
    assert other.hand_on("BW_UH1", 4, uh1[3]) is not None
    blank = ResumeBook()
    blank.load({"BW_UH1": 2}, tmp_path / "missing.json")  # no resume file: no gap check
    assert blank.hand_on("BW_UH1", 9, uh1[8]) is None


def test_users_helper_hashes_from_stdin() -> None:
    run = subprocess.run([sys.executable, "-m", "geosentry.stream.seedlink.users", "hash"],
                         input="s3cret\n", capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and _verify("s3cret", run.stdout.strip())
    assert "s3cret" not in run.stdout + run.stderr
