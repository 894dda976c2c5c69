"""``geosentry ingest seedlink://... --to kafka://HOST:PORT/TOPIC``: SeedLink into Kafka.

Value = the original record bytes, key = ``NET.STA`` (a station's records share a partition and
stay in order), idempotent producer with ``acks=all``. The SeedLink state file advances only
after Kafka acknowledged the records (at-least-once): a restarted bridge resumes after the last
acknowledged record of each station.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer

from geosentry.stream.errors import SourceError
from geosentry.stream.kafka_connect import start_client
from geosentry.stream.kafka_security import KafkaSecurity
from geosentry.stream.records import SourceRef
from geosentry.stream.sources.seedlink import SeedLinkSource
from geosentry.stream.uris import parse_kafka

log = logging.getLogger(__name__)
FLUSH_RECORDS = 500
FLUSH_INTERVAL_S = 0.5


class Bridge:
    """Copy records from a SeedLink source into a Kafka topic until stopped (or dial-up end)."""

    def __init__(self, source_uri: str, kafka_uri: str,
                 security: KafkaSecurity | None = None) -> None:
        self.source = SeedLinkSource(source_uri)
        self.target = parse_kafka(kafka_uri, "--to")
        self.security = security or KafkaSecurity()
        self.sent = 0

    def request_stop(self) -> None:
        self.source.stop_reading()

    async def _flush(self, pending: list[tuple[asyncio.Future[object], SourceRef]]) -> None:
        if not pending:
            return
        await asyncio.gather(*(f for f, _ in pending))
        done: dict[int, int] = {}
        for _, ref in pending:
            done[ref.partition] = max(done.get(ref.partition, 0), ref.offset + 1)
        await self.source.commit(done)
        self.sent += len(pending)
        pending.clear()

    async def run(self) -> int:
        """Returns how many records Kafka acknowledged."""
        producer = await start_client(
            lambda: AIOKafkaProducer(bootstrap_servers=self.target.bootstrap,
                                     enable_idempotence=True, acks="all", linger_ms=10,
                                     **self.security.client_kwargs()),
            f"kafka {self.target.bootstrap}", 0.0, SourceError, security=self.security,
            action=f"write to topic {self.target.topic!r}")
        await self.source.start()
        pending: list[tuple[asyncio.Future[object], SourceRef]] = []
        last_flush = time.monotonic()
        try:
            async for raw in self.source.records():
                assert raw.ref is not None and raw.key is not None
                fut = await producer.send(self.target.topic, raw.payload, key=raw.key.encode())
                pending.append((fut, raw.ref))
                if len(pending) >= FLUSH_RECORDS or time.monotonic() - last_flush > FLUSH_INTERVAL_S:
                    await self._flush(pending)
                    last_flush = time.monotonic()
            await self._flush(pending)
        finally:
            await self.source.stop()
            await producer.stop()
        return self.sent
