"""Early-warning latency of the events stage, measured through ``geosentry run`` on a paced
replay of the Iceland 2014 dike swarm (``../shared/data/events/iceland-2014-dike``).

The swarm's miniSEED cuts (4096-byte records of about 19 s each) are merged per channel and cut
again into records of ``--record-s`` seconds (default 1 s: what a digitiser streams for early
warning, e.g. Quanterra's 1-s packets; a 512-byte Steim2 record of quiet 100 Hz data holds
3-4 s). ``geosentry run --speed 1`` replays them in real time: each record is released when its
last sample would have been recorded, so the record length is part of every figure. The run's
log says which wall time its replay clock started at (``files: paced replay ...``), which maps
data time to wall time.

For each reference event (QuakeMigrate's catalogue) it takes the first event alert that
locates it (any event id, any update, within 3 s and 10 km) and reports, in wall seconds:

* ``after_4th_p_s``: the first event alert that locates it minus the fourth station's P arrival (QuakeMigrate's P
  pick where it has one, else its modelled P time), the issue's floor (<= 4 s);
* ``after_1st_p_s``: first event alert minus the first station's P arrival (ElarmS-2: 8.7 +-
  3.7 s after the first P detection; EPIC: under 4 s in a replay);
* ``magnitude_s``: from the first alert to the first alert whose ML (else Mpd) is within 0.5 of
  the event's final ML.

Run: ``python -m geosentry.stream.events.latency [--events N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geosentry.stream.events.evaluate import (MATCH_KM, MATCH_S, _km, event_versions,
                                              shared_data_dir)

#: the shipped picker's window: after a stream (re)starts, its first P waits for a whole window
WARM_S = 30.0
CLOCK = re.compile(r"paced replay at speed (\S+): data time (\S+) is wall time (\S+)")

#: deploy/events/early-warning.toml with the run's paths and options (the defaults are that
#: file's settings: ``tests/events/test_latency.py`` checks it)
CONFIG = """# written by geosentry.stream.events.latency
[coincidence]
enabled = false

[inference]
max_batch = 16        # latency settings (README, Benchmarks)
max_wait_s = 0.005
max_lag_s = 5.0

[[detectors]]
name = "picker"
type = "model"
path = "{picker}"
missing_components = "zeros"
stride_s = {stride_s}
lookahead_s = {lookahead_s}
highpass_hz = 2.0     # as deploy/events/iceland.toml

[stations]
inventory = "{root}/stations.csv"
velocity_model = "{root}/vmodel.txt"
counts_per_m_s = 4.6e9  # as deploy/events/iceland.toml
max_depth_km = 20.0     # as deploy/events/iceland.toml
update_interval_s = {update_s}
min_phases = {min_phases}
"""


@dataclass(frozen=True)
class Reference:
    name: str
    time_ns: int
    lat_deg: float
    lon_deg: float
    p_ns: tuple[int, ...]  # P arrivals, one per station, earliest first
    p_stations: tuple[str, ...] = ()  # their stations

    def data_before_s(self, segments: dict[str, list[tuple[int, int]]], k: int = 4) -> float:
        """The least continuous data any of the first ``k`` P stations had before its P: a
        picker reports a P once a whole window holds it, so after a stream (re)starts its
        first picks wait for the first window."""
        out = math.inf
        for sta, t in zip(self.p_stations[:k], self.p_ns[:k]):
            begun = [a for a, b in segments.get(sta, []) if a <= t <= b]
            out = min(out, (t - max(begun)) / 1e9 if begun else 0.0)
        return out


def _ns(text: str) -> int:
    from obspy import UTCDateTime

    return int(UTCDateTime(text).ns)


def references(root: Path, names: list[str]) -> list[Reference]:
    out = []
    for name in names:
        with (root / "events" / f"{name}.event").open() as f:
            ev = next(csv.DictReader(f))
        p: dict[str, int] = {}
        with (root / "events" / f"{name}.picks").open() as f:
            for r in csv.DictReader(f):
                if r["Phase"] == "P":
                    t = r["PickTime"] if r["PickTime"].strip() != "-1" else r["ModelledTime"]
                    p[r["Station"]] = _ns(t)
        order = sorted(p, key=lambda k: (p[k], k))
        out.append(Reference(name, _ns(ev["DT"]), float(ev["Y"]), float(ev["X"]),
                             tuple(p[k] for k in order), tuple(order)))
    return out


def repack(root: Path, names: list[str], out: Path, record_s: float
           ) -> tuple[int, dict[str, list[tuple[int, int]]]]:
    """The cuts ``names`` merged per channel and written as ``record_s`` records: how many,
    and each station's continuous stretches (start, end ns) of all its components."""
    from obspy import Stream, read

    st = Stream()
    for name in names:
        st += read(str(root / "events" / f"{name}.m"))
    st.merge(method=1)  # the cuts overlap with identical samples
    n = 0
    spans: dict[str, list[tuple[int, int]]] = {}
    for tr in st.split():
        spans.setdefault(tr.stats.station, []).append((int(tr.stats.starttime.ns),
                                                       int(tr.stats.endtime.ns)))
        tr.data = tr.data.astype("int32")
        pieces = Stream()
        t = tr.stats.starttime
        while t <= tr.stats.endtime:
            piece = tr.slice(t, t + record_s - tr.stats.delta / 2)
            if piece.stats.npts:
                pieces += piece
            t += record_s
        with (out / f"{tr.id}.{tr.stats.starttime.timestamp:.0f}.mseed").open("ab") as f:
            for piece in pieces:  # each piece its own record(s)
                piece.write(f, format="MSEED", reclen=512, encoding="STEIM2")
                n += 1
    return n, {sta: _common(v) for sta, v in spans.items()}


