"""Kafka transport security against a real secure broker (``broker.sh start --secure``: TLS with
a CA made at start, SASL/SCRAM users, StandardAuthorizer ACLs), started by this module.

* right credentials: `geosentry replay` (as admin) and `geosentry run` (as ``geosentry``) round
  trip, alerts read back by an authenticated consumer; the password shows in no output (stdout,
  stderr, the alerts file with its health alerts, a /metrics scrape, the alerts topic);
* wrong password: exit 2 within 30 s, one line naming the authentication failure; a password
  file readable by others: one warning;
* a principal without WRITE on the alert topic: one line, exit 1, nothing written, input not
  committed, and a later run with the right principal on the same group delivers every alert;
* ``public`` cannot read the ``internal`` topic (``TopicAuthorizationFailedError``), can read its
  own; a CA that did not sign the broker's certificate is refused with one line.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from geosentry.stream.config import load_config
from geosentry.stream.demo import DEMO_BAND_HZ
from geosentry.stream.errors import SourceError
from geosentry.stream.kafka_security import load_kafka_config
from geosentry.stream.sources.kafka import KafkaSource
from geosentry.stream.testing import demo_stream, mseed_records, publish, read_topic
from tests.integration.securebroker import create_topics, Secure, secure_broker

pytestmark = [pytest.mark.kafka_secure, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]
USERS = ("geosentry", "readonly", "public")


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    # topics: wave-* (input), alerts-*, other-*, internal-*, public-*; groups by prefix
    acls = ["geosentry:READ:topic:wave-*", "geosentry:READ:group:detect-*",
            "geosentry:WRITE:topic:alerts-*", "geosentry:READ:group:shared-*",
            "readonly:READ:topic:wave-*", "readonly:READ:group:shared-*",
            "readonly:WRITE:topic:other-*",  # WRITE somewhere: its idempotent producer starts
            "public:READ:topic:public-*", "public:READ:group:pub-*",
            "public:READ:topic:alerts-*"]  # public consumes the alerts
    yield from secure_broker(tmp_path_factory.mktemp("kafka-secure"), USERS, acls)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("archive")
    for tr in demo_stream():
        (d / f"{tr.id}.mseed").write_bytes(b"".join(mseed_records(tr)))
    return d


STALTA_TOML = f"""
[[detectors]]
name = "stalta"
type = "stalta"
bandpass_hz = [{DEMO_BAND_HZ[0]}, {DEMO_BAND_HZ[1]}]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    code: int
    seconds: float
    stdout: str
    stderr: str
    metrics: str


def _geosentry(args: list[str], workdir: Path, timeout_s: float = 120,
               metrics_port: int | None = None) -> Run:
    """Run the CLI with stdout/stderr to files; scrape /metrics while it runs."""
    name = next(a for a in args if a in ("run", "replay"))
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    scrape = ""
    started = time.monotonic()
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(GEOSENTRY + args, stdout=o, stderr=e)
        try:
            while proc.poll() is None and time.monotonic() - started < timeout_s:
                if metrics_port:
                    try:
                        with urllib.request.urlopen(
                                f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
                            scrape = r.read().decode()
                    except OSError:
                        pass
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return Run(proc.returncode, time.monotonic() - started, out.read_text(), err.read_text(),
               scrape)


def _config(workdir: Path, kafka_toml: str) -> Path:
    path = workdir / "geosentry.toml"
    path.write_text(kafka_toml + STALTA_TOML)
    path.chmod(0o600)
    return path


async def _committed(secure: Secure, topic: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=secure.bootstrap, group_id=group,
                                enable_auto_commit=False, **secure.security("admin").client_kwargs())
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


async def _replay_as_admin(secure: Secure, archive: Path, topic: str, workdir: Path) -> None:
    admin_cfg = workdir / "admin.toml"
    admin_cfg.write_text(secure.kafka_toml("admin"))
    rep = _geosentry(["replay", str(archive), "--to", f"kafka://{secure.bootstrap}/{topic}",
                      "--config", str(admin_cfg)], workdir)
    assert rep.code == 0, rep.stderr[-3000:]
    assert "published" in rep.stderr


def test_config_repr_and_errors_never_show_the_password(tmp_path: Path) -> None:
    """No broker needed: a Config's repr masks the password; a literal password or credentials
    in a URI are refused without repeating them; PLAIN needs TLS."""
    from geosentry.stream.errors import ConfigError

    pw_file = tmp_path / "pw"
    pw_file.write_text("s3cr3t-Known-Pa55\n")
    pw_file.chmod(0o600)
    cfg = load_config(_config(tmp_path, f'[kafka]\nsecurity_protocol = "SASL_SSL"\n'
                                        f'username = "u"\npassword_file = "{pw_file}"\n'))
    assert cfg.kafka.default.password is not None
    assert cfg.kafka.default.password.reveal() == "s3cr3t-Known-Pa55"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.kafka)
    with pytest.raises(ConfigError, match="literal password is not accepted") as exc:
        load_kafka_config({"security_protocol": "SASL_SSL", "username": "u",
                           "password": "s3cr3t-Known-Pa55"})
    assert "s3cr3t" not in str(exc.value)
    with pytest.raises(ConfigError, match="must not carry a user or password") as exc:
        load_kafka_config({}, [("--sink", "kafka://u:s3cr3t-Known-Pa55@127.0.0.1:9092/a")])
    assert "s3cr3t" not in str(exc.value)
    with pytest.raises(ConfigError, match="PLAIN sends the password in the clear"):
        load_kafka_config({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                           "username": "u", "password_file": str(pw_file)})
    with pytest.raises(ConfigError, match="kafka profile 'nope' is not defined"):
        load_kafka_config({}, [("--source", "kafka://127.0.0.1:9092/a?profile=nope")])


