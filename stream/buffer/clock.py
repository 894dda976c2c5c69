"""Clock policy: records dated in the future (or far off the channel's timeline) never poison a
channel.

Without it, one record stamped a year ahead resets its channel to that time, and every later
(correct) record is then dropped as a duplicate: the station goes silent for good. The rule,
in one place:

* **live feeds** (``geosentry.stream.sources.is_live``): a record starting more than ``max_future_s``
  after its arrival (the wall clock) is rejected. The wall clock is the truth there: no
  confirmation can make a record from the future right.
* **replays** (files, a Kafka topic read to its end): there is no wall clock to compare with,
  so a record starting more than ``max(max_future_s, reorder_tolerance_s)`` past the newest
  data the channel accepted, or ending that far before it, is a *suspected clock jump*. It is
  held aside (not in the buffer). If the next records continue the channel's own timeline, the
  suspects are rejected (an isolated bad time stamp). If ``confirm_records`` records in a row
  agree on the new time (each continuing the previous one), the jump is real (an outage, an
  epoch or clock change) and adopted: the channel resets to it (a ``reset_gap`` health alert),
  so a genuine long outage in a replay is never rejected for good. At the end of the stream
  suspects still waiting are adopted: there is nothing left for them to poison.

``max_future_s = 0`` turns the policy off (the behaviour before it existed).

>>> import numpy as np
>>> from geosentry.stream.records import Record
>>> year = 365 * 86400 * 10**9
>>> r = lambda t0: Record("XX", "A", "", "HHZ", t0, 100.0, np.ones(100), 0)
>>> guard = ClockGuard(ClockPolicy(max_future_s=60.0, confirm_records=3))
>>> guard.screen(r(year), newest_ns=10**9, expected_ns=10**9).accept   # held aside
[]
>>> s = guard.screen(r(10**9), newest_ns=10**9, expected_ns=10**9)      # the timeline goes on
>>> len(s.accept), [x.start_ns == year for x in s.rejected]
(1, [True])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geosentry.stream.records import NS_PER_S, Record


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """``max_future_s``: tolerance (0: off); ``confirm_records``: records that must agree on a
    jump before a replay adopts it; ``live``: compare with the wall clock instead;
    ``reorder_tolerance_s``: a jump is never smaller than what the reorder policy waits for."""

    max_future_s: float = 60.0
    confirm_records: int = 3
    live: bool = False
    reorder_tolerance_s: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.max_future_s > 0

    @property
    def future_ns(self) -> int:
        return round(self.max_future_s * NS_PER_S)

    @property
    def jump_ns(self) -> int:
        return round(max(self.max_future_s, self.reorder_tolerance_s) * NS_PER_S)


@dataclass(slots=True)
class Screened:
    """What to do with the record screened (and with suspects it settled).

    ``accept``: push through the buffer policies, in order; ``back``: ``accept`` is a confirmed
    jump back in time (reset to it first); ``rejected``: drop, with ``future`` telling whether
    they were ahead of the channel (rejected as ``future``) or behind it (plain duplicates)."""

    accept: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    future: list[bool] = field(default_factory=list)
    back: bool = False


class ClockGuard:
    """Per-channel state of the clock policy: the suspects held aside, and the rule."""

    __slots__ = ("jump_ns", "future_ns", "policy", "suspects")

    def __init__(self, policy: ClockPolicy) -> None:
        self.policy = policy
        self.suspects: list[Record] = []
        self.future_ns = policy.future_ns  # read per record: computed once
        self.jump_ns = policy.jump_ns

    def plain(self, rec: Record, newest_ns: int, expected_ns: int) -> bool:
        """The common case, cheaply: nothing held aside and ``rec`` is within the tolerances
        (``screen`` would just accept it). Needs a channel with a timeline."""
        if self.suspects:
            return False
        if self.policy.live:
            return rec.start_ns - rec.arrival_ns <= self.future_ns
        return (rec.start_ns - newest_ns <= self.jump_ns
                and expected_ns - rec.end_ns <= self.jump_ns)

    def screen(self, rec: Record, newest_ns: int | None, expected_ns: int | None) -> Screened:
        """``newest_ns``: end of the newest data the channel accepted (buffered or held for
        reordering); ``expected_ns``: where the channel's contiguous data ends. Both ``None``
        when the channel holds nothing (nothing to compare with in a replay)."""
        p = self.policy
        if not p.enabled:
            return Screened(accept=[rec])
        if p.live:
            if rec.start_ns - rec.arrival_ns > self.future_ns:
                return Screened(rejected=[rec], future=[True])
            return Screened(accept=[rec])
        if newest_ns is None or expected_ns is None:
            return Screened(accept=[rec])
        limit = self.jump_ns
        ahead = rec.start_ns - newest_ns > limit
        behind = expected_ns - rec.end_ns > limit
        if not ahead and not behind:  # the channel's own timeline: suspects were bad stamps
            settled = self._reject_suspects(expected_ns)
            settled.accept.append(rec)
            return settled
        out = Screened()
        if self.suspects and not self._agrees(rec):  # a different jump: the old one was noise
            out = self._reject_suspects(expected_ns)
        self.suspects.append(rec)
        if len(self.suspects) >= p.confirm_records:
            out.accept, out.back = self.adopt(), behind
        return out

    def adopt(self) -> list[Record]:
        """The suspects, in time order, taken as the channel's new timeline."""
        adopted = sorted(self.suspects, key=lambda r: r.start_ns)
        self.suspects = []
        return adopted

    def _agrees(self, rec: Record) -> bool:
        last = self.suspects[-1]
        end = max(r.end_ns for r in self.suspects)
        return (rec.sampling_rate_hz == last.sampling_rate_hz
                and abs(rec.start_ns - end) <= self.jump_ns)

    def _reject_suspects(self, expected_ns: int) -> Screened:
        out = Screened(rejected=self.suspects,
                       future=[r.start_ns >= expected_ns for r in self.suspects])
        self.suspects = []
        return out

    @property
    def oldest_ns(self) -> int | None:
        return min((r.start_ns for r in self.suspects), default=None)
