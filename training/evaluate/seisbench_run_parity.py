"""Parity of an imported SeisBench picker with SeisBench, through ``geosentry run`` itself.

The Iceland 2014 dike-swarm cuts (``../shared/data/events/iceland-2014-dike``: Z7, 12 stations,
HH[ZNE] at 100 Hz, 27 overlapping 32.5 s cuts) are merged per station into the continuous
stretches they cover (4 per station, 32.5 s to 6 min; 8.5 min per station in all) and written
as miniSEED, one file per station. The same files go

* through ``geosentry run --source DIR --sink jsonl:...`` (a subprocess, as an operator runs
  it) with the imported model as the only detector (fp32, its contract's stride, thresholds and
  ``pick_rule``), and
* through SeisBench ``classify`` (``annotate``: windows from each stretch's start, SeisBench's
  overlap and stacking; ``picks_from_annotations``).

Picks of the same station and phase within one sample are matched one to one; matched / total
is reported both ways. The service scores each stretch from its first sample up to the owned end
of its last complete window (``detectors.base.owned_samples``; the last window's final
``(window - stride) / 2`` and whatever is too short for another window are not scored), so
SeisBench's picks after that are counted apart (``seisbench_unscored``), not as misses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from geosentry.stream.buffer.windows import grid_start
from geosentry.stream.inference.contract import ModelContract, contract_path_for
from geosentry.stream.records import NS_PER_S, seconds_to_samples

ICELAND = "events/iceland-2014-dike/events"


def continuous_traces(out_dir: Path, stations: int | None = None,
                      max_stretches: int | None = None, align_stride_ns: int = 0) -> list[Path]:
    """The Iceland cuts merged per station (``merge(method=1)``: the overlapping cuts hold the
    same samples), split at the gaps between them and written as 512-byte Steim2 miniSEED, one
    file per station (the first ``stations`` by name, the first ``max_stretches`` stretches).
    ``align_stride_ns``: each stretch starts at its first sample on or after a multiple of it
    (the service's window grid), so the service and SeisBench cut the same windows."""
    import obspy

    from geosentry.training.paths import shared_data_dir

    src = shared_data_dir() / ICELAND
    files = sorted(src.glob("*.m"))
    if not files:
        raise FileNotFoundError(f"no Iceland cuts (*.m) in {src}")
    st = obspy.Stream()
    for f in files:
        st += obspy.read(str(f), format="MSEED")
    names = sorted({tr.stats.station for tr in st})[:stations]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sta in names:
        one = st.select(station=sta).copy()
        one.merge(method=1)
        one = one.split()
        one.sort(keys=["starttime", "channel"])
        starts = sorted({tr.stats.starttime.ns for tr in one})[:max_stretches]
        one = obspy.Stream([tr for tr in one if tr.stats.starttime.ns in starts])
        if align_stride_ns:
            for tr in one:
                t0 = int(tr.stats.starttime.ns)
                skip = -(-(-t0 % align_stride_ns) // round(NS_PER_S * tr.stats.delta))
                tr.data = tr.data[skip:]
                tr.stats.starttime += skip * tr.stats.delta
        for tr in one:
            tr.data = np.asarray(tr.data, dtype=np.int32)
        path = out_dir / f"{one[0].stats.network}.{sta}.mseed"
        one.write(str(path), format="MSEED", reclen=512, encoding="STEIM2")
        written.append(path)
    return written


SEISBENCH_IMPORT_CONFIG = ('[inference]\nprecision = "fp32"\ndevice = "cpu"\n\n'
                           '[coincidence]\nenabled = false\n')


def run_service(pt: Path, src_dir: Path, work: Path, timeout_s: float = 900.0,
                name: str = "seisbench-import", extra_config: str = SEISBENCH_IMPORT_CONFIG
                ) -> tuple[list[dict[str, Any]], float]:
    """``geosentry run`` over ``src_dir`` with ``pt`` as the only detector (``name``; the
    service's defaults otherwise, plus ``extra_config`` TOML): its pick alerts and the run's
    wall time (stdout and stderr in ``work``; a failed run raises with the log tail)."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "geosentry.toml"
    cfg.write_text(f'[[detectors]]\nname = "{name}"\ntype = "model"\npath = "{pt.resolve()}"\n'
                   f'missing_components = "zeros"\n\n{extra_config}')
    alerts = work / "alerts.jsonl"
    alerts.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "geosentry.stream.cli", "run", "--source", str(src_dir),
           "--sink", f"jsonl:{alerts}", "--config", str(cfg), "--speed", "0"]
    t0 = time.monotonic()
    with open(work / "run.stdout", "w") as out, open(work / "run.stderr", "w") as err:
        done = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout_s)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        tail = (work / "run.stderr").read_text()[-2000:]
        raise RuntimeError(f"geosentry run exited {done.returncode} ({work}): {tail}")
    rows = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()] \
        if alerts.exists() else []
    return [a for a in rows if a.get("kind") == "pick"], wall


def seisbench_picks(model: Any, files: list[Path], thresholds: dict[str, float],
                    skip_samples: int = 0) -> list[tuple[str, str, int]]:
    """SeisBench ``classify`` on the continuous traces: ``(NET.STA, phase, time_ns)``
    (``skip_samples``: each trace starting that many samples later)."""
    import obspy

    st = obspy.Stream()
    for f in files:
        st += obspy.read(str(f))
    for tr in st:
        tr.data = tr.data[skip_samples:]
        tr.stats.starttime += skip_samples * tr.stats.delta
    kwargs = {f"{ph}_threshold": thr for ph, thr in thresholds.items()}
    out = []
    for p in model.classify(st, **kwargs).picks:
        net, sta = p.trace_id.split(".")[:2]
        out.append((f"{net}.{sta}", str(p.phase), int(p.peak_time.ns)))
    return out


def compared_spans(files: list[Path], c: ModelContract) -> dict[str, list[tuple[int, int]]]:
    """Per ``NET.STA``: the data-time spans of each continuous stretch that the service scores
    and where SeisBench's outputs come from the windows it cuts from the stretch's start: from
    the first sample to the end of the service's last owned stretch (windows on the absolute
    stride grid, the first mirrored before the stretch's first sample, each owning the stride
    that ends ``(window - stride) / 2`` before its end, or with ``stacking`` its first stride),
    and not into the window SeisBench adds at the stretch's end (``annotate`` stacks one more
    window ending on the last sample where its stride leaves samples uncovered)."""
    import obspy

    from geosentry.stream.inference.pickrule import Stacking

    rate = c.sampling_rate_hz
    period_ns = NS_PER_S / rate
    window_ns = round(c.window_samples * period_ns)
    stride_ns = round(c.stride_samples * period_ns)
    lag_s = (c.window_s - c.stride_s) * (1.0 if c.stacking != Stacking.NONE else 0.5)
    hi = c.window_samples - seconds_to_samples(lag_s, rate)
    spans: dict[str, list[tuple[int, int]]] = {}
    for f in files:
        st = obspy.read(str(f), headonly=True)
        for start_ns in sorted({int(tr.stats.starttime.ns) for tr in st}):
            seg = [tr for tr in st if tr.stats.starttime.ns == start_ns]
            end_ns = min(int(tr.stats.endtime.ns) for tr in seg) + round(period_ns)
            g = grid_start(start_ns, stride_ns, period_ns)
            last = None
            while g + window_ns <= end_ns:
                last, g = g, g + stride_ns
            if last is None:
                continue
            stop = last + round(hi * period_ns)
            n = round((end_ns - start_ns) / period_ns)
            k_last = (n - c.window_samples) // c.stride_samples  # SeisBench's last regular window
            if k_last * c.stride_samples + c.window_samples < n:  # its extra end window
                stop = min(stop, start_ns + round((n - c.window_samples) * period_ns))
            key = f"{seg[0].stats.network}.{seg[0].stats.station}"
            spans.setdefault(key, []).append((start_ns, stop))
    return spans


def match(ours: list[tuple[str, str, int]], theirs: list[tuple[str, str, int]],
          tol_ns: int) -> int:
    """Picks of the same station and phase within ``tol_ns``, matched one to one (nearest)."""
    pool: dict[tuple[str, str], list[int]] = {}
    for sta, ph, t in theirs:
        pool.setdefault((sta, ph), []).append(t)
    matched = 0
    for sta, ph, t in sorted(ours):
        cands = pool.get((sta, ph), [])
        if cands:
            k = int(np.argmin([abs(u - t) for u in cands]))
            if abs(cands[k] - t) <= tol_ns:
                matched += 1
                cands.pop(k)
    return matched


def through_run(pt: Path, model: Any, work: Path, stations: int | None = None,
                max_stretches: int | None = None, aligned: bool = False) -> dict[str, Any]:
    """The measurement (module docstring); ``work`` keeps the traces, config, log and alerts.
    ``aligned``: stretches start on the service's window grid (``continuous_traces``)."""
    c = ModelContract.load(contract_path_for(pt))
    stride_ns = round(c.stride_samples * NS_PER_S / c.sampling_rate_hz)
    files = continuous_traces(work / "traces", stations, max_stretches,
                              stride_ns if aligned else 0)
    alerts, wall = run_service(pt, work / "traces", work)
    ours = [(f"{a['network']}.{a['station']}", str(a["phase"]),
             int(round(_iso_ns(a["time"])))) for a in alerts]
    theirs_all = seisbench_picks(model, files, c.thresholds)
    spans = compared_spans(files, c)

    def compared(sta: str, t: int) -> bool:
        return any(a <= t < b for a, b in spans.get(sta, []))

    theirs = [p for p in theirs_all if compared(p[0], p[2])]
    ours_all, ours = ours, [p for p in ours if compared(p[0], p[2])]
    tol_ns = round(NS_PER_S / c.sampling_rate_hz)  # one sample
    matched = match(ours, theirs, tol_ns + 1000)  # + 1 us: times printed to the microsecond
    seconds = sum((b - a) / NS_PER_S for s in spans.values() for a, b in s)
    # how far SeisBench reproduces itself when its windows move by one sample (the trace starts
    # a sample later): what one-sample parity means where windows are not the same
    shifted = [p for p in seisbench_picks(model, files, c.thresholds, 1) if compared(p[0], p[2])]
    return {
        "data": f"Iceland 2014 dike swarm, Z7 HH[ZNE] 100 Hz: {len(files)} stations, the 27 "
                "cuts merged per station into continuous stretches",
        "stations": len(files), "stretches": sum(len(s) for s in spans.values()),
        "compared_hours": round(seconds / 3600, 3),
        "geosentry_run_wall_s": round(wall, 1),
        "picks_geosentry": len(ours), "picks_seisbench": len(theirs),
        "not_compared_geosentry": len(ours_all) - len(ours),
        "not_compared_seisbench": len(theirs_all) - len(theirs), "matched": matched,
        "share_of_geosentry_matched": round(matched / len(ours), 4) if ours else 1.0,
        "share_of_seisbench_matched": round(matched / len(theirs), 4) if theirs else 1.0,
        "tolerance_samples": 1,
        "matched_within_10_samples": match(ours, theirs, 10 * tol_ns + 1000),
        "seisbench_vs_itself_one_sample_later": {
            "picks_seisbench": len(theirs), "picks_shifted": len(shifted),
            "matched": match(shifted, theirs, tol_ns + 1000),
            "matched_within_10_samples": match(shifted, theirs, 10 * tol_ns + 1000)},
        "pick_rule": c.pick_rule.value, "stacking": c.stacking.value,
        "aligned_to_grid": aligned,
        "unmatched_geosentry": _unmatched(ours, theirs, tol_ns + 1000),
        "unmatched_seisbench": _unmatched(theirs, ours, tol_ns + 1000),
    }


def _unmatched(a: list[tuple[str, str, int]], b: list[tuple[str, str, int]],
               tol_ns: int) -> list[str]:
    from geosentry.stream.records import ns_to_iso

    pool = sorted(b)
    out = []
    for sta, ph, t in sorted(a):
        k = next((i for i, p in enumerate(pool) if p[:2] == (sta, ph) and abs(p[2] - t) <= tol_ns),
                 None)
        if k is None:
            near = min((abs(p[2] - t) for p in pool if p[:2] == (sta, ph)), default=None)
            out.append(f"{sta} {ph} {ns_to_iso(t)}"
                       + (f" (nearest {near / 1e6:.0f} ms)" if near is not None else ""))
        else:
            pool.pop(k)
    return out


def _iso_ns(text: str) -> int:
    import obspy

    return int(obspy.UTCDateTime(text).ns)
