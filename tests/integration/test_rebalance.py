"""Scale-out with faults on the real broker: two workers share a 4-partition topic, one is
SIGKILLed mid-stream. The survivor takes the dead worker's partitions over (re-reading them
from the last commit), every station keeps its alerts, it commits every partition to the end
(none left at -1001 or behind: it commits on revocation, through a rebalance listener, and keeps
committing what it takes over).

Station alerts carry the ids one worker alone sends: the survivor re-reads the dead worker's
partitions from its commit, rebuilds detector state there and sends nothing it had delivered
(``geosentry.stream.resume``)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from geosentry.stream.demo import DEMO_BAND_HZ
from geosentry.stream.testing import long_network, network_copies, publish

pytestmark = pytest.mark.kafka
GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]
STATIONS = 8
CONFIG = f"""
[[detectors]]
name = "stalta"
type = "stalta"
bandpass_hz = [{DEMO_BAND_HZ[0]}, {DEMO_BAND_HZ[1]}]
"""


async def _setup(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)], timeout_ms=10_000)
    finally:
        await admin.close()
    await publish(bootstrap, topic, payloads)


async def _committed_vs_end(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int],
                                                                             dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(4)]
        end = await consumer.end_offsets(parts)
        committed = {tp.partition: (await consumer.committed(tp)) or -1001 for tp in parts}
    finally:
        await consumer.stop()
    return committed, {tp.partition: v for tp, v in end.items()}


def _worker(bootstrap: str, topic: str, group: str, cfg: Path, log: Path) -> subprocess.Popen[str]:
    """A worker writing alerts to ``log``.jsonl and its log to ``log`` (files: a pipe nobody
    drains meanwhile would block its writes)."""
    return subprocess.Popen(
        [*GEOSENTRY, "run", "--config", str(cfg), "--source",
         f"kafka://{bootstrap}/{topic}?group={group}&idle_exit_s=25", "--sink",
         f"jsonl:{log}.jsonl"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)


def _alerts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _stations(path: Path) -> set[str]:
    return {a["station"] for a in _alerts(path)} - {"*"}


async def test_survivor_takes_over_and_commits_everything(kafka_bootstrap: str, topic_name: str,
                                                          tmp_path: Path) -> None:
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(CONFIG)
    payloads = network_copies(STATIONS)
    src, group = f"{topic_name}-in", f"{topic_name}-g"
    await _setup(kafka_bootstrap, src, payloads)
    alone = subprocess.run([*GEOSENTRY, "run", "--config", str(cfg), "--source",
                            f"kafka://{kafka_bootstrap}/{src}?group={group}-alone&idle_exit_s=8",
                            "--sink", "jsonl:-"], capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-3000:]
    want_alerts = [json.loads(line) for line in alone.stdout.splitlines()]
    want = {a["station"] for a in want_alerts} - {"*"}
    assert len(want) >= STATIONS

    doomed = _worker(kafka_bootstrap, src, group, cfg, tmp_path / "doomed.log")
    survivor = _worker(kafka_bootstrap, src, group, cfg, tmp_path / "survivor.log")
    try:
        deadline = time.monotonic() + 90  # both joined the group and got partitions
        while not all(": assigned partitions" in (tmp_path / f"{n}.log").read_text()
                      for n in ("doomed", "survivor")):
            assert time.monotonic() < deadline, "the two workers never shared the partitions"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # reading
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        # the group notices the dead member after its session timeout, the survivor takes
        # over, reads to the end, and (idle_exit_s: the topic is finished) commits it all
        survivor.wait(timeout=240)
        committed, end = await _committed_vs_end(kafka_bootstrap, src, group)
    finally:
        for proc in (doomed, survivor):
            if proc.poll() is None:
                proc.kill()
    log = (tmp_path / "survivor.log").read_text()
    assert survivor.returncode == 0, log[-3000:]
    assert "assigned partitions [0, 1, 2, 3]" in log, log[-3000:]  # it took over
    first = log.split(": assigned partitions ", 1)[1].split("\n", 1)[0]  # geosentry's line
    if first != "[0, 1, 2, 3]":  # it had a share before the takeover: it committed on revocation
        assert "revoked; committing" in log, log[-3000:]
    assert all(committed[p] >= end[p] for p in end), f"committed {committed}, end {end}"
    got = _stations(tmp_path / "survivor.log.jsonl") | _stations(tmp_path / "doomed.log.jsonl")
    assert want <= got, f"stations without alerts after the takeover: {sorted(want - got)}"
    # station alerts: the same ids as one worker alone (network alerts differ by design: each
    # worker's coincidence sees only its own partitions' stations)
    want_ids = {a["id"] for a in want_alerts if a["station"] != "*"}
    got_ids = {a["id"] for name in ("survivor", "doomed") for a in _alerts(tmp_path / f"{name}.log.jsonl")
               if a["station"] != "*"}
    assert want_ids == got_ids, (f"{len(want_ids - got_ids)} lost, {len(got_ids - want_ids)} "
                                 "with ids one worker alone does not send")


async def test_three_workers_one_killed_one_added(kafka_bootstrap: str, topic_name: str,
                                                  tmp_path: Path) -> None:
    """Three workers on 4 partitions of a longer interleaved stream; once the group has
    committed, one is SIGKILLed and a fourth joins: two rebalances mid-stream. Station alerts
    are those of one worker alone (same ids, none lost), every partition is committed to the
    end, and each surviving worker ends with exit status 0 once the topic is finished."""
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(CONFIG)
    src, group = f"{topic_name}-in", f"{topic_name}-g"
    await _setup(kafka_bootstrap, src, long_network(2, 6))
    alone = subprocess.run([*GEOSENTRY, "run", "--config", str(cfg), "--source",
                            f"kafka://{kafka_bootstrap}/{src}?group={group}-alone&idle_exit_s=8",
                            "--sink", "jsonl:-"], capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-3000:]
    want = {a["id"] for line in alone.stdout.splitlines()
            if (a := json.loads(line))["station"] != "*"}
    names = ["w0", "w1", "doomed"]
    procs = {n: _worker(kafka_bootstrap, src, group, cfg, tmp_path / f"{n}.log") for n in names}
    try:
        deadline = time.monotonic() + 120
        while sum((await _committed_vs_end(kafka_bootstrap, src, group))[0].values()) <= 0:
            assert time.monotonic() < deadline, "the group never committed"
            await asyncio.sleep(0.2)
        procs["doomed"].send_signal(signal.SIGKILL)
        procs["doomed"].wait(timeout=30)
        procs["late"] = _worker(kafka_bootstrap, src, group, cfg, tmp_path / "late.log")
        for n in ("w0", "w1", "late"):  # idle_exit_s: each ends once the topic is finished
            assert procs[n].wait(timeout=300) == 0, (tmp_path / f"{n}.log").read_text()[-3000:]
        committed, end = await _committed_vs_end(kafka_bootstrap, src, group)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert all(committed[p] >= end[p] for p in end), f"committed {committed}, end {end}"
    got = {a["id"] for n in ("w0", "w1", "doomed", "late")
           for a in _alerts(tmp_path / f"{n}.log.jsonl") if a["station"] != "*"}
    assert want == got, (f"{len(want - got)} lost, {len(got - want)} with ids one worker alone "
                         "does not send")
