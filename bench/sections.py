"""Benchmark sections that feed data as fast as possible: forward pass, decode, throughput
(with SeisBench and ObsPy side by side), real-time capacity, peak RSS, batch-size sweep."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (PREFILL_S, ROOT, Plan, bench_precision, cores, kept_up_in_real_time,
                          log, ratio, service_workers, stats)

def bench_forward(plan: Plan) -> dict[str, Any]:
    """The picker's forward pass alone, B = 64: the compute floor under everything else, at
    float32 and, when the service chose it on this machine, at bfloat16; then, at the service's
    precision on one thread, what the service runs: ``forward_range`` over the stretch each
    window owns plus the peak-finding context, at the throughput stride (15 s) and the latency
    stride (1 s)."""
    import torch

    from geosentry.stream.inference.precision import autocast

    det = service_picker(torch.device("cpu"))
    module = det.module
    out: dict[str, Any] = {"service_precision": det.precision}
    x = torch.randn(64, 3, 3001)

    def rate(fn: Any, precision: str) -> dict[str, Any]:
        rates = []
        with torch.inference_mode(), autocast(det.device, precision):
            fn()
            for _ in range(plan.repeats):
                t0, k = time.perf_counter(), 0
                while time.perf_counter() - t0 < plan.forward_s:
                    fn()
                    k += 64
                rates.append(k / (time.perf_counter() - t0))
        return stats(rates, "windows/s")

    precisions = ["fp32"] + (["bf16"] if det.precision == "bf16" else [])
    for precision in precisions:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            suffix = "" if precision == "fp32" else "_bf16"
            out[f"threads_{threads}{suffix}"] = rate(lambda: module(x), precision)
    torch.set_num_threads(1)
    for stride_s in (15.0, 1.0):
        d = det if stride_s == det.stride_s else service_picker(det.device, stride_s=stride_s)
        start, stop = d.decode_range(x.shape[-1], first=False)
        out[f"range_stride_{stride_s:g}"] = {
            "start": start, "stop": stop, "stride_s": stride_s, "precision": det.precision,
            "threads": 1,
            "windows_per_s": rate(lambda: d.module.forward_range(x, start, stop),  # noqa: B023
                                  det.precision)}  # (rate() calls it in this iteration)
    return out


def service_picker(device: Any, precision: str | None = None, stride_s: float | None = None) -> Any:
    """The shipped picker exactly as the service loads it (checked, frozen, at ``precision``,
    by default the benchmark's: ``bench_precision``); its ``module`` is the TorchScript it runs,
    under ``autocast(device, precision)``."""
    from geosentry.stream.detectors.registry import ModelConfig
    from geosentry.stream.inference.model import TorchScriptDetector
    from geosentry.stream.models import resolve

    cfg = ModelConfig(name="picker", path="builtin:picker", stride_s=stride_s)
    return TorchScriptDetector(cfg, resolve(cfg.path), device, precision or bench_precision())


def bench_decode(plan: Plan) -> dict[str, Any]:
    import obspy

    from bench.data import build_load
    from geosentry.stream.decode.mseed import decode_payload

    payloads = build_load(max(1, plan.decode_records // 200 + 1), 230).payloads[:plan.decode_records]
    rates: dict[str, list[float]] = {"pymseed": [], "obspy": []}
    for _ in range(plan.repeats):
        t0 = time.perf_counter()
        for p in payloads:
            decode_payload(p, 0)
        rates["pymseed"].append(len(payloads) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for p in payloads:
            obspy.read(io.BytesIO(p), format="MSEED")
        rates["obspy"].append(len(payloads) / (time.perf_counter() - t0))
    out: dict[str, Any] = {k: stats(v, "records/s", 0) for k, v in rates.items()}
    out["records"] = len(payloads)
    out["ratio_pymseed_vs_obspy"] = ratio(out["pymseed"], out["obspy"])
    return out


def _throughput(detector: str, n: int, seconds: float, repeats: int,
                **inference: Any) -> dict[str, Any]:
    from bench.data import build_load
    from bench.harness import config, fresh_state, run_case
    from geosentry.stream.detectors.factory import build_detectors

    load = build_load(n, seconds)
    cfg = config(detector, **inference)
    dets = build_detectors(cfg)
    runs = []
    for _ in range(repeats):
        fresh_state(dets)
        runs.append(run_case(load, cfg, detectors=dets))
    st_s = n * seconds
    return {
        "stations": n, "seconds_of_data": seconds, "records": runs[0].records,
        "windows": runs[0].windows, "alerts": runs[0].alerts,
        "stride_s": dets[0].spec.stride_s, "window_s": dets[0].spec.window_s,
        "workers": cfg.inference.workers or service_workers(), "detectors": [d.name for d in dets],
        "samples_per_s": stats([r.samples / r.wall_s for r in runs], "samples/s", 0),
        "station_seconds_per_s": stats([st_s / r.wall_s for r in runs], "station-s/s", 0),
        "windows_per_s": stats([r.windows / r.wall_s for r in runs], "windows/s", 1),
        "cpu_s_per_station_s": stats([r.cpu_s / st_s * 1e3 for r in runs], "ms CPU/station-s", 3),
    }


def bench_throughput(plan: Plan) -> dict[str, Any]:
    """Service defaults (one process, one inference worker per core), the picker held to one
    core, and scaled out to one process per core (stations split as consumer-group members
    would own them; ``bench.scaleout``)."""
    from bench import scaleout

    out = {"picker": _throughput("picker", *plan.tp_picker, plan.repeats),
           "picker_one_core": _throughput("picker", *plan.tp_picker, plan.repeats,
                                          workers=1, threads=1),
           "picker_anomaly": _throughput("picker+anomaly", *plan.tp_picker, plan.repeats),
           "stalta": _throughput("stalta", *plan.tp_stalta, plan.repeats)}
    if cores() > 1:
        out["picker_scaleout"] = scaleout.throughput("picker", *plan.tp_picker, plan.repeats,
                                                     cores())
        out["picker_anomaly_scaleout"] = scaleout.throughput(
            "picker+anomaly", *plan.tp_picker, plan.repeats, cores())
    return out


def best_deployment(throughput: dict[str, Any], detector: str) -> tuple[str, dict[str, Any]]:
    """The faster of one process (``detector``) and the scale-out (``detector_scaleout``)."""
    rows = [(k, throughput[k]) for k in (detector, f"{detector}_scaleout") if k in throughput]
    return max(rows, key=lambda kv: kv[1]["station_seconds_per_s"]["median"] or 0.0)


CAPACITY_SHARES = (0.8, 0.5)  # of the fast-fed estimate, paced-checked in this order


def bench_capacity(plan: Plan, throughput: dict[str, Any]) -> dict[str, Any]:
    """Largest N kept up with in real time, throughput mode, picker + anomaly scorer: estimated
    from their fast-fed throughput (station-seconds per second = stations in real time), then
    checked with paced input at ``CAPACITY_SHARES`` of the estimate until one keeps up (paced
    input batches differently from a fast feed, so the estimate can be optimistic; two checks
    at most keep the whole run under ten minutes)."""
    key, best = best_deployment(throughput, "picker_anomaly")
    est = best["station_seconds_per_s"]["median"]
    procs = best.get("processes", 1)
    out: dict[str, Any] = {"estimate_stations": int(est) if est else None,
                           "deployment": f"{procs} process{'es' if procs > 1 else ''}",
                           "from": key,
                           "detectors": "picker (stride 15 s) + anomaly scorer (stride 5 s)",
                           "method": "fast-fed picker + anomaly throughput (station-s/s) = "
                                     "stations kept up with in real time; checked with paced "
                                     "input at " + ", else ".join(f"{x:g}x" for x in CAPACITY_SHARES)}
    out["check"], out["checks"] = None, []
    if not plan.capacity_check or not est:
        return out
    for share in CAPACITY_SHARES:
        n = int(share * est)
        log(f"capacity check N={n} paced {plan.capacity_paced_s:g} s, {procs} process(es)")
        check = _paced_capacity(n, plan.capacity_paced_s, procs)
        out["checks"].append(check)
        out["check"] = check
        if check["kept_up"]:
            break
    return out


def _paced_capacity(n: int, paced_s: float, procs: int) -> dict[str, Any]:
    from bench.data import build_load
    from bench.harness import config, run_case

    if procs > 1:
        from bench import scaleout

        return scaleout.paced_check("picker+anomaly", n, paced_s, procs)
    load = build_load(n, PREFILL_S + paced_s)
    r = run_case(load, config("picker+anomaly"),
                 paced={"speed": 1.0, "prefill_s": PREFILL_S, "deadline_s": paced_s + 15.0})
    lag = r.source_lag_s
    lag_p99 = float(np.percentile(lag, 99)) if lag else None
    return {"stations": n, "paced_s": paced_s, "processes": 1,
            "source_lag_p99_s": round(lag_p99, 3) if lag_p99 is not None else None,
            "source_lag_last_s": round(lag[-1], 3) if lag else None,
            "drain_after_last_record_s": round(r.drain_s, 2),
            "windows": r.windows, "feeding_cut_short": r.cut_short,
            "kept_up": kept_up_in_real_time(lag_p99, r.drain_s, r.cut_short)}


def rss_child(n: int, seconds: float) -> dict[str, Any]:
    """In a fresh process: peak RSS of a fast-fed picker run (throughput mode) at N stations."""
    from bench.data import build_load
    from bench.harness import config, run_case

    def rss_now_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    from geosentry.stream.detectors.factory import build_detectors

    cfg = config("picker")
    dets = build_detectors(cfg)
    base = rss_now_mb()
    load = build_load(n, seconds)
    with_load = rss_now_mb()
    run_case(load, cfg, detectors=dets)
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")) / 1024
    return {"stations": n, "rss_base_mb": round(base, 1), "rss_with_input_mb": round(with_load, 1),
            "input_mb": round(load.nbytes / 2**20, 1), "rss_peak_mb": round(peak, 1)}


def bench_rss(plan: Plan) -> dict[str, Any]:
    rows = {}
    for n in plan.rss_ns:
        peaks, net = [], []
        for _ in range(plan.rss_repeats):
            done = subprocess.run([sys.executable, "-m", "bench", "--rss-child", str(n),
                                   "--rss-seconds", str(plan.rss_seconds)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"rss child failed: {done.stderr[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            peaks.append(r["rss_peak_mb"])
            net.append(r["rss_peak_mb"] - r["input_mb"])
        rows[str(n)] = {"stations": n, "rss_peak_mb": stats(peaks, "MB"),
                        "rss_peak_minus_input_mb": stats(net, "MB"), "input_mb": r["input_mb"],
                        "rss_base_mb": r["rss_base_mb"]}
    out: dict[str, Any] = {"mode": "picker, throughput mode, fed as fast as possible, "
                                   f"{plan.rss_seconds:g} s of data", "by_stations": rows}
    ns = sorted(int(k) for k in rows)
    if len(ns) >= 2:
        ys = [rows[str(k)]["rss_peak_minus_input_mb"]["median"] for k in ns]
        slope = np.polyfit(ns, ys, 1)[0]
        out["growth_kb_per_station"] = round(float(slope) * 1024, 1)
    return out


def bench_batch_sweep(plan: Plan) -> dict[str, Any]:
    """Forward pass of the served picker per batch size on the inference device (CUDA when
    present, else CPU with one thread per worker): windows/s and time per batch, and the batch
    size that maximises throughput with a batch still under the 100 ms latency budget."""
    import torch

    from geosentry.stream.inference.precision import autocast

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    det = service_picker(device)
    module = det.module
    if device.type == "cpu":
        torch.set_num_threads(max(1, cores() // service_workers()))
    rows: dict[str, dict[str, Any]] = {}
    for b in plan.sweep_batches:
        x = torch.randn(b, 3, 3001, device=device)
        times = []
        with torch.inference_mode(), autocast(device, det.precision):
            module(x)
            for _ in range(max(plan.repeats, 3)):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                module(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        rows[str(b)] = {"batch": b, "batch_ms": stats([t * 1e3 for t in times], "ms"),
                        "windows_per_s": stats([b / t for t in times], "windows/s")}
    torch.set_num_threads(1)
    ok = [r for r in rows.values() if (r["batch_ms"]["median"] or 1e9) <= 100.0]
    best = max(ok, key=lambda r: r["windows_per_s"]["median"] or 0.0) if ok else None
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    return {"device": name, "precision": det.precision, "by_batch": rows, "budget_ms": 100.0,
            "best_batch_within_budget": best["batch"] if best else None,
            "workers": service_workers() if device.type == "cpu" else 1}


def bench_stages(plan: Plan) -> dict[str, Any]:
    """Where the time goes, picker throughput case on one worker: CPU seconds per station-hour
    of decode alone, decode + buffering + window cutting (no detector runs), and the inference
    batches (forward pass + normalisation, summed over batches), against the whole run's wall
    and CPU time."""
    from bench.data import build_load
    from bench.harness import config, fresh_state, run_case
    from geosentry.stream.buffer.windows import Windower
    from geosentry.stream.decode.mseed import decode_payload
    from geosentry.stream.detectors.factory import build_detectors

    n, seconds = plan.tp_picker
    load = build_load(n, seconds)
    cfg = config("picker", workers=1, threads=1)
    dets = build_detectors(cfg)
    per_hour = 3600.0 / (n * seconds)
    rows: dict[str, list[float]] = {"decode": [], "decode_windows": [], "inference": [],
                                    "pipeline_wall": [], "pipeline_cpu": []}
    for _ in range(plan.repeats):
        t0 = time.process_time()
        for p in load.payloads:
            decode_payload(p, 0)
        rows["decode"].append((time.process_time() - t0) * per_hour)
        windower = Windower([d.spec for d in dets], cfg.buffer)
        t0 = time.process_time()
        for p in load.payloads:
            for rec in decode_payload(p, 0):
                windower.push(rec)
        windower.flush()
        rows["decode_windows"].append((time.process_time() - t0) * per_hour)
        fresh_state(dets)
        r = run_case(load, cfg, detectors=dets)
        rows["inference"].append(r.inference_s * per_hour)
        rows["pipeline_wall"].append(r.wall_s * per_hour)
        rows["pipeline_cpu"].append(r.cpu_s * per_hour)
    return {"stations": n, "seconds_of_data": seconds, "unit": "s per station-hour",
            **{k: stats(v, "s/station-h", 3) for k, v in rows.items()}}


def bench_parallel_cpu(plan: Plan) -> dict[str, Any]:
    """How much parallel compute this machine gives one process right now: CPU seconds per
    wall second of one and of ``cores()`` threads each sorting arrays with numpy (single-threaded
    per call, GIL released)."""
    import threading

    a = np.random.default_rng(0).random(1_000_000)

    def work() -> None:
        for _ in range(8):
            np.sort(a)

    out: dict[str, Any] = {}
    for nth in sorted({1, cores()}):
        ratios = []
        for _ in range(plan.repeats):
            threads = [threading.Thread(target=work) for _ in range(nth)]
            t0, c0 = time.perf_counter(), time.process_time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ratios.append((time.process_time() - c0) / (time.perf_counter() - t0))
        out[f"threads_{nth}"] = stats(ratios, "CPU s / wall s", 2)
    return out
