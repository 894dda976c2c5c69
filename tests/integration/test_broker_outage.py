"""Broker outage: the Kafka sink waits for the broker instead of dropping alerts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from geosentry.stream.config import load_config_dict
from geosentry.stream.demo import demo_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.sinks.kafka import KafkaSink
from geosentry.stream.testing import MemorySink, MemorySource, demo_stream, mseed_records

pytestmark = pytest.mark.kafka
BROKER = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_alerts_survive_a_broker_that_comes_up_late(
        kafka_bootstrap: str, tmp_path: Path, topic_name: str) -> None:
    port = _free_port()
    env = {**os.environ, "GEOSENTRY_KAFKA_PORT": str(port),
           "GEOSENTRY_KAFKA_CONTROLLER_PORT": str(_free_port()),
           "GEOSENTRY_KAFKA_STATE": str(tmp_path / "late-broker")}
    payloads = [p for tr in demo_stream() for p in mseed_records(tr)]
    cfg = load_config_dict(demo_config_dict())
    memory = MemorySink()
    pipeline = Pipeline(cfg, [MemorySource(payloads)],
                        [KafkaSink(f"kafka://127.0.0.1:{port}/{topic_name}", max_backoff_s=1.0),
                         memory], build_detectors(cfg))
    run = asyncio.create_task(pipeline.run())
    try:
        await asyncio.sleep(3.0)
        assert not run.done()  # waiting for the broker, not failing or dropping
        started = await asyncio.to_thread(subprocess.run, [str(BROKER), "start"], env=env,
                                          capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr[-2000:]
        await asyncio.wait_for(run, timeout=120)
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=f"127.0.0.1:{port}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got: list[dict] = []
        try:
            while len(got) < len(memory.alerts):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                got += [json.loads(m.value) for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()
        assert sorted(a["id"] for a in got) == sorted(a.id for a in memory.alerts)
        assert sum(a["station"] == "*" for a in got) >= 3
    finally:
        run.cancel()
        await asyncio.to_thread(subprocess.run, [str(BROKER), "stop"], env=env,
                                capture_output=True, timeout=60)
