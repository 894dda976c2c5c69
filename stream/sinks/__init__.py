"""Alert sinks. Contract: ``await start()``; ``await send(alerts)`` returns once the alerts are
durable (written and flushed, or acknowledged by the broker); ``await stop()`` is safe twice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from geosentry.stream.records import Alert

if TYPE_CHECKING:
    from geosentry.stream.kafka_security import KafkaConfig


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def send(self, alerts: list[Alert]) -> None: ...

    async def stop(self) -> None: ...


def open_sink(uri: str, connect_timeout_s: float = 30.0, kafka: KafkaConfig | None = None) -> Sink:
    """``jsonl:-``, ``jsonl:PATH``, ``kafka://HOST:PORT/TOPIC`` or ``quakeml:DIR`` (``kafka``:
    the ``[kafka]`` security settings; a URI's ``?profile=NAME`` picks one of its profiles)."""
    from geosentry.stream.errors import ConfigError

    if uri.startswith("jsonl:"):
        from geosentry.stream.sinks.jsonl import JsonlSink

        return JsonlSink(uri[len("jsonl:"):])
    if uri.startswith("kafka://"):
        from geosentry.stream.kafka_security import KafkaConfig
        from geosentry.stream.sinks.kafka import KafkaSink

        security = (kafka or KafkaConfig()).for_uri(uri, "--sink")
        return KafkaSink(uri, connect_timeout_s=connect_timeout_s, security=security)
    if uri.startswith("quakeml:"):  # one QuakeML file per event (event alerts only)
        from geosentry.stream.sinks.quakeml import QuakeMLSink

        return QuakeMLSink(uri[len("quakeml:"):])
    if uri.startswith("memory:"):
        from geosentry.stream.testing import MemorySink

        return MemorySink()
    raise ConfigError("--sink", f"unknown sink {uri!r} (jsonl:-, jsonl:PATH, kafka://HOST:PORT/TOPIC, "
                                  "quakeml:DIR)")
