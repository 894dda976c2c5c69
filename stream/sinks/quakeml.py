"""``quakeml:DIR``: one QuakeML file per event, ``DIR/<event_id>.xml``, from ``event`` alerts.

Each event alert (``geosentry.stream.events``) rewrites its event's file with the new version:
origin with uncertainties and quality, picks and arrivals, Wood-Anderson amplitudes, station
magnitudes, ML and Mpd (``quakeml.event_from_details``). A deletion message removes the file.
Other alert kinds are not written. A file holds its event's newest state: a version whose
``update`` is below the one in the file is not written (after a restart a worker re-sends
versions of the events it had open, with lower ``update`` numbers than the last ones it sent:
``stream/events/stage.py``), nor is a deletion older than the file. Files are replaced
atomically (written beside, fsync'ed, renamed), so a reader never sees half a file, and the
rename is durable before ``send`` returns (the pipeline then commits the input). A folder that does not exist is a configuration
error at start-up; a write that fails later (disk full) is a retriable ``SinkError``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import OrderedDict
from pathlib import Path

from geosentry.stream.errors import NotStartedError, SinkError
from geosentry.stream.records import Alert, AlertKind, now_ns


#: event ids whose file's update the sink remembers (a restart re-sends only events of the last
#: ``horizon_s``; the others are read from their files)
KNOWN = 10_000


class QuakeMLSink:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.name = "quakeml"
        self._started = False
        #: event id -> the update of the version in its file (or of its deletion), the
        #: ``KNOWN`` most recent; files written before (or forgotten) are read when their event
        #: comes again
        self._updates: OrderedDict[str, int] = OrderedDict()

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
            if a.kind is AlertKind.EVENT:  # only an event's newest version matters
                eid = str(a.details["event_id"])
                if eid not in last or _update(a) >= _update(last[eid]):
                    last[eid] = a
        if last:
            await asyncio.to_thread(self._write_all, list(last.values()))

    def _write_all(self, alerts: list[Alert]) -> None:
        for a in alerts:
            eid = str(a.details["event_id"])
            path = self.folder / f"{eid}.xml"
            held = self._updates.get(eid)
            if held is None:
                held = self._updates[eid] = _update_in(path, eid)
            if _update(a) < held:
                continue  # a version older than the one kept (re-sent after a restart)
            self._updates[eid] = _update(a)
            self._updates.move_to_end(eid)
            if len(self._updates) > KNOWN:  # bounded over months of events
                self._updates.popitem(last=False)
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


def _update(a: Alert) -> int:
    return int(a.details.get("update", 0))


def _update_in(path: Path, eid: str) -> int:
    """The update of the version in an event's file (its origin's id ends ``<eid>/<update>``),
    -1 where there is no file or none can be read from it."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return -1
    found = re.findall(rf"{re.escape(eid)}/(\d+)", text)
    return max((int(u) for u in found), default=-1)
