"""SeedLink source: ``seedlink://HOST:PORT?streams=...&state=PATH&proto=auto`` (``seedlinks://``
for TLS).

Query parameters (all optional except ``streams``):

* ``streams=NET_STA[:SELECTORS],NET_STA2[:SELECTORS]`` - stations (``*``/``?`` wildcards allowed)
  with space- or ``+``-separated selectors (``SHZ`` / ``00BH?.D`` in protocol 3 syntax, or
  ``*_B_H_?`` in protocol 4 syntax; the client converts between them);
* ``state=PATH`` - libslink-compatible ``#V2`` state file (station, last sequence number),
  written atomically when the pipeline commits; read at start to resume with no gap;
* ``proto=auto|3|4`` (default ``auto``: protocol 4 when the server offers it);
* ``dialup=1`` - FETCH mode: the source ends when the server has sent what it holds;
* ``timeout_s`` (connect/handshake, 10), ``read_timeout_s`` (no byte for this long: reconnect,
  60), ``keepalive_s`` (INFO ID heartbeat, 20), ``max_backoff_s`` (30), ``retries`` (consecutive
  failed connections before the source fails; default unlimited);
* ``start=ISO`` / ``end=ISO`` - a time window (v3 ``TIME``, v4 ``DATA seq start end``); with
  ``end`` the source ends when the server has sent the window;
* TLS: ``seedlinks://HOST[:18500]`` or ``tls=1`` (``seedlink://HOST:18500`` too, as libslink
  does; ``tls=0`` forces plain TCP); the server certificate is checked against the system trust
  store, or ``ca_file=PATH`` (PEM); ``tls_noverify=1`` skips the check (insecure). An untrusted
  certificate stops the source at once (retrying cannot help).

Protocol 3 sequence numbers are 24-bit and wrap after ``FFFFFF``; the source extends them to
64 bits (a wrapped ``000000`` follows ``FFFFFF``), so refs, commits and the state file keep
increasing, and a resume sends the low 24 bits of the next number, as a v3 server expects.

Delivery is at-least-once: each record's ``ref`` is ``(source, station partition, sequence)``,
and ``commit`` persists the sequence numbers whose alerts were acknowledged. After a reconnect
in the same process the client resumes after the last record it handed on; after a restart it
resumes after the last committed one. ``resume=auto|station|ring`` (``auto``: ``ring`` against
ringserver, whose numbers are positions in one ring for every station; see
``geosentry.stream.seedlink.resume``): records a station already has are dropped and counted
(``on_duplicate``), and data no server holds any more between the last record held and the first
one received after a resume is logged once per channel and reported (``on_gap``).

Authentication (protocol 4, ``AUTH``), without secrets in the URI: ``user=NAME`` with
``password_file=PATH`` or ``password_env=VAR``, or ``token_file=PATH`` / ``token_env=VAR`` (JWT);
only over TLS unless ``auth_plaintext=1``. A rejected login stops the source at once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from seedlink_client import (AsyncSeedLink, Protocol, SeedLinkAuthError, SeedLinkError,
                             SeedLinkPacket)
from seedlink_client import _commands
from seedlink_client.state import load_state
from seedlink_client.streams import sort_streams

from geosentry import __version__
from geosentry.stream.errors import SourceError
from geosentry.stream.records import RawRecord, SourceRef, now_ns
from geosentry.stream.resume import ResumeMark
from geosentry.stream.seedlink.client_uri import TLS_PORT, SeedLinkURI, parse_seedlink
from geosentry.stream.seedlink.resume import (V3_SEQ_MODULUS, ResumeBook, ResumeGap, ResumeMode,
                                              resume_path, ring_numbered, save_state)
from geosentry.stream.sources import SourceGap

__all__ = ["TLS_PORT", "SeedLinkSource", "SeedLinkURI", "parse_seedlink", "save_state",
           "seedlink_info"]
log = logging.getLogger(__name__)
_END = object()


class _MaskAuth(logging.Filter):
    """seedlink-client logs every command it sends at DEBUG, AUTH and its secret included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(a) if isinstance(a, str) else a for a in record.args)
        return True


def _masked(text: str) -> str:
    words = text.split(" ")
    if words[0] != "AUTH" or len(words) < 3:
        return text
    return " ".join(words[:3] + ["***"]) if words[1] == "USERPASS" else f"AUTH {words[1]} ***"


for _name in ("seedlink_client.aio", "seedlink_client.client"):
    logging.getLogger(_name).addFilter(_MaskAuth())


class SelectorRefused(SourceError):
    """The server refused a STATION / SELECT / DATA command: retrying cannot help."""


