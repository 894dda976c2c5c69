"""Where things live: shipped models, run folders, shared data. Nothing here assumes a source
checkout: the shipped models are the installed package's data, runs go under the current
directory (``$GEOSENTRY_RUNS`` to move them), and shared data is ``$GEOSENTRY_SHARED_DATA`` or,
in a checkout, ``<repo>/../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

from geosentry.stream.models import MODELS_DIR as _SHIPPED

#: the folder ``geosentry run`` loads ``builtin:NAME`` models from (package data)
MODELS_DIR: Path = _SHIPPED
#: the source checkout this package runs from, if it is one (None for an installed wheel)
_CHECKOUT = Path(__file__).resolve().parents[1]
REPO_ROOT: Path | None = _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else None


def runs_dir() -> Path:
    """Where training runs go by default: ``$GEOSENTRY_RUNS``, else ``./runs``."""
    return Path(os.environ.get("GEOSENTRY_RUNS", "runs")).expanduser()


def shared_data_dir() -> Path:
    """``$GEOSENTRY_SHARED_DATA`` if set, else ``<repo>/../shared/data`` in a checkout (may not
    exist), else ``./shared/data``."""
    env = os.environ.get("GEOSENTRY_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    base = REPO_ROOT / ".." if REPO_ROOT is not None else Path(".")
    return (base / "shared" / "data").resolve()


def shared_available(sub: str = "") -> bool:
    """True when the shared data folder (or ``sub`` inside it) exists."""
    return (shared_data_dir() / sub).exists()
