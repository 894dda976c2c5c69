"""``geosentry serve-seedlink``: an asyncio SeedLink 3 / 4 server replaying a miniSEED archive.

The protocol itself is in ``session.py`` (one per client connection); this module listens,
optionally over TLS, and keeps the list of live sessions for INFO CONNECTIONS.

TLS follows the SeedLink 4 specification: it is a property of the listening port (TLS from the
first byte, conventionally port 18500 next to plain 18000), not a capability negotiated after
HELLO; the spec defines no TLS capability token, so HELLO / GETCAPABILITIES are the same on a
TLS port as on a plain one. Both protocol 3 and 4 work over TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from geosentry.stream.errors import ConfigError, NotStartedError
from geosentry.stream.records import now_ns
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.seedlink.info import ConnectionInfo
from geosentry.stream.seedlink.session import Session
from geosentry.stream.seedlink.users import Users

TLS_PORT = 18500


def server_tls_context(cert: str | Path, key: str | Path | None = None) -> ssl.SSLContext:
    """A TLS server context from a PEM certificate (chain) and its private key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key) if key is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("--tls-cert", f"cannot load {cert} (key {key}): {exc}") from exc
    return context


class SeedLinkServer:
    """Serve ``archive`` on ``host:port`` (port 0 picks a free one; see ``port`` after start).

    ``tls_cert``/``tls_key`` (PEM) make the port a TLS port; ``first_seq`` numbers each
    station's records from that value (default 1); ``users`` (``users.load_users``, TLS only)
    makes clients log in (AUTH) and see only their allowed streams."""

    def __init__(self, archive: str | Path, host: str = "127.0.0.1", port: int = 18000,
                 speed: float = 0.0, ring_records: int | None = None,
                 organization: str = "geosentry archive replay", *,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                 first_seq: int = 1, users: Users | None = None) -> None:
        self.archive = Archive(archive, speed, ring_records, first_seq)
        self.host, self.port = host, port
        self.organization = organization
        self.tls = server_tls_context(tls_cert, tls_key) if tls_cert is not None else None
        if users is not None and self.tls is None:
            raise ConfigError("--users", "needs --tls-cert/--tls-key: AUTH is only accepted "
                                         "over TLS")
        self.users = users
        self.started_ns = now_ns()
        self.info_requests = 0  # INFO commands answered (keepalives included)
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], tuple[asyncio.StreamWriter, Session]] = {}

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        self.started_ns = now_ns()
        self.archive.start()
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        session = Session(self, reader, writer)
        self._sessions[task] = (writer, session)
        try:
            await session.run()
        finally:
            self._sessions.pop(task, None)

    def connections(self) -> list[ConnectionInfo]:
        """Every connected client, oldest first."""
        return sorted((s.describe() for _, s in self._sessions.values()),
                      key=lambda c: (c.connected_ns, c.port))

    async def serve_forever(self) -> None:
        if self._server is None:
            raise NotStartedError("seedlink server: start() it first")
        await self._server.serve_forever()

    async def stop(self) -> None:
        """Stop listening and drop every client (they see the connection close)."""
        if self._server is None:
            return
        self._server.close()
        for writer, _ in list(self._sessions.values()):
            writer.transport.abort()
        if self._sessions:
            _, late = await asyncio.wait(list(self._sessions), timeout=5.0)
            for task in late:
                task.cancel()
        await self._server.wait_closed()
        self._server = None
