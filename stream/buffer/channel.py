"""Per-channel buffer with explicit gap, overlap and out-of-order policies.

Policies (all in seconds at the API, samples inside):

* contiguous: a record starting within half a sample of the expected time is appended;
* out of order: a record that starts later than expected is held (sorted) while the held data
  spans less than ``reorder_tolerance_s``, waiting for the missing record to arrive;
* short gap: once it stops waiting, a gap up to ``max_interpolate_gap_s`` is filled by linear
  interpolation between the neighbouring samples (counted, never zeros);
* long gap: the buffer resets (its windows start afresh) and the caller raises a ``health`` alert;
* overlap / duplicate: samples already held are dropped, the new tail (if any) is appended;
* sample-rate change: the buffer resets (``health`` alert);
* clock: a record dated in the future (live: past the wall clock; replay: far past the channel's
  newest data, until later records confirm the jump) is rejected as ``future``, never buffered,
  so it cannot make the correct records after it look like duplicates (``geosentry.stream.buffer.clock``;
  one ``health`` alert per channel).

>>> import numpy as np
>>> from geosentry.stream.records import Record
>>> buf = ChannelBuffer(max_interpolate_gap_s=0.05, reorder_tolerance_s=0.0)
>>> r = lambda t0, n: Record("XX", "A", "", "HHZ", t0, 100.0, np.ones(n), 0)
>>> [e.kind.value for e in buf.push(r(0, 100))], buf.n_samples
([], 100)
>>> [e.kind.value for e in buf.push(r(1_020_000_000, 100))], buf.n_samples   # 2-sample gap
(['interpolated'], 202)
>>> [e.kind.value for e in buf.push(r(0, 100))]                               # duplicate
['duplicate']
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from geosentry.stream.buffer.clock import ClockGuard, ClockPolicy
from geosentry.stream.errors import RejectReason
from geosentry.stream.records import NS_PER_S, Record, SourceRef, sample_period_ns


class BufferEventKind(StrEnum):
    """What the buffer policy did (``BufferEvent.kind``; the value is the ``event`` of its
    ``health`` alert, where it raises one: ``geosentry.stream.alerts.HEALTH_EVENTS``)."""

    INTERPOLATED = "interpolated"  # a short gap, filled
    RESET_GAP = "reset_gap"  # a long gap (or a confirmed clock jump back): starts afresh
    RESET_RATE = "reset_rate"  # the sample rate changed: starts afresh
    DUPLICATE = "duplicate"  # samples already held, dropped
    OVERLAP = "overlap"  # partly held: the new tail was appended
    REORDERED = "reordered"  # arrived after records that follow it in time
    FUTURE = "future"  # dated in the future, rejected (``duration_s``: how far ahead)
    RELEASED = "released"  # an instrument silent too long let go of its data (windower)
    MISSING_COMPONENT = "missing_component"  # a detector's component never came (windower)
    RATE_TOO_LOW = "rate_too_low"  # a detector needs a higher rate (windower)
    RATE_UNSUPPORTED = "rate_unsupported"  # a detector cannot run at this rate (windower)


class GapAction(StrEnum):
    """The ``geosentry_gaps_total{action}`` label."""

    INTERPOLATED = "interpolated"
    RESET = "reset"
    RELEASED = "released"


#: how each kind is counted: a gap action, a rejected record (reason), or (``REORDERED``,
#: ``MISSING_COMPONENT``) a counter of its own; every kind is in exactly one of these
GAP_ACTIONS: dict[BufferEventKind, GapAction] = {
    BufferEventKind.INTERPOLATED: GapAction.INTERPOLATED,
    BufferEventKind.RESET_GAP: GapAction.RESET,
    BufferEventKind.RELEASED: GapAction.RELEASED,
}
REJECTIONS: dict[BufferEventKind, RejectReason] = {
    BufferEventKind.RESET_RATE: RejectReason.RATE,
    BufferEventKind.DUPLICATE: RejectReason.DUPLICATE,
    BufferEventKind.OVERLAP: RejectReason.OVERLAP,
    BufferEventKind.FUTURE: RejectReason.FUTURE,
    BufferEventKind.RATE_TOO_LOW: RejectReason.RATE_TOO_LOW,
    BufferEventKind.RATE_UNSUPPORTED: RejectReason.RATE_UNSUPPORTED,
}


@dataclass(frozen=True, slots=True)
class BufferEvent:
    """Something the policy did (``kind``, see ``BufferEventKind``). ``detector``: the
    detector it concerns, for the windower's per-detector events (missing component, rate).
    ``alert=False``: counted, but a ``health`` alert for it was already raised (once per
    channel)."""

    kind: BufferEventKind
    start_ns: int
    duration_s: float = 0.0
    detail: str = ""
    alert: bool = True
    detector: str = ""


@dataclass(frozen=True, slots=True)
class Segment:
    """What a channel held when it reset (a long gap, a rate change, a confirmed clock jump):
    the windower cuts the stream's last window from it (``Windower``). Reads like the buffer."""

    start_ns: int
    rate_hz: float
    period_ns: float
    epoch: int
    data: np.ndarray
    newest_arrival_ns: int

    @property
    def n_samples(self) -> int:
        return len(self.data)

    @property
    def end_ns(self) -> int:
        return self.start_ns + round(len(self.data) * self.period_ns)

    def samples(self) -> np.ndarray:
        return self.data

    def index_of(self, t_ns: int) -> int:
        return round((t_ns - self.start_ns) / self.period_ns)

    def arrival_for(self, t_ns: int) -> int:
        return self.newest_arrival_ns


