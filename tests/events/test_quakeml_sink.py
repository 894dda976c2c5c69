"""``quakeml:DIR``: one QuakeML file per event from event alerts (update rewrites, deletion
removes), read back with ObsPy; start-up errors; the real Iceland replay's events written."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import obspy
import pytest

from geosentry.stream.errors import ConfigError, SinkError
from geosentry.stream.events.associate import Associator
from geosentry.stream.events.picks import Amplitude
from geosentry.stream.events.quakeml import event_from_details
from geosentry.stream.events.stage import EventStage
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef
from geosentry.stream.sinks import open_sink

PICKER = ModelRef("picker", "1", "0" * 64)
T0 = 1_700_000_000 * NS_PER_S


def _event_alerts() -> list[Alert]:
    inv = grid_network(25, 15.0, seed=4)
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
    picks = picks_for(Origin(T0, 45.1, 10.1, 8.0), inv, tt, noise_s=0.02,
                      rng=np.random.default_rng(0))
    picks.sort(key=lambda p: p.time_ns)

    def measure(ev: object) -> object:  # a fixed WA amplitude per station, and an Mpd
        from dataclasses import replace

        amps = [Amplitude(f"a{i}", a.pick.network, a.pick.station, 500.0, None,  # type: ignore[attr-defined]
                          a.pick.time_ns) for i, a in enumerate(ev.arrivals)]  # type: ignore[attr-defined]
        ev = stage.assoc.with_magnitude(ev, amps)  # type: ignore[arg-type]
        return replace(ev, extra={"magnitudes": [  # type: ignore[type-var]
            {"type": "Mpd", "value": 2.5, "station_count": 4, "window_s": 3.0}]})

    stage = EventStage(Associator(inv, tt), measure=measure)  # type: ignore[arg-type]
    out: list[Alert] = []
    for i in range(0, len(picks), 6):  # the event grows: new version each batch
        out += stage.add([Alert(AlertKind.PICK, p.network, p.station, "", "HHZ", p.time_ns, 0.9,
                                0.3, PICKER, p.time_ns, phase=p.phase.value)
                          for p in picks[i:i + 6]])
    return out + stage.flush()


def test_one_file_per_event_rewritten_on_update_removed_on_deletion(tmp_path: Path) -> None:
    alerts = _event_alerts()
    assert len(alerts) >= 2 and alerts[-1].details["update"] >= 1
    sink = open_sink(f"quakeml:{tmp_path}")

    async def go() -> None:
        await sink.start()
        for a in alerts[:-1]:
            await sink.send([a])
        first = (tmp_path / f"{alerts[0].details['event_id']}.xml").read_bytes()
        await sink.send([alerts[-1]])
        assert (tmp_path / f"{alerts[0].details['event_id']}.xml").read_bytes() != first
        await sink.send([Alert(AlertKind.PICK, "XX", "A", "", "HHZ", T0, 1.0, 0.3, PICKER, T0,
                               phase="P")])  # not an event: not written
        await sink.stop()

    asyncio.run(go())
    files = sorted(os.listdir(tmp_path))
    last = alerts[-1].details
    assert files == [f"{last['event_id']}.xml"]
    cat = obspy.read_events(str(tmp_path / files[0]))
    ev = cat[0]
    o = ev.preferred_origin()
    assert o.time.ns == alerts[-1].time_ns // 1000 * 1000
    assert len(ev.picks) == last["phase_count"] == len(o.arrivals)
    assert {m.magnitude_type for m in ev.magnitudes} == {"ML", "Mpd"}
    assert ev.preferred_magnitude().magnitude_type == "ML"
    assert len(ev.amplitudes) == len(ev.station_magnitudes) == last["station_count"]
    assert str(o.resource_id).endswith(f"{last['event_id']}/{last['update']}")
    # the details read back are the event summarised again
    assert event_from_details(last).summary() == {k: v for k, v in last.items()
                                                   if k != "deleted"}
    # deletion removes the file
    deleted = Alert(AlertKind.EVENT, "XX", "*", "", "", alerts[-1].time_ns, 4.0, 4.0, PICKER, 0,
                    details={**last, "deleted": True, "update": last["update"] + 1})

    async def delete() -> None:
        await sink.start()
        await sink.send([deleted])

    asyncio.run(delete())
    assert os.listdir(tmp_path) == []


def test_an_older_version_does_not_replace_the_newest(tmp_path: Path) -> None:
    """After a restart a worker re-sends versions of the events it had open, with lower
    ``update`` numbers than the last ones it sent (``EventStage._version``): the file keeps
    the newest state, also for a sink started anew (it reads the update from the file), and
    within one batch the highest update wins whatever the order."""
    alerts = [a for a in _event_alerts() if not a.details["deleted"]]
    assert len(alerts) >= 3
    newest, older = alerts[-1], alerts[:-1]
    assert all(a.details["update"] < newest.details["update"] for a in older)
    path = tmp_path / f"{newest.details['event_id']}.xml"

    def update_in_file() -> str:
        return str(obspy.read_events(str(path))[0].preferred_origin().resource_id).rsplit("/", 1)[1]

    async def go() -> None:
        sink = open_sink(f"quakeml:{tmp_path}")
        await sink.start()
        await sink.send([newest, older[0]])  # one batch, the newest first
        assert update_in_file() == str(newest.details["update"])
        await sink.send([older[1]])
        await sink.stop()
        restarted = open_sink(f"quakeml:{tmp_path}")  # knows nothing but the file
        await restarted.start()
        await restarted.send(older)
        assert update_in_file() == str(newest.details["update"])
        stale = Alert(AlertKind.EVENT, "XX", "*", "", "", newest.time_ns, 4.0, 4.0, PICKER, 0,
                      details={**older[0].details, "deleted": True})
        await restarted.send([stale])  # a deletion older than the file's version
        assert path.exists()
        await restarted.stop()

    asyncio.run(go())


def test_start_up_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="not a folder"):
        asyncio.run(open_sink(f"quakeml:{tmp_path / 'missing'}").start())
    with pytest.raises(ConfigError, match="quakeml:DIR"):
        open_sink("quakeml2:/x")
