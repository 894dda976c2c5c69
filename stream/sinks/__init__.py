"""Alert sinks. Contract: ``await start()``; ``await send(alerts)`` returns once the alerts are
durable (written and flushed, or acknowledged by the broker); ``await stop()`` is safe twice."""

from __future__ import annotations

from typing import Protocol

from geosentry.stream.records import Alert


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def send(self, alerts: list[Alert]) -> None: ...

    async def stop(self) -> None: ...


def open_sink(uri: str, connect_timeout_s: float = 30.0) -> Sink:
    """``jsonl:-``, ``jsonl:PATH`` or ``kafka://HOST:PORT/TOPIC``."""
    from geosentry.stream.errors import ConfigError

    if uri.startswith("jsonl:"):
        from geosentry.stream.sinks.jsonl import JsonlSink

        return JsonlSink(uri[len("jsonl:"):])
    if uri.startswith("kafka://"):
        from geosentry.stream.sinks.kafka import KafkaSink

        return KafkaSink(uri, connect_timeout_s=connect_timeout_s)
    if uri.startswith("memory:"):
        from geosentry.stream.testing import MemorySink

        return MemorySink()
    raise ConfigError("--sink", f"unknown sink {uri!r} (jsonl:-, jsonl:PATH, kafka://HOST:PORT/TOPIC)")
