"""A station that stops sending on a live feed must not stop the consumer group's commits.

Before ``buffer.release_silent_s`` a silent station kept its last records "needed" (its next
window was never complete), so the committed offset of its partition stayed where it went
quiet (32 of 24,405 messages in the field) and a restart re-read everything after it. Real
broker, real `geosentry run` on a live topic (no idle exit): two stations on one partition, one
goes quiet, the other keeps sending; the committed offset must follow the live one."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.testing import mseed_records, synthetic_trace

pytestmark = pytest.mark.kafka
GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]
RELEASE_S = 3.0
CONFIG = f"""
[buffer]
release_silent_s = {RELEASE_S}

[[detectors]]
name = "stalta"
type = "stalta"
sta_s = 0.05
lta_s = 0.5   # a short warm-up (resume_s = 10 + 1 + 40 * 0.5 = 31 s): commits trail A by ~41 s
"""
TRAIL_S = 50.0  # what the committed offset may trail A's newest data by (warm-up, last window)


async def _create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resp = await admin.create_topics([NewTopic(name, 1, 1)], timeout_ms=10_000)
        assert all(code in (0, 36) for _, code, *_ in resp.topic_errors), resp.topic_errors
    finally:
        await admin.close()


async def _wait_for_member(bootstrap: str, group: str, timeout_s: float = 90.0) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                groups = [g for resp in await admin.describe_consumer_groups([group])
                          for g in resp.groups]
            except KafkaError:  # the group (its coordinator) does not exist yet
                groups = []
            if any(g[2] == "Stable" and len(g[5]) == 1 for g in groups):
                return
            assert time.monotonic() < deadline, f"group {group} never formed: {groups}"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def _committed(bootstrap: str, topic: str, group: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0)) or 0
    finally:
        await consumer.stop()


def _payloads(station: str, seconds: float, seed: int) -> list[bytes]:
    # 200 Hz in 256-byte records: well under a second per record, so the silence limit is
    # RELEASE_S (not three record spans)
    return mseed_records(synthetic_trace(f"XX.{station}..HHZ", seconds, 200.0, seed=seed),
                         reclen=256)


async def test_a_silent_station_releases_and_commits_keep_moving(
        kafka_bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(CONFIG)
    group = f"{topic_name}-g"
    await _create_topic(kafka_bootstrap, topic_name)
    proc = subprocess.Popen(
        GEOSENTRY + ["run", "--source", f"kafka://{kafka_bootstrap}/{topic_name}?group={group}",
                     "--sink", "jsonl:-", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await _wait_for_member(kafka_bootstrap, group)
        a, b = _payloads("A", 120.0, 1), _payloads("B", 120.0, 2)
        n_both = len(b) // 3
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            # both stations (B's first third) in data-time order, as a feed delivers them ...
            both = sorted([(i, 0, p) for i, p in enumerate(a[:n_both])]
                          + [(i, 1, p) for i, p in enumerate(b[:n_both])])
            for _, which, p in both:
                await producer.send_and_wait(topic_name, p, key=(b"XX.A", b"XX.B")[which])
            # ... then B goes quiet while A keeps arriving, live, for well over RELEASE_S
            rest = a[n_both:]
            pause = 4 * RELEASE_S / len(rest)
            for p in rest:
                await producer.send_and_wait(topic_name, p, key=b"XX.A")
                await asyncio.sleep(pause)
        finally:
            await producer.stop()
        end = len(both) + len(rest)
        # commits stay a warm-up and A's last window behind its newest data
        # (geosentry.stream.resume): every record that ends TRAIL_S before A's end is done
        order = [p for _, _, p in both] + rest
        a_end_ns = decode_payload(a[-1], 0)[0].end_ns
        near_end = sum(decode_payload(p, 0)[0].end_ns < a_end_ns - TRAIL_S * 1e9 for p in order)
        assert near_end > len(both) + 10  # past the point where B went quiet
        deadline = time.monotonic() + 30
        committed = 0
        while time.monotonic() < deadline:
            committed = await _committed(kafka_bootstrap, topic_name, group)
            if committed >= near_end:
                break
            await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert committed >= near_end, (f"committed offset stuck at {committed} of {end} "
                                   f"(B went quiet at about {len(both)})")
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    released = [x for x in alerts if x["kind"] == "health"
                and x["details"].get("event") == "released"]
    assert [x["station"] for x in released] == ["B"], released
