"""Paced sections: added alert latency (to the sink and to the Kafka ack) and overload."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import numpy as np

from bench.common import PREFILL_S, ROOT, Plan, log, pct, stats

#: What an early-warning deployment sets (README, "Latency mode"): small batches that close
#: quickly, and windows older than 2 s shed rather than queued. A bounded backlog (1000 windows,
#: not 20000) also lets an overloaded run end soon after feeding stops.
LATENCY_MODE: dict[str, Any] = {"max_batch": 16, "max_wait_s": 0.005, "max_lag_s": 2.0,
                                "max_pending_windows": 1000}

class AckTimingSink:
    """Wraps a sink whose ``send`` returns once alerts are durable (Kafka: acknowledged by the
    broker) and records, per alert, newest sample arrival -> acknowledged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.alerts: list[Any] = []
        self.acked_s: list[tuple[int, int]] = []  # (acknowledged, newest arrival) in ns

    async def start(self) -> None:
        await self.inner.start()

    async def send(self, alerts: list[Any]) -> None:
        from geosentry.stream.records import now_ns

        await self.inner.send(alerts)
        t = now_ns()
        self.alerts.extend(alerts)
        self.acked_s.extend((t, a.newest_arrival_ns) for a in alerts if a.kind != "health")

    async def stop(self) -> None:
        await self.inner.stop()


def _alert_topic() -> str:
    """The topic this benchmark run's alerts go to (created once by ``bench_kafka``)."""
    return f"bench-alerts-{os.getpid()}"


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
    from bench.harness import config, fresh_state, run_case
    from geosentry.stream.detectors.factory import build_detectors

    load = build_load(n, PREFILL_S + paced_s)
    cfg = config("picker", stride_s=1.0, **LATENCY_MODE)
    dets = build_detectors(cfg)
    window_lat: list[float] = []
    inner = dets[0].score  # type: ignore[attr-defined]

    def timed(windows: list[Any], outputs: Any) -> list[Any]:
        from geosentry.stream.records import now_ns

        out = inner(windows, outputs)
        t = now_ns()
        window_lat.extend((t - w.newest_arrival_ns) / 1e9 for w in windows)
        return out

    dets[0].score = timed  # type: ignore[attr-defined]
    per: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": [], "max": [], "lag_p99": [],
                                   "lag_last": [], "drain": [], "w50": [], "w99": []}
    cut = []
    shed: list[int] = []
    pooled: list[float] = []
    counts = []
    acked: list[list[float]] = []
    for _ in range(repeats):
        fresh_state(dets)
        sink = None
        if kafka:
            from geosentry.stream.sinks.kafka import KafkaSink

            sink = AckTimingSink(KafkaSink(f"kafka://{kafka}/{_alert_topic()}"))
        window_lat.clear()
        r = run_case(load, cfg, detectors=dets, sink=sink,
                     paced={"speed": speed, "prefill_s": PREFILL_S,
                            "deadline_s": paced_s / speed + 5.0})
        cut.append(r.cut_short)
        shed.append(r.shed)
        wl = [x for x in window_lat]  # every window, newest sample arrival -> inference result
        per["w50"].append(pct(wl, 50))
        per["w99"].append(pct(wl, 99))
        lat = r.latencies_s
        if sink is not None:
            acked.append([(t - arr) / 1e9 for t, arr in sink.acked_s if arr >= r.since_ns])
        pooled += lat
        counts.append(len(lat))
        for q in (50, 95, 99):
            per[f"p{q}"].append(pct(lat, q))
        per["max"].append(max(lat) * 1e3 if lat else None)
        per["lag_p99"].append(float(np.percentile(r.source_lag_s, 99)) if r.source_lag_s else None)
        per["lag_last"].append(r.source_lag_s[-1] if r.source_lag_s else None)
        per["drain"].append(r.drain_s)
    kept_up = [lp is not None and lp < 1.0 and d is not None and d < 2.0 and not c and not sh
               for lp, d, c, sh in zip(per["lag_p99"], per["drain"], cut, shed)]
    pooled_p99 = pct(pooled, 99)  # None when no alert was timed
    out = {
        "stations": n, "stride_s": 1.0, "paced_s": paced_s, "speed": speed,
        "alerts_per_run": counts,
        "p50_ms": stats(per["p50"], "ms"), "p95_ms": stats(per["p95"], "ms"),
        "p99_ms": stats(per["p99"], "ms"), "max_ms": stats(per["max"], "ms"),
        "pooled_p99_ms": round(pooled_p99, 1) if pooled_p99 is not None else None,
        "window_to_result_p50_ms": stats(per["w50"], "ms"),
        "window_to_result_p99_ms": stats(per["w99"], "ms"),
        "source_lag_p99_s": stats(per["lag_p99"], "s", 3),
        "feeding_cut_short": cut,
        "drain_after_last_record_s": stats(per["drain"], "s", 2),
        "kept_up": kept_up, "windows_shed": shed, "inference": LATENCY_MODE,
    }
    if kafka:
        out["acked_p50_ms"] = stats([pct(a, 50) for a in acked], "ms")
        out["acked_p95_ms"] = stats([pct(a, 95) for a in acked], "ms")
        out["acked_p99_ms"] = stats([pct(a, 99) for a in acked], "ms")
        out["sink"] = "kafka (acks=all, idempotent producer), broker on this machine"
    return out