def _common(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Stretches (start, end) as their latest start for each end: where every component is."""
    by_end: dict[int, int] = {}
    for a, b in spans:
        by_end[b] = max(a, by_end.get(b, a))
    return sorted((a, b) for b, a in by_end.items())


def run(folder: Path, config: Path, work: Path, timeout_s: float) -> None:
    """``geosentry run`` at speed 1 into ``work``: alerts.jsonl and run.log."""
    sink, log = work / "alerts.jsonl", work / "run.log"
    with log.open("wb") as err:
        code = subprocess.run(
            [sys.executable, "-m", "geosentry.stream.cli", "--log-level", "info", "run",
             "--config", str(config), "--source", str(folder), "--speed", "1",
             "--sink", f"jsonl:{sink}"], stdout=subprocess.DEVNULL, stderr=err,
            timeout=timeout_s, check=False).returncode
    if code != 0:
        raise SystemExit(f"geosentry run exited {code}: {log.read_text()[-2000:]}")


def read_run(work: Path) -> tuple[list[dict[str, Any]], int]:
    """A run's alerts and its replay clock (wall minus data time, ns)."""
    text = (work / "run.log").read_text()
    m = CLOCK.search(text)
    if m is None:
        raise SystemExit("the run's log has no replay clock line (files: paced replay ...)")
    alerts = [json.loads(line) for line in (work / "alerts.jsonl").read_text().splitlines()]
    return alerts, _ns(m.group(3)) - _ns(m.group(2))


def measure(refs: list[Reference], alerts: list[dict[str, Any]], offset_ns: int,
            segments: dict[str, list[tuple[int, int]]] | None = None) -> list[dict[str, Any]]:
    """One row per reference event: when the first event alert that locates it (any event id,
    any update, within 3 s and 10 km) came, and when that event's magnitude came within 0.5 of
    its final ML (None where no alert located it); how much continuous data its first four P
    stations had before their P (``segments``). An alert that located an earthquake elsewhere
    first does not count as its alert."""
    versions = event_versions(alerts)
    located = [a for vs in versions.values() for a in vs if not a["details"]["deleted"]]
    rows = []
    for r in refs:
        row: dict[str, Any] = {"event": r.name, "stations_with_p": len(r.p_ns)}
        if segments is not None:
            row["data_before_s"] = r.data_before_s(segments)
        hits = [a for a in located if _close(a, r)]
        if hits and len(r.p_ns) >= 4:
            first = min(hits, key=lambda a: (_ns(a["emitted_at"]), a["details"]["update"]))
            first_ns = _ns(first["emitted_at"]) - offset_ns  # in data time
            row["after_4th_p_s"] = (first_ns - r.p_ns[3]) / 1e9
            row["after_1st_p_s"] = (first_ns - r.p_ns[0]) / 1e9
            row["first_stations"] = first["details"]["station_count"]
            vs = [v for v in versions[first["details"]["event_id"]]
                  if not v["details"]["deleted"]]
            ml = _magnitude(vs[-1], "ML")
            row["final_ml"] = ml
            good = [v for v in vs if ml is not None and _ns(v["emitted_at"]) >= first_ns
                    + offset_ns and (m := _magnitude(v, "ML", "Mpd")) is not None
                    and abs(m - ml) <= 0.5]
            row["magnitude_s"] = ((_ns(good[0]["emitted_at"]) - _ns(first["emitted_at"])) / 1e9
                                  if good else None)
        rows.append(row)
    return rows


def _close(event: dict[str, Any], r: Reference) -> bool:
    o = event["details"]["origin"]
    return (abs(_ns(o["time"]) - r.time_ns) / 1e9 <= MATCH_S
            and _km(o["latitude"], o["longitude"], r.lat_deg, r.lon_deg) <= MATCH_KM)


def _magnitude(alert: dict[str, Any], *types: str) -> float | None:
    by = {m["type"]: m["value"] for m in alert["details"].get("magnitudes", [])}
    return next((float(by[t]) for t in types if t in by), None)


def summary(rows: list[dict[str, Any]], warm_s: float = 0.0) -> dict[str, Any]:
    """Medians and ranges over the measured events whose first four P stations had at least
    ``warm_s`` of continuous data before their P."""
    got = [r for r in rows if "after_4th_p_s" in r and r.get("data_before_s", math.inf) >= warm_s]

    def stats(key: str) -> str:
        v = sorted(r[key] for r in got if r.get(key) is not None)
        if not v:
            return "-"
        return (f"median {statistics.median(v):.1f} s (min {v[0]:.1f}, max {v[-1]:.1f}, "
                f"n={len(v)})")

    return {"reference_events": len(rows), "measured": len(got),
            "after_4th_p": stats("after_4th_p_s"), "after_1st_p": stats("after_1st_p_s"),
            "magnitude_within_0.5": stats("magnitude_s"),
            "within_4_s_of_4th_p": sum(r["after_4th_p_s"] <= 4.0 for r in got)}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m geosentry.stream.events.latency",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=0, help="the first N swarm events (0: all 27)")
    ap.add_argument("--record-s", type=float, default=1.0, help="record length (default 1 s)")
    ap.add_argument("--stride-s", type=float, default=0.5, help="picker stride (default 0.5 s)")
    ap.add_argument("--lookahead-s", type=float, default=1.0,
                    help="picker data after its reported stretch (default 1 s)")
    ap.add_argument("--picker", default="builtin:picker",
                    help="the picker model: builtin:NAME or PATH.pt (default builtin:picker)")
    ap.add_argument("--update-s", type=float, default=0.5, help="events stage update interval")
    ap.add_argument("--min-phases", type=int, default=4,
                    help="picks an event needs (default 4, as deploy/events/early-warning.toml: "
                         "the 4th station's P alone; 5: the service's default)")
    ap.add_argument("--shared", help="shared data folder (default ../shared/data)")
    ap.add_argument("--keep", help="keep the records, config, alerts and log in this folder")
    ap.add_argument("--from-run", help="measure a run kept with --keep again, without running")
    ap.add_argument("--restage", help="re-run the events stage alone on a kept run's pick "
                    "alerts (seconds; geosentry.stream.events.restage) and measure that")
    ap.add_argument("--unrefine", action="store_true",
                    help="with --restage: each P pick back where the picker's model put it "
                         "(its onset refinement's details.moved_s undone), the same emission "
                         "times: what the refinement changes in the events stage")
    ap.add_argument("--markdown", action="store_true")
    return ap


def config_text(args: argparse.Namespace, root: Path) -> str:
    """The run's ``latency.toml``: :data:`CONFIG` with ``args``' settings, the data in ``root``."""
    return CONFIG.format(picker=args.picker, stride_s=args.stride_s,
                         lookahead_s=args.lookahead_s, update_s=args.update_s,
                         root=root.resolve(), min_phases=args.min_phases)


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.unrefine and not args.restage:
        ap.error("--unrefine needs --restage DIR")
    root = (Path(args.shared) if args.shared else shared_data_dir()) / "events" / \
        "iceland-2014-dike"
    if not root.is_dir():
        print(f"latency: {root} not found (the shared data sets)", file=sys.stderr)
        return 2
    names = sorted(p.stem for p in (root / "events").glob("*.event"))
    names = names[:args.events] if args.events > 0 else names
    refs = references(root, names)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.from_run or args.keep or tmp)
        folder = work / "records"
        if args.restage:
            from geosentry.stream.events.restage import restage

            work = Path(args.restage)
            n, segments = _segments(root, names, work, Path(tmp), args.record_s)
            alerts, offset_ns, _ = restage(work, unrefine=args.unrefine)
        elif args.from_run:  # a kept run, measured again
            n, segments = _segments(root, names, work, Path(tmp), args.record_s)
            alerts, offset_ns = read_run(work)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            n, segments = repack(root, names, folder, args.record_s)
            config = work / "latency.toml"
            config.write_text(config_text(args, root))
            span_s = (refs[-1].time_ns - refs[0].time_ns) / 1e9 + 120
            run(folder, config, work, timeout_s=span_s + 300)
            alerts, offset_ns = read_run(work)
    rows = measure(refs, alerts, offset_ns, segments)
    warm, every = summary(rows, WARM_S), summary(rows)
    picks = sorted((_ns(a["emitted_at"]) - offset_ns - _ns(a["time"])) / 1e9 for a in alerts
                   if a["kind"] == "pick")
    picker = "(the run's)" if args.restage or args.from_run else args.picker
    setting = (f"{len(names)} events, {n} records of {args.record_s:g} s, picker {picker}, stride "
               f"{args.stride_s:g} s, lookahead {args.lookahead_s:g} s, update every "
               f"{args.update_s:g} s, min_phases {args.min_phases}, {os.cpu_count()} cores; "
               f"pick alerts "
               f"{_quantiles(picks)} after their pick time")
    if args.markdown:
        print(f"({setting})\n\n| events | measured | first event alert after the 4th station's "
              "P | after the 1st station's P | then a magnitude within 0.5 of the final ML | "
              "within 4 s of the 4th P |\n| --- | --- | --- | --- | --- | --- |")
        for label, s in ((f"first 4 P stations streaming >= {WARM_S:g} s", warm),
                         ("all matched", every)):
            print(f"| {label} | {s['measured']} of {s['reference_events']} | {s['after_4th_p']} "
                  f"| {s['after_1st_p']} | {s['magnitude_within_0.5']} | "
                  f"{s['within_4_s_of_4th_p']} of {s['measured']} |")
    else:
        print(setting)
        for row in rows:
            print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})
        print("warm:", warm)
        print("all:", every)
    return 0


def _segments(root: Path, names: list[str], work: Path, tmp: Path, record_s: float
              ) -> tuple[int, dict[str, list[tuple[int, int]]]]:
    """``repack``'s count and stretches, cached in the kept run's folder."""
    cache = work / f"segments-{len(names)}-{record_s:g}.json"
    if cache.is_file():
        got = json.loads(cache.read_text())
        return int(got["n"]), {k: [(a, b) for a, b in v] for k, v in got["segments"].items()}
    n, segments = repack(root, names, tmp, record_s)
    cache.write_text(json.dumps({"n": n, "segments": segments}))
    return n, segments


def _quantiles(v: list[float]) -> str:
    if not v:
        return "-"
    return (f"median {statistics.median(v):.1f} s (10 % {v[len(v) // 10]:.1f}, 90 % "
            f"{v[9 * len(v) // 10]:.1f}, n={len(v)})")


if __name__ == "__main__":
    sys.exit(main())
