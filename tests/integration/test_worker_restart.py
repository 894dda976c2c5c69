"""Service crashes on the real broker: ``geosentry run`` (Kafka in, Kafka out; STA/LTA and the
shipped picker) is SIGKILLed at several points of a stream and restarted in the same consumer
group each time. Compared with the no-fault run of the same input: **0 alerts lost, 0 ids the
no-fault run does not have, duplicates only as exact repeats** (same id, same content), and
each restart re-reads no more than its warm-up (``geosentry.stream.resume``).

Before: the window grid and the filter/STA-LTA/picker state depended on where the re-read
started, so 384 of 1,040 alerts came back with other ids (times shifted 10-110 ms)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from geosentry.stream.demo import DEMO_BAND_HZ
from geosentry.stream.testing import long_network, publish, read_topic

pytestmark = pytest.mark.kafka
GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]
STATIONS, REPEATS = 2, 12  # 8 stations, 46 minutes each: several times the warm-up (412 s)
KILL_AT = (0.33, 0.33, 0.33)  # each run is killed after reading this fraction of the input
#   (from its restart point) and has committed once: mid-stream, never the whole stream
CONFIG = f"""
shutdown_timeout_s = 30.0
[inference]
overload = "backpressure"
[[detectors]]
name = "stalta"
type = "stalta"
bandpass_hz = [{DEMO_BAND_HZ[0]}, {DEMO_BAND_HZ[1]}]
[[detectors]]
name = "picker"
type = "model"
path = "builtin:picker"
components = ["Z", "N", "E"]
missing_components = "zeros"
"""


def _start(bootstrap: str, topic: str, out: str, group: str, cfg: Path, n: int,
           metrics_port: int = 0) -> tuple[subprocess.Popen[str], Path]:
    log = cfg.parent / f"{group}-{n}.log"  # a file, not a pipe nobody drains meanwhile
    metrics = ["--metrics-port", str(metrics_port)] if metrics_port else []
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*GEOSENTRY, "run", "--config", str(cfg), "--source",
             f"kafka://{bootstrap}/{topic}?group={group}", "--sink", f"kafka://{bootstrap}/{out}",
             *metrics], stdout=subprocess.DEVNULL, stderr=err, text=True)
    return proc, log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _records_read(port: int) -> float:
    """``geosentry_records_in_total`` of a running service (0 until it serves metrics)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("geosentry_records_in_total{"))


async def _alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v in await read_topic(bootstrap, topic, idle_s=1.5)]


