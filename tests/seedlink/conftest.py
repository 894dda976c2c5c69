"""Fixtures of the SeedLink tests (real TCP on 127.0.0.1, real miniSEED records)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from slhelpers import write_demo_archive

from geosentry.stream.seedlink.archive import Archive


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_archive(tmp_path_factory.mktemp("sl-archive"))


@pytest.fixture(scope="session")
def archive_packets(demo_archive: Path) -> Archive:
    """The archive as the server numbers it (station id, sequence, payload)."""
    return Archive(demo_archive)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: ``(cert.pem, key.pem)``."""
    if shutil.which("openssl") is None:
        pytest.skip("TLS tests need the openssl command to make a self-signed certificate")
    d = tmp_path_factory.mktemp("sl-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key
