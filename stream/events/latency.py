"""Early-warning latency of the events stage, measured through ``geosentry run`` on a paced
replay of the Iceland 2014 dike swarm (``../shared/data/events/iceland-2014-dike``).

The swarm's miniSEED cuts (4096-byte records of about 19 s each) are merged per channel and cut
again into records of ``--record-s`` seconds (default 1 s: what a digitiser streams for early
warning, e.g. Quanterra's 1-s packets; a 512-byte Steim2 record of quiet 100 Hz data holds
3-4 s). ``geosentry run --speed 1`` replays them in real time: each record is released when its
last sample would have been recorded, so the record length is part of every figure. The run's
log says which wall time its replay clock started at (``files: paced replay ...``), which maps
data time to wall time.

For each reference event (QuakeMigrate's catalogue, match within 3 s and 10 km of the final
version) it reports, in wall seconds:

* ``after_4th_p_s``: first event alert minus the fourth station's P arrival (QuakeMigrate's P
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
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geosentry.stream.events.evaluate import MATCH_KM, MATCH_S, _km, shared_data_dir

CLOCK = re.compile(r"paced replay at speed (\S+): data time (\S+) is wall time (\S+)")

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
path = "builtin:picker"
missing_components = "zeros"
stride_s = {stride_s}
lookahead_s = {lookahead_s}
highpass_hz = 2.0     # as deploy/events/iceland.toml

[stations]
inventory = "{root}/stations.csv"
velocity_model = "{root}/vmodel.txt"
counts_per_m_s = 4.6e9  # as deploy/events/iceland.toml
update_interval_s = {update_s}
"""


@dataclass(frozen=True)
class Reference:
    name: str
    time_ns: int
    lat_deg: float
    lon_deg: float
    p_ns: tuple[int, ...]  # P arrivals, one per station, earliest first


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
        out.append(Reference(name, _ns(ev["DT"]), float(ev["Y"]), float(ev["X"]),
                             tuple(sorted(p.values()))))
    return out


def repack(root: Path, names: list[str], out: Path, record_s: float) -> int:
    """The cuts ``names`` merged per channel and written as ``record_s`` records; how many."""
    from obspy import Stream, read

    st = Stream()
    for name in names:
        st += read(str(root / "events" / f"{name}.m"))
    st.merge(method=1)  # the cuts overlap with identical samples
    n = 0
    for tr in st.split():
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
    return n


def run(folder: Path, config: Path, work: Path, timeout_s: float) -> tuple[list[dict], int, str]:
    """``geosentry run`` at speed 1: (alerts, wall minus data time in ns, log)."""
    sink, log = work / "alerts.jsonl", work / "run.log"
    with log.open("wb") as err:
        code = subprocess.run(
            [sys.executable, "-m", "geosentry.stream.cli", "--log-level", "info", "run",
             "--config", str(config), "--source", str(folder), "--speed", "1",
             "--sink", f"jsonl:{sink}"], stdout=subprocess.DEVNULL, stderr=err, timeout=timeout_s,
            check=False).returncode
    text = log.read_text()
    if code != 0:
        raise SystemExit(f"geosentry run exited {code}: {text[-2000:]}")
    m = CLOCK.search(text)
    if m is None:
        raise SystemExit("the run's log has no replay clock line (files: paced replay ...)")
    offset_ns = _ns(m.group(3)) - _ns(m.group(2))
    alerts = [json.loads(line) for line in sink.read_text().splitlines()]
    return alerts, offset_ns, text


