"""geosentry benchmark (issue 6): throughput, real-time capacity, alert latency, memory, decode
rate, side by side with SeisBench ``annotate`` and ObsPy STA/LTA, in one run on this machine.

    python -m bench            # full mode (under 10 minutes on 2 cores)
    python -m bench --quick    # small N, under 2 minutes (what the smoke test's mode builds on)

Writes ``bench/results/latest.json``, ``latest.md`` (the README table) and ``latest_*.png``.
Every figure is the median over repeats with min/max; ratios are computed inside one run
because the machine is shared and noisy. All geosentry figures go through the real path:
``stream.pipeline.Pipeline`` fed with real 512-byte Steim2 records (``bench/data.py``) from an
in-memory source, alerts to an in-memory sink.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
THREADS = 1  # torch threads: the event loop (decode, windows) uses the other core


@dataclass(frozen=True)
class Plan:
    mode: str
    repeats: int
    forward_s: float
    decode_records: int
    tp_picker: tuple[int, float]  # (stations, seconds of data)
    tp_stalta: tuple[int, float]
    latency_ns: tuple[int, ...]
    latency_paced_s: float
    latency_speed: float
    latency_overload_paced_s: float
    capacity_check: bool
    capacity_paced_s: float
    rss_ns: tuple[int, ...]
    rss_seconds: float
    rss_repeats: int


PLANS = {
    "full": Plan("full", repeats=3, forward_s=1.5, decode_records=3000, tp_picker=(100, 230),
                 tp_stalta=(20, 230), latency_ns=(100, 500), latency_paced_s=24.0,
                 latency_speed=1.0, latency_overload_paced_s=16.0, capacity_check=True,
                 capacity_paced_s=30.0, rss_ns=(100, 500, 1000), rss_seconds=40.0, rss_repeats=3),
    "quick": Plan("quick", repeats=3, forward_s=0.5, decode_records=500, tp_picker=(10, 120),
                  tp_stalta=(5, 120), latency_ns=(10,), latency_paced_s=20.0, latency_speed=2.0,
                  latency_overload_paced_s=0.0, capacity_check=False, capacity_paced_s=0.0,
                  rss_ns=(5, 25), rss_seconds=40.0, rss_repeats=3),
    "smoke": Plan("smoke", repeats=1, forward_s=0.2, decode_records=100, tp_picker=(3, 60),
                  tp_stalta=(2, 70), latency_ns=(3,), latency_paced_s=2.0, latency_speed=2.0,
                  latency_overload_paced_s=0.0, capacity_check=False, capacity_paced_s=0.0,
                  rss_ns=(2,), rss_seconds=40.0, rss_repeats=1),
}
PREFILL_S = 29.0  # latency/capacity runs: data before the first window (30 s) at once, then paced


def stats(values: list[float], unit: str, digits: int = 1) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "unit": unit, "values": []}
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals), "unit": unit,
            "values": [round(v, digits) for v in vals]}


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not a.get("median") or not b.get("median"):
        return None
    return round(a["median"] / b["median"], 2)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": THREADS, "loadavg_start": list(os.getloadavg()),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# ---- sections -------------------------------------------------------------------------------
def bench_forward(plan: Plan) -> dict[str, Any]:
    """The picker's forward pass alone, B = 64: the compute floor under everything else."""
    import torch

    from stream.inference.model import load_torchscript
    from stream.models import resolve

    module = load_torchscript(resolve("builtin:picker"), torch.device("cpu"))
    out: dict[str, Any] = {}
    x = torch.randn(64, 3, 3001)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rates = []
        with torch.inference_mode():
            module(x)
            for _ in range(plan.repeats):
                t0, k = time.perf_counter(), 0
                while time.perf_counter() - t0 < plan.forward_s:
                    module(x)
                    k += 64
                rates.append(k / (time.perf_counter() - t0))
        out[f"threads_{threads}"] = stats(rates, "windows/s")
    torch.set_num_threads(THREADS)
    return out


