"""An instrument's windowing state: its channels' buffers, a cursor per detector on the
absolute stride grid, and the policy events its channels raise (``geosentry.stream.buffer.windows``
cuts the windows)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from geosentry.stream.buffer.channel import BufferEvent, ChannelBuffer
from geosentry.stream.buffer.spec import WindowSpec
from geosentry.stream.records import InstrumentId

#: SEED orientation codes mapped onto the component letters detectors ask for.
COMPONENT_ALIASES = {"1": "N", "2": "E"}


def grid_start(t0_ns: int, stride_ns: int, period_ns: float) -> int:
    """Where a stream whose first sample is at ``t0_ns`` starts its windows: the sample time
    (on ``t0_ns``'s sample lattice) nearest at or after the last multiple of the stride since
    1970 at or before ``t0_ns``. Windows then fall on the same absolute grid wherever a stream
    (or a restarted worker's re-read) begins, so they, and the alerts cut from them, repeat
    exactly; the first window is filled before ``t0_ns`` by ``rows.pad_front``.

    >>> grid_start(12_345_000_000, 5_000_000_000, 10_000_000)  # 12.345 s, 5 s stride, 100 Hz
    10005000000
    >>> grid_start(10_000_000_000, 5_000_000_000, 10_000_000)
    10000000000
    """
    grid_ns = t0_ns - t0_ns % stride_ns
    back = math.floor((t0_ns - grid_ns) / period_ns) if period_ns > 0 else 0
    return t0_ns - round(back * period_ns)


def component_of(channel: str) -> str:
    code = channel[-1:].upper()
    return COMPONENT_ALIASES.get(code, code)


@dataclass(slots=True)
class Cursor:
    """Where one detector's next window of an instrument starts, and what it was cut from."""

    start_ns: int | None = None
    epochs: tuple[int, ...] = ()
    first: bool = True
    window_ns: int = 0
    components: tuple[str, ...] = ()  # the components present when ``epochs`` was taken
    keep_ns: int = 0  # data kept before ``start_ns``: a stride for a spec with ``tail``

    def waiting(self, buffers: dict[str, ChannelBuffer]) -> bool:
        """True when nothing can be cut yet: the same buffers as at the last cut (no reset, no
        new component) and one of them still ends before the next window does."""
        if self.start_ns is None or not self.window_ns:
            return False
        due_ns = self.start_ns + self.window_ns
        lagging = False
        for comp, epoch in zip(self.components, self.epochs):
            buf = buffers[comp]
            if buf.epoch != epoch:
                return False
            lagging = lagging or buf.end_ns < due_ns
        return lagging


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """A buffer policy event with the channel it happened on (``sid``: the text its ``health``
    alert names) and the instrument of that channel."""

    sid: str
    event: BufferEvent
    instrument: InstrumentId


@dataclass
class Instrument:
    network: str
    station: str
    location: str
    prefix: str
    first_ns: int
    buffers: dict[str, ChannelBuffer] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # component -> channel code
    cursors: dict[str, Cursor] = field(default_factory=dict)
    specs: list[WindowSpec] = field(default_factory=list)  # the detectors this instrument feeds
    last_arrival_ns: int = 0  # arrival of its newest record the clock policy did not reject
    last_end_ns: int = 0  # data time: end of its newest record the clock policy did not reject
    #: windows starting before this were delivered before a restart (``Window.replay``)
    replay_before_ns: int = 0
    span_ns: int = 0  # time span of its newest record (slow channels send rarely)

    @property
    def id(self) -> InstrumentId:
        return InstrumentId(self.network, self.station, self.location, self.prefix)
