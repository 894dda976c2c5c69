"""Record types that cross stage boundaries, one per arrow.

``RawRecord`` (sources -> decode), ``Record`` (decode -> buffer), ``Window`` (buffer -> inference),
``Alert`` (inference/alerts -> sinks). Times inside the service are integer nanoseconds since the
Unix epoch (UTC); seconds appear only at the API edges (config, CLI, alert JSON).

>>> ns_to_iso(1_274_977_443_680_000_000)
'2010-05-27T16:24:03.680000Z'
>>> seconds_to_samples(2.5, 100.0)
250
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from datetime import datetime, UTC
from typing import Any

import numpy as np

NS_PER_S = 1_000_000_000
ALERT_SCHEMA = "geosentry.alert.v1"


class AlertKind(StrEnum):
    """``kind`` of an alert (the schema's enum)."""

    PICK = "pick"
    DETECTION = "detection"
    ANOMALY = "anomaly"
    HEALTH = "health"
    EVENT = "event"  # an associated, located earthquake (geosentry.stream.events.stage)


ALERT_KINDS = tuple(k.value for k in AlertKind)


def now_ns() -> int:
    """Wall-clock time in ns (arrival stamps and ``emitted_at``)."""
    return time.time_ns()


def ns_to_iso(t_ns: int) -> str:
    """UTC ISO-8601 with microseconds and a ``Z`` suffix."""
    sec, rem = divmod(int(t_ns), NS_PER_S)
    dt = datetime.fromtimestamp(sec, tz=UTC).replace(microsecond=rem // 1000)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_to_samples(seconds: float, rate_hz: float) -> int:
    """The one place seconds become samples (rounded to the nearest sample)."""
    return int(round(seconds * rate_hz))


def sample_period_ns(rate_hz: float) -> float:
    return NS_PER_S / rate_hz


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a raw record came from, so delivery can be acknowledged (Kafka offsets)."""

    source: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class InstrumentId:
    """One instrument: ``NET.STA.LOC`` plus the band and instrument codes (``prefix``, ``HH``).

    Its channels (``HHZ``/``HHN``/``HHE``) make one multi-component stream: the windower keys
    its buffers by it, detectors their per-stream state, the delivery tracker its in-flight
    windows; these must agree, so it is built only here. ``str()`` is ``NET.STA.LOC.PREFIX``.

    >>> i = InstrumentId("BW", "UH1", "", "EH")
    >>> str(i), i.site_key, i.station_key
    ('BW.UH1..EH', 'BW.UH1.', 'BW.UH1')
    >>> w = Window("BW", "UH1", "", ("", "EHZ"), 0, 100.0, np.zeros((2, 1)), 0, "d")
    >>> InstrumentId.of(w) == i
    True
    """

    network: str
    station: str
    location: str
    prefix: str  # band + instrument code: the channel code without its component letter

    @classmethod
    def of(cls, item: Record | Window) -> InstrumentId:
        """The instrument of a record (its channel) or a window (its first present channel)."""
        if isinstance(item, Record):
            channel = item.channel
        else:
            channel = next((ch for ch in item.channels if ch), "")
        return cls(item.network, item.station, item.location, channel[:2])

    @property
    def site_key(self) -> str:
        """``NET.STA.LOC``."""
        return f"{self.network}.{self.station}.{self.location}"

    @property
    def station_key(self) -> str:
        """``NET.STA``, as ``Alert.station_key`` (the Kafka key)."""
        return f"{self.network}.{self.station}"

    def __str__(self) -> str:
        return f"{self.network}.{self.station}.{self.location}.{self.prefix}"


@dataclass(slots=True)
class RawRecord:
    """Undecoded bytes as a source delivers them (one miniSEED record, usually 512 bytes)."""

    payload: bytes
    arrival_ns: int
    key: str | None = None
    ref: SourceRef | None = None


@dataclass(slots=True)
class Record:
    """Decoded samples of one channel: SEED id, start time, rate, samples."""

    network: str
    station: str
    location: str
    channel: str
    start_ns: int
    sampling_rate_hz: float
    data: np.ndarray
    arrival_ns: int
    ref: SourceRef | None = None

    @property
    def sid(self) -> str:
        return f"{self.network}.{self.station}.{self.location}.{self.channel}"

    @property
    def site_key(self) -> str:
        """``NET.STA.LOC`` (not the alert's ``station_key``, which is ``NET.STA``)."""
        return f"{self.network}.{self.station}.{self.location}"

    @property
    def instrument(self) -> InstrumentId:
        return InstrumentId.of(self)

    @property
    def component(self) -> str:
        return self.channel[-1:]

    @property
    def end_ns(self) -> int:
        """Time of the last sample."""
        return self.start_ns + round((len(self.data) - 1) * sample_period_ns(self.sampling_rate_hz))


@dataclass(slots=True)
class Window:
    """Aligned multi-component samples of one station, ready for one detector.

    ``data`` is float32 of shape (components, samples); ``channels`` holds the SEED channel used
    for each row ("" where a component is missing and the row is zeros by the detector's choice).
    """

    network: str
    station: str
    location: str
    channels: tuple[str, ...]
    start_ns: int
    sampling_rate_hz: float
    data: np.ndarray
    newest_arrival_ns: int
    detector: str
    first: bool = False
    #: a window a restarted worker re-cuts only to rebuild detector state: it was delivered
    #: before the restart, so its alerts are not sent again (``geosentry.stream.resume``)
    replay: bool = False
    #: samples at the front of a stream's first window before its first sample (mirrored:
    #: ``geosentry.stream.buffer.rows.pad_front``; windows start on an absolute grid)
    pad_samples: int = 0
    #: a stream's last window (where it ends: end of input, a released instrument), which ends on
    #: its last sample off the grid: it owns its samples from this one to its end
    owned_from_samples: int | None = None

    @property
    def site_key(self) -> str:
        """``NET.STA.LOC`` (not the alert's ``station_key``, which is ``NET.STA``)."""
        return f"{self.network}.{self.station}.{self.location}"

    @property
    def instrument(self) -> InstrumentId:
        return InstrumentId.of(self)

    def time_of(self, index: float) -> int:
        return self.start_ns + round(index * sample_period_ns(self.sampling_rate_hz))

    @property
    def end_ns(self) -> int:
        """Data time of the newest sample."""
        return self.time_of(self.data.shape[-1] - 1)


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: str
    sha256: str


@dataclass(slots=True)
class Alert:
    """One alert, serialised as ``geosentry.alert.v1`` JSON (see ``stream/schemas``).
    ``kind`` may be given as its text (``"pick"``); it is kept as an ``AlertKind``."""

    kind: AlertKind
    network: str
    station: str
    location: str
    channel: str
    time_ns: int
    score: float
    threshold: float
    model: ModelRef
    newest_arrival_ns: int
    phase: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    emitted_ns: int = 0

    def __post_init__(self) -> None:
        self.kind = AlertKind(self.kind)

    @property
    def station_key(self) -> str:
        """Kafka key: ``NET.STA`` (all locations of a station land on one partition)."""
        return f"{self.network}.{self.station}"

    @property
    def id(self) -> str:
        """Deterministic from station, kind, phase, time and model, so consumers can dedupe."""
        basis = "|".join((self.network, self.station, self.location, self.kind, self.phase or "",
                          str(self.time_ns // 10_000_000), self.model.name, self.model.version))
        if self.station == "*":  # a network alert: one per detector feeding it
            basis += f"|{self.details.get('detector', '')}"
        if self.kind is AlertKind.HEALTH:  # several health events can share a time: tell them apart
            basis += f"|{self.channel}|{self.details.get('event', '')}|{self.details.get('detail', '')}"
        if self.kind is AlertKind.EVENT:  # one id per event version: its id, update, content
            content = json.dumps(self.details, sort_keys=True, default=str)
            basis = (f"event|{self.details.get('event_id', '')}|{self.details.get('update', 0)}"
                     f"|{hashlib.sha256(content.encode()).hexdigest()}")
        return hashlib.sha256(basis.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        emitted = self.emitted_ns or now_ns()
        return {
            "schema": ALERT_SCHEMA,
            "id": self.id,
            "kind": self.kind.value,
            "network": self.network,
            "station": self.station,
            "location": self.location,
            "channel": self.channel,
            "phase": self.phase,
            "time": ns_to_iso(self.time_ns),
            "score": round(float(self.score), 6),
            "threshold": float(self.threshold),
            "model": {"name": self.model.name, "version": self.model.version,
                      "sha256": self.model.sha256},
            "emitted_at": ns_to_iso(emitted),
            "latency_s": round(max(0.0, (emitted - self.newest_arrival_ns) / NS_PER_S), 6),
            "details": self.details,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()
