"""Alerts to Kafka: idempotent producer, ``acks=all``, key ``NET.STA``, value = alert JSON.

``send`` returns only when the broker has acknowledged every alert. Broker outages are retried
with bounded exponential backoff for as long as the service runs (the pipeline applies
backpressure meanwhile), so no alert is dropped; input offsets are not committed until then.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.records import Alert, now_ns
from stream.uris import parse_kafka

log = logging.getLogger(__name__)


class KafkaSink:
    def __init__(self, uri: str, max_backoff_s: float = 10.0) -> None:
        self.uri = parse_kafka(uri, "--sink")
        self.name = "kafka"
        self.max_backoff_s = max_backoff_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect; while the broker is unreachable, retry with bounded backoff (logged once)."""
        backoff, warned = 0.5, False
        while self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.uri.bootstrap, enable_idempotence=True, acks="all",
                linger_ms=5, request_timeout_ms=15_000)
            try:
                await producer.start()
                self._producer = producer
            except KafkaError as exc:
                await producer.stop()
                if not warned:
                    log.warning("kafka sink %s: cannot connect (%s); retrying until it can",
                                self.uri.bootstrap, exc)
                    warned = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def send(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        assert self._producer is not None, "start() the sink first"
        stamp = now_ns()
        for a in alerts:
            a.emitted_ns = a.emitted_ns or stamp
        backoff, warned = 0.5, False
        pending = list(alerts)
        while pending:
            futures = [await self._producer.send(self.uri.topic, a.to_json(),
                                                 key=a.station_key.encode()) for a in pending]
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [a for a, r in zip(pending, results) if isinstance(r, BaseException)]
            if not failed:
                return
            if not warned:
                log.warning("kafka sink %s/%s: %d alerts not acknowledged (%s); retrying",
                            self.uri.bootstrap, self.uri.topic, len(failed),
                            next(r for r in results if isinstance(r, BaseException)))
                warned = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            pending = failed

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()  # flushes what is in flight
