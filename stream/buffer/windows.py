"""Per-instrument windowing: aligns components by SEED channel code and cuts windows per detector.

An *instrument* is ``NET.STA.LOC`` plus the band and instrument codes (``HH``, ``EH``, ``HN``):
its channels ``HHZ``/``HHN``/``HHE`` (or ``HHZ``/``HH1``/``HH2``) make one multi-component stream.
Each detector declares a ``WindowSpec``; windows advance by its stride over time, so every
detector sees every stretch of data exactly once per stride, whatever the record boundaries.
An instrument feeds only the detectors whose spec applies to its kind (``WindowSpec.applies_to``:
seismic, geomagnetic), and a detector that cannot run at the instrument's rate
(``WindowSpec.refusal``) is reported once (``rate_too_low`` / ``rate_unsupported``) and skipped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from geosentry.stream.buffer.channel import BufferEvent, BufferEventKind, ChannelBuffer
from geosentry.stream.buffer.clock import ClockPolicy
from geosentry.stream.buffer.spec import MAX_UPSAMPLE, MAX_WINDOW_SAMPLES, WindowSpec, channel_kind
from geosentry.stream.config import BufferConfig
from geosentry.stream.records import NS_PER_S, InstrumentId, Record, SourceRef, Window

__all__ = ["COMPONENT_ALIASES", "ChannelEvent", "Instrument", "MAX_UPSAMPLE", "MAX_WINDOW_SAMPLES",
           "WindowSpec", "Windower", "channel_kind", "component_of", "grid_start"]
log = logging.getLogger(__name__)
#: SEED orientation codes mapped onto the component letters detectors ask for.
COMPONENT_ALIASES = {"1": "N", "2": "E"}


def grid_start(t0_ns: int, stride_ns: int, period_ns: float) -> int:
    """Where a stream whose first sample is at ``t0_ns`` starts its windows: the sample time
    (on ``t0_ns``'s sample lattice) nearest at or after the last multiple of the stride since
    1970 at or before ``t0_ns``. Windows then fall on the same absolute grid wherever a stream
    (or a restarted worker's re-read) begins, so they, and the alerts cut from them, repeat
    exactly; the first window is filled before ``t0_ns`` by :func:`pad_front`.

    >>> grid_start(12_345_000_000, 5_000_000_000, 10_000_000)  # 12.345 s, 5 s stride, 100 Hz
    10005000000
    >>> grid_start(10_000_000_000, 5_000_000_000, 10_000_000)
    10000000000
    """
    grid_ns = t0_ns - t0_ns % stride_ns
    back = math.floor((t0_ns - grid_ns) / period_ns) if period_ns > 0 else 0
    return t0_ns - round(back * period_ns)


def pad_front(samples: np.ndarray, n: int) -> np.ndarray:
    """``samples`` with ``n`` samples before them: their first samples mirrored about the first
    (a stream's first window starts on the grid point before its first sample).

    Mirrored, not held flat: a picker reads the step from a flat stretch into noise as an onset,
    and the CNN's picks came up to 7 s after that step (leave-one-network-out records through
    ``geosentry run``: 6 false S picks in 96 records). The mirror keeps the noise's
    level and spectrum across the join, and its value at the join.

    >>> pad_front(np.array([5.0, 6.0, 7.0]), 2)
    array([7., 6., 5., 6., 7.])
    >>> pad_front(np.array([5.0]), 2)   # one sample: held
    array([5., 5., 5.])
    """
    if n <= 0:
        return samples
    return np.pad(samples, (n, 0), mode="reflect" if samples.size > 1 else "edge")


def component_of(channel: str) -> str:
    code = channel[-1:].upper()
    return COMPONENT_ALIASES.get(code, code)


@dataclass(slots=True)
class _Cursor:
    start_ns: int | None = None
    epochs: tuple[int, ...] = ()
    first: bool = True
    window_ns: int = 0
    components: tuple[str, ...] = ()  # the components present when ``epochs`` was taken

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
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    specs: list[WindowSpec] = field(default_factory=list)  # the detectors this instrument feeds
    last_arrival_ns: int = 0  # arrival of its newest record the clock policy did not reject
    last_end_ns: int = 0  # data time: end of its newest record the clock policy did not reject
    #: windows starting before this were delivered before a restart (``Window.replay``)
    replay_before_ns: int = 0
    span_ns: int = 0  # time span of its newest record (slow channels send rarely)

    @property
    def id(self) -> InstrumentId:
        return InstrumentId(self.network, self.station, self.location, self.prefix)


class Windower:
    """Records in, windows (and policy events) out. Synchronous and cheap: runs on the loop."""

    def __init__(self, specs: list[WindowSpec], policy: BufferConfig, live: bool = False) -> None:
        if not specs:
            raise ValueError("Windower needs at least one WindowSpec")
        self.specs = specs
        self.policy = policy
        self.used_components = {c for s in specs for c in s.components}
        #: never hold less than a few windows, whatever max_buffer_s says
        self.max_hold_s = self._hold_s(specs)
        self.instruments: dict[InstrumentId, Instrument] = {}
        self._missing_reported: set[tuple[InstrumentId, str]] = set()  # (instrument, detector)
        self._rate_reported: set[tuple[InstrumentId, str]] = set()
        #: ``live``: the records come from live feeds (the clock policy compares with the wall
        #: clock, see ``geosentry.stream.buffer.clock``)
        self.clock = ClockPolicy(policy.max_future_s, policy.clock_confirm_records, live,
                                 policy.reorder_tolerance_s)
        self.newest_arrival_ns = 0  # of any record: the reference for silence (release_silent)
        self.newest_end_ns = 0  # data time, of any record: the same in data time
        self._dropped: list[SourceRef] = []  # inputs rejected outright (see take_dropped)
        self._future_reported: set[str] = set()  # channels with a ``future`` health alert
        self._routes: dict[str, tuple[list[WindowSpec], set[str]]] = {}  # by band + instrument
        for spec in specs:
            log.info("%s", spec.describe())

    def _hold_s(self, specs: list[WindowSpec]) -> float:
        return max([self.policy.max_buffer_s] + [4 * (s.window_s + s.stride_s) for s in specs])

    def route(self, prefix: str) -> tuple[list[WindowSpec], set[str]]:
        """The specs instruments with this band + instrument code (``HH``) feed, and the
        components those use."""
        found = self._routes.get(prefix)
        if found is None:
            specs = [s for s in self.specs if s.applies_to(prefix)]
            found = self._routes[prefix] = (specs, {c for s in specs for c in s.components})
            log.debug("%s? channels (%s) feed %s", prefix, channel_kind(prefix),
                      ", ".join(s.detector for s in specs) or "no detector")
        return found

    def accepts(self, rec: Record) -> bool:
        """Whether any detector uses this channel (others are counted as ``unknown_channel``)."""
        return len(rec.channel) == 3 and component_of(rec.channel) in self.route(rec.channel[:2])[1]

    def push(self, rec: Record, replay_before_ns: int = 0
             ) -> tuple[list[Window], list[ChannelEvent]]:
        """Add a record; the windows it completes and the policy events it raised.
        ``replay_before_ns``: the record is one a restarted worker re-reads, and windows of its
        instrument starting before that time were delivered before (``Window.replay``); it is
        read when the record starts its instrument."""
        key = self.instrument_key(rec)
        inst = self.instruments.get(key)
        if inst is None:
            inst = Instrument(rec.network, rec.station, rec.location, rec.channel[:2], rec.start_ns,
                              specs=self.route(rec.channel[:2])[0],
                              replay_before_ns=replay_before_ns)
            self.instruments[key] = inst
        comp = component_of(rec.channel)
        buf = inst.buffers.get(comp)
        if buf is None:
            buf = ChannelBuffer(self.policy.max_interpolate_gap_s, self.policy.reorder_tolerance_s,
                                self._hold_s(inst.specs), self.clock)
            inst.buffers[comp] = buf
            inst.channels[comp] = rec.channel
        events = [ChannelEvent(rec.sid, e if e.kind is not BufferEventKind.FUTURE
                               else self._future_once(rec.sid, e), key) for e in buf.push(rec)]
        self.newest_arrival_ns = max(self.newest_arrival_ns, rec.arrival_ns)
        if buf.newest_arrival_ns > inst.last_arrival_ns:  # accepted (not rejected as future)
            inst.last_arrival_ns = buf.newest_arrival_ns
            inst.last_end_ns = max(inst.last_end_ns, rec.end_ns)
            self.newest_end_ns = max(self.newest_end_ns, rec.end_ns)
        inst.span_ns = rec.end_ns - rec.start_ns
        if buf.dropped_refs:
            self._dropped += buf.dropped_refs
            buf.dropped_refs.clear()
        if not events and all(self._waiting(inst, spec) for spec in inst.specs):
            return [], events  # fast path: no detector has a complete window yet
        windows = self._cut(inst, events)
        if inst.replay_before_ns and events:  # reported before the restart: counted, not sent
            events = [replace(e, event=replace(e.event, alert=False))
                      if e.event.start_ns < inst.replay_before_ns else e for e in events]
        return windows, events

    def flush(self) -> tuple[list[Window], list[ChannelEvent]]:
        """End of stream: resolve held records and cut every window that is now complete."""
        windows: list[Window] = []
        events: list[ChannelEvent] = []
        for inst in self.instruments.values():
            for comp, buf in inst.buffers.items():
                sid = f"{inst.network}.{inst.station}.{inst.location}.{inst.channels[comp]}"
                events.extend(ChannelEvent(sid, e, inst.id) for e in buf.flush())
            windows.extend(self._cut(inst, events))
        return windows, events

    @staticmethod
    def instrument_key(rec: Record) -> InstrumentId:
        """The instrument ``rec`` belongs to (what ``needed_ns`` and the tracker are keyed by)."""
        return InstrumentId.of(rec)

    def forget(self, keys: list[InstrumentId]) -> None:
        """Drop these instruments as if never seen (a rebalance gave their partition to another
        worker; if it comes back, its records start them afresh, as on a restart)."""
        for key in keys:
            self.instruments.pop(key, None)
        gone = set(keys)
        self._missing_reported = {k for k in self._missing_reported if k[0] not in gone}
        self._rate_reported = {k for k in self._rate_reported if k[0] not in gone}

    def resume_ns(self, key: InstrumentId) -> int:
        """How much data before its first undelivered window instrument ``key`` must re-read
        after a restart (``WindowSpec.resume_s`` of the detectors it feeds)."""
        inst = self.instruments.get(key)
        specs = inst.specs if inst is not None else self.specs
        return round(max((s.resume_s for s in specs), default=0.0) * NS_PER_S)

    def needed_ns(self, key: InstrumentId) -> int | None:
        """Oldest sample time instrument ``key`` may still put in a window (None: nothing)."""
        inst = self.instruments.get(key)
        if inst is None:
            return None
        held = [t for b in inst.buffers.values() if (t := b.oldest_ns) is not None]
        cursors = [c.start_ns for c in inst.cursors.values() if c.start_ns is not None]
        candidates = ([min(cursors)] if cursors else held) + held
        return min(candidates) if candidates else None

    def _future_once(self, sid: str, event: BufferEvent) -> BufferEvent:
        """One ``health`` alert per channel for records from the future; the rest are counted."""
        if sid in self._future_reported:
            return replace(event, alert=False)
        self._future_reported.add(sid)
        return event

    def take_dropped(self) -> list[SourceRef]:
        """Inputs of the records rejected since the last call (the clock policy): nothing of them
        is retained, so ``DeliveryTracker.forget`` may let their offsets be committed."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def release_silent(self) -> tuple[list[Window], list[ChannelEvent]]:
        """Let go of instruments that sent nothing for ``buffer.release_silent_s`` (and for 3 of
        their records' spans, so slow channels that send a record every few minutes are not
        silent), measured on arrival times against the newest arrival of any record: a stalled
        service (every station quiet) releases nothing. What a released instrument holds is
        resolved as at the end of a stream (held records, complete windows), the rest dropped, so
        ``needed_ns`` stops pinning its input offsets and commits keep moving on a live feed;
        its next record starts it afresh. One ``released`` event each (a ``health`` alert).

        Meant for a periodic sweep (the pipeline's commit loop, once a second): one pass over
        the instruments, nothing per record."""
        limit_ns = round(self.policy.release_silent_s * NS_PER_S)
        windows: list[Window] = []
        events: list[ChannelEvent] = []
        if limit_ns <= 0:
            return windows, events
        for key, inst in list(self.instruments.items()):
            silent_ns = self.newest_arrival_ns - inst.last_arrival_ns
            quiet_ns = max(limit_ns, 3 * inst.span_ns)
            if silent_ns <= quiet_ns or self.needed_ns(key) is None:
                continue  # still sending, or holds nothing (pins no offset)
            if self.newest_end_ns - inst.last_end_ns <= quiet_ns:
                continue  # the others' data has not moved on either: the input paused
            for comp, buf in inst.buffers.items():
                sid = f"{inst.network}.{inst.station}.{inst.location}.{inst.channels[comp]}"
                events.extend(ChannelEvent(sid, e, key) for e in buf.flush())
                self._dropped += buf.dropped_refs
            windows.extend(self._cut(inst, events))
            del self.instruments[key]
            end_ns = max((b.end_ns for b in inst.buffers.values() if b.rate_hz),
                         default=inst.first_ns)
            events.append(ChannelEvent(f"{key}?", BufferEvent(
                BufferEventKind.RELEASED, end_ns, silent_ns / NS_PER_S,
                detail=f"no record for {silent_ns / NS_PER_S:.0f} s: its buffered data was "
                       "released (input offsets move on); it restarts with its next record"),
                key))
        return windows, events

    # ---- cutting ---------------------------------------------------------------------------
    def _cut(self, inst: Instrument, events: list[ChannelEvent]) -> list[Window]:
        out: list[Window] = []
        for spec in inst.specs:
            out.extend(self._cut_spec(inst, spec, events))
        trim_to = [c.start_ns for c in inst.cursors.values() if c.start_ns is not None]
        if trim_to:
            for buf in inst.buffers.values():
                buf.trim_before(min(trim_to))
        elif inst.specs and all(self._refusal(inst, spec) for spec in inst.specs):
            for buf in inst.buffers.values():  # no detector can run on it: hold nothing
                buf.trim_before(buf.end_ns)
        return out

    @staticmethod
    def _refusal(inst: Instrument, spec: WindowSpec) -> tuple[str, str] | None:
        """Why ``spec`` cannot run on ``inst``'s channels at their rates (None: it can)."""
        rates = sorted({b.rate_hz for c, b in inst.buffers.items()
                        if c in spec.components and b.n_samples})
        return next((r for r in map(spec.refusal, rates) if r is not None), None)

    @staticmethod
    def _waiting(inst: Instrument, spec: WindowSpec) -> bool:
        """True when ``spec`` cannot cut a window yet and nothing changed that would move its
        cursor: same buffers and epochs (``_Cursor.waiting``), no new component."""
        cursor = inst.cursors.get(spec.detector)
        return (cursor is not None and cursor.waiting(inst.buffers)
                and len(cursor.components) == sum(c in inst.buffers for c in spec.components))

    def _cut_spec(self, inst: Instrument, spec: WindowSpec,
                  events: list[ChannelEvent]) -> list[Window]:
        if self._waiting(inst, spec):
            return []
        if any(c in inst.buffers and not inst.buffers[c].n_samples for c in spec.components):
            return []  # a known component has no data right now (after a reset): wait for it
        present = [(c, inst.buffers[c]) for c in spec.components if c in inst.buffers]
        if not present:
            return []
        refused = self._refusal(inst, spec)
        if refused is not None:  # stride, window or STA below a sample, rate out of range ...
            key = (inst.id, spec.detector)
            if key not in self._rate_reported:
                self._rate_reported.add(key)  # once per instrument and detector
                events.append(ChannelEvent(f"{key[0]}?", BufferEvent(
                    BufferEventKind(refused[0]), present[0][1].start_ns, detail=refused[1],
                    detector=spec.detector), key[0]))
            return []
        if len(present) < len(spec.components):
            lacking = "".join(c for c in spec.components if c not in inst.buffers)
            key = (inst.id, spec.detector)
            buf = present[0][1]
            waited = buf.end_ns - inst.first_ns > (
                spec.window_s + self.policy.reorder_tolerance_s) * NS_PER_S
            if not waited and key not in self._missing_reported:
                return []  # the other components may still be on their way
            if key not in self._missing_reported:
                self._missing_reported.add(key)  # reported once per instrument and detector
                events.append(ChannelEvent(f"{key[0]}{lacking}", BufferEvent(
                    BufferEventKind.MISSING_COMPONENT, buf.start_ns,
                    detail=f"{spec.detector}: no {lacking} ({spec.missing})",
                    detector=spec.detector), key[0]))
            if spec.missing == "skip":
                return []
        cursor = inst.cursors.setdefault(spec.detector, _Cursor())
        epochs = tuple(b.epoch for _, b in present)
        rate_hz = spec.rate_hz or present[0][1].rate_hz
        n_window, n_stride = spec.samples(rate_hz)
        window_ns = round(n_window * NS_PER_S / rate_hz)
        stride_ns = round(n_stride * NS_PER_S / rate_hz)
        if n_window < 1 or stride_ns <= 0 or n_window > MAX_WINDOW_SAMPLES:
            return []  # refusal() rules these out; never loop on a cursor that cannot advance
        if cursor.epochs != epochs or cursor.start_ns is None:
            cursor.start_ns = grid_start(max(b.start_ns for _, b in present), stride_ns,
                                         max(b.period_ns for _, b in present))
            cursor.epochs = epochs
            cursor.components = tuple(c for c, _ in present)
            cursor.first = True
        cursor.window_ns = window_ns
        out: list[Window] = []
        while all(b.end_ns >= cursor.start_ns + window_ns for _, b in present):
            rows = {c: self._row(b, cursor.start_ns, n_window, rate_hz, cursor.first)
                    for c, b in present}
            if any(r is None for r in rows.values()):
                break
            data = np.zeros((len(spec.components), n_window), dtype=np.float32)
            for i, c in enumerate(spec.components):
                row = rows.get(c)
                if row is not None:
                    data[i] = row
            end_ns = cursor.start_ns + window_ns
            out.append(Window(
                network=inst.network, station=inst.station, location=inst.location,
                channels=tuple(inst.channels.get(c, "") if c in rows else "" for c in spec.components),
                start_ns=cursor.start_ns, sampling_rate_hz=rate_hz, data=data,
                newest_arrival_ns=max(b.arrival_for(end_ns) for _, b in present),
                detector=spec.detector, first=cursor.first,
                replay=cursor.start_ns < inst.replay_before_ns,
                pad_samples=max(0, round((max(b.start_ns for _, b in present) - cursor.start_ns)
                                         * rate_hz / NS_PER_S)) if cursor.first else 0))
            cursor.start_ns += stride_ns
            cursor.first = False
        return out

    @staticmethod
    def _row(buf: ChannelBuffer, start_ns: int, n_out: int, rate_hz: float,
             first: bool = False) -> np.ndarray | None:
        i0 = buf.index_of(start_ns)
        samples = buf.samples()
        if i0 < 0:  # a stream's first window starts on the grid point before its first sample
            if not first or not len(samples):
                return None
            samples = pad_front(samples, -i0)
            i0 = 0
        if buf.rate_hz == rate_hz:
            row = samples[i0:i0 + n_out]
            return row if len(row) == n_out else None
        ratio = Fraction(rate_hz / buf.rate_hz).limit_denominator(1000)
        n_native = math.ceil(n_out * ratio.denominator / ratio.numerator)
        native = samples[i0:i0 + n_native]
        if len(native) < n_native - 1:
            return None
        offset = float(native.mean())  # resample_poly pads with zeros: no step at the edges
        resampled = resample_poly(native - offset, ratio.numerator, ratio.denominator) + offset
        return resampled[:n_out] if len(resampled) >= n_out else None