def measure(refs: list[Reference], alerts: list[dict], offset_ns: int) -> list[dict[str, Any]]:
    """One row per reference event: its matched event's latencies (None where unmatched)."""
    versions: dict[str, list[dict]] = {}
    for a in alerts:
        if a["kind"] == "event":
            versions.setdefault(a["details"]["event_id"], []).append(a)
    final = {eid: vs[-1] for eid, vs in versions.items() if not vs[-1]["details"]["deleted"]}
    pairs = sorted((abs(_ns(e["time"]) - r.time_ns), eid, i) for eid, e in final.items()
                   for i, r in enumerate(refs) if _close(e, r))
    used_e: set[str] = set()
    match: dict[int, str] = {}
    for _, eid, i in pairs:
        if eid not in used_e and i not in match:
            used_e.add(eid)
            match[i] = eid
    rows = []
    for i, r in enumerate(refs):
        row: dict[str, Any] = {"event": r.name, "stations_with_p": len(r.p_ns)}
        eid = match.get(i)
        if eid is not None and len(r.p_ns) >= 4:
            vs = versions[eid]
            first_ns = _ns(vs[0]["emitted_at"]) - offset_ns  # in data time
            row["after_4th_p_s"] = (first_ns - r.p_ns[3]) / 1e9
            row["after_1st_p_s"] = (first_ns - r.p_ns[0]) / 1e9
            row["first_stations"] = vs[0]["details"]["station_count"]
            ml = _magnitude(final[eid], "ML")
            row["final_ml"] = ml
            good = [v for v in vs if ml is not None and (m := _magnitude(v, "ML", "Mpd"))
                    is not None and abs(m - ml) <= 0.5]
            row["magnitude_s"] = ((_ns(good[0]["emitted_at"]) - _ns(vs[0]["emitted_at"])) / 1e9
                                  if good else None)
        rows.append(row)
    return rows


def _close(event: dict, r: Reference) -> bool:
    o = event["details"]["origin"]
    return (abs(_ns(o["time"]) - r.time_ns) / 1e9 <= MATCH_S
            and _km(o["latitude"], o["longitude"], r.lat_deg, r.lon_deg) <= MATCH_KM)


def _magnitude(alert: dict, *types: str) -> float | None:
    by = {m["type"]: m["value"] for m in alert["details"].get("magnitudes", [])}
    return next((float(by[t]) for t in types if t in by), None)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    got = [r for r in rows if "after_4th_p_s" in r]

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m geosentry.stream.events.latency",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=0, help="the first N swarm events (0: all 27)")
    ap.add_argument("--record-s", type=float, default=1.0, help="record length (default 1 s)")
    ap.add_argument("--stride-s", type=float, default=1.0, help="picker stride (default 1 s)")
    ap.add_argument("--lookahead-s", type=float, default=2.0,
                    help="picker data after its reported stretch (default 2 s)")
    ap.add_argument("--update-s", type=float, default=0.5, help="events stage update interval")
    ap.add_argument("--shared", help="shared data folder (default ../shared/data)")
    ap.add_argument("--keep", help="keep the records, config, alerts and log in this folder")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    root = (Path(args.shared) if args.shared else shared_data_dir()) / "events" / \
        "iceland-2014-dike"
    if not root.is_dir():
        print(f"latency: {root} not found (the shared data sets)", file=sys.stderr)
        return 2
    names = sorted(p.stem for p in (root / "events").glob("*.event"))
    names = names[:args.events] if args.events > 0 else names
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        folder = work / "records"
        folder.mkdir(parents=True, exist_ok=True)
        n = repack(root, names, folder, args.record_s)
        config = work / "latency.toml"
        config.write_text(CONFIG.format(stride_s=args.stride_s, lookahead_s=args.lookahead_s,
                                        update_s=args.update_s, root=root.resolve()))
        refs = references(root, names)
        span_s = (refs[-1].time_ns - refs[0].time_ns) / 1e9 + 120
        alerts, offset_ns, _ = run(folder, config, work, timeout_s=span_s + 300)
    rows = measure(refs, alerts, offset_ns)
    s = summary(rows)
    setting = (f"{len(names)} events, {n} records of {args.record_s:g} s, picker stride "
               f"{args.stride_s:g} s, lookahead {args.lookahead_s:g} s, update every "
               f"{args.update_s:g} s, {os.cpu_count()} cores")
    if args.markdown:
        print(f"({setting})\n\n| measured | first event alert after the 4th station's P | "
              "after the 1st station's P | then a magnitude within 0.5 of the final ML | "
              "within 4 s of the 4th P |\n| --- | --- | --- | --- | --- |")
        print(f"| {s['measured']} of {s['reference_events']} | {s['after_4th_p']} | "
              f"{s['after_1st_p']} | {s['magnitude_within_0.5']} | "
              f"{s['within_4_s_of_4th_p']} of {s['measured']} |")
    else:
        print(setting)
        for row in rows:
            print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
