"""Alerts as JSON lines to stdout (``jsonl:-``) or a file (``jsonl:PATH``, appended, flushed)."""

from __future__ import annotations

import os
import sys
from typing import IO

from stream.records import Alert, now_ns


class JsonlSink:
    def __init__(self, target: str) -> None:
        self.target = target
        self.name = "jsonl"
        self._fh: IO[bytes] | None = None

    async def start(self) -> None:
        if self._fh is None:
            self._fh = sys.stdout.buffer if self.target == "-" else open(self.target, "ab")

    async def send(self, alerts: list[Alert]) -> None:
        assert self._fh is not None, "start() the sink first"
        stamp = now_ns()
        for a in alerts:
            a.emitted_ns = a.emitted_ns or stamp
            self._fh.write(a.to_json() + b"\n")
        self._fh.flush()
        if self.target != "-":
            os.fsync(self._fh.fileno())

    async def stop(self) -> None:
        if self._fh is not None and self.target != "-":
            self._fh.close()
        self._fh = None