class ChannelBuffer:
    """Contiguous samples of one SEED channel, trimmed from the front by the windower."""

    def __init__(self, max_interpolate_gap_s: float, reorder_tolerance_s: float,
                 max_buffer_s: float = 600.0, clock: ClockPolicy | None = None) -> None:
        self.max_interpolate_gap_s = max_interpolate_gap_s
        self.reorder_tolerance_s = reorder_tolerance_s
        self.max_buffer_s = max_buffer_s
        self.rate_hz = 0.0
        self._period_ns = 0.0  # sample_period_ns(rate_hz), set with it
        self.start_ns = 0
        self.epoch = 0  # bumps on every reset so windowers restart
        self.newest_arrival_ns = 0
        self._data = np.empty(0, dtype=np.float64)
        self._head = 0
        self._n = 0
        self._end_ns = 0  # start_ns + round(_n * period): kept up to date, read per record
        self._held: list[tuple[int, int, Record]] = []  # (start_ns, seq, record), sorted
        self._seq = 0
        self._arrivals: deque[tuple[int, int]] = deque()  # (end_ns, arrival_ns) per record
        self._clock = ClockGuard(clock) if clock is not None and clock.enabled else None
        #: inputs of records rejected by the clock policy since the owner last looked: nothing
        #: of them is retained, so their offsets may be committed (``DeliveryTracker.forget``)
        self.dropped_refs: list[SourceRef] = []
        #: what it held before each reset since the owner last looked (``Segment``)
        self.retired: list[Segment] = []

    # ---- read side -------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def period_ns(self) -> float:
        return self._period_ns

    @property
    def next_ns(self) -> int:
        """Expected start time of the next record."""
        return self._end_ns

    @property
    def end_ns(self) -> int:
        """Time just after the last sample held."""
        return self.next_ns

    def samples(self) -> np.ndarray:
        """View of the held samples (valid until the next push/trim)."""
        return self._data[self._head:self._head + self._n]

    def index_of(self, t_ns: int) -> int:
        """Nearest sample index of time ``t_ns`` (may be outside the held range)."""
        return round((t_ns - self.start_ns) / self.period_ns)

    @property
    def oldest_ns(self) -> int | None:
        """Oldest sample time held or waiting to be put in order (None when empty)."""
        times = ([self.start_ns] if self._n else []) + ([self._held[0][0]] if self._held else [])
        if self._clock is not None and self._clock.suspects:
            times.append(min(r.start_ns for r in self._clock.suspects))
        return min(times) if times else None

    def arrival_for(self, t_ns: int) -> int:
        """Arrival time of the record that delivered the sample at ``t_ns``."""
        for end_ns, arrival_ns in self._arrivals:
            if end_ns >= t_ns:
                return arrival_ns
        return self.newest_arrival_ns

    def trim_before(self, t_ns: int) -> None:
        """Drop samples strictly older than ``t_ns`` (they can no longer be in a window)."""
        k = min(max(0, self.index_of(t_ns)), self._n)
        if k:
            self._head += k
            self._n -= k
            self.start_ns += round(k * self.period_ns)
            self._end_ns = self.start_ns + round(self._n * self._period_ns)
        while self._arrivals and self._arrivals[0][0] < self.start_ns:
            self._arrivals.popleft()

    def flush(self) -> list[BufferEvent]:
        """End of stream: stop waiting for missing records and apply the gap policy now.
        Records held aside as a suspected clock jump are adopted: nothing is left to poison."""
        events: list[BufferEvent] = []
        if self._clock is not None and self._clock.suspects:
            adopted = self._clock.adopt()
            events += self._take(adopted, back=self.rate_hz > 0 and adopted[0].end_ns < self._end_ns)
        tolerance, self.reorder_tolerance_s = self.reorder_tolerance_s, 0.0
        try:
            return events + self._drain()
        finally:
            self.reorder_tolerance_s = tolerance

    # ---- write side ------------------------------------------------------------------------
    def push(self, rec: Record) -> list[BufferEvent]:
        """Apply one record under the policies; returns what happened (may be empty)."""
        if self._clock is None:
            self.newest_arrival_ns = max(self.newest_arrival_ns, rec.arrival_ns)
            return self._push(rec)
        known = self.rate_hz > 0  # the channel has a timeline to compare with
        newest = max(self._end_ns, self._held[-1][2].end_ns) if self._held else self._end_ns
        if known and self._clock.plain(rec, newest, self._end_ns):
            self.newest_arrival_ns = max(self.newest_arrival_ns, rec.arrival_ns)
            return self._push(rec)
        screened = self._clock.screen(rec, newest if known else None,
                                      self._end_ns if known else None)
        if not (screened.rejected and screened.rejected[-1] is rec):  # heard from, for real
            self.newest_arrival_ns = max(self.newest_arrival_ns, rec.arrival_ns)
        events: list[BufferEvent] = []
        for r, future in zip(screened.rejected, screened.future):
            if r.ref is not None:
                self.dropped_refs.append(r.ref)
            if not future:  # behind the channel and never confirmed: what it always was
                events.append(BufferEvent(BufferEventKind.DUPLICATE, r.start_ns,
                                          len(r.data) / r.sampling_rate_hz))
                continue
            live = self._clock.policy.live
            ahead_s = (r.start_ns - (r.arrival_ns if live else newest)) / NS_PER_S
            events.append(BufferEvent(
                BufferEventKind.FUTURE, r.start_ns, ahead_s,
                detail=f"record starts {ahead_s:.6g} s after "
                       + ("its arrival (wall clock)" if live else "the channel's newest data")
                       + "; rejected (further ones are only counted)"))
        if screened.accept:
            events += self._take(screened.accept, screened.back)
        return events

    def _take(self, records: list[Record], back: bool) -> list[BufferEvent]:
        """Push ``records`` (in time order); ``back``: they are a confirmed jump back in time,
        so the channel first resets to the first of them."""
        events: list[BufferEvent] = []
        if back:
            first, records = records[0], records[1:]
            events += self.flush()  # the old timeline's held records: gap policy now
            gap_s = (first.start_ns - self._end_ns) / NS_PER_S
            events.append(BufferEvent(BufferEventKind.RESET_GAP, self._end_ns, gap_s,
                                      detail=f"clock moved back {-gap_s:.6g} s (confirmed)"))
            self._held.clear()
            self._reset_to(first)
        for r in records:
            events += self._push(r)
        return events

    def _push(self, rec: Record) -> list[BufferEvent]:
        if self._n == 0 and not self._held:
            self._reset_to(rec)
            return []
        if rec.sampling_rate_hz != self.rate_hz:
            event = BufferEvent(BufferEventKind.RESET_RATE, rec.start_ns,
                                detail=f"{self.rate_hz:g} Hz -> {rec.sampling_rate_hz:g} Hz")
            self._held.clear()
            self._reset_to(rec)
            return [event]
        if not self._held and abs(rec.start_ns - self._end_ns) <= self._period_ns / 2:
            self._append(rec.data)  # the next record, in order: what _drain would do, sooner
            self._arrivals.append((rec.end_ns, rec.arrival_ns))
            return []
        item = (rec.start_ns, self._seq, rec)
        self._seq += 1
        bisect.insort(self._held, item)
        late = self._held[-1] is not item  # arrived after records that follow it in time
        events = self._drain()
        if late:
            events.insert(0, BufferEvent(BufferEventKind.REORDERED, rec.start_ns))
        return events

    def _drain(self) -> list[BufferEvent]:
        events: list[BufferEvent] = []
        half = self.period_ns / 2
        while self._held:
            start_ns, _, rec = self._held[0]
            delta_ns = start_ns - self.next_ns
            if delta_ns < -half:  # starts before what we expect: duplicate or overlap
                self._held.pop(0)
                events.append(self._overlap(rec))
                continue
            if delta_ns <= half:  # contiguous
                self._held.pop(0)
                self._append(rec.data)
                self._arrivals.append((rec.end_ns, rec.arrival_ns))
                continue
            # A gap. Wait for the missing record while the held data is young enough.
            held_span_s = (self._held[-1][2].end_ns - self.next_ns) / NS_PER_S
            if held_span_s < self.reorder_tolerance_s:
                break
            self._held.pop(0)
            gap_s = delta_ns / NS_PER_S
            if gap_s <= self.max_interpolate_gap_s:
                self._interpolate(rec, delta_ns)
                events.append(BufferEvent(BufferEventKind.INTERPOLATED, self.next_ns, gap_s))
                self._append(rec.data)
                self._arrivals.append((rec.end_ns, rec.arrival_ns))
            else:
                events.append(BufferEvent(BufferEventKind.RESET_GAP, self.next_ns, gap_s))
                self._reset_to(rec)
        return events

    def _overlap(self, rec: Record) -> BufferEvent:
        first_new = round((self.next_ns - rec.start_ns) / self.period_ns)
        if first_new >= len(rec.data):
            return BufferEvent(BufferEventKind.DUPLICATE, rec.start_ns,
                               len(rec.data) / self.rate_hz)
        self._append(rec.data[first_new:])
        self._arrivals.append((rec.end_ns, rec.arrival_ns))
        return BufferEvent(BufferEventKind.OVERLAP, rec.start_ns, first_new / self.rate_hz)

    def _interpolate(self, rec: Record, delta_ns: int) -> None:
        n_missing = round(delta_ns / self.period_ns)
        last = self._data[self._head + self._n - 1] if self._n else rec.data[0]
        fill = np.linspace(last, rec.data[0], n_missing + 2)[1:-1]
        self._append(fill)

    def _reset_to(self, rec: Record) -> None:
        if self._n:
            self.retired.append(Segment(self.start_ns, self.rate_hz, self._period_ns, self.epoch,
                                        self.samples().copy(), self.newest_arrival_ns))
        self.epoch += 1
        self.rate_hz = rec.sampling_rate_hz
        self._period_ns = sample_period_ns(self.rate_hz)
        self.start_ns = rec.start_ns
        self._head = 0
        self._n = 0
        self._arrivals.clear()
        self._append(rec.data)
        self._arrivals.append((rec.end_ns, rec.arrival_ns))

    def _append(self, values: np.ndarray) -> None:
        need = self._head + self._n + len(values)
        if need > len(self._data):
            if self._n + len(values) <= len(self._data) // 2:
                self._data[:self._n] = self._data[self._head:self._head + self._n]
            else:
                grown = np.empty(max(2 * (self._n + len(values)), 1024), dtype=np.float64)
                grown[:self._n] = self._data[self._head:self._head + self._n]
                self._data = grown
            self._head = 0
        self._data[self._head + self._n:self._head + self._n + len(values)] = values
        self._n += len(values)
        self._end_ns = self.start_ns + round(self._n * self._period_ns)
        cap = max(int(self.max_buffer_s * self.rate_hz), len(values))
        if self._n > cap > 0:  # nobody trimmed (no detector uses this channel): bound memory
            self.trim_before(self.start_ns + round((self._n - cap) * self.period_ns))
