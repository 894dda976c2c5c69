"""Where things live: repository root, shared data, shipped models."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
MODELS_DIR: Path = REPO_ROOT / "stream" / "models"


def shared_data_dir() -> Path:
    """``$GEOSENTRY_SHARED_DATA`` if set, else ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("GEOSENTRY_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def shared_available(sub: str = "") -> bool:
    """True when the shared data folder (or ``sub`` inside it) exists."""
    return (shared_data_dir() / sub).exists()