def bench_decode(plan: Plan) -> dict[str, Any]:
    import obspy

    from bench.data import build_load
    from stream.decode.mseed import decode_payload

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
    out = {k: stats(v, "records/s", 0) for k, v in rates.items()}
    out["records"] = len(payloads)
    out["ratio_pymseed_vs_obspy"] = ratio(out["pymseed"], out["obspy"])
    return out


def _throughput(detector: str, n: int, seconds: float, repeats: int) -> dict[str, Any]:
    from bench.data import build_load
    from bench.harness import config, run_case
    from stream.detectors.factory import build_detectors

    load = build_load(n, seconds)
    cfg = config(detector, threads=THREADS)
    dets = build_detectors(cfg)
    runs = []
    for _ in range(repeats):
        # fresh detector state each repeat, model loaded once (loading is not throughput)
        for d in dets:
            if hasattr(d, "_state"):
                d._state.clear()
            if hasattr(d, "_armed"):
                d._armed.clear()
        runs.append(run_case(load, cfg, detectors=dets))
    st_s = n * seconds
    return {
        "stations": n, "seconds_of_data": seconds, "records": runs[0].records,
        "windows": runs[0].windows, "alerts": runs[0].alerts,
        "stride_s": dets[0].spec.stride_s, "window_s": dets[0].spec.window_s,
        "samples_per_s": stats([r.samples / r.wall_s for r in runs], "samples/s", 0),
        "station_seconds_per_s": stats([st_s / r.wall_s for r in runs], "station-s/s", 0),
        "windows_per_s": stats([r.windows / r.wall_s for r in runs], "windows/s", 1),
        "cpu_s_per_station_s": stats([r.cpu_s / st_s * 1e3 for r in runs], "ms CPU/station-s", 3),
    }


def bench_throughput(plan: Plan) -> dict[str, Any]:
    return {"picker": _throughput("picker", *plan.tp_picker, plan.repeats),
            "stalta": _throughput("stalta", *plan.tp_stalta, plan.repeats)}


def bench_references(plan: Plan) -> dict[str, Any]:
    """SeisBench annotate (our network inside SeisBench's PhaseNet wrapper, and SeisBench's own
    PhaseNet with random weights) and ObsPy recursive_sta_lta + trigger_onset, same data."""
    import torch

    from bench.data import station_streams

    out: dict[str, Any] = {}
    n, seconds = plan.tp_picker
    st = station_streams(n, seconds)
    torch.set_num_threads(THREADS)
    try:
        warnings.filterwarnings("ignore")
        t0 = time.perf_counter()
        import seisbench
        import seisbench.models as sbm

        out["seisbench_version"] = seisbench.__version__
        out["seisbench_import_s"] = round(time.perf_counter() - t0, 2)
    except Exception as exc:  # optional: pip install -e '.[bench]'
        out["seisbench_skipped"] = f"seisbench not importable: {exc!r}"
        sbm = None
    if sbm is not None:
        from stream.inference.model import load_torchscript
        from stream.models import resolve

        ours = load_torchscript(resolve("builtin:picker"), torch.device("cpu"))
        same = sbm.PhaseNet(phases="PSN", sampling_rate=100, norm="std")
        same.forward = lambda x, logits=False: ours(x)  # our exported network, SeisBench's annotate
        same.eval()
        native = sbm.PhaseNet(phases="PSN", sampling_rate=100, norm="std").eval()
        for key, model in (("seisbench_annotate_same_net", same),
                           ("seisbench_annotate_phasenet", native)):
            rates = []
            for _ in range(plan.repeats):
                t0 = time.perf_counter()
                model.annotate(st, overlap=1500, batch_size=64)
                rates.append(n * seconds / (time.perf_counter() - t0))
            out[key] = {"stations": n, "seconds_of_data": seconds, "overlap": 1500,
                        "batch_size": 64,
                        "station_seconds_per_s": stats(rates, "station-s/s", 0),
                        "samples_per_s": stats([r * 300 for r in rates], "samples/s", 0)}
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    n2, seconds2 = plan.tp_stalta
    st2 = station_streams(n2, seconds2).select(component="Z")
    rates = []
    for _ in range(plan.repeats):
        t0 = time.perf_counter()
        for tr in st2:
            x = tr.copy().filter("bandpass", freqmin=1.0, freqmax=20.0, corners=4,
                                 zerophase=False).data.astype(np.float64)
            trigger_onset(recursive_sta_lta(x, 50, 1000), 3.5, 1.0)
        rates.append(n2 * seconds2 / (time.perf_counter() - t0))
    out["obspy_stalta"] = {"stations": n2, "seconds_of_data": seconds2,
                           "station_seconds_per_s": stats(rates, "station-s/s", 0)}
    return out


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1e3 if values else None


