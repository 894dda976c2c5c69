"""``quakeml:DIR``: one QuakeML file per event, ``DIR/<event_id>.xml``, from ``event`` alerts.

Each event alert (``geosentry.stream.events``) rewrites its event's file with the new version:
origin with uncertainties and quality, picks and arrivals, Wood-Anderson amplitudes, station
magnitudes, ML and Mpd (``quakeml.event_from_details``). A deletion message removes the file.
Other alert kinds are not written. Files are replaced atomically (written beside, fsync'ed,
renamed), so a reader never sees half a file, and the rename is durable before ``send``
returns (the pipeline then commits the input). A folder that does not exist is a configuration
error at start-up; a write that fails later (disk full) is a retriable ``SinkError``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from geosentry.stream.errors import NotStartedError, SinkError
from geosentry.stream.records import Alert, AlertKind, now_ns


class QuakeMLSink:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.name = "quakeml"
        self._started = False

    async def start(self) -> None:
        if not self.folder.is_dir():
            raise SinkError(f"sink quakeml:{self.folder}: not a folder (create it first)",
                            retriable=False)
        if not os.access(self.folder, os.W_OK):
            raise SinkError(f"sink quakeml:{self.folder}: not writable", retriable=False)
        self._started = True

    async def send(self, alerts: list[Alert]) -> None:
        if not self._started:
            raise NotStartedError("quakeml sink: start() it first")
        stamp = now_ns()
        last: dict[str, Alert] = {}
        for a in alerts:
            a.emitted_ns = a.emitted_ns or stamp
            if a.kind is AlertKind.EVENT:
                last[str(a.details["event_id"])] = a  # only an event's newest version matters
        if last:
            await asyncio.to_thread(self._write_all, list(last.values()))

    def _write_all(self, alerts: list[Alert]) -> None:
        for a in alerts:
            path = self.folder / f"{a.details['event_id']}.xml"
            try:
                if a.details.get("deleted"):
                    path.unlink(missing_ok=True)
                else:
                    self._write(path, a)
                self._sync_folder()
            except OSError as exc:
                raise SinkError(f"sink quakeml:{self.folder}: {path.name}: "
                                f"{exc.strerror or exc}", retriable=True) from exc

    @staticmethod
    def _write(path: Path, a: Alert) -> None:
        from geosentry.stream.events.quakeml import event_from_details, events_to_catalog

        tmp = path.with_suffix(".xml.tmp")
        events_to_catalog([event_from_details(a.details)]).write(str(tmp), format="QUAKEML")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def stop(self) -> None:
        self._started = False