def _latency_runs(plan: Plan, kafka: str | None = None, max_repeats: int = 99) -> dict[str, Any]:
    """``_latency`` at each of the plan's N: the smallest N repeated (at most ``max_repeats``
    times), larger ones (minutes of paced time each) once over a shorter paced stretch."""
    out = {}
    for n in plan.latency_ns:
        large = plan.latency_overload_paced_s and n > min(plan.latency_ns)
        paced = plan.latency_overload_paced_s if large else plan.latency_paced_s
        repeats = 1 if large else min(plan.repeats, max_repeats)
        log(f"latency{' (kafka)' if kafka else ''} N={n} paced {paced:g} s of data at "
            f"{plan.latency_speed:g}x real time x {repeats}")
        out[str(n)] = _latency(n, paced, repeats, plan.latency_speed, kafka=kafka)
    return out


def bench_latency(plan: Plan) -> dict[str, Any]:
    return _latency_runs(plan)


def bench_kafka(plan: Plan, kafka: str) -> dict[str, Any]:
    """Latency to the alert acknowledged by a real Kafka broker (``deploy/kafka/broker.sh``),
    at the same N as ``bench_latency``.

    ``auto`` starts a private broker (own state directory, free port) and stops it afterwards;
    anything else is a bootstrap address of a running broker. Runs last: the JVM shares the
    cores with the service under test.
    """
    import shutil
    import tempfile

    broker = ROOT / "deploy" / "kafka" / "broker.sh"
    env = dict(os.environ)
    state = None
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
        log(f"kafka broker {address}")
        _create_topic(address, _alert_topic())
        # twice at the smallest N, not three times: the sink rows above repeat the same runs
        # without the broker, and the whole benchmark must stay under ten minutes
        return {"bootstrap": address,
                "by_stations": _latency_runs(plan, kafka=address, max_repeats=2)}
    except Exception as exc:  # report, don't lose the rest of the run
        return {"skipped": f"kafka latency failed: {exc!r}"}
    finally:
        if state is not None:
            subprocess.run([str(broker), "stop"], capture_output=True, env=env, timeout=120)
            shutil.rmtree(state, ignore_errors=True)


def bench_overload(plan: Plan, throughput: dict[str, Any]) -> dict[str, Any]:
    """Latency mode (picker, stride 1 s) fed at twice the stations it can serve, then, with
    three quarters of the stations gone silent, at half: while overloaded the service must shed
    stale windows (oldest first), say so with a health alert, and keep memory and the latency
    of what it does run bounded instead of queueing without limit; once the input is back
    under capacity it must stop shedding, say so, and return to its normal latency."""
    if not plan.overload_paced_s:
        return {"skipped": "not in this mode"}
    from bench.data import build_load
    from bench.harness import config, run_case
    from geosentry.stream.records import NS_PER_S

    # capacity at stride 1 s = picker windows per second fed as fast as possible
    capacity = throughput["picker"]["windows_per_s"]["median"] or 1.0
    n = max(4, int(2 * capacity))
    over_s, after_s = plan.overload_paced_s, plan.overload_recovery_s
    log(f"overload N={n} (2 x {capacity:.0f} stations at stride 1 s) paced {over_s:g} s, then "
        f"{n // 4} stations {after_s:g} s")
    drop_s = PREFILL_S + over_s  # data time (and paced seconds after the prefill) of the drop
    load = build_load(n, drop_s + after_s).silenced(n // 4, drop_s)
    cfg = config("picker", stride_s=1.0, **LATENCY_MODE)
    r = run_case(load, cfg, paced={"speed": 1.0, "prefill_s": PREFILL_S,
                                   "deadline_s": over_s + after_s + 5.0})
    lag = r.source_lag_s
    t_drop_ns = r.paced_from_ns + round(over_s * NS_PER_S)
    stopped = [t for e, t in zip(r.health_events, r.health_at_ns) if e == "overload_stopped"]
    stop_ns = stopped[-1] if stopped else None
    after = [x for x, a in zip(r.latencies_s, r.latency_arrivals_ns)
             if stop_ns is not None and a >= stop_ns]
    return {"stations": n, "capacity_stations_stride_1s": round(capacity),
            "paced_s": over_s, "recovery_paced_s": after_s, "stations_after": n // 4,
            "policy": "shed windows whose newest record "
            f"arrived > {LATENCY_MODE['max_lag_s']} s earlier (the paced source stamps arrival "
            "when a record is due, so a backlog before the queue counts too; "
            "inference.overload = shed / auto on live feeds)",
            "windows": r.windows, "windows_shed": r.shed,
            "shed_fraction": round(r.shed / r.windows, 3) if r.windows else None,
            "health_events": r.health_events,
            "stopped_after_drop_s": round((stop_ns - t_drop_ns) / NS_PER_S, 2)
            if stop_ns is not None else None,
            "alert_latency_p50_ms": round(pct(r.latencies_s, 50) or 0, 1) if r.latencies_s else None,
            "alert_latency_p99_ms": round(pct(r.latencies_s, 99) or 0, 1) if r.latencies_s else None,
            "after_recovery_alerts": len(after),
            "after_recovery_p99_ms": round(pct(after, 99) or 0, 1) if after else None,
            "source_lag_p99_s": round(float(np.percentile(lag, 99)), 3) if lag else None,
            "feeding_cut_short": r.cut_short, "drain_after_last_record_s": round(r.drain_s, 2)}
