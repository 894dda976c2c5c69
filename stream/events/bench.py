"""Association benchmark: a synthetic network, a high event rate, noisy and false picks.

``python -m geosentry.stream.events.bench [--stations 1000] [--minutes 10] [--rate-per-min 10]
[--false-per-station-min 1] [--stage [--horizon-s 120] [--update-s 1 | --batch-picks N]
[--settle-margin-s 10] [--fixed-cadence]]``: stations on a grid 20 km apart, events at random
places inside it, P and S picks within 120 km (detected with probability 0.9, Gaussian noise
0.1 s), false picks uniform in time. Reports picks/s of association (offline, or through the
incremental ``EventStage`` with ``--stage``: the service's defaults, picks fed in time order one
``--update-s`` of data time a batch, one update per batch; ``--batch-picks N`` feeds N picks a
batch instead), recall/precision (3 s, 10 km) and peak RSS.
With ``--stage`` it also reports the steady state: the wall time per minute of data over the
second half of the stream (so start-up does not hide a slowdown) and the peak RSS at half-way
and at the end (a stage whose memory is bounded does not grow between them).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time

import numpy as np

from geosentry.stream.events.associate import Associator
from geosentry.stream.events.locate import Projection
from geosentry.stream.events.picks import Pick
from geosentry.stream.events.synthetic import Origin, false_picks, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes
from geosentry.stream.records import NS_PER_S

T0 = 1_700_000_000 * NS_PER_S


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate-per-min", type=float, default=10.0)
    ap.add_argument("--false-per-station-min", type=float, default=1.0)
    ap.add_argument("--stage", action="store_true")
    ap.add_argument("--horizon-s", type=float, default=120.0, help="EventStage horizon_s")
    ap.add_argument("--update-s", type=float, default=1.0,
                    help="data seconds per batch (EventStage update_interval_s)")
    ap.add_argument("--batch-picks", type=int, default=0,
                    help="feed this many picks a batch instead of --update-s of data")
    ap.add_argument("--settle-margin-s", type=float, default=10.0,
                    help="EventStage settle_margin_s (inf: picks never settle, every pick in "
                         "the horizon is searched as a seed at every update)")
    ap.add_argument("--fixed-cadence", action="store_true",
                    help="update every --update-s of data even when updates take longer")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    spacing = 20.0
    inv = grid_network(a.stations, spacing, jitter_km=3.0, seed=a.seed)
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
    half = spacing * (np.sqrt(a.stations) - 1) / 2
    proj = Projection(45.0, 10.0)
    n_ev = int(a.minutes * a.rate_per_min)
    origins = []
    for _ in range(n_ev):
        lat, lon = proj.to_latlon(float(rng.uniform(-half, half)), float(rng.uniform(-half, half)))
        origins.append(Origin(T0 + int(rng.uniform(0, a.minutes * 60) * NS_PER_S), lat, lon,
                              float(rng.uniform(2, 25))))
    picks = [p for k, o in enumerate(origins) for p in picks_for(
        o, inv, tt, noise_s=0.1, max_distance_km=120.0, p_detect=0.9, rng=rng, tag=f"e{k}:")]
    n_true = len(picks)
    picks += false_picks(inv, T0, a.minutes * 60, a.false_per_station_min / 60.0, rng)
    random.Random(a.seed).shuffle(picks)
    assoc = Associator(inv, tt)
    mid: tuple[float, float] | None = None  # (wall clock, peak RSS) at half the data
    fed = 0.0
    t = time.perf_counter()
    if a.stage:
        from geosentry.stream.events.stage import EventStage
        from geosentry.stream.records import Alert, AlertKind, ModelRef

        m = ModelRef("synthetic", "1", "0" * 64)
        stage = EventStage(assoc, horizon_s=a.horizon_s, update_interval_s=a.update_s,
                           adaptive=not a.fixed_cadence, settle_margin_s=a.settle_margin_s)
        order = sorted(picks, key=lambda p: p.time_ns)
        batches = _batches(order, a.batch_picks, int(a.update_s * NS_PER_S))
        fed_how = (f"batches of {a.batch_picks} picks" if a.batch_picks
                   else f"a batch per {a.update_s:g} s of data")
        # the last version of each event, only what the scoring needs (whole alerts would
        # make this process grow with the stream, not the stage)
        last: dict[str, tuple[int, float, float, bool]] = {}

        def keep(al: Alert) -> None:
            o = al.details["origin"]
            last[al.details["event_id"]] = (al.time_ns, o["latitude"], o["longitude"],
                                            al.details["deleted"])

        half_ns = T0 + int(a.minutes * 30 * NS_PER_S)
        for batch in batches:
            if mid is None and batch[0].time_ns >= half_ns:
                mid = (time.perf_counter(), _rss_mb())
            for al in stage.add([Alert(AlertKind.PICK, p.network, p.station, "", "HHZ",
                                       p.time_ns, 1.0, 0.5, m, p.time_ns, p.phase.value)
                                 for p in batch]):
                keep(al)
        fed = time.perf_counter()
        for al in stage.flush():
            keep(al)
        found = [(tn, lat, lon) for tn, lat, lon, deleted in last.values() if not deleted]
    else:
        events, _ = assoc.associate(picks)
        found = [(e.time_ns, e.lat_deg, e.lon_deg) for e in events]
    wall = time.perf_counter() - t
    hit = set()
    for (tn, lat, lon) in found:
        for k, o in enumerate(origins):
            x, y = Projection(o.lat_deg, o.lon_deg).to_xy(np.array([lat]), np.array([lon]))
            if k not in hit and abs(tn - o.time_ns) <= 3 * NS_PER_S and np.hypot(x, y)[0] <= 10:
                hit.add(k)
                break
    rss_mb = _rss_mb()
    print(f"stations {a.stations}, {a.minutes:g} min of data, {n_ev} events "
          f"({a.rate_per_min:g}/min), {n_true} event picks + {len(picks) - n_true} false picks; "
          f"{f'EventStage ({fed_how}, horizon {a.horizon_s:g} s)' if a.stage else 'offline'}: "
          f"{wall:.1f} s wall = {len(picks) / wall:,.0f} picks/s "
          f"({a.minutes * 60 / wall:.1f}x real time); events {len(found)}, recall "
          f"{len(hit) / max(n_ev, 1):.3f}, precision {len(hit) / max(len(found), 1):.3f}; "
          f"peak RSS {rss_mb:.0f} MB")
    if a.stage:
        print(f"updates {stage.updates} ({stage.slow_updates} after one slower than "
              f"{a.update_s:g} s: later), {a.minutes * 60 / max(stage.updates, 1):.2f} s of data "
              f"per update on average")
    if mid is not None:
        per_min = (fed - mid[0]) / (a.minutes / 2)
        print(f"steady state (data minutes {a.minutes / 2:g}-{a.minutes:g}): {fed - mid[0]:.1f} s "
              f"wall = {per_min:.1f} s per minute of data ({60 / per_min:.1f}x real time); "
              f"peak RSS {mid[1]:.0f} MB at half-way, {rss_mb:.0f} MB at the end")
    return 0


def _batches(order: list[Pick], n_picks: int, step_ns: int) -> list[list[Pick]]:
    """Time-ordered picks cut into batches of ``n_picks``, or of ``step_ns`` of data time."""
    if n_picks:
        return [order[i:i + n_picks] for i in range(0, len(order), n_picks)]
    out: list[list[Pick]] = []
    for p in order:
        if out and p.time_ns < out[-1][0].time_ns - out[-1][0].time_ns % step_ns + step_ns:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
