"""What a run reports: the ``Summary`` (counts, failures, exit status) and the warning rule
for bad input (one line per channel and reason, the rest counted)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from geosentry.stream.records import Alert
from geosentry.stream.supervision import ExitCode

log = logging.getLogger("geosentry.stream.pipeline")


@dataclass
class Summary:
    records: int = 0
    decode_errors: int = 0
    windows: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    delivered: list[Alert] = field(default_factory=list)
    #: what went wrong, one line each (source or detector failures, a broken delivery)
    failures: list[str] = field(default_factory=list)
    #: windows whose alerts were not delivered when the run ended (shutdown timeout)
    undelivered_windows: int = 0

    @property
    def exit_code(self) -> ExitCode:
        """``UNDELIVERED`` before ``FAILED``: an operator must know first that alerts are lost."""
        if self.undelivered_windows:
            return ExitCode.UNDELIVERED
        return ExitCode.FAILED if self.failures else ExitCode.OK


class _LogOnce:
    """One warning per (channel, reason); bounded: a feed of endlessly new garbage ids cannot
    grow it without limit (past ``MAX_KEYS`` the oldest are forgotten and may log again)."""

    MAX_KEYS = 50_000

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], None] = {}

    def __call__(self, key: tuple[str, str], msg: str, *args: object) -> None:
        if key not in self._seen:
            if len(self._seen) >= self.MAX_KEYS:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = None
            log.warning(msg + " (further occurrences are only counted)", *args)