class AckTimingSink:
    """Wraps a sink whose ``send`` returns once alerts are durable (Kafka: acknowledged by the
    broker) and records, per alert, newest sample arrival -> acknowledged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.alerts: list[Any] = []
        self.acked_s: list[float] = []

    async def start(self) -> None:
        await self.inner.start()

    async def send(self, alerts: list[Any]) -> None:
        from stream.records import now_ns

        await self.inner.send(alerts)
        t = now_ns()
        self.alerts.extend(alerts)
        self.acked_s.extend((t, a.newest_arrival_ns) for a in alerts if a.kind != "health")

    async def stop(self) -> None:
        await self.inner.stop()


def _create_topic(bootstrap: str, topic: str) -> None:
    """Create the alert topic before timing (auto-creation on the first send is not latency)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"warm-up")
        finally:
            await producer.stop()

    asyncio.run(go())


def _latency(n: int, paced_s: float, repeats: int, speed: float,
             kafka: str | None = None) -> dict[str, Any]:
    from bench.data import build_load
    from bench.harness import config, run_case
    from stream.detectors.factory import build_detectors

    load = build_load(n, PREFILL_S + paced_s)
    # a bounded backlog (1000 windows, not 20000) so an overloaded run ends soon after feeding
    cfg = config("picker", stride_s=1.0, threads=THREADS, max_pending_windows=1000)
    dets = build_detectors(cfg)
    window_lat: list[float] = []
    inner = dets[0].process

    def timed(windows: list[Any]) -> list[Any]:
        from stream.records import now_ns

        out = inner(windows)
        t = now_ns()
        window_lat.extend((t - w.newest_arrival_ns) / 1e9 for w in windows)
        return out

    dets[0].process = timed
    per: dict[str, list[float]] = {"p50": [], "p95": [], "p99": [], "max": [], "lag_p99": [],
                                   "lag_last": [], "drain": [], "w50": [], "w99": []}
    cut = []
    pooled: list[float] = []
    counts = []
    acked: list[list[float]] = []
    topic = f"bench-alerts-{os.getpid()}"
    if kafka:
        _create_topic(kafka, topic)
    for _ in range(repeats):
        for d in dets:
            d._state.clear()
        sink = None
        if kafka:
            from stream.sinks.kafka import KafkaSink

            sink = AckTimingSink(KafkaSink(f"kafka://{kafka}/{topic}"))
        window_lat.clear()
        r = run_case(load, cfg, detectors=dets, sink=sink,
                     paced={"speed": speed, "prefill_s": PREFILL_S,
                            "deadline_s": paced_s / speed + 5.0})
        cut.append(r.cut_short)
        wl = [x for x in window_lat]  # every window, newest sample arrival -> inference result
        per["w50"].append(_pct(wl, 50))
        per["w99"].append(_pct(wl, 99))
        lat = r.latencies_s
        if sink is not None:
            acked.append([(t - arr) / 1e9 for t, arr in sink.acked_s if arr >= r.since_ns])
        pooled += lat
        counts.append(len(lat))
        for q in (50, 95, 99):
            per[f"p{q}"].append(_pct(lat, q))
        per["max"].append(max(lat) * 1e3 if lat else None)
        per["lag_p99"].append(float(np.percentile(r.source_lag_s, 99)) if r.source_lag_s else None)
        per["lag_last"].append(r.source_lag_s[-1] if r.source_lag_s else None)
        per["drain"].append(r.drain_s)
    kept_up = [lp is not None and lp < 1.0 and d < 2.0 and not c
               for lp, d, c in zip(per["lag_p99"], per["drain"], cut)]
    out = {
        "stations": n, "stride_s": 1.0, "paced_s": paced_s, "speed": speed,
        "alerts_per_run": counts,
        "p50_ms": stats(per["p50"], "ms"), "p95_ms": stats(per["p95"], "ms"),
        "p99_ms": stats(per["p99"], "ms"), "max_ms": stats(per["max"], "ms"),
        "pooled_p99_ms": round(_pct(pooled, 99), 1) if pooled else None,
        "window_to_result_p50_ms": stats(per["w50"], "ms"),
        "window_to_result_p99_ms": stats(per["w99"], "ms"),
        "source_lag_p99_s": stats(per["lag_p99"], "s", 3),
        "feeding_cut_short": cut,
        "drain_after_last_record_s": stats(per["drain"], "s", 2),
        "kept_up": kept_up,
    }
    if kafka:
        out["acked_p50_ms"] = stats([_pct(a, 50) for a in acked], "ms")
        out["acked_p95_ms"] = stats([_pct(a, 95) for a in acked], "ms")
        out["acked_p99_ms"] = stats([_pct(a, 99) for a in acked], "ms")
        out["sink"] = "kafka (acks=all, idempotent producer), broker on this machine"
    return out


