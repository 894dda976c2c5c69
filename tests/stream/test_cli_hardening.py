"""The command line as a user meets it: bad input is one line (no traceback) and exit status 2;
SIGTERM ends ``geosentry run`` in bounded time in every state; a second signal, or a shutdown
stuck past its deadline, exits at once with status 3. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import obspy
import pytest

DATA = Path(obspy.__file__).parent / "io" / "mseed" / "tests" / "data"
MSEED = DATA / "test.mseed"
GEOSENTRY = [sys.executable, "-m", "geosentry.stream.cli"]


def _run(*args: str, timeout_s: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GEOSENTRY, *args], capture_output=True, text=True, timeout=timeout_s,
                          cwd=cwd)


def _one_line_error(done: subprocess.CompletedProcess[str], needle: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert needle in done.stderr, done.stderr[-2000:]


def test_missing_sink_folder(tmp_path: Path) -> None:
    _one_line_error(_run("run", "--source", str(MSEED), "--sink",
                         f"jsonl:{tmp_path}/missing/alerts.jsonl"), "cannot open for appending")


def test_metrics_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line_error(_run("run", "--source", str(MSEED), "--sink", "jsonl:/dev/null",
                             "--metrics-port", str(port)), "cannot serve metrics")


def test_kafka_source_nobody_serves(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("connect_timeout_s = 1.0\n")
    _one_line_error(_run("run", "--config", str(cfg), "--source", "kafka://127.0.0.1:1/x"),
                    "broker not reachable")


def test_unknown_source_scheme() -> None:
    _one_line_error(_run("run", "--source", "ftp://example/x"), "unknown source scheme")


def test_seedlinks_is_a_seedlink_source_not_a_path() -> None:
    from geosentry.stream.sources import open_source
    from geosentry.stream.sources.seedlink import SeedLinkSource

    assert isinstance(open_source("seedlinks://127.0.0.1:18500?streams=GE_WLF"), SeedLinkSource)


def test_dev_null_sink_exits_ok() -> None:
    done = _run("run", "--source", str(MSEED), "--sink", "jsonl:/dev/null")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*GEOSENTRY, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], needle: str, timeout_s: float = 90) -> str:
    """stderr up to the first line holding ``needle`` (the process must still run)."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if needle in line:
            return "".join(seen)
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen)[-3000:]}")


def test_sigterm_while_a_kafka_sink_is_unreachable(tmp_path: Path) -> None:
    # used to retry for ever and ignore SIGTERM/SIGINT
    cfg = tmp_path / "c.toml"
    cfg.write_text("connect_timeout_s = 600.0\n")
    proc = _start(["run", "--config", str(cfg), "--source", str(MSEED),
                   "--sink", "kafka://127.0.0.1:1/alerts"])
    _wait_for(proc, "cannot connect")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    assert time.monotonic() - t0 < 10
    assert rc == 0  # nothing was read, nothing is lost


def test_sigterm_during_a_paced_replay_exits_ok(tmp_path: Path) -> None:
    proc = _start(["run", "--source", str(DATA), "--speed", "1", "--sink",
                   f"jsonl:{tmp_path}/a.jsonl"])
    _wait_for(proc, "takes")  # start-up log: detectors are routed, the replay is running
    time.sleep(2.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=40)
    assert time.monotonic() - t0 < 35
    assert rc == 0


GUARD = textwrap.dedent("""
    import asyncio, sys, time
    from geosentry.stream.supervision import SignalGuard

    async def main():
        guard = SignalGuard(lambda: print("stop requested", flush=True), float(sys.argv[1]))
        guard.install()
        print("ready", flush=True)
        if sys.argv[2] == "blocked":
            time.sleep(600)   # the event loop itself is stuck
        await asyncio.sleep(600)  # request_stop is ignored: a wedged shutdown

    asyncio.run(main())
""")


@pytest.mark.parametrize("blocked", ["loop", "blocked"])
def test_shutdown_past_its_deadline_exits_3(blocked: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", GUARD, "1.0", blocked], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    assert rc == 3
    assert 1.0 <= time.monotonic() - t0 < 1.0 + 5.0 + 5.0


def test_second_signal_exits_at_once() -> None:
    proc = subprocess.Popen([sys.executable, "-c", GUARD, "600", "loop"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().strip() == "stop requested"
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    rc = proc.wait(timeout=10)
    assert rc == 3 and time.monotonic() - t0 < 5
    assert proc.stderr is not None and "second SIGINT" in proc.stderr.read()
