"""``serve-seedlink --users FILE``: SeedLink 4 AUTH on our server (TLS, certificate made by
openssl at test time) and per-user stream allow-lists, in data and in INFO, from our client and
from EarthScope's slinktool (libslink: ``-Ap`` with SEEDLINK_USERNAME/SEEDLINK_PASSWORD)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest
from slhelpers import by_station, drain, serving

from geosentry.stream.errors import ConfigError, SourceError
from geosentry.stream.seedlink.archive import Archive
from geosentry.stream.seedlink.users import hash_password, load_users
from geosentry.stream.sources.seedlink import seedlink_info

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("GEOSENTRY_SHARED_TOOLS", ROOT.parent / "shared" / "tools"))
SLINKTOOL = TOOLS / "seedlink-peers" / "slinktool"
PASSWORD, TOKEN = "c0rrect-horse", "opaque.bearer.token-123"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sl-users") / "users.toml"
    pw = hash_password(PASSWORD, 10_000)  # fewer rounds than the default: a test
    path.write_text(f'''
[[user]]
name = "limited"
password = "{pw}"
streams = ["BW_UH1", "BW_UH2:*_S_H_Z", "BW_UH3:*_B_H_Z"]

[[user]]
name = "everything"
password = "{pw}"

[[user]]
name = "bridge"
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
streams = ["BW_UH4"]
''')
    return path


def _pw(tmp_path: Path, text: str = PASSWORD) -> Path:
    f = tmp_path / "pw"
    f.write_text(text)
    f.chmod(0o600)
    return f


def _want(archive: Archive, *sids: str) -> dict[str, list[bytes]]:
    return {sid: [p.payload for p in archive.by_station[sid]] for sid in sids}


async def test_each_user_sees_its_streams(demo_archive: Path, archive_packets: Archive,
                                          tls_cert: tuple[Path, Path], users_file: Path,
                                          tmp_path: Path) -> None:
    cert, key = tls_cert
    pw = _pw(tmp_path)
    async with serving(demo_archive, tls_cert=cert, tls_key=key,
                       users=load_users(users_file)) as server:
        base = f"seedlinks://127.0.0.1:{server.port}?ca_file={cert}&streams=BW_*&dialup=1"
        limited = await drain(f"{base}&user=limited&password_file={pw}")
        everything = await drain(f"{base}&user=everything&password_file={pw}")
        token = tmp_path / "token"
        token.write_text(TOKEN)
        bridge = await drain(f"{base}&token_file={token}")
        info = await seedlink_info(f"seedlinks://127.0.0.1:{server.port}?ca_file={cert}"
                                   f"&user=limited&password_file={pw}", "STREAMS")
    # UH1-UH3 record SHZ, UH4 EHZ: "BW_UH3:*_B_H_Z" lets UH3 be listed but none of its data
    assert by_station(limited) == _want(archive_packets, "BW_UH1", "BW_UH2")
    assert by_station(everything) == _want(archive_packets, "BW_UH1", "BW_UH2", "BW_UH3",
                                           "BW_UH4")
    assert by_station(bridge) == _want(archive_packets, "BW_UH4")
    streams = {st["id"]: [s["id"] for s in st.get("stream", [])] for st in info["station"]}
    assert streams == {"BW_UH1": ["_S_H_Z"], "BW_UH2": ["_S_H_Z"], "BW_UH3": []}


async def test_login_failures_and_anonymous_clients(demo_archive: Path,
                                                    tls_cert: tuple[Path, Path],
                                                    users_file: Path, tmp_path: Path) -> None:
    cert, key = tls_cert
    async with serving(demo_archive, tls_cert=cert, tls_key=key,
                       users=load_users(users_file)) as server:
        base = f"seedlinks://127.0.0.1:{server.port}?ca_file={cert}&streams=BW_*&dialup=1"
        started = time.monotonic()
        for who in ("limited", "nobody"):  # a wrong password and an unknown user: the same
            with pytest.raises(SourceError, match="authentication failed .*server said AUTH"):
                await drain(f"{base}&user={who}&password_file={_pw(tmp_path, 'wrong')}", 15)
        with pytest.raises(SourceError, match="authentication required"):
            await drain(base, 15)  # no credentials: refused, not retried
        with pytest.raises(SourceError, match="authentication required"):
            await drain(f"{base}&proto=3", 15)  # protocol 3 cannot log in
        anonymous = await seedlink_info(f"seedlinks://127.0.0.1:{server.port}?ca_file={cert}",
                                        "STATIONS")
        assert time.monotonic() - started < 20
    assert anonymous.get("station", []) == []  # INFO before AUTH shows no station


def test_users_file_and_server_checks(tmp_path: Path, demo_archive: Path) -> None:
    from geosentry.stream.seedlink.server import SeedLinkServer

    bad = tmp_path / "bad.toml"
    bad.write_text('[[user]]\nname = "x"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="must be a pbkdf2_sha256\\$... hash") as e:
        load_users(bad)
    assert "hunter2" not in str(e.value)
    bad.write_text('[[user]]\nname = "x"\n')
    with pytest.raises(ConfigError, match="give password .* or token_sha256"):
        load_users(bad)
    good = tmp_path / "good.toml"
    good.write_text(f'[[user]]\nname = "x"\npassword = "{hash_password("p", 1000)}"\n')
    with pytest.raises(ConfigError, match="needs --tls-cert"):
        SeedLinkServer(demo_archive, users=load_users(good))
    user = load_users(good).check_password("x", "p")
    assert user is not None and "p" not in repr(user).replace("password", "")


pytestmark_slinktool = pytest.mark.skipif(
    not SLINKTOOL.exists(), reason=f"EarthScope's slinktool not found at {SLINKTOOL} "
                                   "(../shared/tools/seedlink-peers)")


@pytest.mark.shared
@pytestmark_slinktool
async def test_slinktool_logs_in(demo_archive: Path, archive_packets: Archive,
                                 tls_cert: tuple[Path, Path], users_file: Path,
                                 tmp_path: Path) -> None:
    from geosentry.stream.decode.mseed import split_records

    cert, key = tls_cert
    env = {**os.environ, "LIBSLINK_CA_CERT_FILE": str(cert), "SEEDLINK_USERNAME": "limited",
           "SEEDLINK_PASSWORD": PASSWORD}

    async def slinktool(*args: str, password: str = PASSWORD) -> tuple[int, str]:
        log = tmp_path / "slinktool.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                str(SLINKTOOL), "-4", "-Ap", *args, stdout=out, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.PIPE, env={**env, "SEEDLINK_PASSWORD": password})
            assert proc.stdin is not None  # libslink prompts on stdin for what it lacks
            proc.stdin.write(f"limited\n{password}\n".encode())
            proc.stdin.close()
            code = await asyncio.wait_for(proc.wait(), 60)
        return code, log.read_text(errors="replace")

    async with serving(demo_archive, tls_cert=cert, tls_key=key,
                       users=load_users(users_file)) as server:
        addr = f"localhost:{server.port}"
        out = tmp_path / "limited.mseed"
        code, text = await slinktool("-T", "-d", "-S", "BW_*", "-o", str(out), addr)
        assert code == 0, text[-3000:]
        code_q, streams = await slinktool("-T", "-Q", addr)
        code_bad, bad = await slinktool("-T", "-d", "-S", "BW_*", addr, password="wrong")
    got = b"".join(p for p, _ in split_records(out.read_bytes()))
    want = _want(archive_packets, "BW_UH1", "BW_UH2")
    assert sorted(split for split, _ in split_records(got)) == sorted(
        want["BW_UH1"] + want["BW_UH2"])
    assert code_q == 0 and "BW_UH1" in streams and "BW_UH4" not in streams, streams[-2000:]
    assert code_bad != 0 and "authentication failed" in bad, bad[-2000:]


async def test_cli_serves_users(demo_archive: Path, archive_packets: Archive,
                                tls_cert: tuple[Path, Path], users_file: Path,
                                tmp_path: Path) -> None:
    import re
    import subprocess

    from slhelpers import GEOSENTRY

    cert, key = tls_cert
    plain = subprocess.run(GEOSENTRY + ["serve-seedlink", str(demo_archive), "--port", "0",
                                        "--users", str(users_file)],
                           capture_output=True, text=True, timeout=120)
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert plain.returncode == 2 and len(lines) == 1 and "needs --tls-cert" in lines[0], \
        plain.stderr[-2000:]
    server = subprocess.Popen(GEOSENTRY + ["serve-seedlink", str(demo_archive), "--port", "0",
                                           "--speed", "0", "--tls-cert", str(cert),
                                           "--tls-key", str(key), "--users", str(users_file)],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(server.stderr.readline), 60)
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        got = await drain(f"seedlinks://127.0.0.1:{port}?ca_file={cert}&streams=BW_*&dialup=1"
                          f"&user=limited&password_file={_pw(tmp_path)}")
    finally:
        server.terminate()
        server.wait(10)
    assert by_station(got) == _want(archive_packets, "BW_UH1", "BW_UH2")
