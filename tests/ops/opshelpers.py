"""Helpers of the operations tests: a `geosentry run` subprocess with the console, free ports,
the demo recordings as miniSEED files, where screenshots go."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: BW.UH1-UH4 (Unterhaching geothermal network), approximate positions for the map
UH_INVENTORY = """network,station,lat,lon,elevation
BW,UH1,48.0777,11.6397,554
BW,UH2,48.0410,11.6499,550
BW,UH3,48.0596,11.6960,563
BW,UH4,48.0117,11.6693,567
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_archive(folder: Path) -> Path:
    """ObsPy's BW.UH1-UH4 recordings as 512-byte Steim2 miniSEED files."""
    from geosentry.stream.testing import demo_stream

    folder.mkdir(parents=True, exist_ok=True)
    for tr in demo_stream():
        tr.write(str(folder / f"{tr.id}.mseed"), format="MSEED", reclen=512, encoding="STEIM2")
    return folder


def screenshot_dir(tmp_path: Path) -> Path:
    """``$GEOSENTRY_SCREENSHOTS`` when set (how docs/img/ is made), else the test's tmp dir."""
    out = Path(os.environ.get("GEOSENTRY_SCREENSHOTS", tmp_path / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


class Service:
    """``geosentry run`` as a subprocess, its output in files."""

    def __init__(self, tmp: Path, *args: str, config: str | None = None) -> None:
        self.out, self.err = tmp / "run.out", tmp / "run.err"
        cmd = [sys.executable, "-m", "geosentry.stream.cli", "run", *args]
        if config is not None:
            (tmp / "geosentry.toml").write_text(config)
            cmd += ["--config", str(tmp / "geosentry.toml")]
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e, cwd=ROOT)

    def log(self) -> str:
        return self.err.read_text(errors="replace")[-4000:]

    def wait_http(self, url: str, timeout_s: float = 90.0,
                  headers: dict[str, str] | None = None) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"geosentry run exited {self.proc.returncode}:\n{self.log()}")
            try:
                return get_json(url, headers)
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"{url} never answered:\n{self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())
