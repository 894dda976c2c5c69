"""``geosentry replay``: publish archived miniSEED records into Kafka at the original pace.

Value = one record's bytes, key = ``NET.STA`` (so a station's records share a partition and stay
in order), idempotent producer with ``acks=all``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pymseed
from aiokafka import AIOKafkaProducer

from geosentry.stream.errors import GeosentryError
from geosentry.stream.kafka_connect import start_client
from geosentry.stream.kafka_security import KafkaSecurity
from geosentry.stream.sources.files import archive_records, paced
from geosentry.stream.uris import parse_kafka

log = logging.getLogger(__name__)


def station_key(payload: bytes) -> str | None:
    """``NET.STA`` from a record header (None when the bytes are not miniSEED)."""
    try:
        for msr in pymseed.MS3Record.from_buffer(payload, unpack_data=False):
            net, sta, _, _ = pymseed.sourceid2nslc(msr.sourceid)
            return f"{net}.{sta}"
    except pymseed.MiniSEEDError:
        return None
    return None


async def replay_to_kafka(path: str | Path, uri: str, speed: float = 0.0,
                         security: KafkaSecurity | None = None,
                         connect_timeout_s: float = 30.0) -> int:
    """Publish every record under ``path``; returns how many were acknowledged. ``security``:
    TLS/SASL (``[kafka]``); refused credentials or ACLs are one-line errors at start."""
    target = parse_kafka(uri, "--to")
    security = security or KafkaSecurity()
    records = await asyncio.to_thread(archive_records, path)
    producer = await start_client(
        lambda: AIOKafkaProducer(bootstrap_servers=target.bootstrap, enable_idempotence=True,
                                 acks="all", linger_ms=10, **security.client_kwargs()),
        f"replay to kafka {target.bootstrap}/{target.topic}", connect_timeout_s,
        GeosentryError, security=security, action=f"write to topic {target.topic!r}")
    sent, skipped = 0, 0
    try:
        started = time.monotonic()
        futures = []
        for due_s, payload in paced(records, speed):
            key = station_key(payload)
            if key is None:
                skipped += 1
                continue
            delay = due_s - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            futures.append(await producer.send(target.topic, payload, key=key.encode()))
            if len(futures) >= 1000:
                await asyncio.gather(*futures)
                sent += len(futures)
                futures = []
        await asyncio.gather(*futures)
        sent += len(futures)
    finally:
        await producer.stop()
    if skipped:
        log.warning("replay: skipped %d corrupt stretches of %s", skipped, path)
    return sent
