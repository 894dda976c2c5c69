"""Alerts as JSON lines to stdout (``jsonl:-``) or a file (``jsonl:PATH``, appended, flushed).

A regular file is fsync'ed after each batch (durable before offsets are committed); a pipe, a
terminal or ``/dev/null`` cannot be, and is only flushed. A folder that does not exist or a file
that cannot be opened is a configuration error at start-up (``SinkError``, not retriable); a
write that fails later (disk full, I/O error) is a retriable ``SinkError``: the pipeline retries
it with backoff and never loses the alerts.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import IO

from geosentry.stream.errors import NotStartedError, SinkError
from geosentry.stream.records import Alert, now_ns


class JsonlSink:
    def __init__(self, target: str) -> None:
        self.target = target
        self.name = "jsonl"
        self._fh: IO[bytes] | None = None
        self._fsync = False

    async def start(self) -> None:
        if self._fh is not None:
            return
        if self.target == "-":
            self._fh = sys.stdout.buffer
            return
        try:
            self._fh = open(self.target, "ab")
        except OSError as exc:
            raise SinkError(f"sink jsonl:{self.target}: cannot open for appending "
                            f"({exc.strerror or exc})", retriable=False) from exc
        self._fsync = stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode)

    async def send(self, alerts: list[Alert]) -> None:
        if self._fh is None:
            raise NotStartedError("jsonl sink: start() it first")
        stamp = now_ns()
        for a in alerts:
            a.emitted_ns = a.emitted_ns or stamp
        # in a thread: a stdout pipe nobody reads, or a slow fsync, must not block the loop
        await asyncio.to_thread(self._write, self._fh, b"".join(a.to_json() + b"\n"
                                                               for a in alerts))

    def _write(self, fh: IO[bytes], data: bytes) -> None:
        try:
            fh.write(data)
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        except OSError as exc:
            raise SinkError(f"sink jsonl:{self.target}: write failed ({exc.strerror or exc})",
                            retriable=True) from exc

    async def __aenter__(self) -> JsonlSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None and self.target != "-":
            try:
                fh.close()
            except OSError:
                pass
