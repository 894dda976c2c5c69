"""Alerts to Kafka: idempotent producer, ``acks=all``, key ``NET.STA``, value = alert JSON.

``send`` returns only when the broker has acknowledged every alert, or raises a retriable
``SinkError`` naming those it has not: the pipeline retries them with bounded exponential
backoff for as long as the service runs (backpressure meanwhile), so no alert is dropped; input
offsets are not committed until then.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from geosentry.stream.errors import NotStartedError, SinkError
from geosentry.stream.kafka_connect import start_client
from geosentry.stream.kafka_security import KafkaSecurity
from geosentry.stream.records import Alert, now_ns
from geosentry.stream.uris import parse_kafka

log = logging.getLogger(__name__)


class KafkaSink:
    def __init__(self, uri: str, max_backoff_s: float = 10.0,
                 connect_timeout_s: float = 30.0, security: KafkaSecurity | None = None) -> None:
        self.uri = parse_kafka(uri, "--sink")
        self.security = security or KafkaSecurity()
        self.name = "kafka"
        self.max_backoff_s = max_backoff_s
        self.connect_timeout_s = connect_timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect; while the broker is unreachable, retry with bounded backoff (logged once)
        for up to ``connect_timeout_s``, then raise a non-retriable ``SinkError`` (start-up
        trouble is a configuration error: the process exits 2 with one line; outages once
        running are retried for as long as the service runs)."""
        if self._producer is not None:
            return
        self._producer = await start_client(
            lambda: AIOKafkaProducer(
                bootstrap_servers=self.uri.bootstrap, enable_idempotence=True, acks="all",
                linger_ms=5, request_timeout_ms=15_000, **self.security.client_kwargs()),
            f"kafka sink {self.uri.bootstrap}", self.connect_timeout_s,
            lambda msg: SinkError(msg, retriable=False), self.max_backoff_s,
            security=self.security, action=f"write to topic {self.uri.topic!r} (idempotent)")

    async def send(self, alerts: list[Alert]) -> None:
        """One attempt at every alert; those not acknowledged are raised as a retriable
        ``SinkError`` carrying them (``undelivered``), for the pipeline to retry with backoff."""
        if not alerts:
            return
        if self._producer is None:
            raise NotStartedError("kafka sink: start() it first")
        stamp = now_ns()
        for a in alerts:
            a.emitted_ns = a.emitted_ns or stamp
        results: list[object] = []
        try:
            futures = [await self._producer.send(self.uri.topic, a.to_json(),
                                                 key=a.station_key.encode()) for a in alerts]
            results = list(await asyncio.gather(*futures, return_exceptions=True))
        except KafkaError as exc:  # e.g. KafkaTimeoutError: no metadata, buffer full
            results += [exc] * (len(alerts) - len(results))
        failed = [a for a, r in zip(alerts, results) if isinstance(r, BaseException)]
        if failed:
            first = next(r for r in results if isinstance(r, BaseException))
            denial = self.security.denial(first, f"write to topic {self.uri.topic!r}")
            if denial is not None:  # an ACL: retrying cannot mend it; the input stays uncommitted
                err = SinkError(f"kafka sink {self.uri.bootstrap}/{self.uri.topic}: {len(failed)} "
                                f"of {len(alerts)} alerts refused: {denial}", retriable=False)
                err.undelivered = failed
                raise err
            err = SinkError(f"kafka sink {self.uri.bootstrap}/{self.uri.topic}: {len(failed)} "
                            f"of {len(alerts)} alerts not acknowledged ({first!r})",
                            retriable=True)
            err.undelivered = failed
            raise err

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()  # flushes what is in flight

    async def __aenter__(self) -> KafkaSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
