"""/metrics: bound to 127.0.0.1 by default, optional basic auth and TLS, tested with real HTTP
requests (and a certificate made by openssl at test time)."""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from geosentry.stream.config import load_config_dict
from geosentry.stream.errors import ConfigError
from geosentry.stream.metrics import Metrics


def secret_file(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


def get(url: str, user: str | None = None, password: str | None = None,
        context: ssl.SSLContext | None = None) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture
def servers() -> Iterator[list[ThreadingHTTPServer]]:
    started: list[ThreadingHTTPServer] = []
    yield started
    for s in started:
        s.shutdown()
        s.server_close()


def test_binds_loopback_by_default(servers: list[ThreadingHTTPServer]) -> None:
    cfg = load_config_dict({})
    assert cfg.metrics_host == "127.0.0.1" and cfg.metrics_auth is None
    m = Metrics()
    server = m.serve(0)  # the default address
    servers.append(server)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    status, body, _ = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "geosentry_records_in_total" in body


def test_basic_auth(tmp_path: Path, servers: list[ThreadingHTTPServer],
                    caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config_dict({"metrics_user": "prom", "metrics_password_file": secret_file(
        tmp_path / "pw", "s3cret-pa55")})
    assert cfg.metrics_auth is not None and "s3cret" not in repr(cfg)
    m = Metrics()
    m.records_in.labels(source="files").inc(7)
    server = m.serve(0, "127.0.0.1", cfg.metrics_auth)
    servers.append(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.metrics_http"):
        status, body, headers = get(url)
        assert status == 401 and "geosentry" not in body
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert get(url, "prom", "wrong")[0] == 401
        assert get(url, "other", "s3cret-pa55")[0] == 401
        assert get(url, "prom", "s3cret-pa55x")[0] == 401
        status, body, _ = get(url, "prom", "s3cret-pa55")
    assert status == 200 and 'geosentry_records_in_total{source="files"} 7.0' in body
    assert m.value("geosentry_metrics_auth_failures_total") == 4
    warned = [r.getMessage() for r in caplog.records if "401" in r.getMessage()]
    assert len(warned) == 1 and "127.0.0.1" in warned[0] and "s3cret" not in warned[0]
    # a garbled header is a 401 too, not a server error
    req = urllib.request.Request(url, headers={"Authorization": "Basic %%%not-base64"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401


def test_auth_file_and_config_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    auth = load_config_dict({"metrics_auth_file": secret_file(tmp_path / "a", "prom:pw:x")})
    assert auth.metrics_auth is not None and auth.metrics_auth.user == "prom"
    assert auth.metrics_auth.password.reveal() == "pw:x"
    with pytest.raises(ConfigError, match="user:password"):
        load_config_dict({"metrics_auth_file": secret_file(tmp_path / "b", "no-colon")})
    with pytest.raises(ConfigError, match="go together"):
        load_config_dict({"metrics_user": "prom"})
    with pytest.raises(ConfigError, match="cannot read metrics password file"):
        load_config_dict({"metrics_user": "prom", "metrics_password_file": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="go together"):
        load_config_dict({"metrics_tls_cert": str(tmp_path / "a")})
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.secrets"):
        exposed = secret_file(tmp_path / "exposed", "prom:pw", mode=0o644)
        load_config_dict({"metrics_auth_file": exposed})
    lines = [r.getMessage() for r in caplog.records if "readable by group/others" in r.message]
    assert len(lines) == 1 and exposed in lines[0] and "pw" not in lines[0].split(exposed)[1]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key.chmod(0o600)
    return str(cert), str(key)


def test_tls_with_auth(tmp_path: Path, certificate: tuple[str, str],
                       servers: list[ThreadingHTTPServer]) -> None:
    cert, key = certificate
    cfg = load_config_dict({"metrics_tls_cert": cert, "metrics_tls_key": key,
                            "metrics_user": "prom",
                            "metrics_password_file": secret_file(tmp_path / "pw", "pw-123")})
    assert cfg.metrics_tls is not None
    server = Metrics().serve(0, "127.0.0.1", cfg.metrics_auth, cfg.metrics_tls)
    servers.append(server)
    port = server.server_address[1]
    trusted = ssl.create_default_context(cafile=cert)
    url = f"https://127.0.0.1:{port}/metrics"
    assert get(url, context=trusted)[0] == 401
    status, body, _ = get(url, "prom", "pw-123", context=trusted)
    assert status == 200 and "geosentry_metrics_auth_failures_total 1.0" in body
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(url, "prom", "pw-123", context=ssl.create_default_context())  # not trusted
    # plain HTTP on the TLS port gets nothing, and the endpoint keeps serving
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        assert b"geosentry" not in s.recv(4096)
    assert get(url, "prom", "pw-123", context=trusted)[0] == 200


def test_tls_files_checked_at_start_up(tmp_path: Path, certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with pytest.raises(ConfigError, match="file not found"):
        load_config_dict({"metrics_tls_cert": str(tmp_path / "none.pem"), "metrics_tls_key": key})
    with pytest.raises(ConfigError, match="cannot load"):
        load_config_dict({"metrics_tls_cert": key, "metrics_tls_key": key})


def test_geosentry_run_serves_metrics_with_auth(tmp_path: Path) -> None:
    """``geosentry run`` with metrics auth in its config: 401 without credentials, 200 with."""
    import os
    import signal
    import sys
    import time

    from geosentry.stream.testing import interleaved

    data = tmp_path / "demo.mseed"
    data.write_bytes(b"".join(interleaved()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "geosentry.toml"
    cfg.write_text(f'metrics_port = {port}\nmetrics_user = "prom"\n'
                   f'metrics_password_file = "{secret_file(tmp_path / "pw", "pw-456")}"\n'
                   f'sinks = ["jsonl:{tmp_path / "alerts.jsonl"}"]\n')
    err = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "geosentry.stream.cli", "run", "--source",
                             str(data), "--config", str(cfg), "--speed", "1"],
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        while True:
            try:
                status = get(url)[0]
                break
            except urllib.error.URLError:
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "stderr").read_text()[-2000:]
                time.sleep(0.2)
        assert status == 401
        status, body, _ = get(url, "prom", "pw-456")
        assert status == 200 and "geosentry_records_in_total" in body
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        err.close()
