"""Event alerts across a worker's crash, on the real broker: ``geosentry run`` with the events
stage (``deploy/events/iceland.toml``: picker -> association -> location -> ML) reads the
Iceland 2014 swarm from Kafka, is SIGKILLed mid-stream and restarted in the same consumer group.

The restarted worker re-reads from its last commit, which the events stage keeps at its oldest
pick (``stream/events/service.py``), and associates those picks again in other batches. Held
against the no-fault run of the same input:

* no alert id comes twice with different content (consumers that drop repeated ids lose
  nothing): event alert ids derive from event id, update and content;
* no pick alert is lost;
* no earthquake is lost: each event standing at the end of the no-fault run (the highest
  ``update`` of its id, ``stream/events/stage.py``) has one standing after the restart that
  holds at least half its picks.

Known and not held (README, Fault model): an event whose first version after the restart
holds an earlier pick than its first version before gets another id, and the old id stays
standing beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from geosentry.stream.testing import publish
from tests.integration.test_worker_restart import _killed_and_restarted, _no_fault, _strip

pytestmark = [pytest.mark.kafka, pytest.mark.shared]
SWARM = "events/iceland-2014-dike"


def _records(root: Path, late_s: dict[str, float] | None = None) -> list[tuple[bytes, bytes]]:
    """The swarm's cuts merged per channel, as 512-byte miniSEED records keyed ``NET.STA``, in
    the order of their last samples (as a live feed interleaves them); ``late_s``: stations
    whose records are dated that much late (a clock ahead), in the same place of the feed."""
    from obspy import Stream, read

    from geosentry.stream.decode.mseed import decode_payload, encode_traces

    st = Stream()
    for f in sorted((root / "events").glob("*.m")):
        st += read(str(f))
    st.merge(method=1)  # the cuts overlap with identical samples
    out = []
    for tr in st.split():
        tr.data = tr.data.astype("int32")
        key = f"{tr.stats.network}.{tr.stats.station}".encode()
        shift_s = (late_s or {}).get(tr.stats.station, 0.0)
        tr.stats.starttime += shift_s
        out += [(decode_payload(p, 0)[0].end_ns - int(shift_s * 1e9), key, p)
                for p in encode_traces(tr)]
    return [(key, p) for _, key, p in sorted(out, key=lambda t: (t[0], t[1]))]


def _config(root: Path, folder: Path) -> Path:
    """``deploy/events/iceland.toml`` with the swarm at ``root``, written in ``folder``."""
    text = (Path(__file__).resolve().parents[2] / "deploy" / "events" / "iceland.toml").read_text()
    text = text.replace('"../shared/data/events/iceland-2014-dike', f'"{root}')
    path = folder / "events.toml"
    path.write_text("shutdown_timeout_s = 30.0\n" + text)
    return path


def _newest(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each event id's newest state: its alert with the highest update."""
    out: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a["kind"] != "event":
            continue
        eid = a["details"]["event_id"]
        if eid not in out or a["details"]["update"] > out[eid]["details"]["update"]:
            out[eid] = a
    return out


def _standing(alerts: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {tuple(a["details"]["pick_ids"]) for a in _newest(alerts).values()
            if not a["details"]["deleted"]}


def test_sigkill_and_restart_keeps_every_event_alert(kafka_bootstrap: str, topic_name: str,
                                                     tmp_path: Path,
                                                     shared_data: Callable[[str], Path]) -> None:
    root = shared_data(SWARM)
    cfg, waves = _config(root, tmp_path), f"{topic_name}-waves"

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Path]]:
        records = _records(root)
        total = len(records)
        await publish(kafka_bootstrap, waves, records)
        want = await _no_fault(kafka_bootstrap, waves, f"{topic_name}-base", cfg, total)
        # killed after reading half the input and a commit: events are open then
        got, logs = await _killed_and_restarted(kafka_bootstrap, waves, f"{topic_name}-fault",
                                                cfg, total, (0.5,))
        return want, got, logs

    want, got, logs = asyncio.run(run())
    events_want = [a for a in want if a["kind"] == "event"]
    assert len(_standing(want)) >= 10, f"the no-fault run found too few events: {len(events_want)}"
    sent: dict[str, str] = {}
    for a in got:
        assert sent.setdefault(a["id"], _strip(a)) == _strip(a), \
            f"alert id {a['id']} sent twice with different content ({a['kind']})"
    picks_want = {a["id"] for a in want if a["kind"] == "pick"}
    lost = picks_want - {a["id"] for a in got if a["kind"] == "pick"}
    assert not lost, f"{len(lost)} of {len(picks_want)} pick alerts lost"
    assert "resumes at offset" in logs[1].read_text(), "the restart found no resume mark"
    # no earthquake lost: each event standing at the end of the no-fault run shares at least
    # half its picks with one standing after the restart (the stage's final versions are not
    # the same from run to run: three no-fault runs of this input differed in 2-3 of 15-16)
    after = [set(a["details"]["pick_ids"]) for a in _newest(got).values()
             if not a["details"]["deleted"]]
    for w in _newest(want).values():
        if not w["details"]["deleted"]:
            mine = set(w["details"]["pick_ids"])
            assert any(2 * len(mine & g) >= len(mine) for g in after), \
                f"event at {w['details']['origin']['time']} lost after the restart"
    # known, not held: an event the killed worker had sent whose first version after the
    # restart holds an earlier pick gets another id; the old id is left standing (README, Fault
    # model: 1 such pair in each of 3 runs)
    twice = sum(1 for i, a in enumerate(after) for b in after[i + 1:] if a & b)
    repeats = len(got) - len({a["id"] for a in got})
    print(f"{len(events_want)} event alerts without the fault, {len(_standing(want))} events; "
          f"{sum(a['kind'] == 'event' for a in got)} with it; {repeats} exact repeats; "
          f"{twice} events standing twice under two ids")
