"""The events stage's data time, robust to a station whose clock is wrong.

``EventStage`` keeps picks within ``horizon_s`` of its data time and calls older ones late. Its
data time was the newest pick or window seen, so one station whose clock ran an hour ahead (a
digitiser that lost GPS, a replayed archive with one mis-dated channel) put it an hour ahead:
every other station's picks were then late and no event was found again for that hour (a
synthetic network: 0 of 6 events, 599 picks late). In a live feed the buffer's
``max_future_s`` refuses records dated ahead of the wall clock; a replay has no wall clock to
hold them to.

So where the service reports each station's progress (the end of its newest window), data
time is the newest progress that ``quorum`` stations have reached (``min_stations`` - 1 in
the stage: fewer stations than that cannot make an event). One station whose clock is ahead,
or up to ``quorum`` - 1 of them, cannot move it; stations that stopped reporting do not hold
it back. Without station progress (a pick file, ``restage``, tests) it is the newest pick or
clock reading, as before. It never goes back.

>>> c = DataClock(horizon_ns=120, quorum=3)
>>> for key, end in (("A", 1000), ("B", 1001), ("C", 999), ("DEAD", 5), ("BAD", 1_000_000)):
...     c.station(key, end)
>>> c.now()  # the 3rd newest: neither BAD nor DEAD moves it
1000
>>> c.ahead(1_000_000)
True
"""

from __future__ import annotations

import heapq


class DataClock:
    def __init__(self, horizon_ns: int, quorum: int) -> None:
        self.horizon_ns = horizon_ns
        self.quorum = max(1, quorum)
        self._stations: dict[str, int] = {}  # station key -> newest window end
        self._newest: int | None = None  # newest pick or clock reading
        self._now: int | None = None

    def station(self, key: str, end_ns: int) -> None:
        """A window of station ``key`` ended at ``end_ns``."""
        if end_ns > self._stations.get(key, end_ns - 1):
            self._stations[key] = end_ns
            self._now = None

    def saw(self, t_ns: int) -> None:
        """A pick at ``t_ns``, or data time ``t_ns`` reported without a station (where there
        are stations, their progress alone is data time: nothing to recompute)."""
        if self._newest is None or t_ns > self._newest:
            self._newest = t_ns

    def now(self) -> int | None:
        """Data time (see the module doc); None before anything was seen."""
        if self._now is None:
            if not self._stations:
                return self._newest
            self._now = heapq.nlargest(self.quorum, self._stations.values())[-1]
        return self._now

    def ahead(self, t_ns: int) -> bool:
        """Whether ``t_ns`` lies more than ``horizon_ns`` past data time, where the stations'
        progress tells it (a pick from a station whose clock is ahead)."""
        now = self.now()
        return bool(self._stations) and now is not None and t_ns > now + self.horizon_ns
