"""The ``/metrics`` HTTP endpoint: bound to 127.0.0.1 unless told otherwise, with optional basic
auth and TLS (README, "Security").

Config keys (top level): ``metrics_auth_file`` (one line ``user:password``) or ``metrics_user``
plus ``metrics_password_file``; ``metrics_tls_cert`` and ``metrics_tls_key`` (PEM files).
Credentials are compared in constant time (digests of equal length); a failed attempt answers
401, is counted (``geosentry_metrics_auth_failures_total``) and logged once per client address.

>>> parse_metrics_security({})
(None, None)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import ssl
import sys
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import MetricsHandler

from geosentry.stream.errors import ConfigError
from geosentry.stream.secrets import Secret, read_secret_file

log = logging.getLogger(__name__)
KEYS = ("metrics_auth_file", "metrics_user", "metrics_password_file", "metrics_tls_cert",
        "metrics_tls_key")
REQUEST_TIMEOUT_S = 10.0  # a client that stalls (TLS handshake included) is dropped
_MAX_LOGGED_CLIENTS = 1000


@dataclass(frozen=True)
class BasicAuth:
    user: str
    password: Secret = field(repr=False)

    def matches(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials (constant time)."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        want = f"{self.user}:{self.password.reveal()}".encode()
        return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(want).digest())


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str
    key_file: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def parse_metrics_security(raw: dict[str, Any]) -> tuple[BasicAuth | None, TlsFiles | None]:
    """Check the metrics endpoint's auth and TLS keys of a config table (read once, at start-up)."""
    for key in KEYS:
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise ConfigError(key, f"must be a non-empty string, got {raw[key]!r}")
    auth = None
    if "metrics_auth_file" in raw:
        if "metrics_user" in raw or "metrics_password_file" in raw:
            raise ConfigError("metrics_auth_file", "give it or metrics_user + "
                                                   "metrics_password_file, not both")
        line = read_secret_file(raw["metrics_auth_file"], "metrics auth file",
                                "metrics_auth_file").reveal()
        user, sep, password = line.partition(":")
        if not sep or not user or not password or "\n" in line:
            raise ConfigError("metrics_auth_file", f"{raw['metrics_auth_file']} must hold one "
                                                   "line user:password")
        auth = BasicAuth(user, Secret(password))
    elif ("metrics_user" in raw) != ("metrics_password_file" in raw):
        raise ConfigError("metrics_user", "metrics_user and metrics_password_file go together")
    elif "metrics_user" in raw:
        if ":" in raw["metrics_user"]:
            raise ConfigError("metrics_user", "must not contain ':'")
        auth = BasicAuth(raw["metrics_user"], read_secret_file(
            raw["metrics_password_file"], "metrics password file", "metrics_password_file"))
    tls = None
    if ("metrics_tls_cert" in raw) != ("metrics_tls_key" in raw):
        raise ConfigError("metrics_tls_cert", "metrics_tls_cert and metrics_tls_key go together")
    if "metrics_tls_cert" in raw:
        if not Path(raw["metrics_tls_cert"]).is_file():
            raise ConfigError("metrics_tls_cert", f"file not found: {raw['metrics_tls_cert']}")
        read_secret_file(raw["metrics_tls_key"], "metrics TLS key", "metrics_tls_key")
        tls = TlsFiles(raw["metrics_tls_cert"], raw["metrics_tls_key"])
        try:
            tls.context()
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("metrics_tls_cert", f"cannot load {tls.cert_file} with "
                                                  f"{tls.key_file}: {exc}") from exc
    return auth, tls


class _AuthFailures:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, client: str, path: str) -> None:
        self.counter.inc()
        self.note(client, f"request for {path} without valid credentials (401; further "
                          "failures are counted in geosentry_metrics_auth_failures_total)")

    def note(self, client: str, what: str) -> None:
        """One log line per client address and kind of trouble (bounded)."""
        key = f"{client}|{what[:20]}"
        with self._lock:
            if key in self._logged or len(self._logged) >= _MAX_LOGGED_CLIENTS:
                return
            self._logged.add(key)
        log.warning("metrics endpoint: %s from %s", what, client)


def serve_metrics(registry: CollectorRegistry, port: int, addr: str, failures: Counter,
                  auth: BasicAuth | None = None, tls: TlsFiles | None = None
                  ) -> ThreadingHTTPServer:
    """Serve ``registry`` on ``addr:port`` in a daemon thread; ``shutdown()`` the result to stop.
    Raises ``OSError`` when the address cannot be bound (the caller's one-line error)."""
    on_failure = _AuthFailures(failures)
    base: type[MetricsHandler] = MetricsHandler.factory(registry)

    class Handler(base):  # type: ignore[valid-type,misc]
        timeout = REQUEST_TIMEOUT_S

        def do_GET(self) -> None:
            if auth is not None and not auth.matches(self.headers.get("Authorization")):
                on_failure(self.client_address[0], self.path.split("?")[0])
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="geosentry metrics"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # a TLS handshake that fails (plain HTTP on the TLS port), a client gone: one line
            # per client address, never a traceback
            on_failure.note(str(client_address[0]), "request failed "
                            f"({sys.exc_info()[1]!r})")

    server = Server((addr, port), Handler)
    if tls is not None:
        # the handshake runs in the request's thread (first read), never in the accept loop
        server.socket = tls.context().wrap_socket(server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