async def _until_stable(bootstrap: str, topic: str, quiet_s: float = 8.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        await asyncio.sleep(1.0)
        got = await _alerts(bootstrap, topic)
        if len(got) != last:
            last, since = len(got), time.monotonic()
    return got


async def _committed(bootstrap: str, topic: str, group: str) -> int:
    """The group's committed offsets on ``topic``, summed (-1 while the broker cannot say,
    e.g. during the rebalance after a kill)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        found = await admin.list_consumer_group_offsets(group)
    except KafkaError:
        return -1
    finally:
        await admin.close()
    return sum(max(0, om.offset) for tp, om in found.items() if tp.topic == topic)


async def _until_read(port: int, n: int, proc: subprocess.Popen[str], log: Path,
                      timeout_s: float = 300.0) -> None:
    """Until the service on metrics ``port`` has read ``n`` records."""
    deadline = time.monotonic() + timeout_s
    while _records_read(port) < n:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{_records_read(port):.0f} of {n} records read"
        await asyncio.sleep(0.5)


def _term(proc: subprocess.Popen[str], log: Path) -> None:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = -9
    took_s = time.monotonic() - t0
    assert rc == 0 and took_s < 30, f"exit {rc} after {took_s:.1f} s:\n{log.read_text()[-3000:]}"


async def _no_fault(bootstrap: str, waves: str, out: str, cfg: Path, total: int
                    ) -> list[dict[str, Any]]:
    """The alerts of one worker (group ``base``) reading all ``total`` records of ``waves``
    into ``out``, then stopped with SIGTERM."""
    port = _free_port()
    proc, log = _start(bootstrap, waves, out, "base", cfg, 0, port)
    try:
        await _until_read(port, total, proc, log)
        return await _until_stable(bootstrap, out)
    finally:
        _term(proc, log)


async def _killed_and_restarted(bootstrap: str, waves: str, out: str, cfg: Path, total: int,
                                kill_at: tuple[float, ...]
                                ) -> tuple[list[dict[str, Any]], list[Path]]:
    """Workers of group ``fault`` reading ``waves`` into ``out``, each SIGKILLed once it has
    read ``kill_at[n]`` of the input (from its restart point) and committed; then one that
    reads to the end and is stopped with SIGTERM: ``out``'s alerts and the workers' logs."""
    logs = []
    for n, fraction in enumerate(kill_at):
        port = _free_port()
        while (before := await _committed(bootstrap, waves, "fault")) < 0:
            await asyncio.sleep(0.5)
        proc, log = _start(bootstrap, waves, out, "fault", cfg, n, port)
        logs.append(log)
        deadline = time.monotonic() + 180
        try:
            while (read := _records_read(port)) < fraction * total or \
                    await _committed(bootstrap, waves, "fault") <= before:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no progress before the kill"
                await asyncio.sleep(0.02)
            print(f"run {n}: killed after reading {read:.0f} records")
        finally:
            proc.kill()  # SIGKILL: no drain, no final commit
            proc.wait()
    port = _free_port()
    before = await _committed(bootstrap, waves, "fault")
    proc, log = _start(bootstrap, waves, out, "fault", cfg, len(kill_at), port)
    logs.append(log)
    try:
        # all of the input read before waiting for quiet: re-reading the warm-up sends
        # nothing for a while, which a loaded machine once stretched past the quiet time
        await _until_read(port, total - before, proc, log)
        return await _until_stable(bootstrap, out), logs
    finally:
        _term(proc, log)


def _strip(alert: dict[str, Any]) -> str:
    """An alert without what differs between deliveries (when it was emitted, its latency)."""
    return json.dumps({k: v for k, v in alert.items() if k not in ("emitted_at", "latency_s")},
                      sort_keys=True)


def test_sigkill_and_restart_repeats_the_same_alerts(kafka_bootstrap: str, topic_name: str,
                                                     tmp_path: Path) -> None:
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(CONFIG)
    waves = f"{topic_name}-waves"

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Path]]:
        records = long_network(STATIONS, REPEATS)
        total = len(records)
        await publish(kafka_bootstrap, waves, records)
        want = await _no_fault(kafka_bootstrap, waves, f"{topic_name}-base", cfg, total)
        got, logs = await _killed_and_restarted(kafka_bootstrap, waves, f"{topic_name}-fault",
                                                cfg, total, KILL_AT)
        return want, got, logs

    want, got, logs = asyncio.run(run())
    want_ids = Counter(a["id"] for a in want)
    got_ids = Counter(a["id"] for a in got)
    assert len(want_ids) > 50, "the no-fault run found too few alerts to compare"
    assert sum(want_ids.values()) == len(want_ids), "the no-fault run repeated an alert"
    lost = set(want_ids) - set(got_ids)
    changed = set(got_ids) - set(want_ids)
    assert not lost, (f"{len(lost)} of {len(want_ids)} alerts lost: "
                      f"{[a for a in want if a['id'] in lost][:3]}")
    assert not changed, (f"{len(changed)} alerts with ids the no-fault run does not have: "
                         f"{Counter(a['kind'] for a in got if a['id'] in changed)}, "
                         f"{[a for a in got if a['id'] in changed][:3]}")
    first = {a["id"]: _strip(a) for a in want}
    differing = [a for a in got if _strip(a) != first[a["id"]]]
    assert not differing, f"repeats that are not exact: {differing[:3]}"
    repeats = sum(got_ids.values()) - len(got_ids)
    resumed = [log for log in logs[1:] if "resumes at offset" in log.read_text()]
    assert len(resumed) == len(KILL_AT), "a restart found no resume mark with the offsets"
    assert repeats > 0, "no kill came after alerts past the last commit: nothing was re-read"
    print(f"{len(want_ids)} alerts; {repeats} exact repeats after {len(KILL_AT)} SIGKILLs")