def bench_latency(plan: Plan) -> dict[str, Any]:
    out = {}
    for n in plan.latency_ns:
        overloaded = plan.latency_overload_paced_s and n > min(plan.latency_ns)
        paced = plan.latency_overload_paced_s if overloaded else plan.latency_paced_s
        repeats = 1 if overloaded else plan.repeats
        log(f"latency N={n} paced {paced:g} s of data at {plan.latency_speed:g}x real time x {repeats}")
        out[str(n)] = _latency(n, paced, repeats, plan.latency_speed)
    return out


def bench_capacity(plan: Plan, throughput: dict[str, Any]) -> dict[str, Any]:
    """Largest N kept up with in real time, throughput mode: estimated from the fast-fed picker
    throughput (station-seconds per second = stations in real time), checked with paced input."""
    est = throughput["picker"]["station_seconds_per_s"]["median"]
    out: dict[str, Any] = {"estimate_stations": int(est) if est else None,
                           "method": "fast-fed picker throughput (station-s/s) = stations kept "
                                     "up with in real time; checked with paced input at 0.9x"}
    if not plan.capacity_check or not est:
        out["check"] = None
        return out
    from bench.data import build_load
    from bench.harness import config, run_case

    n = int(0.9 * est)
    log(f"capacity check N={n} paced {plan.capacity_paced_s:g} s")
    load = build_load(n, PREFILL_S + plan.capacity_paced_s)
    r = run_case(load, config("picker", threads=THREADS),
                 paced={"speed": 1.0, "prefill_s": PREFILL_S,
                        "deadline_s": plan.capacity_paced_s + 15.0})
    lag = r.source_lag_s
    # kept up: the source never falls behind by a growing amount, and the last window's
    # inference ends within one stride (15 s) of the last record
    kept = (bool(lag) and float(np.percentile(lag, 99)) < 1.0 and r.drain_s < 15.0
            and not r.cut_short)
    out["check"] = {"stations": n, "paced_s": plan.capacity_paced_s,
                    "source_lag_p99_s": round(float(np.percentile(lag, 99)), 3) if lag else None,
                    "source_lag_last_s": round(lag[-1], 3) if lag else None,
                    "drain_after_last_record_s": round(r.drain_s, 2),
                    "windows": r.windows, "feeding_cut_short": r.cut_short, "kept_up": kept}
    return out


