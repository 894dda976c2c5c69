"""Helper for tests that need ``../shared/data`` (uniquely named so it never shadows a conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geosentry.training.paths import shared_data_dir


def require_shared(sub: str) -> Path:
    """Path to ``<shared data>/sub`` or skip the test with the reason."""
    path = shared_data_dir() / sub
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is absent "
                    "(set GEOSENTRY_SHARED_DATA or place the data at <repo>/../shared/data)")
    return path
