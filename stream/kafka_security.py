"""Kafka transport security: the ``[kafka]`` config section, validated once into frozen
``KafkaSecurity`` values (TLS context, SASL credentials), used by every Kafka client of the
service (sources, sinks, ``replay``, ``ingest``, the test helpers).

A password never appears in the configuration or on the command line: ``password_file`` or
``password_env`` name where it is, and it is held as a ``Secret`` (masked ``repr``). Profiles
(``[kafka.profiles.NAME]``, the keys of ``[kafka]`` that differ) are picked per source or sink by
``?profile=NAME`` in its ``kafka://`` URI.

>>> cfg = load_kafka_config({"security_protocol": "SASL_SSL", "username": "u",
...                          "password_env": "HOME"})
>>> cfg.default.sasl_mechanism, "password=Secret('***')" in repr(cfg.default)
(<SaslMechanism.SCRAM_SHA_512: 'SCRAM-SHA-512'>, True)
>>> load_kafka_config({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
...                    "username": "u", "password_env": "HOME"})
Traceback (most recent call last):
...
geosentry.stream.errors.ConfigError: config key 'kafka.sasl_mechanism': PLAIN sends the password \
in the clear: only with security_protocol = "SASL_SSL"
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiokafka.errors import (AuthenticationFailedError, AuthenticationMethodNotSupported,
                             ClusterAuthorizationFailedError, GroupAuthorizationFailedError,
                             SaslAuthenticationFailed, TopicAuthorizationFailedError,
                             TransactionalIdAuthorizationFailed, UnsupportedSaslMechanismError)
from aiokafka.helpers import create_ssl_context

from geosentry.stream.errors import ConfigError
from geosentry.stream.secrets import Secret, read_secret_file, warn_if_exposed

log = logging.getLogger(__name__)


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    PLAIN = "PLAIN"


#: the broker refused who we are (bad user or password, mechanism not enabled)
AUTHENTICATION_ERRORS: tuple[type[Exception], ...] = (
    SaslAuthenticationFailed, AuthenticationFailedError, AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError)
#: the broker knows who we are and an ACL does not allow the request
AUTHORIZATION_ERRORS: tuple[type[Exception], ...] = (
    TopicAuthorizationFailedError, GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError, TransactionalIdAuthorizationFailed)


@dataclass(frozen=True)
class KafkaSecurity:
    """How one Kafka client connects. ``password`` is read from ``password_file`` or
    ``password_env`` at load; ``ssl_context`` is built at load (so a bad CA/cert/key file is a
    start-up error naming its key)."""

    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True
    password: Secret | None = field(default=None, compare=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/admin clients."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol.value}
        if self.ssl_context is not None:
            kw["ssl_context"] = self.ssl_context
        if self.security_protocol.sasl:
            assert self.sasl_mechanism is not None and self.password is not None
            kw.update(sasl_mechanism=self.sasl_mechanism.value,
                      sasl_plain_username=self.username,
                      sasl_plain_password=self.password.reveal())
        return kw

    def who(self) -> str:
        """The principal for messages: ``user 'NAME' (MECHANISM)``, or the TLS/plain mode."""
        if self.security_protocol.sasl:
            return f"user {self.username!r} ({self.sasl_mechanism})"
        return f"{self.security_protocol} client (no SASL user)"

    def denial(self, exc: BaseException, action: str) -> str | None:
        """A one-line reason when ``exc`` is an authentication or authorization failure (or a
        TLS failure), else None (a transient error: retry). ``action``: e.g. ``"read"``."""
        name = type(exc).__name__
        detail = str(exc).split(": ", 1)[-1] if str(exc) else ""
        if isinstance(exc, AUTHENTICATION_ERRORS):
            return f"authentication failed for {self.who()}: {detail or name}"
        if isinstance(exc, AUTHORIZATION_ERRORS):
            return (f"not authorized to {action} as {self.who()} ({name}"
                    f"{': ' + detail if detail and detail != str(exc) else ''}): "
                    "the broker's ACLs must allow it")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"TLS: the broker's certificate was refused ({exc.verify_message}; "
                    f"ca_file {self.ca_file or '(system CAs)'}, check_hostname "
                    f"{str(self.check_hostname).lower()})")
        if isinstance(exc, ssl.SSLError):
            return f"TLS handshake failed ({exc.reason or exc})"
        return None


@dataclass(frozen=True)
class KafkaConfig:
    """``[kafka]`` (``default``) and its ``[kafka.profiles.NAME]`` variants."""

    default: KafkaSecurity = field(default_factory=KafkaSecurity)
    profiles: Mapping[str, KafkaSecurity] = field(default_factory=dict)

    def for_uri(self, uri: str, key: str = "uri") -> KafkaSecurity:
        """The security of a ``kafka://`` URI: its ``?profile=NAME`` or the default."""
        check_uri(uri, key)
        query = dict(p.split("=", 1) for p in urlsplit(uri).query.split("&") if "=" in p)
        name = query.get("profile")
        if name is None:
            return self.default
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none defined"
            raise ConfigError(key, f"kafka profile {name!r} is not defined in [kafka.profiles] "
                                   f"(known: {known})")
        return self.profiles[name]


