"""The ``seedlink[s]://`` source URI, validated once into a frozen ``SeedLinkURI`` (see
``geosentry.stream.sources.seedlink`` for every parameter).

Credentials never appear in the URI: ``user=NAME`` with ``password_file=PATH`` or
``password_env=VAR`` (``AUTH USERPASS``), or ``token_file=PATH`` / ``token_env=VAR``
(``AUTH JWT``). They are read here into ``Secret`` values (masked in every repr, log and error)
and are only sent over TLS unless ``auth_plaintext=1`` says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from seedlink_client import Protocol
from seedlink_client.time_utils import parse_timestring

from geosentry.stream.errors import ConfigError
from geosentry.stream.secrets import Secret, read_secret_file
from geosentry.stream.seedlink.resume import ResumeMode

TLS_PORT = 18500
_TRUE = ("1", "true", "yes")
_SECRET_PARAMS = ("password", "pass", "token", "jwt")


@dataclass(frozen=True)
class SeedLinkAuth:
    """``AUTH USERPASS user password`` (``user`` set) or ``AUTH JWT token`` (``user`` None)."""

    secret: Secret
    user: str | None = None
    source: str = ""  # where the secret came from (a file or an environment variable), for errors

    @property
    def method(self) -> str:
        return "USERPASS" if self.user is not None else "JWT"

    def for_client(self) -> tuple[str, str] | str:
        """What ``seedlink-client`` takes as ``auth=`` (the only place the secret is revealed)."""
        if self.user is not None:
            return (self.user, self.secret.reveal())
        return self.secret.reveal()


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
    resume: ResumeMode = ResumeMode.AUTO
    auth: SeedLinkAuth | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def uses_tls(self) -> bool:
        return self.tls if self.tls is not None else self.port == TLS_PORT


def _time(key: str, uri: str, text: str | None) -> datetime | None:
    try:
        return parse_timestring(text) if text else None
    except ValueError as exc:
        raise ConfigError(key, f"{uri!r}: invalid time {text!r} (expected ISO 8601)") from exc


def _secret(key: str, what: str, file: str | None, env: str | None) -> tuple[Secret, str] | None:
    if file is not None and env is not None:
        raise ConfigError(key, f"give the {what} once: {what}_file= or {what}_env=, not both")
    if file is not None:
        return read_secret_file(file, f"SeedLink {what} file", key), f"file {file}"
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(key, f"{what}_env={env}: environment variable {env} is unset "
                                   f"or empty")
        return Secret(value), f"environment variable {env}"
    return None


def _auth(key: str, q: dict[str, str], tls: bool) -> SeedLinkAuth | None:
    user = q.pop("user", None)
    password = _secret(key, "password", q.pop("password_file", None), q.pop("password_env", None))
    token = _secret(key, "token", q.pop("token_file", None), q.pop("token_env", None))
    plaintext = q.pop("auth_plaintext", "0").lower() in _TRUE
    if password is not None and token is not None:
        raise ConfigError(key, "give a password (user=, password_file=/password_env=) or a "
                               "token (token_file=/token_env=), not both")
    if (user is None) != (password is None):
        raise ConfigError(key, "AUTH USERPASS needs both user=NAME and password_file=PATH "
                               "(or password_env=VAR)")
    if user is not None and password is not None:
        if " " in user or " " in password[0].reveal():
            raise ConfigError(key, "AUTH USERPASS: user name and password may not contain spaces")
        auth = SeedLinkAuth(password[0], user, password[1])
    elif token is not None:
        auth = SeedLinkAuth(token[0], None, token[1])
    else:
        return None
    if not tls and not plaintext:
        raise ConfigError(key, f"AUTH {auth.method} credentials are only sent over TLS: use "
                               f"seedlinks:// (or tls=1), or add auth_plaintext=1 to send them "
                               f"in clear text anyway")
    return auth


def parse_seedlink(uri: str, key: str = "--source", need_streams: bool = True) -> SeedLinkURI:
    """Parse and validate a ``seedlink://`` URI (errors name the offending part)."""
    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:  # never echo the URI here
        raise ConfigError(key, "seedlink URI: credentials in the URI are not accepted; use "
                               "user=NAME&password_file=PATH (or password_env=VAR), or "
                               "token_file=PATH (or token_env=VAR)")
    if parts.scheme not in ("seedlink", "seedlinks") or not parts.hostname:
        raise ConfigError(key, f"expected seedlink[s]://HOST:PORT?streams=NET_STA:..., got {uri!r}")
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    secrets = sorted(k for k in q if k in _SECRET_PARAMS)
    if secrets:
        raise ConfigError(key, f"seedlink URI: {', '.join(secrets)}= would put a secret on the "
                               f"command line; use password_file=/password_env= or "
                               f"token_file=/token_env=")
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
    resume = q.pop("resume", "auto")
    if resume not in {m.value for m in ResumeMode}:
        raise ConfigError(key, f"resume must be auto, station or ring, got {resume!r}")
    try:
        num = {k: float(q.pop(k)) for k in ("timeout_s", "read_timeout_s", "keepalive_s",
                                            "max_backoff_s") if k in q}
        retries = int(q.pop("retries")) if "retries" in q else None
    except ValueError as exc:
        raise ConfigError(key, f"{uri!r}: {exc}") from exc
    tls_arg = q.pop("tls", None)
    tls = (tls_arg.lower() in _TRUE if tls_arg is not None
           else True if parts.scheme == "seedlinks" else None)
    flags = {k: q.pop(k, "0").lower() in _TRUE for k in ("dialup", "tls_noverify")}
    state, ca_file = q.pop("state", None), q.pop("ca_file", None)
    start, end = _time(key, uri, q.pop("start", None)), _time(key, uri, q.pop("end", None))
    if end is not None and start is None:
        raise ConfigError(key, f"{uri!r}: end= needs start=")
    default_port = TLS_PORT if parts.scheme == "seedlinks" else 18000
    port = parts.port or default_port
    auth = _auth(key, q, tls if tls is not None else port == TLS_PORT)
    if auth is not None and proto == "3":
        raise ConfigError(key, f"AUTH {auth.method} needs SeedLink protocol 4 (proto=3 given)")
    if q:
        raise ConfigError(key, f"{uri!r}: unknown parameter(s) {', '.join(sorted(q))}")
    return SeedLinkURI(parts.hostname, port, streams,
                       Path(state) if state else None,
                       None if proto == "auto" else Protocol(proto), retries=retries, tls=tls,
                       ca_file=Path(ca_file) if ca_file else None, start=start, end=end,
                       resume=ResumeMode(resume), auth=auth,
                       **flags, **num)  # type: ignore[arg-type]
