"""Users of ``geosentry serve-seedlink --users FILE``: who may log in (SeedLink 4 ``AUTH``) and
which streams each one sees, in INFO and in data, the way production servers restrict access.

The file is TOML; secrets are stored only as hashes::

    [[user]]
    name = "reader"
    password = "pbkdf2_sha256$200000$SALT$HASH"   # python -m geosentry.stream.seedlink.users hash
    streams = ["BW_*", "GE_WLF:*_B_H_?"]         # NET_STA[:LOC_B_S_SS] patterns (* and ?)

    [[user]]
    name = "bridge"
    token_sha256 = "9f86d081..."                 # SHA-256 (hex) of an opaque bearer token
    streams = ["*"]                              # (AUTH JWT: the token is compared, not decoded)

``streams`` is the allow-list: a station pattern, optionally ``:`` and a stream pattern in
SeedLink 4 form (``LOC_B_S_SS``, location empty for none: ``_S_H_Z``); omitted means every
stream, ``[]`` none. Password hashes are PBKDF2-HMAC-SHA256 (stdlib ``hashlib``), compared in
constant time; an unknown user costs the same hash work as a wrong password.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from geosentry.stream.errors import ConfigError

KEY = "--users"
SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000
_DUMMY = f"{SCHEME}${ITERATIONS}$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$ITERATIONS$SALT$HASH`` (base64) for a users file.

    >>> h = hash_password("pw", 1000, b"0123456789abcdef")
    >>> h.split("$")[:2], _verify("pw", h), _verify("nope", h)
    (['pbkdf2_sha256', '1000'], True, False)
    """
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join((SCHEME, str(iterations), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()))


def _verify(password: str, stored: str) -> bool:
    scheme, iterations, salt, digest = stored.split("$")
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                              int(iterations))
    return scheme == SCHEME and hmac.compare_digest(got, base64.b64decode(digest))


def stream_id(location: str, channel: str) -> str:
    """SeedLink 4 stream id of a SEED location + channel: ``("", "SHZ")`` -> ``_S_H_Z``."""
    return f"{location}_{'_'.join(channel[:2])}_{channel[2:]}" if len(channel) >= 3 else \
        f"{location}_{channel}"


@dataclass(frozen=True)
class User:
    name: str
    password: str | None = field(default=None, repr=False)  # PBKDF2 hash
    token_sha256: str | None = field(default=None, repr=False)
    grants: tuple[tuple[str, str], ...] = (("*", "*"),)  # (station pattern, stream pattern)

    def sees_station(self, station_id: str) -> bool:
        return any(fnmatch.fnmatchcase(station_id, s) for s, _ in self.grants)

    def sees(self, station_id: str, location: str, channel: str) -> bool:
        sid = stream_id(location, channel)
        return any(fnmatch.fnmatchcase(station_id, s) and fnmatch.fnmatchcase(sid, st)
                   for s, st in self.grants)


@dataclass(frozen=True)
class Users:
    users: tuple[User, ...]

    def check_password(self, name: str, password: str) -> User | None:
        user = next((u for u in self.users if u.name == name and u.password), None)
        ok = _verify(password, user.password if user and user.password else _DUMMY)
        return user if ok and user is not None else None

    def check_token(self, token: str) -> User | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for u in self.users:
            if u.token_sha256 and hmac.compare_digest(u.token_sha256, digest):
                found = u
        return found


def _grants(where: str, raw: object) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return (("*", "*"),)
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(KEY, f"{where}: streams must be a list of NET_STA[:LOC_B_S_SS] patterns")
    out = []
    for p in raw:
        station, _, stream = p.upper().partition(":")
        if "_" not in station and station != "*":
            raise ConfigError(KEY, f"{where}: stream pattern {p!r}: station must be NET_STA")
        out.append((station, stream or "*"))
    return tuple(out)


def load_users(path: str | Path) -> Users:
    """Read and check a users file (errors name the file, the entry and why)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(KEY, f"cannot read users file {p}: {exc}") from exc
    extra = sorted(set(doc) - {"user"})
    if extra:
        raise ConfigError(KEY, f"users file {p}: unknown key(s) {', '.join(extra)}")
    users, names = [], set()
    for i, entry in enumerate(doc.get("user", []), 1):
        where = f"users file {p}, user {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                not entry["name"] or " " in entry["name"]:
            raise ConfigError(KEY, f"{where}: name (no spaces) is required")
        unknown = sorted(set(entry) - {"name", "password", "token_sha256", "streams"})
        if unknown:
            raise ConfigError(KEY, f"{where} ({entry['name']}): unknown key(s) "
                                   f"{', '.join(unknown)}")
        password, token = entry.get("password"), entry.get("token_sha256")
        if password is None and token is None:
            raise ConfigError(KEY, f"{where} ({entry['name']}): give password (a hash) or "
                                   f"token_sha256")
        if password is not None and (not isinstance(password, str) or
                                     len(password.split("$")) != 4 or
                                     not password.startswith(SCHEME + "$")):
            raise ConfigError(KEY, f"{where} ({entry['name']}): password must be a "
                                   f"{SCHEME}$... hash (python -m "
                                   f"geosentry.stream.seedlink.users hash), never the password")
        if token is not None and (not isinstance(token, str) or len(token) != 64 or
                                  any(c not in "0123456789abcdef" for c in token)):
            raise ConfigError(KEY, f"{where} ({entry['name']}): token_sha256 must be 64 "
                                   f"lowercase hex digits")
        if entry["name"] in names:
            raise ConfigError(KEY, f"{where}: user {entry['name']} is listed twice")
        names.add(entry["name"])
        users.append(User(entry["name"], password, token,
                          _grants(f"{where} ({entry['name']})", entry.get("streams"))))
    if not users:
        raise ConfigError(KEY, f"users file {p} lists no [[user]]")
    return Users(tuple(users))


def main(argv: list[str]) -> int:
    """``python -m geosentry.stream.seedlink.users hash|token``: a password hash (password
    read from stdin, or prompted for) or the SHA-256 of a token (read the same way)."""
    if argv not in (["hash"], ["token"]):
        print("usage: python -m geosentry.stream.seedlink.users hash|token  (secret on stdin)",
              file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        import getpass

        secret = getpass.getpass("secret: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        print("empty secret", file=sys.stderr)
        return 2
    print(hash_password(secret) if argv == ["hash"] else hashlib.sha256(secret.encode()).hexdigest())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