SETTINGS = {f.name for f in fields(KafkaSecurity)} - {"password", "ssl_context"}
PASSWORD_KEYS = ("password_file", "password_env")


def check_uri(uri: str, key: str) -> None:
    """Refuse credentials in a ``kafka://`` URI (without repeating them)."""
    parts = urlsplit(uri)
    if parts.scheme == "kafka" and "@" in parts.netloc:
        raise ConfigError(key, "a kafka:// URI must not carry a user or password (they would "
                               "show in logs): use [kafka] username and password_file")


def load_kafka_config(raw: Mapping[str, Any], uris: Iterable[tuple[str, str]] = ()) -> KafkaConfig:
    """Validate the ``[kafka]`` table; ``uris`` (key, uri) are checked for credentials and
    profile names. Logs one warning when a file holding secrets is readable by group/others."""
    if not isinstance(raw, Mapping):
        raise ConfigError("kafka", "must be a table")
    base = {k: v for k, v in raw.items() if k != "profiles"}
    default = _security("kafka.", base)
    profiles_raw = raw.get("profiles", {})
    if not isinstance(profiles_raw, Mapping):
        raise ConfigError("kafka.profiles", "must be a table of tables ([kafka.profiles.NAME])")
    profiles: dict[str, KafkaSecurity] = {}
    for name, table in profiles_raw.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"kafka.profiles.{name}", "must be a table")
        merged = dict(base)
        if any(k in table for k in PASSWORD_KEYS):  # a profile's password replaces the base's
            for k in PASSWORD_KEYS:
                merged.pop(k, None)
        merged.update(table)
        profiles[name] = _security(f"kafka.profiles.{name}.", merged)
    cfg = KafkaConfig(default, profiles)
    for key, uri in uris:
        if uri.startswith("kafka://"):
            cfg.for_uri(uri, key)
    _warn_exposed([default, *profiles.values()])
    return cfg


