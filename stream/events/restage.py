"""The events stage alone, again, on the pick alerts of a paced replay kept with
``python -m geosentry.stream.events.latency --keep DIR`` (``latency --restage DIR``).

Each pick alert reaches a fresh ``EventStage`` (built from the run's own ``latency.toml``) at its
own ``emitted_at``, mapped to data time with the run's replay clock; between picks, data time
advances as the run's windows did (every ``tick_s`` of wall time, to the wall time minus the
replay clock minus the picks' median processing delay, ``latency_s``), so updates come at the
configured cadence. The stage's event alerts are stamped with the wall time of the batch that
made them, as the run's are, and measured by ``latency.measure`` like the run's own. Seconds,
not minutes: no picker, no waveforms, hence no magnitudes (``magnitude_s`` is not measured).

Cadence: updates at ``update_interval_s`` of data time exactly (``adaptive=False``), so the
result does not depend on this machine's load; the run spaced its updates only where one took
longer than the interval (its log's ``slow_updates`` line).
"""

from __future__ import annotations

import json
import statistics
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geosentry.stream.events.associate import Associator
from geosentry.stream.events.picks import Amplitude, Pick
from geosentry.stream.events.types import Event
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef

#: wall time between the stage's calls when no pick comes (the run's batches come every few
#: tens of ms: windows of some 40 stations every 0.5 s)
TICK_S = 0.05


class _Memo(Associator):
    """``Associator`` whose result for the same picks and settled picks as its last call is
    that call's (association depends on these alone): an update with nothing new costs
    nothing, so the stage's idle updates every ``update_interval_s`` are free here."""

    _last: tuple[object, tuple[list[Event], list[Pick]], dict[str, tuple[str, ...]]] | None = None

    def associate(self, picks: list[Pick], amplitudes: list[Amplitude] = (),  # type: ignore[assignment]
                  settled: Mapping[str, tuple[str, ...]] | None = None,
                  fruitless: dict[str, tuple[str, ...]] | None = None
                  ) -> tuple[list[Event], list[Pick]]:
        key = (tuple(p.id for p in picks), tuple(sorted((settled or {}).items())),
               tuple(a.id for a in amplitudes))
        if self._last is None or self._last[0] != key:
            got: dict[str, tuple[str, ...]] = {}
            self._last = (key, super().associate(picks, amplitudes, settled, got), got)
        if fruitless is not None:
            fruitless.update(self._last[2])
        return self._last[1]


def pick_alert(d: dict[str, Any], unrefine: bool = False) -> Alert:
    """A pick alert of ``alerts.jsonl`` as the stage saw it (its id reproduced); ``unrefine``:
    moved back to the model's pick where the picker's onset refinement moved it
    (``details.moved_s``; ``stream/inference/refine.py``), its id that of the unmoved pick."""
    from geosentry.stream.events.latency import _ns

    m = d["model"]
    emitted = _ns(d["emitted_at"])
    a = Alert(kind=AlertKind(d["kind"]), network=d["network"], station=d["station"],
              location=d["location"], channel=d["channel"], time_ns=_ns(d["time"]),
              score=float(d["score"]), threshold=float(d["threshold"]),
              model=ModelRef(m["name"], m["version"], m["sha256"]),
              newest_arrival_ns=emitted - int(round(float(d["latency_s"]) * NS_PER_S)),
              phase=d["phase"], details=d["details"], emitted_ns=emitted)
    if a.id != d["id"]:
        raise SystemExit(f"restage: pick alert {d['id']} does not reproduce its id ({a.id})")
    if unrefine and "moved_s" in a.details:
        details = dict(a.details)
        a.time_ns -= int(round(float(details.pop("moved_s")) * NS_PER_S))
        details.pop("onset", None)
        a.details = details
    return a


def restage(work: Path, tick_s: float = TICK_S, update_s: float | None = None,
            unrefine: bool = False) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """The run kept in ``work`` replayed through the events stage alone: its pick alerts and
    the stage's new event alerts (as ``alerts.jsonl`` dicts), the replay clock (wall minus data
    time, ns) and the stage's counters. ``unrefine``: the P picks where the picker's model put
    them (:func:`pick_alert`)."""
    from geosentry.stream.events.latency import read_run
    from geosentry.stream.events.settings import parse_stations
    from geosentry.stream.events.stage import EventStage

    alerts, offset_ns = read_run(work)
    raw = tomllib.loads((work / "latency.toml").read_text())
    cfg = parse_stations(raw["stations"])
    tt = cfg.travel_times()
    assoc = _Memo(cfg.stations, tt, cfg.associator_config(), cfg.ml_scale)
    stage = EventStage(assoc, cfg.horizon_s, update_s or cfg.update_interval_s, cfg.max_picks,
                       settle_margin_s=cfg.settle_margin_s, adaptive=False)
    picks = sorted((pick_alert(d, unrefine) for d in alerts if d["kind"] == "pick"),
                   key=lambda a: (a.emitted_ns, a.id))
    if not picks:
        raise SystemExit(f"restage: no pick alerts in {work / 'alerts.jsonl'}")
    lag_ns = int(statistics.median(a.emitted_ns - a.newest_arrival_ns for a in picks))
    tick_ns = int(tick_s * NS_PER_S)
    out = ([_stamped(a, a.emitted_ns) for a in picks] if unrefine
           else [d for d in alerts if d["kind"] == "pick"])
    i, wall = 0, picks[0].emitted_ns
    while i < len(picks):
        batch = []
        while i < len(picks) and picks[i].emitted_ns <= wall:
            if assoc.inventory.lookup(picks[i].network, picks[i].station) is not None:
                batch.append(picks[i])
            i += 1
        new = stage.add(batch) if batch else []
        new += stage.advance(wall - offset_ns - lag_ns)
        out += [_stamped(a, wall) for a in new]
        nxt = picks[i].emitted_ns if i < len(picks) else wall
        wall = min(wall + tick_ns, nxt) if nxt > wall else wall + tick_ns
    end = wall + int(cfg.horizon_s * NS_PER_S)  # data time runs on: events become final
    while stage.pick_ids:
        wall += tick_ns * 10
        out += [_stamped(a, wall) for a in stage.advance(wall - offset_ns - lag_ns)]
        if wall > end:
            out += [_stamped(a, wall) for a in stage.flush()]
            break
    counts = {"updates": stage.updates, "late_picks": stage.late_picks,
              "pick_alerts": len(picks)}
    return out, offset_ns, counts


def _stamped(a: Alert, wall_ns: int) -> dict[str, Any]:
    a.emitted_ns = wall_ns
    d: dict[str, Any] = json.loads(a.to_json())
    return d