class _StrictSeedLink(AsyncSeedLink):
    """seedlink-client, except that any refused negotiation command is an error (v3 included:
    the library only logs a refused v3 STATION/SELECT and carries on without it), a CA file can
    be given for TLS, and a v3 resume sends a 24-bit sequence number (the library would send
    ``1000000`` after ``FFFFFF``)."""

    ca_file: Path | None = None
    resume: ResumeMode = ResumeMode.STATION
    ring_position: int | None = None  # RING resume: the last sequence every station has

    def _ssl_context(self) -> ssl.SSLContext:
        context = super()._ssl_context()
        if self.ca_file is not None and not self._tls_noverify:
            try:
                context.load_verify_locations(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise SeedLinkError(f"cannot load CA file {self.ca_file}: {exc}") from exc
        return context

    async def _negotiate(self) -> None:
        if self.protocol is None:  # chosen by connect(), which negotiation always follows
            raise SeedLinkError("negotiating before the server's protocol version is known")
        self._match_cache.clear()
        ring = self.resume is ResumeMode.RING or (self.resume is ResumeMode.AUTO
                                                  and ring_numbered(self.server_id))
        if ring and self.ring_position is not None:  # one ring: every station from one place
            position = await self._in_ring(self.ring_position)
            for stream in self._streams:
                stream.seqnum = position
        if self.protocol is Protocol.V3:  # the library sends seqnum + 1, in hex
            for stream in self._streams:
                if stream.seqnum is not None:
                    stream.seqnum = (stream.seqnum + 1) % V3_SEQ_MODULUS - 1
        plan = _commands.plan_negotiation(
            self.protocol, sort_streams(self._streams), self._dialup, self._multistation,
            resume=True, lastpkttime=False, batch_active=self._batch_active,
            start_time=self._start_time, end_time=self._end_time)
        for cmd in plan:
            try:
                resp = await self._send_command(cmd)
            except SeedLinkError as exc:
                if cmd.role in ("station", "select", "data"):
                    raise SelectorRefused(f"server refused {cmd.text!r}: {exc}") from exc
                raise
            if resp is not None and not resp:
                raise SelectorRefused(f"server refused {cmd.text!r}: {resp.message or 'ERROR'}")
        self._streaming = True


    async def _in_ring(self, position: int) -> int:
        """``position`` (resume after it), or just before the oldest record the server still
        holds when its ring has moved past it: ringserver would otherwise start at the next new
        record and drop all it holds (what is lost in between is reported as a gap)."""
        if self.protocol is not Protocol.V4:
            return position
        try:
            doc = await self.info_dict("STATIONS")
        except (SeedLinkError, ValueError) as exc:
            log.debug("INFO STATIONS before a ring resume failed: %s", exc)
            return position
        firsts: list[int] = [st["start_seq"] for st in doc.get("station", [])
                             if isinstance(st, dict) and isinstance(st.get("start_seq"), int)]
        oldest = min(firsts, default=None)
        if oldest is None or position + 1 > oldest:
            return position
        # ringserver 4.5 answers DATA <its oldest> like DATA alone (new records only), so ask
        # for the one after it: one record more is lost, and reported with the rest
        log.warning("%s:%d: the server's ring has moved past position %d; resuming from its "
                    "oldest record but one, %d", self._host, self._port, position + 1, oldest + 1)
        return oldest


def _make_client(u: SeedLinkURI) -> _StrictSeedLink:
    client = _StrictSeedLink(u.host, u.port, timeout=u.timeout_s, tls=u.tls,
                             tls_noverify=u.tls_noverify, protocol=u.protocol,
                             keepalive=u.keepalive_s, idle_timeout=u.read_timeout_s,
                             dialup=u.dialup, clientname="geosentry", clientversion=__version__,
                             auth=None if u.auth is None else u.auth.for_client())
    client.ca_file = u.ca_file
    client.resume = u.resume
    if u.start is not None:
        client.set_timewindow(u.start, u.end)
    return client


def _untrusted(exc: BaseException, u: SeedLinkURI) -> SourceError | None:
    """A clear, final error when the server's TLS certificate is not trusted or it refused
    our credentials (retrying cannot help either)."""
    if isinstance(exc, SeedLinkAuthError) and u.auth is not None:
        return SourceError(f"seedlink:{u.host}:{u.port}: authentication failed (AUTH "
                           f"{u.auth.method}{'' if u.auth.user is None else ' as ' + u.auth.user}"
                           f", secret from {u.auth.source}): server said "
                           f"{exc.code or 'ERROR'} {exc}".rstrip())
    if isinstance(exc, SeedLinkError) and (exc.code in ("UNAUTHORIZED", "AUTH") or
                                           "authentication required" in str(exc).lower()):
        return SourceError(f"seedlink:{u.host}:{u.port}: the server refused to stream without "
                           f"authentication ({exc}): give user=NAME&password_file=PATH or "
                           f"token_file=PATH" if u.auth is None else
                           f"seedlink:{u.host}:{u.port}: not authorized ({exc})")
    cause = exc.__cause__
    if not isinstance(cause, ssl.SSLCertVerificationError):
        return None
    return SourceError(f"seedlink:{u.host}:{u.port}: TLS certificate not trusted "
                       f"({cause.verify_message}); give ca_file=PATH with the CA certificate "
                       f"(PEM), or tls_noverify=1 (insecure)")


async def seedlink_info(uri: str, level: str = "STATIONS") -> dict[str, Any]:
    """One INFO request (``level`` may carry v4 patterns, e.g. ``"STREAMS GE_* *_B_H_?"``):
    the v4 JSON document, or for protocol 3 the XML as ``{"seedlink": {..., "station": [...]}}``
    (attributes as strings, children as lists)."""
    u = parse_seedlink(uri, "URI", need_streams=False)
    client = _make_client(u)
    try:
        await client.connect()
        return await client.info_dict(level)
    except SeedLinkError as exc:
        raise _untrusted(exc, u) or SourceError(f"seedlink:{u.host}:{u.port}: INFO {level}: "
                                                f"{exc}") from exc
    finally:
        await client.close()


class SeedLinkSource:
    """Records from a SeedLink server, resumable from a state file (see module docs)."""

    def __init__(self, uri: str) -> None:
        self.uri = parse_seedlink(uri)
        self.name = f"seedlink:{self.uri.host}:{self.uri.port}"
        self.finite = self.uri.dialup or self.uri.end is not None
        self.live = not self.finite
        self.book = ResumeBook()  # sequence numbers and channel end times, handed on and acked
        self.duplicates = 0  # records dropped because their station had them already
        self.gaps: list[ResumeGap] = []  # data a resume could not get back
        self.on_gap: Callable[[SourceGap], Awaitable[None]] | None = None
        self.on_duplicate: Callable[[int], None] | None = None
        self._partitions: dict[str, int] = {}
        self._stations: list[str] = []
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=512)
        self._reader: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._saving = asyncio.Lock()

    async def start(self) -> None:
        if self.uri.ca_file is not None and not self.uri.ca_file.is_file():
            raise SourceError(f"{self.name}: ca_file {self.uri.ca_file} is not a file")
        path = self.uri.state
        if path is not None and path.exists() and not self.committed:
            try:
                loaded = await asyncio.to_thread(load_state, str(path))
                self.book.load({sid: seq for sid, (seq, _) in loaded.items() if seq is not None},
                               resume_path(path))
            except (OSError, ValueError) as exc:
                raise SourceError(f"cannot read SeedLink state file {path} (or "
                                  f"{resume_path(path).name} beside it): {exc}") from exc
            log.info("%s: resuming from %s: %s", self.name, path, self.committed)

    @property
    def delivered(self) -> dict[str, int]:
        """Last sequence number handed on, per station."""
        return self.book.delivered

    @property
    def committed(self) -> dict[str, int]:
        """Last sequence number acknowledged by the pipeline, per station."""
        return self.book.committed

    async def __aenter__(self) -> SeedLinkSource:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _partition(self, sid: str) -> int:
        if sid not in self._partitions:
            self._partitions[sid] = len(self._stations)
            self._stations.append(sid)
        return self._partitions[sid]

    def _client(self) -> _StrictSeedLink:
        u = self.uri
        client = _make_client(u)
        client.ring_position = self.book.ring_position()
        exact = {sid for sid, _ in u.streams if not any(c in sid for c in "*?")}
        for sid, sels in u.streams:
            client.add_stream(sid, sels or None, seqnum=self.delivered.get(sid))
            if sid not in exact:  # known members of a wildcard resume on their own
                for known in sorted(self.delivered):
                    if known not in exact and fnmatch.fnmatchcase(known, sid):
                        client.add_stream(known, sels or None, seqnum=self.delivered[known])
                        exact.add(known)
        return client

    async def _read_loop(self) -> None:
        """Connect, stream into the queue, reconnect with bounded exponential backoff."""
        failures = 0
        while not self._stopping.is_set():
            client = self._client()
            try:
                await client.connect()
                if u_auth_needs_v4(self.uri, client):
                    await self._queue.put(SourceError(
                        f"{self.name}: AUTH needs SeedLink protocol 4; the server offers only "
                        f"protocol {client.protocol.value if client.protocol else '?'}"))
                    return
                self.book.connected()
                log.info("%s: connected (%s, protocol %s)", self.name, client.server_id,
                         client.protocol.value if client.protocol else "?")
                packets = client.collect(reconnect=False)
                v3 = client.protocol is not Protocol.V4
                while True:
                    try:
                        pkt = await asyncio.wait_for(anext(packets), self.uri.read_timeout_s)
                    except StopAsyncIteration:
                        break
                    failures = 0
                    await self._queue.put((pkt, v3))
                if self.finite:
                    await self._queue.put(_END)
                    return
                raise SeedLinkError("server ended the stream")
            except SelectorRefused as exc:
                await self._queue.put(exc)
                return
            except (SeedLinkError, OSError, TimeoutError) as exc:
                fatal = _untrusted(exc, self.uri)
                if fatal is not None:
                    await self._queue.put(fatal)
                    return
                failures += 1
                reason = str(exc) or (f"nothing read for {self.uri.read_timeout_s:g} s "
                                      f"(read_timeout_s)" if isinstance(exc, TimeoutError)
                                      else type(exc).__name__)
                if self.uri.retries is not None and failures > self.uri.retries:
                    await self._queue.put(SourceError(
                        f"{self.name}: giving up after {failures} failed attempts: {reason}"))
                    return
                delay_s = min(self.uri.max_backoff_s, 0.5 * 2 ** (failures - 1))
                log.warning("%s: %s; reconnecting in %.1f s", self.name, reason, delay_s)
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay_s)
                except TimeoutError:
                    pass
            finally:
                await client.close()

    async def records(self) -> AsyncIterator[RawRecord]:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_loop())
        while not self._stopping.is_set():
            try:
                item = await asyncio.wait_for(self._queue.get(), 0.5)
            except TimeoutError:
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            pkt, v3 = item
            assert isinstance(pkt, SeedLinkPacket)
            sid = pkt.station_id
            seq = None if pkt.seqnum is None else self.book.sequence(sid, pkt.seqnum, v3)
            if seq is None:  # never hand on a record twice within one process
                self.duplicates += 1
                if self.on_duplicate is not None:
                    self.on_duplicate(1)
                continue
            gap = self.book.hand_on(sid, seq, pkt.payload)
            if gap is not None:
                await self._report(gap)
            if self.book.started:  # a new station: save where it began (see ResumeBook)
                self.book.started = False
                await self._save()
            net, _, sta = sid.partition("_")
            yield RawRecord(pkt.payload, now_ns(), key=f"{net}.{sta}",
                            ref=SourceRef(self.name, self._partition(sid), seq))

    async def _report(self, gap: ResumeGap) -> None:
        """One log line, then the pipeline's health alert and metric (``on_gap``)."""
        self.gaps.append(gap)
        log.warning("%s: %s: data missing from %s to %s (%.3f s): not received after a resume "
                    "(the server no longer holds it, or never had it)", self.name, gap.sid,
                    _iso(gap.after_ns), _iso(gap.until_ns), gap.duration_s)
        if self.on_gap is not None:
            await self.on_gap(SourceGap(gap.sid, gap.after_ns, gap.until_ns, "resume"))

    def keep_marks(self, marks: dict[int, ResumeMark]) -> None:
        """Store these marks (by station partition) with the next commit (``Resumable``)."""
        for part, mark in marks.items():
            self.book.marks_out[self._stations[part]] = mark

    def delivered_before_ns(self) -> int:
        """The oldest ``resume_ns`` of the marks found in the resume file (0: none)."""
        return min((m.resume_ns for m in self.book.marks_in.values()), default=0)

    def replay_before_ns(self, partition: int, offset: int) -> int:
        """Windows before this data time were delivered before the restart (0: none)."""
        mark = self.book.marks_in.get(self._stations[partition])
        return 0 if mark is None else mark.replay_before_ns(offset)

    async def commit(self, offsets: dict[int, int]) -> None:
        """``{station partition: next sequence}``: persist ``next - 1`` as done."""
        changed = False
        for part, next_seq in offsets.items():
            changed |= self.book.commit(self._stations[part], next_seq - 1)
        if changed:
            await self._save()

    async def _save(self) -> None:
        if self.uri.state is not None:
            async with self._saving:  # one writer at a time: the newest content lands last
                await asyncio.to_thread(self.book.save, self.uri.state)

    def stop_reading(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        reader, self._reader = self._reader, None
        if reader is not None:
            while not reader.done():  # seedlink-client polls with wait_for, which on Python 3.11
                reader.cancel()       # can swallow a cancel: repeat it until the task ends
                await asyncio.wait({reader}, timeout=0.5)
            await asyncio.gather(reader, return_exceptions=True)


def u_auth_needs_v4(u: SeedLinkURI, client: AsyncSeedLink) -> bool:
    """Credentials are configured but the connection is not protocol 4 (no AUTH was sent)."""
    return u.auth is not None and client.protocol is not Protocol.V4


def _iso(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