def _security(prefix: str, raw: Mapping[str, Any]) -> KafkaSecurity:
    if "password" in raw:  # never echo the value
        raise ConfigError(f"{prefix}password", "a literal password is not accepted in the "
                          "configuration: put it in a file (password_file, mode 600) or an "
                          "environment variable (password_env)")
    for k in raw:
        if k not in SETTINGS:
            raise ConfigError(f"{prefix}{k}", f"unknown key (known: {', '.join(sorted(SETTINGS))}"
                                              ", profiles)")
    for k in ("username", *PASSWORD_KEYS, "ca_file", "cert_file", "key_file"):
        if k in raw and (not isinstance(raw[k], str) or not raw[k]):
            raise ConfigError(f"{prefix}{k}", "must be a non-empty string")
    protocol = _enum(f"{prefix}security_protocol", SecurityProtocol,
                     raw.get("security_protocol", "PLAINTEXT"))
    check_hostname = raw.get("check_hostname", True)
    if not isinstance(check_hostname, bool):
        raise ConfigError(f"{prefix}check_hostname", f"must be true or false, got {check_hostname!r}")
    mechanism, password = None, None
    if protocol.sasl:
        mechanism = _enum(f"{prefix}sasl_mechanism", SaslMechanism,
                          raw.get("sasl_mechanism", SaslMechanism.SCRAM_SHA_512.value))
        if mechanism is SaslMechanism.PLAIN and not protocol.tls:
            raise ConfigError(f"{prefix}sasl_mechanism", "PLAIN sends the password in the clear: "
                              'only with security_protocol = "SASL_SSL"')
        if "username" not in raw:
            raise ConfigError(f"{prefix}username", f"required with {protocol}")
        password = _password(prefix, raw)
    else:
        for k in ("sasl_mechanism", "username", *PASSWORD_KEYS):
            if k in raw:
                raise ConfigError(f"{prefix}{k}", "only with security_protocol SASL_PLAINTEXT "
                                  f"or SASL_SSL, not {protocol}")
    if not protocol.tls:
        for k in ("ca_file", "cert_file", "key_file"):
            if k in raw:
                raise ConfigError(f"{prefix}{k}", f"only with security_protocol SSL or SASL_SSL, "
                                                  f"not {protocol}")
    if "key_file" in raw and "cert_file" not in raw:
        raise ConfigError(f"{prefix}key_file", "needs cert_file (the client certificate)")
    sec = KafkaSecurity(protocol, mechanism, raw.get("username"), raw.get("password_file"),
                        raw.get("password_env"), raw.get("ca_file"), raw.get("cert_file"),
                        raw.get("key_file"), check_hostname, password,
                        _ssl_context(prefix, raw, check_hostname) if protocol.tls else None)
    return sec


def _enum(key: str, kind: type[SecurityProtocol] | type[SaslMechanism],
          value: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(key, f"must be one of {', '.join(m.value for m in kind)}, "
                               f"got {value!r}") from None


def _password(prefix: str, raw: Mapping[str, Any]) -> Secret:
    given = [k for k in PASSWORD_KEYS if k in raw]
    if len(given) != 1:
        raise ConfigError(f"{prefix}password_file", "give exactly one of password_file or "
                                                    "password_env")
    if given[0] == "password_env":
        name = raw["password_env"]
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(f"{prefix}password_env", f"environment variable {name} is not set "
                                                       "or empty")
        return Secret(value)
    # a missing/empty file is a ConfigError naming the key; one warning per file and process
    # when it is readable by group/others
    return read_secret_file(Path(raw["password_file"]).expanduser(), "kafka password_file",
                            f"{prefix}password_file")


def _ssl_context(prefix: str, raw: Mapping[str, Any], check_hostname: bool) -> ssl.SSLContext:
    for k in ("ca_file", "cert_file", "key_file"):
        if k in raw and not Path(raw[k]).expanduser().is_file():
            raise ConfigError(f"{prefix}{k}", f"no such file: {raw[k]}")
    files = {k: str(Path(raw[k]).expanduser()) if k in raw else None
             for k in ("ca_file", "cert_file", "key_file")}
    key = "ca_file"
    try:
        ctx: ssl.SSLContext = create_ssl_context(cafile=files["ca_file"])
        if files["cert_file"]:
            key = "cert_file"
            ctx.load_cert_chain(files["cert_file"], files["key_file"])
    except ssl.SSLError as exc:
        raise ConfigError(f"{prefix}{key}", f"not usable for TLS ({exc.reason or exc}); "
                                            "PEM files expected, key unencrypted") from None
    ctx.check_hostname = check_hostname  # the certificate chain is verified either way
    return ctx


def _warn_exposed(configs: Iterable[KafkaSecurity]) -> None:
    """One warning per private-key file readable by group/others (password files are warned
    about when read)."""
    keys = {str(Path(sec.key_file).expanduser()) for sec in configs if sec.key_file}
    for path in sorted(keys):
        warn_if_exposed(path, "kafka key_file")
