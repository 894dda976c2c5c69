"""Shared fixtures: the project's real Kafka broker, shared data, helpers."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
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


#: ``../shared/<kind>`` and the environment variable that moves it
SHARED_ENV = {"data": "GEOSENTRY_SHARED_DATA", "tools": "GEOSENTRY_SHARED_TOOLS"}


def shared_dir(kind: str = "data") -> Path:
    """``$GEOSENTRY_SHARED_DATA`` (``kind="data"``) or ``$GEOSENTRY_SHARED_TOOLS``
    (``kind="tools"``, e.g. ``seedlink-peers``) if set, else ``<repo>/../shared/<kind>`` (as
    ``geosentry.training.paths.shared_data_dir`` finds the data in a checkout)."""
    env = os.environ.get(SHARED_ENV[kind])
    if env:
        return Path(env).expanduser().resolve()
    return (ROOT.parent / "shared" / kind).resolve()


def _require_shared(request: pytest.FixtureRequest, kind: str) -> Callable[[str], Path]:
    if request.node.get_closest_marker("shared") is None:
        pytest.fail(f"{request.node.nodeid} uses ../shared/{kind}: mark it @pytest.mark.shared "
                    "(so that -m 'not shared' deselects it)", pytrace=False)

    def require(sub: str) -> Path:
        path = shared_dir(kind) / sub
        if not path.exists():
            pytest.skip(f"shared {kind} not available: {path} is absent (set "
                        f"{SHARED_ENV[kind]} or place it at <repo>/../shared/{kind})")
        return path

    return require


@pytest.fixture
def shared_data(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``shared_data("sub/path")``: that path in the shared data folder (``shared_dir("data")``),
    or the test is skipped, saying what is absent. Tests using it must be marked ``shared``."""
    return _require_shared(request, "data")


@pytest.fixture
def shared_tools(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``shared_tools("seedlink-peers")``: the same for ``../shared/tools``
    (``$GEOSENTRY_SHARED_TOOLS``)."""
    return _require_shared(request, "tools")


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _package_log_levels():  # type: ignore[no-untyped-def]
    """Restore the package loggers' levels after each test: the bench quiets them to ERROR,
    and a later test's ``caplog`` must still see warnings."""
    import logging

    loggers = [logging.getLogger(n) for n in ("geosentry", "geosentry.stream", "geosentry.training")]
    levels = [lg.level for lg in loggers]
    yield
    for lg, level in zip(loggers, levels):
        lg.setLevel(level)