async def test_right_credentials_round_trip_and_no_secret_in_any_output(
        secure: Secure, archive: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    src, out, group = f"wave-{tag}", f"alerts-{tag}", f"detect-{tag}"
    await create_topics(secure, src, out)
    await _replay_as_admin(secure, archive, src, tmp_path)
    jsonl, port = tmp_path / "alerts.jsonl", _free_port()
    run = _geosentry(["--log-level", "DEBUG", "run", "--config",
                      str(_config(tmp_path, secure.kafka_toml("geosentry"))),
                      "--source", f"kafka://{secure.bootstrap}/{src}?group={group}&idle_exit_s=4",
                      "--sink", f"kafka://{secure.bootstrap}/{out}", "--sink", f"jsonl:{jsonl}",
                      "--metrics-port", str(port)],
                     tmp_path, metrics_port=port)
    assert run.code == 0, run.stderr[-3000:]
    alerts = [json.loads(v) for _, v in await read_topic(secure.bootstrap, out, idle_s=2.0,
                                                         security=secure.security("public"))]
    network = [a for a in alerts if a["station"] == "*"]
    assert len(network) == 3, [a["time"] for a in network]  # the demo's three events
    assert len(alerts) == len(jsonl.read_text().splitlines())
    assert "geosentry_" in run.metrics  # a real scrape while it ran
    password = secure.password("geosentry")
    outputs = {"stdout": run.stdout, "stderr": run.stderr, "alerts file": jsonl.read_text(),
               "metrics": run.metrics, "alerts topic": json.dumps(alerts)}
    for name, text in outputs.items():
        assert password not in text, f"the password shows in {name}"
    assert await _committed(secure, src, group) == sum(
        len(mseed_records(tr)) for tr in demo_stream())


async def test_wrong_password_exits_with_one_line_and_warns_about_an_exposed_file(
        secure: Secure, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password-42\n")
    wrong.chmod(0o644)  # readable by group and others: one warning
    cfg = _config(tmp_path, secure.kafka_toml("geosentry", wrong))
    run = _geosentry(["run", "--config", str(cfg), "--source",
                      f"kafka://{secure.bootstrap}/wave-x?group=detect-x",
                      "--sink", f"kafka://{secure.bootstrap}/alerts-x"], tmp_path, timeout_s=60)
    assert run.code == 2, run.stderr[-3000:]
    assert run.seconds < 30
    errors = [line for line in run.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, run.stderr
    assert "authentication failed for user 'geosentry' (SCRAM-SHA-512)" in errors[0]
    assert "Traceback" not in run.stderr
    warnings = [line for line in run.stderr.splitlines() if "readable by group/others" in line]
    assert len(warnings) == 1 and str(wrong) in warnings[0], run.stderr
    assert "not-the-password-42" not in run.stderr + run.stdout


async def test_no_write_acl_on_the_alert_topic_fails_cleanly_and_loses_nothing(
        secure: Secure, archive: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    src, out, group = f"wave-{tag}", f"alerts-{tag}", f"shared-{tag}"
    await create_topics(secure, src, out)
    await _replay_as_admin(secure, archive, src, tmp_path)
    source = f"kafka://{secure.bootstrap}/{src}?group={group}&idle_exit_s=4"
    refused = _geosentry(["run", "--config", str(_config(tmp_path, secure.kafka_toml("readonly"))),
                          "--source", source, "--sink", f"kafka://{secure.bootstrap}/{out}"],
                         tmp_path)
    assert refused.code == 3, refused.stderr[-3000:]  # stopped with alerts undelivered
    errors = [line for line in refused.stderr.splitlines() if " ERROR " in line]
    assert errors and all("Traceback" not in e for e in errors), refused.stderr[-3000:]
    assert any(f"not authorized to write to topic '{out}' as user 'readonly'" in e
               and "TopicAuthorizationFailedError" in e for e in errors), refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    admin = secure.security("admin")
    assert await read_topic(secure.bootstrap, out, idle_s=1.0, security=admin) == []
    n_records = sum(len(mseed_records(tr)) for tr in demo_stream())
    committed = await _committed(secure, src, group)
    assert committed is None or committed < n_records  # the refused alerts' input is not

    # the right principal on the same group: every alert arrives, none lost
    fixed = _geosentry(["run", "--config", str(_config(tmp_path, secure.kafka_toml("geosentry"))),
                        "--source", source, "--sink", f"kafka://{secure.bootstrap}/{out}"],
                       tmp_path)
    assert fixed.code == 0, fixed.stderr[-3000:]
    alerts = [json.loads(v) for _, v in await read_topic(secure.bootstrap, out, idle_s=2.0,
                                                         security=admin)]
    assert len([a for a in alerts if a["station"] == "*"]) == 3
    assert await _committed(secure, src, group) == n_records


async def test_public_cannot_read_internal_and_an_untrusted_ca_is_refused(
        secure: Secure, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tag = uuid.uuid4().hex[:8]
    internal, public = f"internal-{tag}", f"public-{tag}"
    admin = secure.security("admin")
    await publish(secure.bootstrap, internal, [(b"k", b"secret-ops")], security=admin)
    await publish(secure.bootstrap, public, [(b"k", b"open-data")], security=admin)
    # its own topic: readable (so the refusal below is the ACL, not broken authentication)
    assert await read_topic(secure.bootstrap, public, idle_s=1.0,
                            security=secure.security("public")) == [(b"k", b"open-data")]
    consumer = AIOKafkaConsumer(internal, bootstrap_servers=secure.bootstrap, group_id=f"pub-{tag}",
                                **secure.security("public").client_kwargs())
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.start()
    finally:
        await consumer.stop()
    # through the service's source: one line naming the refusal, no retrying
    source = KafkaSource(f"kafka://{secure.bootstrap}/{internal}?group=pub-{tag}",
                         connect_timeout_s=20, security=secure.security("public"))
    began = time.monotonic()
    with pytest.raises(SourceError, match=f"not authorized to read topic '{internal}' in group "
                                          f"'pub-{tag}' as user 'public'"):
        await source.start()
    assert time.monotonic() - began < 10
    # mutual TLS: the client certificate from the broker's CA is sent and accepted; a key file
    # readable by others gets one warning
    key = tmp_path / "client.key"
    key.write_bytes((secure.state / "tls" / "client.key").read_bytes())
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.secrets"):
        mtls = secure.security("public", cert_file=str(secure.state / "tls" / "client.pem"),
                               key_file=str(key))
    assert [r.getMessage() for r in caplog.records if "readable by group/others" in r.getMessage()
            and str(key) in r.getMessage()], caplog.text
    assert await read_topic(secure.bootstrap, public, idle_s=1.0,
                            security=mtls) == [(b"k", b"open-data")]
    # a CA that did not sign the broker's certificate (the client certificate is no CA)
    untrusted = secure.security("public", ca_file=str(secure.state / "tls" / "client.pem"))
    source = KafkaSource(f"kafka://{secure.bootstrap}/{public}?group=pub-{tag}",
                         connect_timeout_s=20, security=untrusted)
    with pytest.raises(SourceError, match="TLS: the broker's certificate was refused"):
        await source.start()
