"""One client connection of the SeedLink replay server: handshake, INFO, data transfer.

Handshake commands: HELLO, SLPROTO, USERAGENT, GETCAPABILITIES, CAPABILITIES/ENABLE, BATCH (v3),
STATION, SELECT, DATA / FETCH ``[seq [start [end]]]``, TIME (v3), END, ENDFETCH / END FETCH (v4),
INFO, BYE. During data transfer only INFO and BYE are read. DATA or FETCH without a sequence
number starts at the oldest record of each station's ring (replay semantics: a new client gets
the archive from its start). With a users file (``users.py``, TLS only) a v4 client logs in with
``AUTH USERPASS`` or ``AUTH JWT`` before it may ask for data, and then sees only the streams it
is allowed, in INFO and in data; a failed login gets ``ERROR AUTH`` and the connection closes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from geosentry.stream.records import now_ns
from geosentry.stream.seedlink import info as I
from geosentry.stream.seedlink import protocol as P
from geosentry.stream.seedlink.archive import Packet
from geosentry.stream.seedlink.users import User

if TYPE_CHECKING:
    from geosentry.stream.seedlink.server import SeedLinkServer

log = logging.getLogger(__name__)
MAX_LINE = 4096
WRITE_TIMEOUT_S = 60.0
IDLE_HANDSHAKE_S = 300.0
_TERMINATORS = re.compile(rb"\r\n|\r|\n")
_MODIFIERS = {"STATION", "SELECT", "DATA", "FETCH", "TIME"}


class _Close(Exception):
    """The session ends (BYE, protocol violation, client gone)."""


@dataclass
class _Request:
    """One STATION (or the implicit uni-station) request and its resume/time window."""

    stations: list[str]
    selectors: P.SelectorSet = field(default_factory=P.SelectorSet)
    seq: int | None = None
    seq24: bool = False  # a v3 sequence number: only its low 24 bits are known
    start_ns: int | None = None
    end_ns: int | None = None


class Session:
    def __init__(self, server: SeedLinkServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server, self.archive = server, server.archive
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.host, self.port = str(peer[0]), int(peer[1])
        self.tls = writer.get_extra_info("ssl_object") is not None
        self.connected_ns = now_ns()
        self.useragent = ""
        self.state = "handshake"
        self.packets_sent = self.bytes_sent = 0
        self.current_seq: dict[str, int] = {}
        self.begin_seq: dict[str, int] = {}
        self.v4 = False
        self.batch = self.extreply = self.dialup = False
        self.requests: list[_Request] = []
        self.uni: _Request | None = None
        self.user: User | None = None  # logged in (AUTH), when the server has a users file
        self._buf = b""
        self._lines: list[str] = []
        self._lock = asyncio.Lock()

    def describe(self) -> I.ConnectionInfo:
        return I.ConnectionInfo(self.host, self.port, self.connected_ns, "4" if self.v4 else "3",
                                self.tls, self.useragent, self.state, self.packets_sent,
                                self.bytes_sent, dict(self.current_seq), dict(self.begin_seq))

    # ---- I/O ------------------------------------------------------------------------------
    async def _readline(self) -> str:
        while not self._lines:
            parts = _TERMINATORS.split(self._buf)
            self._buf = parts.pop()
            self._lines = [p.decode("ascii", "replace").strip() for p in parts if p.strip()]
            if self._lines:
                break
            if len(self._buf) > MAX_LINE:
                raise _Close("command line too long")
            chunk = await self.reader.read(4096)
            if not chunk:
                raise _Close("client closed the connection")
            self._buf += chunk
        return self._lines.pop(0)

    async def _send(self, data: bytes) -> None:
        async with self._lock:
            self.writer.write(data)
            try:
                await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT_S)
            except (TimeoutError, ConnectionError) as exc:
                raise _Close(f"client not reading ({exc!r})") from exc

    async def _ok(self, command: str) -> None:
        if not (self.batch and command in _MODIFIERS):
            await self._send(b"OK\r\n")

    async def _error(self, command: str, code: str, message: str) -> None:
        log.info("seedlink %s: %s refused: %s %s", self.peer, command, code, message)
        if self.batch and command in _MODIFIERS:
            return
        if self.v4:
            await self._send(f"ERROR {code} {message}\r\n".encode())
        elif self.extreply:
            await self._send(f"ERROR\r{message}\r\n".encode())
        else:
            await self._send(b"ERROR\r\n")

    # ---- handshake --------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                line = await asyncio.wait_for(self._readline(), IDLE_HANDSHAKE_S)
                if await self._command(line):
                    break
            await self._transfer()
        except (_Close, TimeoutError, ConnectionError) as exc:
            log.info("seedlink %s: session ends: %s", self.peer, exc)
        except Exception:  # a bug must end this session only, never the server
            log.exception("seedlink %s: session failed", self.peer)
        finally:
            self.state = "ended"
            self.writer.close()

    async def _command(self, line: str) -> bool:
        """Handle one handshake command; True when data transfer starts."""
        verb, *args = line.split()
        verb = verb.upper()
        try:
            if verb == "HELLO":
                await self._send(P.hello_reply(self.server.organization,
                                               P.AUTH_CAPABILITIES if self.server.users else ()))
            elif verb == "SLPROTO":
                if not args or args[0].split(".")[0] not in ("3", "4"):
                    raise P.ProtocolError(f"unsupported protocol {' '.join(args)!r}",
                                          "UNSUPPORTED")
                self.v4 = args[0].startswith("4")
                await self._ok(verb)
            elif verb == "AUTH" and (self.v4 or self.server.users is not None):
                await self._auth(args)  # spec: never over plain TCP
            elif verb in ("STATION", "SELECT", "DATA", "FETCH", "TIME", "END", "ENDFETCH") and \
                    self.server.users is not None and self.user is None:
                raise P.ProtocolError("authentication required (AUTH USERPASS or AUTH JWT, "
                                      "protocol 4 over TLS)", "UNAUTHORIZED")
            elif verb in ("USERAGENT", "AUTH") or (verb == "BATCH" and not self.v4):
                self.batch = self.batch or verb == "BATCH"
                self.useragent = " ".join(args) if verb == "USERAGENT" else self.useragent
                await self._ok(verb)
            elif verb in ("CAPABILITIES", "ENABLE"):
                self.extreply = self.extreply or "EXTREPLY" in (a.upper() for a in args)
                await self._ok(verb)
            elif verb == "GETCAPABILITIES":
                caps = P.CAPABILITIES_V4 + (P.AUTH_CAPABILITIES if self.server.users else ())
                await self._send((" ".join(caps) + "\r\n").encode())
            elif verb == "INFO":
                await self._info(args)
            elif verb == "STATION":
                self._station(args)
                await self._ok(verb)
            elif verb == "SELECT":
                self._select(args)
                await self._ok(verb)
            elif verb in ("DATA", "FETCH", "TIME"):
                return await self._data(verb, args)
            elif verb in ("END", "ENDFETCH"):
                self.dialup = self.dialup or verb == "ENDFETCH" or args[:1] == ["FETCH"]
                if not any(r.stations for r in self.requests):
                    raise P.ProtocolError("END without an accepted STATION", "UNEXPECTED")
                return True
            elif verb == "BYE":
                raise _Close("BYE")
            else:
                raise P.ProtocolError(f"command {verb} not supported", "UNSUPPORTED")
        except P.ProtocolError as exc:
            await self._error(verb, exc.code, str(exc))
        return False

    def _station(self, args: list[str]) -> None:
        if not args:  # a refused STATION still collects its SELECT/DATA, which are ignored
            self.requests.append(_Request([]))
            raise P.ProtocolError("STATION needs a station")
        if self.v4:
            pattern = args[0].upper()
        else:
            pattern = f"{args[1].upper() if len(args) > 1 else '*'}_{args[0].upper()}"
        taken = {s for r in self.requests for s in r.stations}  # earlier STATIONs win
        matched = [s for s in self.archive.by_station if fnmatch.fnmatchcase(s, pattern)
                   and (self.user is None or self.user.sees_station(s))]  # others: not found
        self.requests.append(_Request(sorted(set(matched) - taken)))
        if not matched:
            raise P.ProtocolError(f"station {pattern} not found")

    def _current(self) -> _Request:
        if self.requests:
            return self.requests[-1]
        if self.v4:
            raise P.ProtocolError("STATION expected first", "UNEXPECTED")
        self.uni = self.uni or _Request(sorted(s for s in self.archive.by_station
                                               if self.user is None or self.user.sees_station(s)))
        return self.uni

    def _select(self, args: list[str]) -> None:
        req = self._current()
        if not args:
            if self.v4:
                raise P.ProtocolError("empty SELECT is not allowed in v4")
            req.selectors = P.SelectorSet()
            return
        for a in args:
            req.selectors.add(a, self.v4)

    async def _data(self, verb: str, args: list[str]) -> bool:
        if verb == "TIME" and self.v4:
            raise P.ProtocolError("TIME is not part of protocol 4 (use DATA seq start end)",
                                  "UNSUPPORTED")
        req = self._current()
        self.dialup = self.dialup or verb == "FETCH"
        times = args if verb == "TIME" else args[1:]
        if verb != "TIME" and args:
            req.seq, req.seq24 = P.parse_seq(args[0], self.v4), not self.v4
        req.start_ns = P.parse_time_ns(times[0]) if times else None
        req.end_ns = P.parse_time_ns(times[1]) if len(times) > 1 else None
        if req is self.uni:  # uni-station mode: transfer starts now, no reply
            self.requests = [req]
            return True
        await self._ok(verb)
        return False

    async def _info(self, args: list[str]) -> None:
        level = args[0].upper() if args else "ID"
        self.server.info_requests += 1
        infos = self.archive.station_infos()
        org, started = self.server.organization, self.server.started_ns
        conns = self.server.connections() if level in ("CONNECTIONS", "ALL") else []
        if self.server.users is not None:  # only what this user may see (nothing before AUTH)
            user = self.user
            infos = [_visible(i, user) for i in infos if user is not None and user.sees_station(i.id)]
            conns = [c for c in conns if (c.host, c.port) == (self.host, self.port)]
        if self.v4:
            err = None
            if level == "GAPS":
                err = ("UNSUPPORTED", "INFO GAPS is not part of protocol 4")
            elif level not in I.V4_LEVELS:
                err = ("ARGUMENTS", f"unknown INFO item {level}")
            doc = I.info_json(level, org, infos, err, station=args[1] if len(args) > 1 else "*",
                              stream=args[2] if len(args) > 2 else "*", connections=conns,
                              started_ns=started)
            await self._send(P.v4_header("J", "E" if err else "I", len(doc), 0, "") + doc)
        else:
            level = level if level in I.V3_LEVELS else "ID"
            await self._send(I.info_packets_v3(I.info_xml(level, org, infos, conns, started)))

    async def _auth(self, args: list[str]) -> None:
        """``AUTH USERPASS user password`` / ``AUTH JWT token`` against the users file."""
        users = self.server.users
        if not self.tls:
            raise P.ProtocolError("AUTH needs TLS", "UNEXPECTED")
        if users is None:
            raise P.ProtocolError("no AUTH type is supported", "UNSUPPORTED")
        if not self.v4:
            raise P.ProtocolError("AUTH needs protocol 4 (SLPROTO 4.0)", "UNSUPPORTED")
        method = args[0].upper() if args else ""
        if method == "USERPASS" and len(args) == 3:
            who, user = args[1], users.check_password(args[1], args[2])
        elif method == "JWT" and len(args) == 2:
            who, user = "(token)", users.check_token(args[1])
        else:
            raise P.ProtocolError("AUTH USERPASS user password | AUTH JWT token", "ARGUMENTS")
        if user is None:  # one line, never the secret; the connection closes
            log.warning("seedlink %s: AUTH %s as %s refused", self.peer, method, who)
            await self._send(b"ERROR AUTH authentication failed\r\n")
            raise _Close("authentication failed")
        self.user = user
        log.info("seedlink %s: authenticated as %s (AUTH %s)", self.peer, user.name, method)
        await self._ok("AUTH")

    # ---- data transfer ----------------------------------------------------------------------
    async def _commands_while_streaming(self) -> None:
        while True:
            verb, *args = (await self._readline()).split()
            if verb.upper() == "INFO":
                await self._info(args)
            elif verb.upper() == "BYE":
                raise _Close("BYE")

    async def _transfer(self) -> None:
        windowed = any(r.end_ns for r in self.requests)
        self.state = "dial-up" if self.dialup else "window" if windowed else "real-time"
        reader = asyncio.create_task(self._commands_while_streaming())
        sender = asyncio.create_task(self._stream_packets())
        try:
            done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            if sender in done:  # dial-up END sent: wait for the client to hang up
                await asyncio.wait_for(reader, 30.0)
        finally:
            for task in (reader, sender):
                task.cancel()

    def _cursors(self) -> dict[str, tuple[_Request, int]]:
        """Per station: its request and the list position to send next."""
        out: dict[str, tuple[_Request, int]] = {}
        for req in self.requests:
            for sid in req.stations:
                first, n = self.archive.ring_range(sid)
                pos = first
                if req.seq is not None:
                    newest = self.archive.first_seq + n - 1
                    seq = P.resolve_v3_seq(req.seq, newest) if req.seq24 else req.seq
                    if self.archive.position(seq) < first:
                        log.info("seedlink %s: %s seq %d left the ring; from %d", self.peer,
                                 sid, seq, self.archive.first_seq + first)
                    pos = max(first, self.archive.position(seq))
                out[sid] = (req, pos)
        return out

    def _wanted(self, req: _Request, p: Packet) -> bool:
        if req.start_ns is not None and p.end_ns <= req.start_ns:
            return False
        if req.end_ns is not None and p.start_ns >= req.end_ns:
            return False
        if self.user is not None and not self.user.sees(p.station_id, p.location, p.channel):
            return False
        return req.selectors.matches(p.location, p.channel, p.record_type)

    async def _stream_packets(self) -> None:
        cursors = self._cursors()
        while cursors:
            published = self.archive.published()
            best: Packet | None = None
            for sid, (req, pos) in list(cursors.items()):
                packets = self.archive.by_station[sid]
                while pos < len(packets) and packets[pos].index < published and \
                        not self._wanted(req, packets[pos]):
                    pos += 1
                cursors[sid] = (req, pos)
                window_over = (req.end_ns is not None and pos < len(packets)
                               and packets[pos].start_ns >= req.end_ns)
                if pos >= len(packets) or window_over:
                    del cursors[sid]  # nothing more can come for this station
                elif packets[pos].index < published and (best is None or
                                                         packets[pos].index < best.index):
                    best = packets[pos]
            if best is None:
                if self.dialup or not cursors and any(r.end_ns for r in self.requests):
                    break
                pending = [self.archive.by_station[s][pos].index for s, (_, pos) in cursors.items()]
                await asyncio.sleep(min(0.5, self.archive.seconds_until(min(pending)))
                                    if pending else 0.5)
                continue
            req, pos = cursors[best.station_id]
            cursors[best.station_id] = (req, pos + 1)
            await self._send_packet(best)
        if self.dialup or any(r.end_ns for r in self.requests):
            await self._send(b"END")
            self.state = "ended"
        else:
            await asyncio.Event().wait()  # real time: the archive is exhausted, stay connected

    async def _send_packet(self, p: Packet) -> None:
        if self.v4:
            frame = P.v4_header("2", p.record_type, len(p.payload), p.seq, p.station_id)
        else:
            frame = P.v3_header(p.seq)
        await self._send(frame + p.payload)
        self.begin_seq.setdefault(p.station_id, p.seq)
        self.current_seq[p.station_id] = p.seq
        self.packets_sent += 1
        self.bytes_sent += len(frame) + len(p.payload)


def _visible(info: I.StationInfo, user: User) -> I.StationInfo:
    """``info`` with only the streams (and their gaps) ``user`` may see."""
    keep = [i for i, st in enumerate(info.streams) if user.sees(info.id, st[0], st[1])]
    return replace(info, streams=tuple(info.streams[i] for i in keep),
                   gaps=tuple(info.gaps[i] for i in keep if i < len(info.gaps)))
