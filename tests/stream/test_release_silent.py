"""``buffer.release_silent_s`` after an outage of the source: when every station's records stop
(a broker down longer than the limit) and come back, a station whose next record arrives a
moment after the others' is not silent; a station that stays quiet while the others' data moves
on is released as before. Found by the 120 s broker-kill fault test (issue #16): released
stations restarted afresh and an alert was lost."""

from __future__ import annotations

from geosentry.stream.buffer.windows import Windower, WindowSpec
from geosentry.stream.config import BufferConfig
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.records import NS_PER_S, Record
from geosentry.stream.testing import mseed_records, synthetic_trace

LIMIT_S = 20.0


def _records(station: str, seed: int) -> list[Record]:
    recs = [r for p in mseed_records(synthetic_trace(f"XX.{station}..HHZ", 240.0, seed=seed))
            for r in decode_payload(p, 0)]
    return sorted(recs, key=lambda r: r.start_ns)


def _released(w: Windower) -> list[str]:
    _, events = w.release_silent()
    return [e.sid.split("?")[0] for e in events if e.sid.endswith("?")]


def test_an_outage_of_the_whole_input_is_nobodys_silence() -> None:
    from dataclasses import replace

    a, b = _records("A", 1), _records("B", 2)
    t0 = a[0].start_ns
    w = Windower([WindowSpec("d", ("Z",), 10.0, 5.0)], BufferConfig(release_silent_s=LIMIT_S),
                 live=False)

    def arrive(rec: Record, outage_s: float = 0.0) -> None:  # live: arrival = data end (+ outage)
        w.push(replace(rec, arrival_ns=rec.end_ns + int(outage_s * NS_PER_S)))

    def upto(recs: list[Record], t_s: float) -> list[Record]:
        return [r for r in recs if r.end_ns <= t0 + t_s * NS_PER_S]

    before = sorted(upto(a, 60) + upto(b, 60), key=lambda r: r.end_ns)
    for r in before:
        arrive(r)
    assert _released(w) == []
    # the broker is down for 3 x the limit; A's next record comes back first, B's a moment later
    a_after = [r for r in a if r not in before]
    arrive(a_after[0], outage_s=3 * LIMIT_S)
    assert _released(w) == [], "B is not silent: nobody's data moved on during the outage"
    b_after = [r for r in b if r not in before]
    arrive(b_after[0], outage_s=3 * LIMIT_S)
    assert not any(k.station == "B" for k in w.instruments) or _released(w) == []
    # now B goes quiet while A's data moves on past the limit: released, as before
    for r in a_after[1:]:
        arrive(r, outage_s=3 * LIMIT_S)
        if r.end_ns > b_after[0].end_ns + 2 * LIMIT_S * NS_PER_S:
            break
    assert _released(w) == ["XX.B..HH"]
