"""Client-side resume bookkeeping of the ``seedlink://`` source: what was handed on and
acknowledged per station, where to resume, duplicates to drop and gaps nobody can fill.

Servers number records in two ways:

* **per station** (our ``serve-seedlink``, SeisComP): a resume sends each station its own next
  number;
* **one ring for every station** (ringserver): sequence numbers are positions in a ring shared by
  all stations, and a connection reads that ring from one position, so ringserver resumes every
  station from the *newest* number requested and the others lose what lies between. Against such
  a server every station is resumed from the *lowest* position held (``ResumeMode.RING``), and
  what each station already has is dropped here (counted as duplicates).

Either way a station's sequence numbers increase, so "already handed on" is ``seq <= last``.

A gap is data between the last record held for a channel and the first one received for it after
a (re)connect: the server no longer holds it (its ring rolled past) or never had it. It is
reported once per channel and connection (``ResumeGap``). To find it after a restart the end time
of each channel's last acknowledged record is kept beside the state file (``PATH.resume.json``,
written before the ``#V2`` file itself, so a crash between the two can only hide a gap, never
invent one). The same file keeps each station's ``ResumeMark`` (``geosentry.stream.resume``:
what the pipeline had delivered when it committed), so a restarted pipeline sends again exactly
the alerts the first one would have sent (a mark newer than the ``#V2`` numbers only says more
was delivered: still true).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pymseed

from geosentry.stream.resume import ResumeMark

NS_PER_S = 1_000_000_000
V3_SEQ_MODULUS = 1 << 24
#: a record starting more than this many sample periods after the previous one ended is a gap
GAP_PERIODS = 1.5


class ResumeMode(StrEnum):
    """How a (re)connect asks for data after what is held (``resume=`` in the URI)."""

    AUTO = "auto"        # RING when the server's HELLO names RingServer, else STATION
    STATION = "station"  # each station from its own next sequence number
    RING = "ring"        # every station from the lowest next number held (one shared ring)


def ring_numbered(server_id: str | None) -> bool:
    """Whether a server numbers records by one ring for every station (ringserver does)."""
    return server_id is not None and "ringserver" in server_id.lower()


@dataclass(frozen=True, slots=True)
class Span:
    """The time span of one record: ``sid`` is ``NET.STA.LOC.CHA``; ``last_ns`` is the time of
    its last sample, ``period_ns`` the sample interval."""

    sid: str
    start_ns: int
    last_ns: int
    period_ns: int


def record_span(payload: bytes) -> Span | None:
    """The span of the first miniSEED record in ``payload`` (header only), None if unreadable
    (the pipeline's decoder counts and reports those)."""
    try:
        for msr in pymseed.MS3Record.from_buffer(payload, unpack_data=False):
            rate = float(msr.samprate)
            if rate < 0:
                rate = -1.0 / rate
            if not rate > 0:
                return None
            net, sta, loc, cha = (_nslc(msr.sourceid) + ["", "", "", ""])[:4]
            return Span(f"{net}.{sta}.{loc}.{cha}", int(msr.starttime), int(msr.endtime),
                        round(NS_PER_S / rate))
    except (pymseed.MiniSEEDError, UnicodeDecodeError, ValueError):
        return None
    return None


def _nslc(sourceid: str) -> list[str]:
    """``FDSN:NET_STA_LOC_B_S_SS`` -> ``[NET, STA, LOC, BSSS]``."""
    body = sourceid.removeprefix("FDSN:").split("_")
    if len(body) >= 6:
        return [body[0], body[1], body[2], "".join(body[3:6])]
    return body


@dataclass(frozen=True, slots=True)
class ResumeGap:
    """Data of one channel that a resume could not get: from the sample after ``after_ns`` (the
    last one held) to ``until_ns`` (the first one received again)."""

    sid: str
    after_ns: int
    until_ns: int

    @property
    def duration_s(self) -> float:
        return (self.until_ns - self.after_ns) / NS_PER_S


class ResumeBook:
    """Per-station sequence numbers and per-channel end times: handed on (``delivered``) and
    acknowledged (``committed``)."""

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}  # last sequence handed on, per station
        self.committed: dict[str, int] = {}  # last sequence acknowledged, per station
        self._last: dict[str, Span] = {}  # newest record handed on, per channel
        self._committed_last: dict[str, tuple[int, int]] = {}  # channel: (last_ns, period_ns)
        self._pending: dict[str, deque[tuple[int, Span]]] = {}  # handed on, not acknowledged
        self._checked: set[str] = set()  # channels compared since the last (re)connect
        self.marks_in: dict[str, ResumeMark] = {}  # per station, from the resume file
        self.marks_out: dict[str, ResumeMark] = {}  # per station, to store with the next save
        self.started = False  # a station began: its position should be saved now

    # ---- resume ------------------------------------------------------------------------------
    def connected(self) -> None:
        """A new connection: the first record of each channel is checked for a gap again."""
        self._checked.clear()

    def ring_position(self) -> int | None:
        """The last sequence number every station has: resume all of them after it."""
        return min(self.delivered.values()) if self.delivered else None

    def sequence(self, sid: str, raw: int, v3: bool) -> int | None:
        """The packet's 64-bit sequence number, or None when the station has it already. A v3
        number (24 bits) is the one after the last delivered with those low bits."""
        last = self.delivered.get(sid)
        if last is None:
            return raw
        if not v3:
            return raw if raw > last else None
        step = (raw - last) % V3_SEQ_MODULUS
        return last + step if 0 < step < V3_SEQ_MODULUS // 2 else None

    def hand_on(self, sid: str, seq: int, payload: bytes) -> ResumeGap | None:
        """Record ``seq`` of station ``sid`` as handed on; a gap before it, if this is its
        channel's first record since the (re)connect and it does not follow the last one held."""
        self.delivered[sid] = seq
        if sid not in self.committed and seq > 0:  # where this station began: a restart
            self.committed[sid] = seq - 1          # before the first commit resumes from there
            self.started = True
        span = record_span(payload)
        if span is None:
            return None
        gap = None
        if span.sid not in self._committed_last and span.sid not in self._last:
            # a channel begins: nothing before this record was ever needed (a restart before
            # its first commit checks for a gap from here)
            self._committed_last[span.sid] = (span.start_ns - span.period_ns, span.period_ns)
            self._checked.add(span.sid)
            self.started = True
        if span.sid not in self._checked:
            self._checked.add(span.sid)
            prev = self._last.get(span.sid)
            held = ((prev.last_ns, prev.period_ns) if prev is not None
                    else self._committed_last.get(span.sid))
            if held is not None and span.start_ns - held[0] > GAP_PERIODS * held[1]:
                gap = ResumeGap(span.sid, held[0], span.start_ns)
        prev = self._last.get(span.sid)
        if prev is None or span.last_ns > prev.last_ns:
            self._last[span.sid] = span
        self._pending.setdefault(sid, deque()).append((seq, span))
        return gap

    def commit(self, sid: str, last_seq: int) -> bool:
        """Station ``sid`` is acknowledged up to ``last_seq``; False if that is not news."""
        if last_seq <= self.committed.get(sid, -1):
            return False
        self.committed[sid] = last_seq
        pending = self._pending.get(sid)
        while pending and pending[0][0] <= last_seq:
            _, span = pending.popleft()
            held = self._committed_last.get(span.sid)
            if held is None or span.last_ns > held[0]:
                self._committed_last[span.sid] = (span.last_ns, span.period_ns)
        return True

    # ---- persistence -------------------------------------------------------------------------
    def load(self, seqs: dict[str, int], resume_file: Path) -> None:
        """Resume from a state file's sequence numbers and the resume file beside it (missing:
        no gap can be checked, and every re-read window is sent, after this restart)."""
        self.committed = dict(seqs)
        self.delivered = dict(seqs)
        if resume_file.exists():
            doc = json.loads(resume_file.read_text())
            self._committed_last = {sid: (int(v[0]), int(v[1]))
                                    for sid, v in doc.get("channels", {}).items()}
            for sid, text in doc.get("marks", {}).items():
                mark = ResumeMark.decode(text)
                if mark is not None:
                    self.marks_in[sid] = self.marks_out[sid] = mark

    def save(self, path: Path) -> None:
        """The resume file (``PATH.resume.json``), then the ``#V2`` state file."""
        doc = {"version": 1, "about": "beside the SeedLink state file of the same name: last "
               "acknowledged sample time and sample interval (ns) per channel, resume mark per "
               "station (geosentry.stream.resume)",
               "channels": {sid: list(v) for sid, v in sorted(self._committed_last.items())},
               "marks": {sid: m.encode() for sid, m in sorted(self.marks_out.items())}}
        _write_atomic(resume_path(path), json.dumps(doc, indent=1) + "\n")
        save_state(path, self.committed)


def resume_path(state: Path) -> Path:
    return state.with_name(state.name + ".resume.json")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(path: Path, seqs: dict[str, int]) -> None:
    """Write ``{NET_STA: last sequence}`` as a libslink ``#V2`` state file, atomically."""
    _write_atomic(path, "#V2 StationID  Sequence  [Timestamp]\n" + "".join(
        f"{sid} {seq}\n" for sid, seq in sorted(seqs.items())))
