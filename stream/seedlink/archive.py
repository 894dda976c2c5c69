"""A miniSEED archive as per-station SeedLink rings, published at a chosen pace.

Records are ordered by end time (as ``geosentry.stream.sources.files`` replays them) and numbered per
station from ``first_seq`` (1 by default), deterministically, so a restarted server hands out
the same sequence numbers and clients resume where they stopped. (A ``first_seq`` near
``0xFFFFFF`` makes protocol 3's 24-bit sequence numbers wrap within the archive.) ``speed = 1`` publishes each record when it would have
arrived live (relative to the first), ``speed = 10`` ten times faster, ``speed = 0`` all at once.
Each station's ring keeps the newest ``ring_records`` published records (all by default).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from pathlib import Path

import pymseed

from geosentry.stream.errors import SourceError
from geosentry.stream.records import NS_PER_S
from geosentry.stream.seedlink.info import StationInfo
from geosentry.stream.sources.files import archive_records


@dataclass(frozen=True, slots=True)
class Packet:
    """One archived record with its SeedLink identity."""

    index: int  # position in the archive-wide publication order
    seq: int  # per-station sequence number, from first_seq
    station_id: str  # NET_STA
    location: str
    channel: str
    record_type: str  # D (data) or L (log/text)
    start_ns: int
    end_ns: int  # time of the sample after the last one (SeedLink 4 convention)
    payload: bytes
    period_ns: int = 0  # sample period (0 for text records)


def _packet(index: int, seq_by_station: dict[str, int], payload: bytes,
            first_seq: int) -> Packet | None:
    try:
        msr = pymseed.MS3Record.parse(payload, unpack_data=False)
    except (pymseed.MiniSEEDError, ValueError):
        return None
    net, sta, loc, cha = pymseed.sourceid2nslc(msr.sourceid)
    sid = f"{net}_{sta}"
    seq = seq_by_station.get(sid, first_seq - 1) + 1
    seq_by_station[sid] = seq
    period_ns = msr.samprate_period_ns if msr.samprate else 0
    kind = "L" if msr.encoding == pymseed.DataEncoding.TEXT else "D"
    return Packet(index, seq, sid, loc, cha, kind, msr.starttime, msr.endtime + period_ns,
                  bytes(payload), period_ns)


def _gaps(packets: list[Packet]) -> tuple[tuple[int, int], ...]:
    """Gaps (more than half a sample between one record's end and the next's start) of one
    stream's records, in archive order."""
    out = []
    for prev, p in zip(packets, packets[1:]):
        if p.period_ns and p.start_ns - prev.end_ns > p.period_ns // 2:
            out.append((prev.end_ns, p.start_ns))
    return tuple(out)


class Archive:
    """Published packets per station; ``start()`` sets the pacing clock."""

    def __init__(self, path: str | Path, speed: float = 0.0,
                 ring_records: int | None = None, first_seq: int = 1) -> None:
        if speed < 0:
            raise SourceError(f"speed must be >= 0, got {speed}")
        if not 0 <= first_seq < 1 << 63:
            raise SourceError(f"first sequence number must be >= 0, got {first_seq}")
        self.first_seq = first_seq
        self.path = Path(path)
        self.speed = speed
        self.ring_records = ring_records
        self._started_s: float | None = None
        seqs: dict[str, int] = {}
        raw = archive_records(self.path)
        first_end = raw[0][0] if raw else 0
        self.packets: list[Packet] = []
        self._due_s: list[float] = []
        for end_ns, payload in raw:
            packet = _packet(len(self.packets), seqs, payload, first_seq)
            if packet is not None:
                self.packets.append(packet)
                self._due_s.append((end_ns - first_end) / NS_PER_S / speed if speed > 0 else 0.0)
        self.skipped = len(raw) - len(self.packets)
        self.by_station: dict[str, list[Packet]] = {}
        for p in self.packets:
            self.by_station.setdefault(p.station_id, []).append(p)
        self._indexes = {sid: [p.index for p in ps] for sid, ps in self.by_station.items()}
        if not self.packets:
            raise SourceError(f"no miniSEED records under {self.path}")

    def start(self) -> None:
        self._started_s = time.monotonic()

    def published(self) -> int:
        """How many packets (archive-wide, in order) are published by now."""
        if self._started_s is None:
            return 0
        return bisect.bisect_right(self._due_s, time.monotonic() - self._started_s)

    def complete(self) -> bool:
        return self.published() >= len(self.packets)

    def seconds_until(self, index: int) -> float:
        """Seconds until packet ``index`` (archive-wide) is published (0 when it is)."""
        if self._started_s is None or index >= len(self._due_s):
            return 1.0
        return max(0.0, self._due_s[index] - (time.monotonic() - self._started_s))

    def station_published(self, station_id: str) -> int:
        """Number of the station's packets published so far."""
        return bisect.bisect_left(self._indexes[station_id], self.published())

    def ring_range(self, station_id: str) -> tuple[int, int]:
        """``(first, next)`` list positions of the station's ring (positions, not sequences)."""
        n = self.station_published(station_id)
        first = max(0, n - self.ring_records) if self.ring_records else 0
        return first, n

    def position(self, seq: int) -> int:
        """List position of sequence number ``seq`` within its station (may be out of range)."""
        return seq - self.first_seq

    def station_infos(self) -> list[StationInfo]:
        out = []
        for sid, packets in sorted(self.by_station.items()):
            first, n = self.ring_range(sid)
            ring = packets[first:n]
            streams: dict[tuple[str, str, str], list[Packet]] = {}
            for p in ring:
                streams.setdefault((p.location, p.channel, p.record_type), []).append(p)
            keys = sorted(streams)
            net, _, sta = sid.partition("_")
            end = self.first_seq + n
            out.append(StationInfo(
                net, sta, ring[0].seq if ring else end, end,
                tuple((*k, min(p.start_ns for p in streams[k]), max(p.end_ns for p in streams[k]))
                      for k in keys),
                tuple(_gaps(streams[k]) for k in keys)))
        return out
