"""EarthScope's ringserver (../shared/tools/seedlink-peers) as a live SeedLink upstream for the
tests: a ring fed by ``MSeedScan`` from a folder that ``Feed`` fills record by record, the way a
datalogger's files grow. Its sequence numbers are positions in one ring for every station."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from geosentry.stream.testing import demo_stream, mseed_records

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("GEOSENTRY_SHARED_TOOLS", ROOT.parent / "shared" / "tools"))
RINGSERVER = TOOLS / "seedlink-peers" / "ringserver"
NEEDS_RINGSERVER = [pytest.mark.shared,
                    pytest.mark.skipif(not RINGSERVER.exists(),
                                       reason=f"EarthScope's ringserver not found at {RINGSERVER} "
                                              "(../shared/tools/seedlink-peers)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ring:
    """A running ringserver: SeedLink on ``port`` (127.0.0.1 only), scanning ``scan``."""

    port: int
    scan: Path
    log: Path
    proc: subprocess.Popen[bytes]


@contextlib.asynccontextmanager
async def ringserver(directory: Path, ring_size: str = "1M", extra: str = "",
                     tls: tuple[Path, Path] | None = None, port: int = 0) -> AsyncIterator[Ring]:
    """Start ringserver in ``directory`` (ring, scan folder, config, log); SIGTERM at exit (it
    keeps its ring there: started again on the same folder and ``port``, it goes on).
    ``tls=(cert, key)`` makes its port TLS-only; ``extra`` is appended to its config."""
    port = port or free_port()
    for sub in ("ring", "scan"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    conf = directory / "ring.conf"
    lines = [f"RingDirectory {directory / 'ring'}", f"RingSize {ring_size}",
             f"ListenPort {port} SeedLink IPv4{' TLS' if tls else ''}", "AcceptIP 127.0.0.1",
             f"MSeedScan {directory / 'scan'}/ StateFile={directory / 'scan.state'} "
             r"Match=.*\.mseed$", "Verbosity 1"]
    if tls is not None:
        lines += [f"TLSCertFile {tls[0]}", f"TLSKeyFile {tls[1]}"]
    conf.write_text("\n".join(lines) + "\n" + extra)
    log = directory / "ringserver.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([str(RINGSERVER), "-Rd", str(directory / "ring"), str(conf)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ringserver did not start: {log.read_text()[-2000:]}"
                                       ) from None
                await asyncio.sleep(0.1)
        await _prime(f"seedlinks://127.0.0.1:{port}?proto=4&ca_file={tls[0]}" if tls else
                     f"seedlink://127.0.0.1:{port}?proto=4", directory / "scan")
        yield Ring(port, directory / "scan", log, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _prime(uri: str, scan: Path) -> None:
    """Until ringserver's scanner is at work: one record of station XX_PRIME (never selected,
    so clients also skip a station they did not ask for) is in the ring."""
    from geosentry.stream.sources.seedlink import seedlink_info

    tr = demo_stream()[0].copy()
    tr.stats.network, tr.stats.station = "XX", "PRIME"
    if not (scan / "XX.PRIME.mseed").exists():
        (scan / "XX.PRIME.mseed").write_bytes(mseed_records(tr)[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        doc = await seedlink_info(uri, "STATIONS")
        if any(st.get("id") == "XX_PRIME" for st in doc.get("station", [])):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("ringserver did not scan the priming record within 20 s")


@dataclass
class Feed:
    """ObsPy's BW.UH1-UH4 recordings as 512-byte records appended to one file per channel in
    the scan folder, a round at a time in end-time order (stations interleave in the ring)."""

    records: list[tuple[str, bytes]] = field(default_factory=list)  # (NET_STA, payload)
    written: int = 0
    copies: int = 1  # >1: the recordings again, each copy right after the one before

    def __post_init__(self) -> None:
        if not self.records:
            per: dict[str, list[bytes]] = {}
            for tr in demo_stream():
                span = tr.stats.endtime - tr.stats.starttime + tr.stats.delta
                for k in range(self.copies):
                    copy = tr.copy()
                    copy.stats.starttime += k * span
                    per.setdefault(tr.id, []).extend(mseed_records(copy))
            rounds = max(len(r) for r in per.values())
            for i in range(rounds):
                for sid, recs in per.items():
                    if i < len(recs):
                        net, sta = sid.split(".")[:2]
                        self.records.append((f"{net}_{sta}", recs[i]))
            self._files = {f"{net}_{sta}": f"{'.'.join(sid.split('.'))}.mseed"
                           for sid in per for net, sta in [sid.split(".")[:2]]}

    def by_station(self, upto: int | None = None) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for sid, payload in self.records[:upto]:
            out.setdefault(sid, []).append(payload)
        return out

    def write(self, scan: Path, n: int) -> None:
        """Append the next ``n`` records."""
        for sid, payload in self.records[self.written:self.written + n]:
            with (scan / self._files[sid]).open("ab") as f:
                f.write(payload)
        self.written = min(len(self.records), self.written + n)

    async def run(self, scan: Path, per_round: int = 4, interval_s: float = 0.25,
                  stop_at: int | None = None) -> None:
        """Append ``per_round`` records every ``interval_s`` until ``stop_at`` (all) are out."""
        end = len(self.records) if stop_at is None else stop_at
        while self.written < end:
            self.write(scan, min(per_round, end - self.written))
            await asyncio.sleep(interval_s)
