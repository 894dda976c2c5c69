"""The secure Kafka broker the security tests start for themselves (``broker.sh start
--secure``: TLS with a CA made at start, SASL/SCRAM users, StandardAuthorizer ACLs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from geosentry.stream.kafka_security import KafkaSecurity, load_kafka_config

BROKER = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.sh"


@dataclass(frozen=True)
class Secure:
    bootstrap: str
    state: Path

    def password_file(self, user: str) -> Path:
        return self.state / "users" / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def kafka_toml(self, user: str, password_file: Path | None = None) -> str:
        return (f'[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "SCRAM-SHA-512"\n'
                f'username = "{user}"\npassword_file = "{password_file or self.password_file(user)}"'
                f'\nca_file = "{self.state / "tls" / "ca.pem"}"\n')

    def security(self, user: str, **extra: object) -> KafkaSecurity:
        table = {"security_protocol": "SASL_SSL", "username": user,
                 "password_file": str(self.password_file(user)),
                 "ca_file": str(self.state / "tls" / "ca.pem"), **extra}
        return load_kafka_config(table).default


async def create_topics(secure: Secure, *names: str) -> None:
    """Create ``names`` (one partition each) as ``admin``; an existing topic is fine."""
    admin = AIOKafkaAdminClient(bootstrap_servers=secure.bootstrap,
                                **secure.security("admin").client_kwargs())
    await admin.start()
    try:
        resp = await admin.create_topics([NewTopic(n, 1, 1) for n in names], timeout_ms=10_000)
        assert all(code in (0, 36) for _, code, *_ in resp.topic_errors), resp.topic_errors
    finally:
        await admin.close()


def secure_broker(state: Path, users: tuple[str, ...], acls: tuple[str, ...] | list[str]
                  ) -> Iterator[Secure]:
    """Start a secure broker in ``state`` with SCRAM ``users`` (and ``admin``) and ``acls``
    (``USER:OP:topic|group:NAME``), yield it, stop it. Skips where java is absent."""
    home = os.environ.get("JAVA_HOME")
    if not (os.environ.get("JAVA") or shutil.which("java")
            or (home and (Path(home) / "bin" / "java").exists())):
        pytest.skip("java is absent: the secure Kafka broker (deploy/kafka/broker.sh) needs it")
    env = {**os.environ, "GEOSENTRY_KAFKA_STATE": str(state),
           "GEOSENTRY_KAFKA_USERS": " ".join(users)}
    out, err = state.parent / f"{state.name}.out", state.parent / f"{state.name}.err"
    with out.open("w") as o, err.open("w") as e:
        done = subprocess.run([str(BROKER), "start", "--secure"], stdout=o, stderr=e, env=env,
                              timeout=300)
    if done.returncode != 0:
        pytest.fail(f"broker.sh start --secure failed:\n{err.read_text()[-3000:]}")
    lines = out.read_text().splitlines()
    assert any(line.startswith("ca: ") for line in lines), lines  # says where the client files are
    try:
        with err.open("a") as e:
            acl = subprocess.run([str(BROKER), "acl", *acls], stdout=e, stderr=e, env=env,
                                 timeout=120)
        assert acl.returncode == 0, err.read_text()[-3000:]
        yield Secure(lines[-1].strip(), state)
    finally:
        with err.open("a") as e:
            subprocess.run([str(BROKER), "stop"], stdout=e, stderr=e, env=env, timeout=60)
