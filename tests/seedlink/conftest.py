"""Fixtures of the SeedLink tests (real TCP on 127.0.0.1, real miniSEED records)."""

from __future__ import annotations

from pathlib import Path

import pytest
from slhelpers import write_demo_archive

from stream.seedlink.archive import Archive


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_archive(tmp_path_factory.mktemp("sl-archive"))


@pytest.fixture(scope="session")
def archive_packets(demo_archive: Path) -> Archive:
    """The archive as the server numbers it (station id, sequence, payload)."""
    return Archive(demo_archive)
