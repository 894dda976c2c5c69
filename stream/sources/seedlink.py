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
in the same process the client resumes after the last record it handed on (no duplicates);
after a restart it resumes after the last committed one.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from seedlink_client import AsyncSeedLink, Protocol, SeedLinkError, SeedLinkPacket
from seedlink_client import _commands
from seedlink_client.state import load_state
from seedlink_client.streams import sort_streams
from seedlink_client.time_utils import parse_timestring

from geosentry import __version__
from geosentry.stream.errors import ConfigError, SourceError
from geosentry.stream.records import RawRecord, SourceRef, now_ns

log = logging.getLogger(__name__)
_END = object()
V3_SEQ_MODULUS = 1 << 24
TLS_PORT = 18500


@dataclass(frozen=True)
class SeedLinkURI:
    host: str
    port: int
    streams: list[tuple[str, list[str]]]
    state: Path | None = None
    protocol: Protocol | None = None
    dialup: bool = False
    timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    keepalive_s: float = 20.0
    max_backoff_s: float = 30.0
    retries: int | None = None
    tls: bool | None = None  # None: TLS on port 18500 only
    tls_noverify: bool = False
    ca_file: Path | None = None
    start: datetime | None = None
    end: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _time(key: str, uri: str, text: str | None) -> datetime | None:
    try:
        return parse_timestring(text) if text else None
    except ValueError as exc:
        raise ConfigError(key, f"{uri!r}: invalid time {text!r} (expected ISO 8601)") from exc