def rss_child(n: int, seconds: float) -> dict[str, Any]:
    """In a fresh process: peak RSS of a fast-fed picker run (throughput mode) at N stations."""
    from bench.data import build_load
    from bench.harness import config, run_case

    def rss_now_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    from stream.detectors.factory import build_detectors

    cfg = config("picker", threads=THREADS)
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


# ---- report -----------------------------------------------------------------------------------
def _fmt(s: dict[str, Any] | None, digits: int = 0) -> str:
    if not s or s.get("median") is None:
        return "n/a"
    f = f"{{:,.{digits}f}}"
    return f"{f.format(s['median'])} ({f.format(s['min'])}–{f.format(s['max'])})"


def markdown(res: dict[str, Any]) -> str:
    m, tp, ref, dec = res["machine"], res["throughput"], res["references"], res["decode"]
    pk, sl = tp["picker"], tp["stalta"]
    rows = [("figure", "geosentry", "reference", "ratio")]
    sb = ref.get("seisbench_annotate_same_net")
    sbn = ref.get("seisbench_annotate_phasenet")
    rows.append((f"picker throughput, stride {pk['stride_s']:g} s (station-s/s; {pk['stations']} "
                 f"stations × {pk['seconds_of_data']:g} s)", _fmt(pk["station_seconds_per_s"]),
                 f"SeisBench annotate, same network: {_fmt(sb['station_seconds_per_s'])}" if sb
                 else ref.get("seisbench_skipped", "SeisBench skipped"),
                 f"{ratio(pk['station_seconds_per_s'], sb['station_seconds_per_s'])}×" if sb else "–"))
    if sbn:
        rows.append(("", "", f"SeisBench annotate, its PhaseNet: {_fmt(sbn['station_seconds_per_s'])}",
                     f"{ratio(pk['station_seconds_per_s'], sbn['station_seconds_per_s'])}×"))
    rows.append(("picker throughput (samples/s)", _fmt(pk["samples_per_s"]),
                 f"SeisBench same network: {_fmt(sb['samples_per_s'])}" if sb else "–",
                 f"{ratio(pk['samples_per_s'], sb['samples_per_s'])}×" if sb else "–"))
    ob = ref["obspy_stalta"]
    rows.append((f"STA/LTA throughput, stride {sl['stride_s']:g} s, window {sl['window_s']:g} s "
                 f"(station-s/s; {sl['stations']} stations)", _fmt(sl["station_seconds_per_s"]),
                 f"ObsPy recursive_sta_lta + trigger_onset, whole trace: "
                 f"{_fmt(ob['station_seconds_per_s'])}",
                 f"{ratio(sl['station_seconds_per_s'], ob['station_seconds_per_s'])}×"))
    rows.append(("STA/LTA throughput (samples/s)", _fmt(sl["samples_per_s"]), "", ""))
    cap = res["capacity"]
    chk = cap.get("check")
    rows.append(("real-time capacity, picker stride 15 s (stations)",
                 f"≈ {cap['estimate_stations']:,} (estimate)" if cap["estimate_stations"] else "n/a",
                 (f"paced check at {chk['stations']:,}: {'kept up' if chk['kept_up'] else 'fell behind'}"
                  f" (source lag p99 {chk['source_lag_p99_s']} s, drain {chk['drain_after_last_record_s']} s)")
                 if chk else "paced check: full mode only", "floor 5,000"))
    for n, lat in res["latency"].items():
        up = lat["kept_up"]
        speed = "real time" if lat["speed"] == 1 else f"{lat['speed']:g}× real time"
        rows.append((f"added latency to sink, N = {n}, picker stride 1 s, paced at {speed} "
                     f"(ms; alerts/run {lat['alerts_per_run']})",
                     f"p50 {_fmt(lat['p50_ms'])} · p95 {_fmt(lat['p95_ms'])} · p99 {_fmt(lat['p99_ms'])}",
                     f"every window, arrival → inference result: p50 "
                     f"{_fmt(lat['window_to_result_p50_ms'])} · p99 "
                     f"{_fmt(lat['window_to_result_p99_ms'])}; kept up {sum(up)}/{len(up)} runs "
                     f"(source lag p99 {_fmt(lat['source_lag_p99_s'], 2)} s)",
                     "floor p99 ≤ 100 ms at 500"))
    kl = res.get("latency_kafka")
    if kl and "skipped" not in kl:
        rows.append((f"added latency to Kafka ack, N = {kl['stations']}, same setup (ms; alerts/run "
                     f"{kl['alerts_per_run']})",
                     f"p50 {_fmt(kl['acked_p50_ms'])} · p95 {_fmt(kl['acked_p95_ms'])} · "
                     f"p99 {_fmt(kl['acked_p99_ms'])}",
                     f"handed to the Kafka sink: p99 {_fmt(kl['p99_ms'])}", ""))
    elif kl:
        rows.append(("added latency to Kafka ack", "skipped", kl["skipped"][:120], ""))
    rss = res["rss"]
    for n, row in rss["by_stations"].items():
        rows.append((f"peak RSS, N = {n} ({rss['mode']})", f"{_fmt(row['rss_peak_mb'])} MB",
                     f"of which input held by the test source {row['input_mb']} MB", ""))
    if "growth_kb_per_station" in rss:
        rows.append(("RSS growth per station", f"{rss['growth_kb_per_station']:,} kB", "", ""))
    rows.append(("decode, 512-byte Steim2 record (records/s)", f"pymseed {_fmt(dec['pymseed'])}",
                 f"obspy.read {_fmt(dec['obspy'])}", f"{dec['ratio_pymseed_vs_obspy']}×"))
    fw = res["forward"]
    rows.append(("picker forward alone, B = 64 (windows/s)", f"1 thread {_fmt(fw['threads_1'])}",
                 f"2 threads {_fmt(fw['threads_2'])}", f"{ratio(fw['threads_1'], fw['threads_2'])}×"))
    fl = res.get("floors", {})
    names = {"throughput_vs_seisbench_ge_1.2": "throughput ≥ 1.2× SeisBench (same network)",
             "realtime_stations_ge_5000": "≥ 5,000 stations in real time",
             "p99_le_100ms_at_500": "p99 ≤ 100 ms at 500 stations, stride 1 s",
             "rss_le_1.5GB_at_1000": "RSS ≤ 1.5 GB at 1,000 stations"}
    verdict = {True: "met", False: "not met", None: "not measured"}
    rows.append(("issue 6 floors", "; ".join(f"{names[k]}: {verdict[v]}" for k, v in fl.items()),
                 "", ""))
    out = [f"`{res['command']}` — {m['date']}, {m['cpus']} cores ({m['cpu_model']}), shared with "
           f"other work (load average {m['loadavg_start'][0]:.1f} at start, "
           f"{m['loadavg_end'][0]:.1f} at end), torch {m['torch']} with {m['torch_threads']} "
           f"inference thread; median (min–max) of {res['plan']['repeats']} runs unless noted.", ""]
    for i, r in enumerate(rows):
        out.append("| " + " | ".join(r) + " |")
        if i == 0:
            out.append("| --- | --- | --- | --- |")
    return "\n".join(out) + "\n"


