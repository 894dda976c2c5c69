"""A miniSEED archive as per-station SeedLink rings, published at a chosen pace.

Records are ordered by end time (as ``stream.sources.files`` replays them) and numbered per
station from 1, deterministically, so a restarted server hands out the same sequence numbers
and clients resume where they stopped. ``speed = 1`` publishes each record when it would have
arrived live (relative to the first), ``speed = 10`` ten times faster, ``speed = 0`` all at once.
Each station's ring keeps the newest ``ring_records`` published records (all by default).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from pathlib import Path

import pymseed

from stream.errors import SourceError
from stream.records import NS_PER_S
from stream.seedlink.protocol import StationInfo
from stream.sources.files import archive_records


@dataclass(frozen=True, slots=True)
class Packet:
    """One archived record with its SeedLink identity."""

    index: int  # position in the archive-wide publication order
    seq: int  # per-station sequence number, from 1
    station_id: str  # NET_STA
    location: str
    channel: str
    record_type: str  # D (data) or L (log/text)
    start_ns: int
    end_ns: int  # time of the sample after the last one (SeedLink 4 convention)
    payload: bytes


def _packet(index: int, seq_by_station: dict[str, int], payload: bytes) -> Packet | None:
    try:
        msr = pymseed.MS3Record.parse(payload, unpack_data=False)
    except (pymseed.MiniSEEDError, ValueError):
        return None
    net, sta, loc, cha = pymseed.sourceid2nslc(msr.sourceid)
    sid = f"{net}_{sta}"
    seq = seq_by_station.get(sid, 0) + 1
    seq_by_station[sid] = seq
    period_ns = msr.samprate_period_ns if msr.samprate else 0
    kind = "L" if msr.encoding == pymseed.DataEncoding.TEXT else "D"
    return Packet(index, seq, sid, loc, cha, kind, msr.starttime, msr.endtime + period_ns,
                  bytes(payload))


class Archive:
    """Published packets per station; ``start()`` sets the pacing clock."""

    def __init__(self, path: str | Path, speed: float = 0.0,
                 ring_records: int | None = None) -> None:
        if speed < 0:
            raise SourceError(f"speed must be >= 0, got {speed}")
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
            packet = _packet(len(self.packets), seqs, payload)
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

    def station_infos(self) -> list[StationInfo]:
        out = []
        for sid, packets in sorted(self.by_station.items()):
            first, n = self.ring_range(sid)
            ring = packets[first:n]
            streams: dict[tuple[str, str, str], list[int]] = {}
            for p in ring:
                span = streams.setdefault((p.location, p.channel, p.record_type),
                                          [p.start_ns, p.end_ns])
                span[0], span[1] = min(span[0], p.start_ns), max(span[1], p.end_ns)
            net, _, sta = sid.partition("_")
            begin = ring[0].seq if ring else n + 1
            out.append(StationInfo(net, sta, begin, n + 1 if not ring else ring[-1].seq + 1,
                                   tuple((loc, cha, typ, b, e)
                                         for (loc, cha, typ), (b, e) in sorted(streams.items()))))
        return out
