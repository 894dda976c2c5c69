"""geosentry benchmark (issue 6): throughput, real-time capacity, alert latency, memory, decode
rate, side by side with SeisBench ``annotate`` and ObsPy STA/LTA, in one run on this machine.

    python -m bench            # full mode (under 10 minutes on 2 cores)
    python -m bench --quick    # small N, under 2 minutes (what the smoke test's mode builds on)

Writes ``bench/results/latest.json``, ``latest.md`` (the README table) and ``latest_*.png``.
Every figure is the median over repeats with min/max; ratios are computed inside one run
because the machine is shared and noisy. All geosentry figures go through the real path:
``geosentry.stream.pipeline.Pipeline`` fed with real 512-byte Steim2 records (``bench/data.py``) from an
in-memory source, alerts to an in-memory sink.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (PLANS, RESULTS, Plan, log, machine, model_precisions,
                          pinned_precision)
from bench.latency import bench_kafka, bench_latency, bench_overload
from bench.readme import update_readme
from bench.report import figures, floors, markdown
from bench.references import bench_references
from bench.sections import (bench_batch_sweep, bench_capacity, bench_decode, bench_forward,
                            bench_parallel_cpu, bench_rss, bench_stages, bench_throughput,
                            rss_child)

__all__ = ["main", "markdown", "run"]


def run(mode: str = "full", out_dir: Path = RESULTS, command: str | None = None,
        write: bool = True, kafka: str | None = None) -> dict[str, Any]:
    plan = PLANS[mode]
    t_start = time.perf_counter()
    res: dict[str, Any] = {"schema": "geosentry.bench.v1",
                           "command": command or ("python -m bench"
                                                  + ("" if mode == "full" else f" --{mode}")
                                                  + (f" --kafka {kafka}" if kafka else "")),
                           "mode": mode, "plan": plan.__dict__, "machine": machine()}
    res["models"] = model_precisions()
    res["machine"]["precision"] = ", ".join(f"{k} {v['precision']}" for k, v in res["models"].items())
    sections: list[tuple[str, Callable[[Plan], dict[str, Any]]]] = [
        ("parallel_cpu", bench_parallel_cpu), ("forward", bench_forward),
        ("decode", bench_decode), ("throughput", bench_throughput),
        ("references", bench_references), ("stages", bench_stages),
        ("batch_sweep", bench_batch_sweep), ("latency", bench_latency),
        ("capacity", lambda p: bench_capacity(p, res["throughput"])),
        ("overload", lambda p: bench_overload(p, res["throughput"])), ("rss", bench_rss)]
    with pinned_precision(res["models"]):  # every service below at the choice reported above
        for name, section in sections:
            log(name)
            res[name] = section(plan)
        if kafka:
            res["latency_kafka"] = bench_kafka(plan, kafka)
    res["machine"]["loadavg_end"] = list(os.getloadavg())
    res["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    res["floors"] = floors(res)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        res["figures"] = figures(res, out_dir)
        (out_dir / "latest.json").write_text(json.dumps(res, indent=1) + "\n")
        (out_dir / "latest.md").write_text(markdown(res))
        log(f"wrote {out_dir / 'latest.json'} and latest.md in {res['elapsed_s']} s")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, under ~2 minutes")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--kafka", metavar="auto|HOST:PORT",
                    help="also measure latency to alerts acknowledged by a real Kafka broker "
                         "(auto: start a private one with deploy/kafka/broker.sh, stop it after)")
    ap.add_argument("--readme", action="store_true",
                    help="put the resulting table into README.md's Benchmarks section")
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rss-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child, args.rss_seconds)))
        return 0
    run("quick" if args.quick else "full", args.out, kafka=args.kafka)
    md = (args.out / "latest.md").read_text()
    print(md)
    if args.readme:
        update_readme(md)
    return 0
