"""The Kafka sink against the real broker with aiokafka faults injected where the broker cannot
produce them on demand: ``producer.send`` raising ``KafkaTimeoutError`` (what it does when the
broker is away longer than ``request_timeout_ms``) used to escape the sink's retry loop, end the
delivery task without a log line and wedge the service. Now the pipeline retries and every
alert reaches the topic."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from aiokafka.errors import KafkaTimeoutError

from geosentry.stream.config import load_config_dict
from geosentry.stream.demo import demo_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.metrics import Metrics
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.sinks.kafka import KafkaSink
from geosentry.stream.supervision import ExitCode
from geosentry.stream.testing import (MemorySource, demo_stream, mseed_records, read_topic,
                                       run_pipeline)

pytestmark = pytest.mark.kafka


async def test_send_timeouts_are_retried_and_every_alert_arrives(
        kafka_bootstrap: str, topic_name: str) -> None:
    raw = demo_config_dict()
    raw["detectors"] = [d for d in raw["detectors"] if d["type"] == "stalta"]
    cfg = load_config_dict(raw)
    payloads = [p for tr in demo_stream() for p in mseed_records(tr)]
    reference, _, _ = await run_pipeline(payloads, cfg)

    sink = KafkaSink(f"kafka://{kafka_bootstrap}/{topic_name}")
    await sink.start()
    assert sink._producer is not None
    real_send, calls = sink._producer.send, {"n": 0}

    async def flaky_send(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] in (1, 2, 5):
            raise KafkaTimeoutError("injected: no metadata within request_timeout_ms")
        return await real_send(*args, **kwargs)

    sink._producer.send = flaky_send  # type: ignore[method-assign]
    metrics = Metrics()
    cfg = replace(cfg, shutdown_timeout_s=60.0)
    summary = await asyncio.wait_for(Pipeline(
        cfg, [MemorySource(payloads)], [sink], build_detectors(cfg), metrics).run(), 120)
    assert summary.exit_code == ExitCode.OK
    assert metrics.value("geosentry_sink_errors_total", sink="kafka") >= 3
    got = {json.loads(v)["id"] for _, v in await read_topic(kafka_bootstrap, topic_name)}
    assert got == {a.id for a in reference.alerts}
