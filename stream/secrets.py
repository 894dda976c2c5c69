"""Secrets (passwords, keys) that never show in logs, metrics, alerts, errors or a config's repr.

>>> s = Secret("hunter2")
>>> s, str(s), f"{s}"
(Secret('***'), '***', '***')
>>> s.reveal()
'hunter2'
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

log = logging.getLogger(__name__)
MASK = "***"


class Secret:
    """A value whose ``repr``/``str``/``format`` is masked; ``reveal()`` is the only way out, so
    every place that uses the real value is easy to find."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:  # never pickled into a file or another process
        raise TypeError("a Secret cannot be pickled")


def exposed(path: str | Path) -> bool:
    """True when the file at ``path`` is readable by its group or by others."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def warn_if_exposed(path: str | Path, what: str) -> bool:
    """Log one warning (and return True) when ``path``, which holds secrets (``what``), is
    readable by group or others; the warning names the file and the fix, never the secret."""
    if not exposed(path):
        return False
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    log.warning("%s %s is readable by group/others (mode %04o); chmod 600 it", what, path, mode)
    return True


_warned: set[Path] = set()


def read_secret_file(path: str | Path, what: str, key: str) -> Secret:
    """The secret in the file at ``path`` (surrounding whitespace stripped), for config key
    ``key``. A missing, unreadable or empty file is a ``ConfigError`` naming the key and the file;
    a file readable by group/others is warned about once per process (``warn_if_exposed``)."""
    from geosentry.stream.errors import ConfigError

    p = Path(path)
    try:
        value = p.read_text().strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {what} {p} ({exc.strerror or exc})") from exc
    if not value:
        raise ConfigError(key, f"{what} {p} is empty")
    resolved = p.resolve()
    if resolved not in _warned:
        _warned.add(resolved)
        warn_if_exposed(p, what)
    return Secret(value)
