"""Run ObsPy's own SeedLink client against a server (a subprocess of the tests, so that a
hang cannot outlive its timeout): ``python obspy_fetch.py PORT OUT_DIR``.

Writes ``records.bin`` (every miniSEED record received, in order), ``seqs.txt`` and the INFO
replies ``capabilities.txt`` / ``stations.xml`` fetched with ``EasySeedLinkClient``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(port: int, out: Path) -> None:
    from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkConnection
    from obspy.clients.seedlink.easyseedlink import EasySeedLinkClient
    from obspy.clients.seedlink.slpacket import SLPacket

    conn = SeedLinkConnection(timeout=10)
    conn.set_sl_address(f"127.0.0.1:{port}")
    conn.dialup = True  # FETCH: the server sends what it holds, then END
    conn.parse_stream_list("BW_UH1,BW_UH2,BW_UH3,BW_UH4", "?HZ")
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
    (out / "records.bin").write_bytes(b"".join(records))
    (out / "seqs.txt").write_text("\n".join(seqs))

    client = EasySeedLinkClient(f"127.0.0.1:{port}", autoconnect=False)
    client.conn.timeout = 10
    client.connect()
    (out / "capabilities.txt").write_text("\n".join(client.capabilities))
    (out / "stations.xml").write_text(client.get_info("STATIONS"))
    client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
