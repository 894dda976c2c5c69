"""Source and sink URIs, parsed in one place.

>>> parse_kafka("kafka://127.0.0.1:9092/waveforms?group=workers")
KafkaURI(bootstrap='127.0.0.1:9092', topic='waveforms', group='workers', params={})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from geosentry.stream.errors import ConfigError


@dataclass(frozen=True)
class KafkaURI:
    bootstrap: str
    topic: str
    group: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def parse_kafka(uri: str, key: str = "uri") -> KafkaURI:
    parts = urlsplit(uri)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ConfigError(key, f"expected kafka://HOST:PORT/TOPIC, got {uri!r}")
    topic = parts.path.lstrip("/")
    if not topic or "/" in topic:
        raise ConfigError(key, f"{uri!r} must name exactly one topic")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    group = query.pop("group", None)
    return KafkaURI(parts.netloc, topic, group, query)
