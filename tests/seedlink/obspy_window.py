"""ObsPy's high-level SeedLink client, ``obspy.clients.seedlink.Client.get_waveforms`` with
wildcards and a time window (it sends INFO STATIONS, then per station SELECT + TIME start end):
``python obspy_window.py PORT START END OUT.mseed``."""

from __future__ import annotations

import sys


def main(port: int, start: str, end: str, out: str) -> None:
    from obspy import UTCDateTime
    from obspy.clients.seedlink import Client

    client = Client("127.0.0.1", port, timeout=10)
    st = client.get_waveforms("BW", "UH*", "", "?HZ", UTCDateTime(start), UTCDateTime(end))
    st.write(out, format="MSEED")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
