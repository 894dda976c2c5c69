"""Evaluation of association, location and ML against reference catalogues.

``geosentry evaluate events [--dataset nz|iceland|all] [--seed N] [--markdown]`` (or
``python -m geosentry.stream.events.evaluate``):

* ``nz``: ObsPy's bundled ``select.out`` (50 New Zealand events, VUW analyst P/S picks and IAML
  amplitudes) with ``../shared/data/events/nz-2013-alpine-fault/STATION0.HYP`` (stations, model,
  SEISAN ML constants). All picks are pooled and shuffled before association.
* ``iceland``: the automatic picks (QuakeMigrate) and Wood-Anderson amplitudes of the 27
  events of ``../shared/data/events/iceland-2014-dike`` with its ``stations.csv`` and
  ``vmodel.txt``; amplitudes are read as mm of WA trace (ground nm = mm * 1e6 / 2080), ML with
  the default IASPEI scale (QuakeMigrate's reference ML uses its own Iceland scale).

An event matches a reference event within 3 s and 10 km (one to one, closest in time first).
Reference events within 3 s and 10 km of each other whose shared picks agree within 0.25 s
(median) are one earthquake located twice (the first two of ``select.out``, and others): recall
counts such a group once, and a second event matching it is neither a hit nor a false event.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from geosentry.stream.events.associate import AssociatorConfig, Associator
from geosentry.stream.events.magnitude import MLScale
from geosentry.stream.events.picks import Amplitude, Phase, Pick, pick_id
from geosentry.stream.events.stations import Inventory, read_inventory
from geosentry.stream.events.velocity import TravelTimes, VelocityModel, read_velocity_model

MATCH_S = 3.0
MATCH_KM = 10.0


@dataclass
class RefEvent:
    time_ns: int
    lat_deg: float
    lon_deg: float
    depth_km: float
    ml: float | None
    name: str
    picks: dict[tuple[str, str], int]


@dataclass
class Dataset:
    name: str
    picks: list[Pick]
    amps: list[Amplitude]
    inventory: Inventory
    model: VelocityModel
    ml: MLScale
    reference: list[RefEvent]
    source: str
    #: the reference's modelled arrival times (every station, picked or not), where it has them
    modelled: list[Pick] = field(default_factory=list)


def shared_data_dir() -> Path:
    env = os.environ.get("GEOSENTRY_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def select_out_path() -> Path:
    import obspy

    return Path(obspy.__file__).parent / "io" / "nordic" / "tests" / "data" / "select.out"


def load_nz(shared: Path) -> Dataset:
    import obspy

    from geosentry.stream.events.quakeml import picks_from_catalog
    from geosentry.stream.events.seisan import read_station0

    cat = obspy.read_events(str(select_out_path()))
    s0 = read_station0(shared / "events" / "nz-2013-alpine-fault" / "STATION0.HYP")
    picks, amps = picks_from_catalog(cat)
    ref = []
    for ev in cat:
        o = ev.preferred_origin() or ev.origins[0]
        m = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        ref.append(RefEvent(int(o.time.ns), o.latitude, o.longitude, o.depth / 1000.0,
                            m.mag if m else None, str(o.time),
                            {(p.waveform_id.station_code, p.phase_hint): int(p.time.ns)
                             for p in ev.picks if p.phase_hint in ("P", "S")}))
    return Dataset("nz", picks, amps, s0.inventory, s0.model, s0.ml, ref,
                   "ObsPy select.out + STATION0.HYP")


def load_iceland(shared: Path) -> Dataset:
    from obspy import UTCDateTime

    root = shared / "events" / "iceland-2014-dike"
    inv = read_inventory(root / "stations.csv")
    model = read_velocity_model(root / "vmodel.txt")
    picks: list[Pick] = []
    amps: list[Amplitude] = []
    ref: list[RefEvent] = []
    modelled: list[Pick] = []
    for ev_file in sorted((root / "events").glob("*.event")):
        stem = ev_file.with_suffix("")
        with ev_file.open() as f:
            for r in csv.DictReader(f):
                ref.append(RefEvent(int(UTCDateTime(r["DT"]).ns), float(r["Y"]), float(r["X"]),
                                    float(r["Z"]), float(r["ML"]) if r.get("ML") else None,
                                    r["EventID"], {}))
        with stem.with_suffix(".picks").open() as f:
            for r in csv.DictReader(f):
                m = int(UTCDateTime(r["ModelledTime"]).ns)
                modelled.append(Pick(pick_id("", r["Station"], r["Phase"], m), "", r["Station"],
                                     Phase(r["Phase"][:1]), m))
                if r["PickTime"].strip() == "-1":
                    continue
                t = int(UTCDateTime(r["PickTime"]).ns)
                picks.append(Pick(pick_id("", r["Station"], r["Phase"], t), "", r["Station"],
                                  Phase(r["Phase"][:1]), t))
        with stem.with_suffix(".amps").open() as f:
            for r in csv.DictReader(f):
                sta = r["id"].split(".")[1]
                if r["S_amp"] in ("", "-1") or not r["id"].endswith(("E", "N")):
                    continue
                nm = float(r["S_amp"]) * 1e6 / 2080.0
                t = int(UTCDateTime(r["S_time"]).ns)
                amps.append(Amplitude(f"{stem.name}.{r['id']}", "", sta, nm, None, t))
    return Dataset("iceland", picks, amps, inv, model, MLScale(), ref,
                   "iceland-2014-dike picks (QuakeMigrate, automatic)", modelled)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from obspy.geodetics import gps2dist_azimuth

    return float(gps2dist_azimuth(lat1, lon1, lat2, lon2)[0]) / 1000.0


class Located(Protocol):
    """An origin to match: a geosentry ``Event``, a ``RefEvent`` or another associator's."""

    @property
    def time_ns(self) -> int: ...
    @property
    def lat_deg(self) -> float: ...
    @property
    def lon_deg(self) -> float: ...


