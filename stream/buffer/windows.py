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
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from geosentry.stream.buffer.channel import BufferEvent, BufferEventKind, ChannelBuffer, Segment
from geosentry.stream.buffer.clock import ClockPolicy
from geosentry.stream.buffer.instrument import (COMPONENT_ALIASES, ChannelEvent, Cursor, Instrument,
                                                component_of, grid_start)
from geosentry.stream.buffer.rows import last_start_ns, row
from geosentry.stream.buffer.spec import (MAX_UPSAMPLE, MAX_WINDOW_SAMPLES, WindowSpec, channel_kind,
                                         owned_samples)
from geosentry.stream.config import BufferConfig
from geosentry.stream.records import NS_PER_S, InstrumentId, Record, SourceRef, Window

__all__ = ["COMPONENT_ALIASES", "ChannelEvent", "Instrument", "MAX_UPSAMPLE", "MAX_WINDOW_SAMPLES",
           "WindowSpec", "Windower", "channel_kind", "component_of", "grid_start"]
log = logging.getLogger(__name__)
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
        windows = self._cut_retired(inst) + self._cut(inst, events)
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
            windows.extend(self._cut_retired(inst) + self._cut(inst, events))
            windows.extend(self._cut_last(inst))
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
            windows.extend(self._cut_retired(inst) + self._cut(inst, events))
            windows.extend(self._cut_last(inst))
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
        trim_to = [c.start_ns - c.keep_ns for c in inst.cursors.values() if c.start_ns is not None]
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
        cursor: same buffers and epochs (``Cursor.waiting``), no new component."""
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
        cursor = inst.cursors.setdefault(spec.detector, Cursor())
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
        cursor.keep_ns = stride_ns if spec.tail else 0
        out: list[Window] = []
        while all(b.end_ns >= cursor.start_ns + window_ns for _, b in present):
            w = self._window(inst, spec, present, cursor.start_ns, n_window, rate_hz, cursor.first)
            if w is None:
                break
            out.append(w)
            cursor.start_ns += stride_ns
            cursor.first = False
        return out

    def _window(self, inst: Instrument, spec: WindowSpec,
                present: Sequence[tuple[str, ChannelBuffer | Segment]],
                start_ns: int, n_window: int, rate_hz: float, first: bool,
                owned_from: int | None = None) -> Window | None:
        """The window of ``spec`` starting at ``start_ns`` (None: a component lacks its data)."""
        rows = {c: row(b, start_ns, n_window, rate_hz, first) for c, b in present}
        if any(r is None for r in rows.values()):
            return None
        data = np.zeros((len(spec.components), n_window), dtype=np.float32)
        for i, c in enumerate(spec.components):
            values = rows.get(c)
            if values is not None:
                data[i] = values
        end_ns = start_ns + round(n_window * NS_PER_S / rate_hz)
        return Window(
            network=inst.network, station=inst.station, location=inst.location,
            channels=tuple(inst.channels.get(c, "") if c in rows else "" for c in spec.components),
            start_ns=start_ns, sampling_rate_hz=rate_hz, data=data,
            newest_arrival_ns=max(b.arrival_for(end_ns) for _, b in present),
            detector=spec.detector, first=first, replay=start_ns < inst.replay_before_ns,
            pad_samples=max(0, round((max(b.start_ns for _, b in present) - start_ns)
                                     * rate_hz / NS_PER_S)) if first else 0,
            owned_from_samples=owned_from)

    def _cut_last(self, inst: Instrument) -> list[Window]:
        """Where a stream ends (end of input, a released instrument): for each spec with
        ``tail``, its last window (``_last_window``)."""
        out: list[Window] = []
        for spec in inst.specs:
            present = [(c, inst.buffers[c]) for c in spec.components if c in inst.buffers]
            w = self._last_window(inst, spec, present)
            if w is not None:
                out.append(w)
        return out

    def _cut_retired(self, inst: Instrument) -> list[Window]:
        """Where a stream ends at a reset (a long gap, a rate change, a clock jump): the last
        windows from what the reset channel held (``ChannelBuffer.retired``) and what the other
        components hold of the same stretch, for the specs whose windows were running on it."""
        out: list[Window] = []
        for comp, buf in inst.buffers.items():
            for seg in buf.retired:
                for spec in inst.specs:
                    cursor = inst.cursors.get(spec.detector)
                    if (not spec.tail or cursor is None or cursor.first
                            or comp not in cursor.components):
                        continue
                    present: list[tuple[str, ChannelBuffer | Segment]] = [
                        (c, seg if c == comp else inst.buffers[c]) for c in cursor.components]
                    if tuple(b.epoch for _, b in present) != cursor.epochs:
                        continue  # not the stretch this cursor was cutting
                    w = self._last_window(inst, spec, present)
                    cursor.first = True  # ended: the next cut restarts it (no second last one)
                    if w is not None:
                        out.append(w)
            buf.retired.clear()
        return out

    def _last_window(self, inst: Instrument, spec: WindowSpec,
                     present: Sequence[tuple[str, ChannelBuffer | Segment]]) -> Window | None:
        """A stream's last window for a spec with ``tail``: ending on the last sample every
        component has (off the grid), owning what the grid's windows left unscored (the last
        ``window - stride`` and less of the stream; all of a stream shorter than a window,
        mirrored before its first sample as a first window is). None where nothing is left."""
        if (not spec.tail or not present or any(not b.n_samples for _, b in present)
                or (len(present) < len(spec.components) and spec.missing == "skip")
                or self._refusal(inst, spec) is not None):
            return None
        if max(b.start_ns for _, b in present) >= min(b.end_ns for _, b in present):
            return None  # no stretch every component holds (one reset, the others not yet)
        rate_hz = spec.rate_hz or present[0][1].rate_hz
        n_window, _ = spec.samples(rate_hz)
        start_ns = last_start_ns([b for _, b in present], n_window, rate_hz)
        cursor = inst.cursors.get(spec.detector)
        if (cursor is None or cursor.start_ns is None or cursor.first
                or cursor.epochs != tuple(b.epoch for _, b in present)):
            return self._window(inst, spec, present, start_ns, n_window, rate_hz, True, 0)
        lo, _ = owned_samples(n_window, rate_hz, spec.stride_s, spec.report_lag_s, False)
        owned_from = round((cursor.start_ns - start_ns) * rate_hz / NS_PER_S) + lo
        if owned_from >= n_window:
            return None  # the grid's windows scored it all
        return self._window(inst, spec, present, start_ns, n_window, rate_hz, False, owned_from)
