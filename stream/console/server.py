"""The console's HTTP server: static page, a JSON API behind every view, and a live stream
(server-sent events). Same address rules, basic auth and TLS as ``/metrics``
(``geosentry.stream.metrics_http``); a thread per request, like the metrics endpoint.

Routes: ``/`` (the page), ``/static/*``, ``/api/summary``, ``/api/stations``,
``/api/alerts[?kind=pick&limit=N]``, ``/api/alerts/ID``, ``/api/waveform?station=NET.STA``,
``/api/map``, ``/api/stream`` (``text/event-stream``: ``alert``, ``stations``, ``summary``).
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import Counter

from geosentry.stream.console.state import OpsState
from geosentry.stream.metrics_http import (REQUEST_TIMEOUT_S, BasicAuth, TlsFiles,
                                           _AuthFailures)
from geosentry.stream.records import AlertKind

log = logging.getLogger(__name__)
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
STREAM_TICK_S = 1.0  # station table and summary pushed at most this often
MAX_LIMIT = 1000


def _static(name: str) -> bytes:
    return resources.files("geosentry.stream.console").joinpath("static", name).read_bytes()


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    closing = False
    state: OpsState
    failures: _AuthFailures

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a failed TLS handshake, a client gone: one line per client address, never a traceback
        self.failures.note(str(client_address[0]), f"console request failed "
                                                   f"({sys.exc_info()[1]!r})")

    def stop(self) -> None:
        self.closing = True
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    timeout = REQUEST_TIMEOUT_S
    auth: BasicAuth | None = None
    server_version = "geosentry-console"

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        log.debug("console %s: " + format, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self'; "
                                                    "img-src 'self' data:")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(),
                   "application/json")

    def _error(self, status: int, why: str) -> None:
        self._json({"error": why}, status)

    def do_GET(self) -> None:
        if self.auth is not None and not self.auth.matches(self.headers.get("Authorization")):
            self.server.failures(self.client_address[0], self.path.split("?")[0])
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="geosentry console"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        state = self.server.state
        if path in ("/", "/index.html"):
            self._send(200, _static("index.html"), STATIC["index.html"])
        elif path.startswith("/static/") and path[8:] in STATIC:
            self._send(200, _static(path[8:]), STATIC[path[8:]])
        elif path == "/api/summary":
            self._json(state.summary())
        elif path == "/api/stations":
            self._json({"stations": state.station_rows(), "summary": state.summary()})
        elif path == "/api/alerts":
            kind = query.get("kind")
            if kind is not None and kind not in {k.value for k in AlertKind}:
                self._error(400, f"kind must be one of {[k.value for k in AlertKind]}")
                return
            try:
                limit = min(MAX_LIMIT, max(1, int(query.get("limit", "100"))))
            except ValueError:
                self._error(400, "limit must be an integer")
                return
            self._json({"alerts": state.latest_alerts(AlertKind(kind) if kind else None,
                                                      limit)})
        elif path.startswith("/api/alerts/"):
            found = state.alert(unquote(path[len("/api/alerts/"):]))
            self._json(found) if found else self._error(404, "no such alert (only the "
                                                             "latest of each kind are kept)")
        elif path == "/api/waveform":
            wave = state.waveform(query.get("station", ""))
            self._json(wave) if wave else self._error(404, "unknown station (NET.STA)")
        elif path == "/api/map":
            self._json(state.map_view())
        elif path == "/api/stream":
            self._stream(query)
        else:
            self._error(404, f"no such path: {path}")

    def _event(self, name: str, data: Any) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
                         .encode())

    def _stream(self, query: dict[str, str]) -> None:
        state = self.server.state
        q = state.subscribe()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            since = int(query.get("since", "0")) if query.get("since", "0").isdigit() else 0
            next_tick = 0.0
            while not self.server.closing:
                try:
                    _, alert = q.get(timeout=STREAM_TICK_S)
                    self._event("alert", alert)
                    while True:
                        _, alert = q.get_nowait()
                        self._event("alert", alert)
                except queue.Empty:
                    pass
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + STREAM_TICK_S
                    rows = state.station_rows(since)
                    if rows:
                        since = max(r["version"] for r in rows)
                        self._event("stations", rows)
                    self._event("summary", state.summary())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the browser went away; it reconnects by itself
        finally:
            state.unsubscribe(q)


def serve_console(state: OpsState, port: int, addr: str, failures: Counter,
                  auth: BasicAuth | None = None, tls: TlsFiles | None = None) -> ConsoleServer:
    """Serve the console on ``addr:port`` in a daemon thread; ``stop()`` the result.
    Raises ``OSError`` when the address cannot be bound (the caller's one-line error)."""

    class AuthHandler(Handler):
        pass

    AuthHandler.auth = auth
    server = ConsoleServer((addr, port), AuthHandler)
    server.state = state
    server.failures = _AuthFailures(failures)
    if tls is not None:
        server.socket = tls.context().wrap_socket(server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name="console-http", daemon=True).start()
    return server
