"""One exception hierarchy for the service.

Every error carries ``retriable``: ``True`` when retrying the same operation later may succeed
(broker outage, connection reset), ``False`` when the input or configuration itself is wrong.
"""

from __future__ import annotations


class GeosentryError(Exception):
    """Base class of every error geosentry raises on purpose."""

    retriable: bool = False


class ConfigError(GeosentryError):
    """Invalid configuration: names the offending key and why."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"config key {key!r}: {why}")
        self.key = key
        self.why = why


class DecodeError(GeosentryError):
    """A record could not be decoded (corrupt, truncated, impossible header values)."""

    def __init__(self, message: str, sid: str | None = None) -> None:
        super().__init__(f"{sid}: {message}" if sid else message)
        self.sid = sid


class ContractError(GeosentryError):
    """A model file and its JSON contract disagree, or the contract is invalid."""


class SourceError(GeosentryError):
    """A source failed (file missing, broker unreachable)."""