def _close(a: Located, b: Located) -> bool:
    return (abs(a.time_ns - b.time_ns) / 1e9 <= MATCH_S
            and _km(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg) <= MATCH_KM)


def _same_earthquake(a: RefEvent, b: RefEvent) -> bool:
    """Located twice: close, and the picks both have agree within 0.25 s (median)."""
    common = [abs(a.picks[k] - b.picks[k]) / 1e9 for k in a.picks.keys() & b.picks.keys()]
    return _close(a, b) and bool(common) and statistics.median(common) <= 0.25


def reference_groups(reference: Sequence[RefEvent]) -> list[int]:
    """Each reference event's group: the first of the events that are one earthquake."""
    groups: list[int] = []
    for i, r in enumerate(reference):
        same = [groups[j] for j in range(i) if _same_earthquake(reference[j], r)]
        groups.append(same[0] if same else i)
    return groups


def match_events(found: Sequence[Located], reference: Sequence[RefEvent],
                 groups: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """(found index, reference index) pairs within ``MATCH_S`` and ``MATCH_KM``, one to one
    (one per earthquake group), closest in time first."""
    groups = reference_groups(reference) if groups is None else groups
    pairs = sorted(((abs(e.time_ns - r.time_ns), ei, ri) for ei, e in enumerate(found)
                    for ri, r in enumerate(reference) if _close(e, r)))
    ev_used: set[int] = set()
    grp_used: set[int] = set()
    out: list[tuple[int, int]] = []
    for _, ei, ri in pairs:
        if ei in ev_used or groups[ri] in grp_used:
            continue
        ev_used.add(ei)
        grp_used.add(groups[ri])
        out.append((ei, ri))
    return out


def evaluate(ds: Dataset, seed: int = 0, config: AssociatorConfig | None = None
             ) -> dict[str, Any]:
    picks = list(ds.picks)
    random.Random(seed).shuffle(picks)
    amps = list(ds.amps)
    random.Random(seed + 1).shuffle(amps)
    tt = TravelTimes(ds.model, max_distance_km=250.0, max_depth_km=40.0)
    assoc = Associator(ds.inventory, tt, config, ds.ml)
    t0 = time.perf_counter()
    events, rest = assoc.associate(picks, amps)
    wall = time.perf_counter() - t0
    groups = reference_groups(ds.reference)
    pairs = match_events(events, ds.reference, groups)
    ev_used = {ei for ei, _ in pairs}
    grp_used = {groups[ri] for _, ri in pairs}
    matches = [(events[ei], ds.reference[ri]) for ei, ri in pairs]
    n_ref = len(set(groups))
    epi = [_km(e.lat_deg, e.lon_deg, r.lat_deg, r.lon_deg) for e, r in matches]
    epi_in = [d for d, (e, _) in zip(epi, matches) if e.gap_deg < 180.0]
    dz = [abs(e.depth_km - r.depth_km) for e, r in matches]
    dml = [e.ml - r.ml for e, r in matches if e.ml is not None and r.ml is not None]
    missed = [r for i, r in enumerate(ds.reference) if groups[i] not in grp_used
              and groups[i] == i]
    extra = [e for i, e in enumerate(events) if i not in ev_used]
    return {
        "dataset": ds.name, "source": ds.source, "picks": len(ds.picks), "seed": seed,
        "reference_events": len(ds.reference), "reference_earthquakes": n_ref,
        "events": len(events), "matched": len(matches),
        "precision": len(matches) / len(events) if events else 0.0,
        "recall": len(matches) / n_ref if n_ref else 0.0,
        "median_epicentral_km": statistics.median(epi) if epi else math.nan,
        "median_epicentral_km_gap_lt_180": statistics.median(epi_in) if epi_in else math.nan,
        "n_gap_lt_180": len(epi_in),
        "median_depth_error_km": statistics.median(dz) if dz else math.nan,
        "ml_residual_mean": statistics.fmean(dml) if dml else math.nan,
        "ml_residual_std": statistics.pstdev(dml) if len(dml) > 1 else math.nan,
        "n_ml": len(dml), "unassociated_picks": len(rest), "wall_s": wall,
        "picks_per_s": len(ds.picks) / wall if wall > 0 else math.inf,
        "missed": [f"{r.name} ({r.lat_deg:.3f}, {r.lon_deg:.3f}, {r.depth_km:.1f} km)"
                   for r in missed],
        "unmatched": [f"{e.summary()['origin']['time']} ({e.lat_deg:.3f}, {e.lon_deg:.3f}, "
                      f"{e.depth_km:.1f} km{' = the depth bound' if tt.at_bottom(e.depth_km) else ''}"
                      f", {e.n_stations} stations, rms {e.rms_s:.2f} s)" for e in extra],
    }


def markdown(results: list[dict[str, Any]]) -> str:
    head = ("| data set (seed) | picks | reference events (earthquakes) | events | precision "
            "| recall | median epicentral error, all (gap < 180°) | median depth error | ML "
            "residual mean ± std (n) | association time |\n| --- | --- | --- | --- | --- | --- "
            "| --- | --- | --- | --- |")
    rows = [head]
    for r in results:
        rows.append(
            f"| {r['source']} ({r['seed']}) | {r['picks']} | {r['reference_events']} "
            f"({r['reference_earthquakes']}) | {r['events']} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['median_epicentral_km']:.2f} km "
            f"({r['median_epicentral_km_gap_lt_180']:.2f} km, n={r['n_gap_lt_180']}) | "
            f"{r['median_depth_error_km']:.2f} km | {r['ml_residual_mean']:+.2f} ± "
            f"{r['ml_residual_std']:.2f} ({r['n_ml']}) | {r['wall_s']:.2f} s |")
    return "\n".join(rows)


def event_versions(alerts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A run's event alerts (JSON objects) by event id, in ``update`` order (the newest state
    last; the order sent where equal): a file appended to by a restarted worker holds
    re-sent versions with lower updates after the newer ones (``EventStage._version``).

    >>> v = lambda u: {"kind": "event", "details": {"event_id": "e", "update": u}}
    >>> [a["details"]["update"] for a in event_versions([v(900), v(4000), v(2500)])["e"]]
    [900, 2500, 4000]
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        if a["kind"] == "event":
            out.setdefault(a["details"]["event_id"], []).append(a)
    return {k: sorted(vs, key=lambda a: int(a["details"]["update"])) for k, vs in out.items()}


def score_alerts(ds: Dataset, path: Path) -> str:
    """A run's final event alerts (the last version of each event id, deleted ones left out)
    against ``ds``'s reference, matched as ``evaluate`` matches: one line."""
    import json
    from types import SimpleNamespace

    from obspy import UTCDateTime

    alerts = [json.loads(line) for line in path.read_text().splitlines()]
    picks = sum(a["kind"] == "pick" for a in alerts)
    found = [SimpleNamespace(time_ns=int(UTCDateTime(o["time"]).ns), lat_deg=o["latitude"],
                             lon_deg=o["longitude"])
             for vs in event_versions(alerts).values() if not vs[-1]["details"]["deleted"]
             for o in [vs[-1]["details"]["origin"]]]
    pairs = match_events(found, ds.reference)
    n_ref = len(set(reference_groups(ds.reference)))
    epi = [_km(found[e].lat_deg, found[e].lon_deg, ds.reference[r].lat_deg,
               ds.reference[r].lon_deg) for e, r in pairs]
    return (f"{ds.name}: {picks} picks, {len(found)} events, {len(pairs)} of {n_ref} reference "
            f"earthquakes matched: precision {len(pairs) / max(1, len(found)):.2f}, recall "
            f"{len(pairs) / max(1, n_ref):.2f}, median epicentral error "
            f"{statistics.median(epi) if epi else math.nan:.1f} km; "
            + "; ".join(_picks_matched(ds.picks, alerts, phase) for phase in ("P", "S"))
            + (f"; {_labels(ds.modelled, alerts)}" if ds.modelled else ""))


def _labels(modelled: list[Pick], alerts: list[dict[str, Any]]) -> str:
    """The run's phase labels against the reference's modelled arrivals: each pick alert's
    nearest modelled arrival at its station within 0.5 s, counted by (label, arrival)."""
    from obspy import UTCDateTime

    times: dict[str, list[tuple[int, str]]] = {}
    for m in modelled:
        times.setdefault(m.station, []).append((m.time_ns, m.phase.value))
    n: dict[tuple[str, str], int] = {}
    for a in alerts:
        if a["kind"] == "pick" and a.get("phase") in ("P", "S"):
            t = UTCDateTime(a["time"]).ns
            near = [(abs(mt - t), ph) for mt, ph in times.get(a["station"], [])
                    if abs(mt - t) <= 500_000_000]
            key = (a["phase"], min(near)[1] if near else "-")
            n[key] = n.get(key, 0) + 1
    return ("labels against the modelled arrivals (within 0.5 s): "
            + ", ".join(f"{lab} picks at {arr} {n.get((lab, arr), 0)}"
                        for lab in "PS" for arr in ("P", "S", "-")).replace(" at - ", " at none "))


def _picks_matched(reference: list[Pick], alerts: list[dict[str, Any]], phase: str) -> str:
    """How many of the reference's ``phase`` picks a run's pick alerts have within 0.5 s (same
    station), and the residuals' standard deviation."""
    from obspy import UTCDateTime

    ours: dict[str, list[float]] = {}
    for a in alerts:
        if a["kind"] == "pick" and a.get("phase") == phase:
            ours.setdefault(a["station"], []).append(UTCDateTime(a["time"]).ns / 1e9)
    ref = [p for p in reference if p.phase.value == phase]
    res = []
    for p in ref:
        near = [t - p.time_ns / 1e9 for t in ours.get(p.station, []) if abs(t - p.time_ns / 1e9)
                <= 0.5]
        if near:
            res.append(min(near, key=abs))
    sd = statistics.pstdev(res) * 1000 if len(res) > 1 else math.nan
    return f"{phase}: {len(res)} of {len(ref)} reference picks within 0.5 s (sd {sd:.0f} ms)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="geosentry evaluate events", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("nz", "iceland", "all"), default="all")
    ap.add_argument("--seed", type=int, action="append",
                    help="shuffle seed(s) of the pick order (default 0)")
    ap.add_argument("--shared", help="shared data folder (default ../shared/data)")
    ap.add_argument("--markdown", action="store_true", help="print the README table")
    ap.add_argument("--alerts", help="score a run's event alerts (a jsonl sink's file) against "
                                     "the data set's reference instead of associating its picks")
    args = ap.parse_args(argv)
    shared = Path(args.shared) if args.shared else shared_data_dir()
    loaders = {"nz": load_nz, "iceland": load_iceland}
    if args.alerts:
        if args.dataset == "all":
            ap.error("--alerts needs one --dataset")
        print(score_alerts(loaders[args.dataset](shared), Path(args.alerts)))
        return 0
    names = list(loaders) if args.dataset == "all" else [args.dataset]
    results = []
    for name in names:
        ds = loaders[name](shared)
        for seed in args.seed or [0]:
            r = evaluate(ds, seed)
            results.append(r)
            if not args.markdown:
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    if args.markdown:
        print(markdown(results))
        for r in results:
            if r["missed"] or r["unmatched"]:
                print(f"\n{r['dataset']} (seed {r['seed']}): missed {r['missed']}; "
                      f"not in the reference {r['unmatched']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
