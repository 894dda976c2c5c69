"""Scale-out on one machine: several service processes, each owning a share of the stations.

One process decodes and cuts windows on its event loop, one record at a time under the GIL, so
on a small machine ingestion caps what the inference threads get to do. The service scales out
the way ``deploy/`` runs it: more processes, each a Kafka consumer-group member owning a share
of the partitions (alerts and records are keyed by station). Here ``P`` processes each run a
``Pipeline`` over their share of the stations (one inference worker, one torch thread), started
together on a barrier; throughput is every station-second over (last end - first start).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.common import PREFILL_S, bench_precision, kept_up_in_real_time, stats

if TYPE_CHECKING:
    from bench.harness import Pacing


def _member(detector: str, first: int, count: int, seconds: float, repeats: int,
            paced: Pacing | None, barrier: Any, results: Any,
            ready: Any = None, precision: str | None = None) -> None:
    import logging

    from bench.data import build_load
    from bench.harness import config, fresh_state, run_case
    from geosentry.stream.detectors.factory import build_detectors

    logging.getLogger("geosentry.stream").setLevel(logging.ERROR)
    load = build_load(count, seconds, first=first)
    cfg = config(detector, workers=1, threads=1, precision=precision or bench_precision())
    dets = build_detectors(cfg)
    if ready is not None:
        ready.put(first)  # loaded: the parent starts nothing heavy before every member is
    for rep in range(repeats):
        fresh_state(dets)
        barrier.wait()
        t0 = time.time()
        r = run_case(load, cfg, detectors=dets, paced=paced)
        lag = r.source_lag_s
        results.put({"rep": rep, "t0": t0, "t1": time.time(), "cpu_s": r.cpu_s,
                     "precision": getattr(dets[0], "precision", "fp32"),
                     "windows": r.windows, "shed": r.shed, "cut_short": r.cut_short,
                     "drain_s": r.drain_s, "lag_p99_s": float(np.percentile(lag, 99)) if lag else None})


def _split(n: int, processes: int) -> tuple[list[int], list[int]]:
    """First station and station count of each process: split as evenly as partitions are."""
    shares = [n // processes + (1 if p < n % processes else 0) for p in range(processes)]
    return [sum(shares[:p]) for p in range(processes)], shares


def run_members(detector: str, n: int, seconds: float, repeats: int, processes: int,
                paced: Pacing | None = None) -> list[list[dict[str, Any]]]:
    """Per repeat, one result per process (stations split as evenly as partitions would be)."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    firsts, shares = _split(n, processes)
    procs = [ctx.Process(target=_member, args=(detector, f, c, seconds, repeats, paced, barrier,
                                               results), daemon=True)
             for f, c in zip(firsts, shares)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=900) for _ in range(processes * repeats)]
    for proc in procs:
        proc.join(timeout=60)
    return [[g for g in got if g["rep"] == rep] for rep in range(repeats)]


class HeldMembers:
    """``processes`` service processes started once and held between repeats: each ``run()``
    releases one repeat (the members wait on a barrier the parent joins) and returns its
    station-seconds per second, so repeats can alternate with reference runs in the parent
    (back-to-back pairs) without the members' start-up or idle loops in between."""

    def __init__(self, detector: str, n: int, seconds: float, repeats: int, processes: int,
                 precision: str | None = None) -> None:
        ctx = mp.get_context("spawn")
        self.n, self.seconds, self.processes = n, seconds, processes
        # pinned: members timing the choice at once may disagree
        self.precision = precision or bench_precision()
        self.barrier, self.results, ready = ctx.Barrier(processes + 1), ctx.Queue(), ctx.Queue()
        firsts, shares = _split(n, processes)
        self.procs = [ctx.Process(target=_member, args=(detector, f, c, seconds, repeats, None,
                                                        self.barrier, self.results, ready,
                                                        self.precision),
                                  daemon=True) for f, c in zip(firsts, shares)]
        for proc in self.procs:
            proc.start()
        try:
            for _ in self.procs:
                ready.get(timeout=300)
        except BaseException:
            self.close()
            raise

    def run(self) -> float:
        """One repeat, every member at once; raises (never hangs) when a member died."""
        self.barrier.wait(timeout=300)
        ms = [self.results.get(timeout=600) for _ in self.procs]
        got = {m["precision"] for m in ms}
        if self.precision != "auto" and got != {self.precision}:
            raise RuntimeError(f"scale-out members ran at {got}, not {self.precision}")
        return self.n * self.seconds / (max(m["t1"] for m in ms) - min(m["t0"] for m in ms))

    def close(self) -> None:
        """Release members still waiting (they exit on the broken barrier); safe to call twice."""
        self.barrier.abort()
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def throughput(detector: str, n: int, seconds: float, repeats: int,
               processes: int) -> dict[str, Any]:
    """Fed as fast as possible, ``processes`` service processes side by side."""
    runs = run_members(detector, n, seconds, repeats, processes)
    walls = [max(m["t1"] for m in ms) - min(m["t0"] for m in ms) for ms in runs]
    st_s = n * seconds
    return {"stations": n, "seconds_of_data": seconds, "processes": processes,
            "workers_per_process": 1, "torch_threads_per_worker": 1,
            "precision": sorted({m["precision"] for ms in runs for m in ms}),
            "windows": sum(m["windows"] for m in runs[0]),
            "station_seconds_per_s": stats([st_s / w for w in walls], "station-s/s", 0),
            "samples_per_s": stats([st_s * 300 / w for w in walls], "samples/s", 0),
            "cpu_s_per_station_s": stats([sum(m["cpu_s"] for m in ms) / st_s * 1e3 for ms in runs],
                                         "ms CPU/station-s", 3)}


def paced_check(detector: str, n: int, paced_s: float, processes: int) -> dict[str, Any]:
    """Real time, ``processes`` side by side: kept up when every process kept up
    (``kept_up_in_real_time``)."""
    ms = run_members(detector, n, PREFILL_S + paced_s, 1, processes,
                     paced={"speed": 1.0, "prefill_s": PREFILL_S, "deadline_s": paced_s + 15.0})[0]
    lags = [m["lag_p99_s"] for m in ms if m["lag_p99_s"] is not None]
    kept = all(kept_up_in_real_time(m["lag_p99_s"], m["drain_s"], m["cut_short"]) for m in ms)
    return {"stations": n, "paced_s": paced_s, "processes": processes,
            "source_lag_p99_s": round(max(lags), 3) if lags else None,
            "drain_after_last_record_s": round(max(m["drain_s"] for m in ms), 2),
            "windows": sum(m["windows"] for m in ms),
            "feeding_cut_short": any(m["cut_short"] for m in ms), "kept_up": kept}
