"""Restarts that repeat themselves: the rule that makes alert ids identical after a crash.

A worker that is killed and restarted (or a worker that takes over a partition in a rebalance)
re-reads its input from the last committed offset. For the alerts it then sends to be the very
ones the first worker sent (same ids, same values), three things hold:

1. **Windows on an absolute grid.** Every detector's windows start on multiples of its stride
   since 1970 (``geosentry.stream.buffer.windows.grid_start``), whatever record a stream (or a
   re-read) starts with.
2. **Commits leave room to warm up.** Per partition the pipeline commits the first record that
   may still be needed to rebuild the state of a window not yet delivered: for every instrument
   of the partition, the record holding ``resume_ns - WindowSpec.resume_s`` (the previous
   window, plus what a recursive filter or STA/LTA remembers), where ``resume_ns`` is the data
   time of the oldest window of the partition not yet delivered.
3. **What was delivered is not sent again.** With the offset the pipeline stores a
   ``ResumeMark`` (Kafka commit metadata): ``resume_ns`` and ``seen_offset``, the end of what it
   had read. A restarted worker re-cuts the windows of instruments it meets again before
   ``seen_offset`` from the committed record on, runs its detectors over them to rebuild their
   state, and sends nothing from windows that start before ``resume_ns`` (``Window.replay``;
   counted in ``geosentry_replay_windows_total``); from ``resume_ns`` on, windows and state are
   those of the first run, so alerts repeat exactly (exact duplicates, same id, where the first
   worker had already delivered them after its last commit).

Limits (README, "Fault model"): a recursive STA/LTA converges to the first run's values only up
to ``exp(-state_s / lta_s)`` (40 LTA lengths: 4e-18, below double precision); a trigger that
stays on for longer than the warm-up, or an instrument released for silence
(``buffer.release_silent_s``) just before the restart, may differ.

>>> m = ResumeMark(resume_ns=1_700_000_000_000_000_000, seen_offset=812)
>>> ResumeMark.decode(m.encode()) == m
True
>>> ResumeMark.decode("") is None and ResumeMark.decode("not json") is None
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass

VERSION = 1


@dataclass(frozen=True, slots=True)
class ResumeMark:
    """Stored with a partition's committed offset (see module docs)."""

    resume_ns: int  # windows of the partition starting before this were all delivered
    seen_offset: int  # the committing worker had read every record before this offset

    def encode(self) -> str:
        return json.dumps({"v": VERSION, "resume_ns": self.resume_ns, "seen": self.seen_offset},
                          separators=(",", ":"))

    @staticmethod
    def decode(text: str | None) -> ResumeMark | None:
        """The mark in a commit's metadata; None when there is none or it is not ours (another
        tool's commit, an older version): the re-read then sends everything it cuts."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            if raw.get("v") != VERSION:
                return None
            return ResumeMark(int(raw["resume_ns"]), int(raw["seen"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def replay_before_ns(self, offset: int) -> int:
        """For a record at ``offset``: windows before this time were delivered (0: none)."""
        return self.resume_ns if offset < self.seen_offset else 0
