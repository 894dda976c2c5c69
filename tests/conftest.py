"""Shared fixtures: the project's real Kafka broker, shared data, helpers."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKER = ROOT / "deploy" / "kafka" / "broker.sh"


@pytest.fixture(scope="session")
def kafka_bootstrap():  # type: ignore[no-untyped-def]
    """Bootstrap address of the real broker: the one `scripts/test` started, or start it here."""
    address = os.environ.get("GEOSENTRY_KAFKA_BOOTSTRAP")
    if address:
        yield address
        return
    env = dict(os.environ)
    env.setdefault("GEOSENTRY_KAFKA_STATE", str(ROOT / ".state" / "kafka"))
    done = subprocess.run([str(BROKER), "start"], capture_output=True, text=True, env=env,
                          timeout=300)
    if done.returncode != 0:
        pytest.fail(f"could not start the Kafka broker ({BROKER} start):\n{done.stderr[-3000:]}")
    address = done.stdout.strip().splitlines()[-1]
    os.environ["GEOSENTRY_KAFKA_BOOTSTRAP"] = address
    yield address
    subprocess.run([str(BROKER), "stop"], capture_output=True, env=env, timeout=60)
    os.environ.pop("GEOSENTRY_KAFKA_BOOTSTRAP", None)


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _package_log_levels():  # type: ignore[no-untyped-def]
    """Restore the package loggers' levels after each test: the bench quiets them to ERROR,
    and a later test's ``caplog`` must still see warnings."""
    import logging

    loggers = [logging.getLogger(n) for n in ("stream", "training", "geosentry")]
    levels = [lg.level for lg in loggers]
    yield
    for lg, level in zip(loggers, levels):
        lg.setLevel(level)
