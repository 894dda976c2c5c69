"""Monitoring for real: `promtool check rules` on deploy/prometheus/, and a real Prometheus
scraping a running service (real Kafka source, real metrics endpoint) that sees the shipped rules
fire on injected faults. The rules run from a test copy with short `for:` durations and
thresholds (promhelpers.FAST: the shipped ones take minutes).

The faults: the alert sink is down while a backlog waits in Kafka (the consumer falls behind:
GeosentryConsumerFallingBehind, GeosentrySinkFailing), then it comes back and the backlog bursts
through inference faster than `inference.max_lag_s` allows (GeosentryShedding), and one station
(BW.UH100) stops sending while the others go on (GeosentryStationSilent for it alone)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from promhelpers import PROMETHEUS, PROMTOOL, RULES, Prometheus, fast_rules
from opshelpers import free_port

from geosentry.stream.config import default_config_dict, load_config_dict
from geosentry.stream.console import attach
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.errors import SinkError
from geosentry.stream.metrics import Metrics
from geosentry.stream.pipeline import Pipeline
from geosentry.stream.records import Alert
from geosentry.stream.sources import open_source
from geosentry.stream.testing import MemorySink, long_network, publish

needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="Debian's prometheus (prometheus, promtool) is not installed (scripts/setup.sh "
           "installs it as root: apt-get install prometheus)")


@needs_prometheus
def test_promtool_checks_the_shipped_rules_and_config(tmp_path: Path) -> None:
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(fast_rules(tmp_path / "f.yml"))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(PROMTOOL), "check", "config",
                           str(RULES.parent / "prometheus.yml")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


class OutageSink(MemorySink):
    """Refuses every send (a retriable SinkError: the fanout retries with backoff and the input
    waits) while ``down``: an outage switched by the test, which a real sink cannot do."""

    name = "outage"

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def send(self, alerts: list[Alert]) -> None:
        if self.down:
            raise SinkError("injected outage")
        await super().send(alerts)


async def _until(prom: Prometheus, alert: str, timeout_s: float, **labels: str) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for a in await asyncio.to_thread(prom.firing):
            if a["labels"]["alertname"] == alert and all(
                    a["labels"].get(k) == v for k, v in labels.items()):
                return a
        await asyncio.sleep(0.5)
    raise AssertionError(f"{alert} {labels} never fired within {timeout_s} s; firing: "
                         f"{[a['labels'] for a in prom.firing()]}; lag: "
                         f"{prom.query('geosentry_consumer_lag')}")


@needs_prometheus
@pytest.mark.kafka
async def test_rules_fire_on_injected_faults(kafka_bootstrap: str, topic_name: str,
                                             tmp_path: Path) -> None:
    # BW.UH100-UH403, 40 min of data, in end-time order: a backlog over 1 MB, more than one
    # fetch of the consumer, so the lag shows while ingestion waits
    records = long_network(4, 10)
    split = int(len(records) * 0.7)
    backlog, rest = records[:split], records[split:]
    live = [(k, v) for k, v in rest if k != b"BW.UH100"]  # UH100 goes silent after the backlog
    await publish(kafka_bootstrap, topic_name, backlog)

    metrics_port = free_port()
    raw = {**default_config_dict(), "inference": {"max_lag_s": 0.005, "overload": "shed",
                                                  "max_pending_windows": 16}}
    cfg = load_config_dict(raw, metrics_port=metrics_port)
    metrics = Metrics()
    server = metrics.serve(metrics_port)
    sink = OutageSink()
    source = open_source(f"kafka://{kafka_bootstrap}/{topic_name}?group=ops-{topic_name}")
    pipeline = Pipeline(cfg, [source], [sink], build_detectors(cfg), metrics)
    console = attach(cfg, metrics, [d.spec for d in pipeline.detectors])
    assert console is not None
    pipeline.observer = console.state
    prom = await asyncio.to_thread(Prometheus, tmp_path, [f"127.0.0.1:{metrics_port}"],
                                   fast_rules(tmp_path / "rules.yml"))
    run = asyncio.create_task(pipeline.run())
    try:
        # 1. the sink is down: ingestion waits, the backlog stays in Kafka
        behind = await _until(prom, "GeosentryConsumerFallingBehind", 90, topic=source.name)
        assert float(behind["value"]) > 300
        await _until(prom, "GeosentrySinkFailing", 60, sink="outage")
        assert not run.done()

        # 2. the sink is back: the backlog bursts through, stale windows are shed
        sink.down = False

        async def produce_live() -> None:
            for i in range(0, len(live), 10):
                await publish(kafka_bootstrap, topic_name, live[i:i + 10])
                await asyncio.sleep(1.0)

        producer = asyncio.create_task(produce_live())
        shedding = await _until(prom, "GeosentryShedding", 90)
        assert shedding["labels"]["detector"] in {d.name for d in pipeline.detectors}
        assert metrics.value("geosentry_windows_shed_total",
                             detector=shedding["labels"]["detector"]) > 0

        # 3. UH100 sent nothing after the backlog: silent; the others keep sending
        # (every station was silent while the sink was down and ingestion waited: those resolve)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            silent = sorted(a["labels"]["station"] for a in await asyncio.to_thread(prom.firing)
                            if a["labels"]["alertname"] == "GeosentryStationSilent")
            if silent == ["UH100"]:
                break
            await asyncio.sleep(0.5)
        assert silent == ["UH100"], silent
        assert not producer.done()
        lag = await asyncio.to_thread(prom.query, "sum(geosentry_consumer_lag)")
        assert float(lag[0]["value"][1]) < 300  # caught up once the sink was back
        producer.cancel()
    finally:
        pipeline.request_stop()
        await asyncio.wait_for(run, 60)
        prom.stop()
        server.shutdown()
    assert sink.alerts, "nothing delivered after the outage"