def figures(res: dict[str, Any], out_dir: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return []
    made = []
    tp, ref = res["throughput"], res["references"]
    bars = [("geosentry picker", tp["picker"]["station_seconds_per_s"])]
    for key, label in (("seisbench_annotate_same_net", "SeisBench annotate\n(same net)"),
                       ("seisbench_annotate_phasenet", "SeisBench annotate\n(its PhaseNet)")):
        if key in ref:
            bars.append((label, ref[key]["station_seconds_per_s"]))
    bars += [("geosentry STA/LTA", tp["stalta"]["station_seconds_per_s"]),
             ("ObsPy STA/LTA", ref["obspy_stalta"]["station_seconds_per_s"])]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    med = [b[1]["median"] for b in bars]
    err = [[b[1]["median"] - b[1]["min"] for b in bars], [b[1]["max"] - b[1]["median"] for b in bars]]
    ax.bar([b[0] for b in bars], med, yerr=err, capsize=4, color="#4477aa")
    ax.set_yscale("log")
    ax.set_ylabel("station-seconds / s")
    ax.set_title(f"Throughput ({res['machine']['cpus']} cores, median, min–max)")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    p = out_dir / "latest_throughput.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p.name)
    lat = {n: v for n, v in res["latency"].items() if v["p50_ms"]["median"] is not None}
    if lat:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
            xs = [i + 4 * k for k in range(len(lat))]
            st = [v[q] for v in lat.values()]
            ax.bar(xs, [s["median"] for s in st], label=q[:3],
                   yerr=[[s["median"] - s["min"] for s in st], [s["max"] - s["median"] for s in st]],
                   capsize=3)
        ax.set_xticks([1 + 4 * k for k in range(len(lat))], [f"N = {n}" for n in lat])
        ax.axhline(100, color="grey", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_ylabel("newest sample arrival → sink (ms)")
        ax.set_title("Alert latency, picker stride 1 s, paced (median, min–max)")
        ax.legend()
        fig.tight_layout()
        p = out_dir / "latest_latency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p.name)
    return made


def bench_kafka(plan: Plan, kafka: str) -> dict[str, Any]:
    """Latency to the alert acknowledged by a real Kafka broker (``deploy/kafka/broker.sh``).

    ``auto`` starts a private broker (own state directory, free port) and stops it afterwards;
    anything else is a bootstrap address of a running broker. Runs last: the JVM shares the
    cores with the service under test.
    """
    import shutil
    import tempfile

    broker = ROOT / "deploy" / "kafka" / "broker.sh"
    env = dict(os.environ)
    state = None
    n = min(plan.latency_ns)
    try:
        if kafka == "auto":
            state = tempfile.mkdtemp(prefix="geosentry-bench-kafka-")
            env["GEOSENTRY_KAFKA_STATE"] = state
            log("kafka: starting a private broker")
            done = subprocess.run([str(broker), "start"], capture_output=True, text=True,
                                  env=env, timeout=240)
            if done.returncode != 0:
                return {"skipped": f"broker.sh start failed: {done.stderr[-500:]}"}
            address = done.stdout.strip().splitlines()[-1]
        else:
            address = kafka
        log(f"kafka latency N={n} via {address}")
        out = _latency(n, plan.latency_paced_s, plan.repeats, plan.latency_speed, kafka=address)
        out["bootstrap"] = address
        return out
    except Exception as exc:  # report, don't lose the rest of the run
        return {"skipped": f"kafka latency failed: {exc!r}"}
    finally:
        if state is not None:
            subprocess.run([str(broker), "stop"], capture_output=True, env=env, timeout=120)
            shutil.rmtree(state, ignore_errors=True)


def run(mode: str = "full", out_dir: Path = RESULTS, command: str | None = None,
        write: bool = True, kafka: str | None = None) -> dict[str, Any]:
    plan = PLANS[mode]
    import torch

    torch.set_num_threads(THREADS)
    t_start = time.perf_counter()
    res: dict[str, Any] = {"schema": "geosentry.bench.v1",
                           "command": command or ("python -m bench"
                                                  + ("" if mode == "full" else f" --{mode}")
                                                  + (f" --kafka {kafka}" if kafka else "")),
                           "mode": mode, "plan": plan.__dict__, "machine": machine()}
    log("forward")
    res["forward"] = bench_forward(plan)
    log("decode")
    res["decode"] = bench_decode(plan)
    log("throughput")
    res["throughput"] = bench_throughput(plan)
    log("references (SeisBench, ObsPy)")
    res["references"] = bench_references(plan)
    log("latency")
    res["latency"] = bench_latency(plan)
    res["capacity"] = bench_capacity(plan, res["throughput"])
    log("rss")
    res["rss"] = bench_rss(plan)
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


def floors(res: dict[str, Any]) -> dict[str, Any]:
    ref, tp = res["references"], res["throughput"]
    sb = ref.get("seisbench_annotate_same_net")
    r = ratio(tp["picker"]["station_seconds_per_s"], sb["station_seconds_per_s"]) if sb else None
    lat = res["latency"].get("500")
    rss1000 = res["rss"]["by_stations"].get("1000")
    cap = res["capacity"]
    return {
        "throughput_vs_seisbench_ge_1.2": None if r is None else r >= 1.2,
        "realtime_stations_ge_5000": (cap["estimate_stations"] or 0) >= 5000,
        "p99_le_100ms_at_500": None if lat is None else (lat["p99_ms"]["median"] or 1e9) <= 100,
        "rss_le_1.5GB_at_1000": None if rss1000 is None else rss1000["rss_peak_mb"]["median"] <= 1536,
    }


README_INTRO = """## Benchmarks

Issue 6's benchmark, one command from a fresh clone (SeisBench is a benchmark-only optional
dependency, GPL, never vendored: `pip install -e '.[bench]'`; without it that column is skipped):

```bash
python -m bench                    # full: under 10 minutes on 2 cores
python -m bench --quick            # small N, under 2 minutes (tests/bench runs its smallest case)
python -m bench --kafka auto       # also latency to alerts acknowledged by a private Kafka broker
```

It writes `bench/results/latest.json` (every repeat), `latest.md` (the table below),
`latest_throughput.png` and `latest_latency.png`. Load: N three-component 100 Hz stations built
from ObsPy's BW.UH* recordings (tiled and shifted, N/E with added noise) as real 512-byte Steim2
records, through `Pipeline` (pymseed decode → windows → micro-batched inference → alerts →
sink). Throughput is fed as fast as possible; latency and capacity checks are paced at the data's
own rate once the first 29 s (before the first window) are handed over at once. SeisBench
`annotate` runs our exported network inside its PhaseNet wrapper (same network, data and thread
count), and its own PhaseNet (random weights) for reference; ObsPy runs `recursive_sta_lta` +
`trigger_onset` once over each whole trace. The machine is shared: compare ratios within one run.

"""


def update_readme(md: str, readme: Path = ROOT / "README.md") -> None:
    """Put the table into README's "## Benchmarks" section (inserted before "## Development")."""
    text = readme.read_text()
    figs = "".join(f"![{f}](bench/results/{f})\n" for f in ("latest_throughput.png",
                                                              "latest_latency.png")
                   if (RESULTS / f).exists())
    section = README_INTRO + md.rstrip() + "\n\n" + (figs + "\n" if figs else "")
    if "\n## Benchmarks\n" in text:
        head, rest = text.split("\n## Benchmarks\n", 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = head + "\n" + section + tail.lstrip("\n")
    else:
        head, tail = text.split("\n## Development\n", 1)
        text = head + "\n" + section + "## Development\n" + tail
    readme.write_text(text)


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
    res = run("quick" if args.quick else "full", args.out, kafka=args.kafka)
    md = (args.out / "latest.md").read_text()
    print(md)
    if args.readme:
        update_readme(md)
    return 0
