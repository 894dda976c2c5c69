"""Fixtures for training tests (single-threaded torch; a synthetic-data environment)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def no_shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point GEOSENTRY_SHARED_DATA at an empty folder: training uses the synthetic fallback."""
    empty = tmp_path / "no-shared-data"
    empty.mkdir()
    monkeypatch.setenv("GEOSENTRY_SHARED_DATA", str(empty))
    return empty
