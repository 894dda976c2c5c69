"""Run ObsPy's own SeedLink client against a server (a subprocess of the tests, so that a
hang cannot outlive its timeout): ``python obspy_fetch.py PORT OUT_DIR [RESUME_SEQ]``.

Writes ``records.bin`` (every miniSEED record received, in order), ``seqs.txt``, the INFO
replies ``capabilities.txt`` / ``stations.xml`` / ``streams.xml`` / ``gaps.xml`` /
``connections.xml`` / ``all.xml`` fetched with ``EasySeedLinkClient``, and with RESUME_SEQ
(hex, as ObsPy stores it) ``resume_seqs.txt``: BW_UH1 fetched again resuming after that number.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _fetch(port: int, streams: str, selectors: str,
           resume: int | None = None) -> tuple[list[bytes], list[str]]:
    from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkConnection
    from obspy.clients.seedlink.slpacket import SLPacket

    conn = SeedLinkConnection(timeout=10)
    conn.set_sl_address(f"127.0.0.1:{port}")
    conn.dialup = True  # FETCH: the server sends what it holds, then END
    if resume is None:
        conn.parse_stream_list(streams, selectors)
    else:  # what ObsPy does with a saved state: FETCH <hex(seq + 1)>
        net, sta = streams.split("_")
        conn.add_stream(net, sta, selectors, resume, None)
    records, seqs = [], []
    while True:
        pkt = conn.collect()
        if pkt is None or pkt == SLPacket.SLTERMINATE:
            break
        if pkt == SLPacket.SLERROR:
            raise SystemExit("SeedLink error")
        if pkt == SLPacket.SLNOPACKET:
            continue
        records.append(bytes(pkt.msrecord))
        seqs.append(str(pkt.get_sequence_number()))
    conn.close()
    return records, seqs


def main(port: int, out: Path, resume: int | None) -> None:
    from obspy.clients.seedlink.easyseedlink import EasySeedLinkClient

    records, seqs = _fetch(port, "BW_UH1,BW_UH2,BW_UH3,BW_UH4", "?HZ")
    (out / "records.bin").write_bytes(b"".join(records))
    (out / "seqs.txt").write_text("\n".join(seqs))
    if resume is not None:
        _, seqs = _fetch(port, "BW_UH1", "SHZ", resume)
        (out / "resume_seqs.txt").write_text("\n".join(seqs))

    client = EasySeedLinkClient(f"127.0.0.1:{port}", autoconnect=False)
    client.conn.timeout = 10
    client.connect()
    (out / "capabilities.txt").write_text("\n".join(client.capabilities))
    for level in ("STATIONS", "STREAMS", "GAPS", "CONNECTIONS", "ALL"):
        (out / f"{level.lower()}.xml").write_text(client.get_info(level))
    client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3], 16) if len(sys.argv) > 3 else None)
