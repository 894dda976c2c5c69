"""Shared pieces of the benchmark: plans (how big each section runs), statistics, logging."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def cores() -> int:
    """CPU cores this process may use (what the service's default worker count follows)."""
    return len(os.sched_getaffinity(0))


def service_workers() -> int:
    """Inference workers the service runs by default here (``inference.workers = 0``)."""
    from geosentry.stream.inference.runner import inference_workers

    return inference_workers(0)


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
    overload_paced_s: float = 0.0  # 0: skip the overload run
    overload_recovery_s: float = 12.0  # paced seconds at half capacity after the overload
    sweep_batches: tuple[int, ...] = (1, 8, 32, 128)


PLANS = {
    "full": Plan("full", repeats=3, forward_s=1.5, decode_records=3000, tp_picker=(100, 230),
                 tp_stalta=(20, 230), latency_ns=(100, 500), latency_paced_s=24.0,
                 latency_speed=1.0, latency_overload_paced_s=16.0, capacity_check=True,
                 capacity_paced_s=30.0, rss_ns=(100, 500, 1000), rss_seconds=40.0, rss_repeats=3,
                 overload_paced_s=20.0, sweep_batches=(1, 4, 16, 64, 256)),
    "quick": Plan("quick", repeats=3, forward_s=0.5, decode_records=500, tp_picker=(10, 120),
                  tp_stalta=(5, 120), latency_ns=(10,), latency_paced_s=20.0, latency_speed=2.0,
                  latency_overload_paced_s=0.0, capacity_check=False, capacity_paced_s=0.0,
                  rss_ns=(5, 25), rss_seconds=40.0, rss_repeats=3, overload_paced_s=8.0,
                  overload_recovery_s=8.0),
    "smoke": Plan("smoke", repeats=1, forward_s=0.2, decode_records=100, tp_picker=(3, 60),
                  tp_stalta=(2, 70), latency_ns=(3,), latency_paced_s=2.0, latency_speed=2.0,
                  latency_overload_paced_s=0.0, capacity_check=False, capacity_paced_s=0.0,
                  rss_ns=(2,), rss_seconds=40.0, rss_repeats=1, overload_paced_s=3.0,
                  overload_recovery_s=4.0,
                  sweep_batches=(1, 4)),
}
PREFILL_S = 29.0  # latency/capacity runs: data before the first window (30 s) at once, then paced


def kept_up_in_real_time(lag_p99_s: float | None, drain_s: float, cut_short: bool) -> bool:
    """Capacity runs (throughput mode): the source never fell behind (lag p99 < 1 s), the last
    window's inference ended within one stride (15 s) of the last record, and feeding was not
    cut short."""
    return lag_p99_s is not None and lag_p99_s < 1.0 and drain_s < 15.0 and not cut_short


#: the precision every service the benchmark builds runs at (``harness.config``, also in the
#: scale-out processes, which inherit the environment), pinned by ``pinned_precision``
PRECISION_ENV = "GEOSENTRY_BENCH_PRECISION"


def bench_precision() -> str:
    """``inference.precision`` for the services the benchmark builds: the pinned choice, or
    ``auto`` outside ``pinned_precision``."""
    return os.environ.get(PRECISION_ENV, "auto")


@contextlib.contextmanager
def pinned_precision(models: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Run every service at what ``auto`` chose once at the start (``model_precisions``), when
    all benchmarked models chose the same: ``auto`` times bfloat16 against float32 at each load,
    and on a busy machine a later load could land on the other side of its speed threshold,
    so rows labelled with the choice would not all have been measured at it."""
    chosen = {m["precision"] for m in models.values()}
    before = os.environ.get(PRECISION_ENV)
    if len(chosen) == 1:
        os.environ[PRECISION_ENV] = chosen.pop()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PRECISION_ENV, None)
        else:
            os.environ[PRECISION_ENV] = before


def model_precisions() -> dict[str, dict[str, Any]]:
    """What ``inference.precision = "auto"`` chooses for the benchmarked models here, and why."""
    import torch

    from geosentry.stream.detectors.registry import ModelConfig
    from geosentry.stream.inference.model import TorchScriptDetector
    from geosentry.stream.models import resolve

    out = {}
    for name in ("picker", "anomaly"):
        cfg = ModelConfig(name=name, path=f"builtin:{name}")
        det = TorchScriptDetector(cfg, resolve(cfg.path), torch.device("cpu"))
        out[name] = {"precision": det.precision, "reason": det.precision_choice.reason}
    return out


def stats(values: Sequence[float | None], unit: str, digits: int = 1) -> dict[str, Any]:
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


def pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1e3 if values else None


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

    from geosentry.stream.inference.precision import cpu_flags

    flags = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx"))
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__,
            "cores": cores(), "service_workers": service_workers(),
            "torch_threads_per_worker": max(1, cores() // service_workers()),
            "cpu_bf16_flags": flags,
            "loadavg_start": list(os.getloadavg()),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