def parse_seedlink(uri: str, key: str = "--source", need_streams: bool = True) -> SeedLinkURI:
    """Parse and validate a ``seedlink://`` URI (errors name the offending part)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("seedlink", "seedlinks") or not parts.hostname:
        raise ConfigError(key, f"expected seedlink[s]://HOST:PORT?streams=NET_STA:..., got {uri!r}")
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    streams = []
    for entry in filter(None, (e.strip() for e in q.pop("streams", "").split(","))):
        sid, _, sels = entry.partition(":")
        if "_" not in sid:
            raise ConfigError(key, f"stream {entry!r}: station must be NET_STA")
        streams.append((sid.upper(), sels.replace("+", " ").split()))
    if not streams and need_streams:
        raise ConfigError(key, f"{uri!r}: streams=NET_STA[:SELECTORS],... is required")
    proto = q.pop("proto", "auto")
    if proto not in ("auto", "3", "4"):
        raise ConfigError(key, f"proto must be auto, 3 or 4, got {proto!r}")
    try:
        num = {k: float(q.pop(k)) for k in ("timeout_s", "read_timeout_s", "keepalive_s",
                                            "max_backoff_s") if k in q}
        retries = int(q.pop("retries")) if "retries" in q else None
    except ValueError as exc:
        raise ConfigError(key, f"{uri!r}: {exc}") from exc
    tls_arg = q.pop("tls", None)
    tls = (tls_arg.lower() in ("1", "true", "yes") if tls_arg is not None
           else True if parts.scheme == "seedlinks" else None)
    flags = {k: q.pop(k, "0").lower() in ("1", "true", "yes") for k in ("dialup", "tls_noverify")}
    state, ca_file = q.pop("state", None), q.pop("ca_file", None)
    start, end = _time(key, uri, q.pop("start", None)), _time(key, uri, q.pop("end", None))
    if end is not None and start is None:
        raise ConfigError(key, f"{uri!r}: end= needs start=")
    if q:
        raise ConfigError(key, f"{uri!r}: unknown parameter(s) {', '.join(sorted(q))}")
    default_port = TLS_PORT if parts.scheme == "seedlinks" else 18000
    return SeedLinkURI(parts.hostname, parts.port or default_port, streams,
                       Path(state) if state else None,
                       None if proto == "auto" else Protocol(proto), retries=retries, tls=tls,
                       ca_file=Path(ca_file) if ca_file else None, start=start, end=end,
                       **flags, **num)  # type: ignore[arg-type]


def save_state(path: Path, seqs: dict[str, int]) -> None:
    """Write ``{NET_STA: last sequence}`` as a libslink ``#V2`` state file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("#V2 StationID  Sequence  [Timestamp]\n")
            f.writelines(f"{sid} {seq}\n" for sid, seq in sorted(seqs.items()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SelectorRefused(SourceError):
    """The server refused a STATION / SELECT / DATA command: retrying cannot help."""


class _StrictSeedLink(AsyncSeedLink):
    """seedlink-client, except that any refused negotiation command is an error (v3 included:
    the library only logs a refused v3 STATION/SELECT and carries on without it), a CA file can
    be given for TLS, and a v3 resume sends a 24-bit sequence number (the library would send
    ``1000000`` after ``FFFFFF``)."""

    ca_file: Path | None = None

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


def _make_client(u: SeedLinkURI) -> _StrictSeedLink:
    client = _StrictSeedLink(u.host, u.port, timeout=u.timeout_s, tls=u.tls,
                             tls_noverify=u.tls_noverify, protocol=u.protocol,
                             keepalive=u.keepalive_s, idle_timeout=u.read_timeout_s,
                             dialup=u.dialup, clientname="geosentry", clientversion=__version__)
    client.ca_file = u.ca_file
    if u.start is not None:
        client.set_timewindow(u.start, u.end)
    return client


def _untrusted(exc: BaseException, u: SeedLinkURI) -> SourceError | None:
    """A clear, final error when the server's TLS certificate is not trusted."""
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
        self.delivered: dict[str, int] = {}  # last sequence handed on, per station
        self.committed: dict[str, int] = {}  # last sequence acknowledged by the pipeline
        self._partitions: dict[str, int] = {}
        self._stations: list[str] = []
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=512)
        self._reader: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if self.uri.ca_file is not None and not self.uri.ca_file.is_file():
            raise SourceError(f"{self.name}: ca_file {self.uri.ca_file} is not a file")
        path = self.uri.state
        if path is not None and path.exists() and not self.committed:
            try:
                loaded = await asyncio.to_thread(load_state, str(path))
            except (OSError, ValueError) as exc:
                raise SourceError(f"cannot read SeedLink state file {path}: {exc}") from exc
            self.committed = {sid: seq for sid, (seq, _) in loaded.items() if seq is not None}
            self.delivered = dict(self.committed)
            log.info("%s: resuming from %s: %s", self.name, path, self.committed)

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
            seq = None if pkt.seqnum is None else self._sequence(sid, pkt.seqnum, v3)
            if seq is None:
                continue  # never hand on a record twice within one process
            self.delivered[sid] = seq
            net, _, sta = sid.partition("_")
            yield RawRecord(pkt.payload, now_ns(), key=f"{net}.{sta}",
                            ref=SourceRef(self.name, self._partition(sid), seq))

    def _sequence(self, sid: str, raw: int, v3: bool) -> int | None:
        """The packet's 64-bit sequence number, or None when it was handed on already. A v3
        number (24 bits) is the one after the last delivered with those low bits."""
        last = self.delivered.get(sid)
        if last is None:
            return raw
        if not v3:
            return raw if raw > last else None
        step = (raw - last) % V3_SEQ_MODULUS
        return last + step if 0 < step < V3_SEQ_MODULUS // 2 else None

    async def commit(self, offsets: dict[int, int]) -> None:
        """``{station partition: next sequence}``: persist ``next - 1`` as done."""
        changed = False
        for part, next_seq in offsets.items():
            sid = self._stations[part]
            if next_seq - 1 > self.committed.get(sid, -1):
                self.committed[sid] = next_seq - 1
                changed = True
        if changed and self.uri.state is not None:
            await asyncio.to_thread(save_state, self.uri.state, dict(self.committed))

    def stop_reading(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
