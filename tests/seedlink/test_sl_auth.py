"""SeedLink 4 ``AUTH`` from our client against ringserver (``AuthCommand``, TLS with a
certificate made by openssl at test time): user/password from a file or an environment
variable, a JWT from a file; a wrong secret ends ``geosentry run`` at once with one line naming
the failed authentication; credentials are refused over plain TCP unless ``auth_plaintext=1``;
no secret in any log. Skipped when ``../shared/tools`` or openssl is absent."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

import pytest
from ringhelpers import NEEDS_RINGSERVER, Feed, ringserver
from slhelpers import GEOSENTRY

from geosentry.stream.errors import ConfigError, SourceError
from geosentry.stream.sources.seedlink import SeedLinkSource, parse_seedlink

HERE = Path(__file__).resolve().parent
pytestmark = NEEDS_RINGSERVER
PASSWORD, TOKEN = "s3cret-Pa55", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0b2tlbnVzZXIifQ.c2ln"


def _users(tmp: Path) -> Path:
    users = tmp / "users.json"
    users.write_text(json.dumps({
        "users": {"reader": {"password": PASSWORD},
                  "uh1only": {"password": PASSWORD, "allowed_streams": ["^FDSN:BW_UH1_.*"]}},
        "tokens": {TOKEN: {"name": "tokenuser"}}}))
    return users


def _secret_file(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


async def _drain(uri: str, n: int | None, timeout_s: float = 20) -> list[str]:
    """Station ids of the first ``n`` records (None: all, until 3 s without one)."""
    out: list[str] = []
    async with SeedLinkSource(uri) as source:
        records = source.records()
        deadline = time.monotonic() + timeout_s
        while n is None or len(out) < n:
            try:
                raw = await asyncio.wait_for(anext(records), 3 if n is None else
                                             max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                if n is None:
                    break
                raise
            assert raw.key is not None
            out.append(raw.key)
    return out


@pytest.fixture
async def auth_ring(tmp_path: Path, tls_cert: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    extra = (f"AuthCommand {sys.executable} {HERE / 'rs_authorizer.py'} {_users(tmp_path)}\n"
             "AuthRequiredForStreams 1\n")
    async with ringserver(tmp_path / "rs", tls=tls_cert, extra=extra) as ring:
        feed = Feed()
        feed.write(ring.scan, len(feed.records))
        await asyncio.sleep(1.5)  # scanned into the ring
        yield ring


def _uri(port: int, cert: Path, **params: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in params.items())
    # start= asks for what the ring holds (a new client gets only new records otherwise)
    return (f"seedlinks://127.0.0.1:{port}?ca_file={cert}&streams=BW_UH1,BW_UH2"
            f"&start=2010-05-27T16:24:00&retries=0&{q}")


async def test_userpass_from_a_file_and_from_the_environment(
        auth_ring, tls_cert: tuple[Path, Path], tmp_path: Path,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # seedlink-client logs each command it sends at DEBUG
    cert = tls_cert[0]
    pw = _secret_file(tmp_path, "pw", PASSWORD)
    got = await _drain(_uri(auth_ring.port, cert, user="reader", password_file=str(pw)), None)
    want = Feed().by_station()
    assert sorted(got) == sorted(["BW.UH1"] * len(want["BW_UH1"]) + ["BW.UH2"] * len(want["BW_UH2"]))
    monkeypatch.setenv("SL_PW", PASSWORD)
    got = await _drain(_uri(auth_ring.port, cert, user="reader", password_env="SL_PW"), 5)
    assert len(got) == 5
    # ringserver's per-user allow-list applies to the authenticated user
    got = await _drain(_uri(auth_ring.port, cert, user="uh1only", password_file=str(pw)), None)
    assert got == ["BW.UH1"] * len(want["BW_UH1"])
    assert "AUTH USERPASS reader ***" in caplog.text and PASSWORD not in caplog.text


async def test_jwt_from_a_file(auth_ring, tls_cert: tuple[Path, Path],  # type: ignore[no-untyped-def]
                               tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = _secret_file(tmp_path, "token", TOKEN)
    got = await _drain(_uri(auth_ring.port, tls_cert[0], token_file=str(token)), 10)
    assert len(got) == 10
    assert "AUTH JWT ***" in caplog.text and TOKEN not in caplog.text


async def test_wrong_password_is_final_and_named(auth_ring, tls_cert: tuple[Path, Path],  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    wrong = _secret_file(tmp_path, "wrong", "not-the-password")
    with pytest.raises(SourceError, match="authentication failed") as err:
        await _drain(_uri(auth_ring.port, tls_cert[0], user="reader",
                          password_file=str(wrong)).replace("&retries=0", ""), 1, 15)
    assert "not-the-password" not in str(err.value)


async def test_geosentry_run_wrong_credentials_exits_with_one_line(
        auth_ring, tls_cert: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wrong = _secret_file(tmp_path, "wrong", "not-the-password")
    uri = _uri(auth_ring.port, tls_cert[0], user="reader", password_file=str(wrong))
    started = time.monotonic()
    err = tmp_path / "run.err"
    with err.open("wb") as f:
        proc = await asyncio.create_subprocess_exec(
            *GEOSENTRY, "run", "--source", uri.replace("&retries=0", ""), "--sink", "jsonl:/dev/null",
            stdout=asyncio.subprocess.DEVNULL, stderr=f)
    code = await asyncio.wait_for(proc.wait(), 60)
    text = err.read_text()
    assert code not in (0, None) and time.monotonic() - started < 30, text[-3000:]
    failed = [line.split(": ", 2)[-1] for line in text.splitlines()
              if "authentication failed" in line]
    # one message (the supervisor and the pipeline each log a failed source: two lines of it)
    assert failed and len(set(failed)) == 1, text[-3000:]
    assert "AUTH USERPASS as reader" in failed[0] and "server said" in failed[0]
    assert "Traceback" not in text and "not-the-password" not in text


async def test_no_credentials_are_refused_by_the_server(
        auth_ring, tls_cert: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()  # no retries limit, yet it stops: retrying cannot help
    with pytest.raises(SourceError, match="refused to stream without authentication"):
        await _drain(_uri(auth_ring.port, tls_cert[0]).replace("&retries=0", ""), 1, 15)
    assert time.monotonic() - started < 10


def test_credentials_need_tls_and_stay_out_of_the_uri(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pw = _secret_file(tmp_path, "pw", PASSWORD)
    plain = f"seedlink://127.0.0.1:18000?streams=BW_UH1&user=reader&password_file={pw}"
    with pytest.raises(ConfigError, match="only sent over TLS.*auth_plaintext=1"):
        parse_seedlink(plain)
    assert parse_seedlink(plain + "&auth_plaintext=1").auth is not None
    u = parse_seedlink(f"seedlinks://h?streams=BW_UH1&user=reader&password_file={pw}")
    assert u.auth is not None and PASSWORD not in repr(u) and u.auth.method == "USERPASS"
    for bad in ("password", "token"):
        with pytest.raises(ConfigError, match="would put a secret on the command line") as e:
            parse_seedlink(f"seedlinks://h?streams=BW_UH1&user=reader&{bad}=hunter2xyz")
        assert "hunter2xyz" not in str(e.value)
    with pytest.raises(ConfigError, match="credentials in the URI") as e:
        parse_seedlink(f"seedlinks://reader:{PASSWORD}@h?streams=BW_UH1")
    assert PASSWORD not in str(e.value)
    with pytest.raises(ConfigError, match="needs both user=NAME and password_file"):
        parse_seedlink("seedlinks://h?streams=BW_UH1&user=reader")
    with pytest.raises(ConfigError, match="SL_NOPE is unset"):
        parse_seedlink("seedlinks://h?streams=BW_UH1&user=reader&password_env=SL_NOPE")
    with pytest.raises(ConfigError, match="needs SeedLink protocol 4"):
        parse_seedlink(f"seedlinks://h?streams=BW_UH1&proto=3&token_file={pw}")


def test_plaintext_credentials_exit_2_with_one_line(tmp_path: Path) -> None:
    import subprocess

    pw = _secret_file(tmp_path, "pw", PASSWORD)
    proc = subprocess.run(
        GEOSENTRY + ["run", "--source",
                     f"seedlink://127.0.0.1:9?streams=BW_UH1&user=reader&password_file={pw}"],
        capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "only sent over TLS" in lines[0], proc.stderr
    assert PASSWORD not in proc.stderr
