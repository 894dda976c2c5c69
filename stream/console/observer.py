"""What the pipeline tells an observer (the operator console, ``geosentry.stream.console``).

Called on the event loop; an observer must return at once (it only copies into bounded buffers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from geosentry.stream.buffer.windows import ChannelEvent
from geosentry.stream.records import Alert, Record


class Observer(Protocol):
    def record(self, rec: Record) -> None:
        """A decoded record that a detector uses."""

    def events(self, events: Sequence[ChannelEvent]) -> None:
        """Buffer events (gaps, resets, rejections) of one ingestion step."""

    def alerts(self, alerts: Sequence[Alert]) -> None:
        """Alerts handed to every sink."""
