"""SeedLink INFO documents: protocol 3 XML (in chained miniSEED ``SLINFO`` packets) and
protocol 4 JSON (one ``J`` packet, FDSN SeedLink 4 schema).

Levels: ID, CAPABILITIES, STATIONS, STREAMS, GAPS, CONNECTIONS, ALL in protocol 3 (SeisComP
layout: ``<seedlink>`` → ``<station>`` → ``<stream>`` → ``<gap>``, and ``<connection>`` under
each station a client is streaming); ID, CAPABILITIES, FORMATS, STATIONS, STREAMS, CONNECTIONS in
protocol 4, with the optional station / stream[.format] patterns of the v4 INFO command.

>>> st = StationInfo("BW", "UH1", 1, 3, (("", "SHZ", "D", 0, 10**9),), (((5, 6),),))
>>> "<gap " in info_xml("GAPS", "org", [st]) and "<gap " not in info_xml("STREAMS", "org", [st])
True
>>> json.loads(info_json("STATIONS", "org", [st], station="BW_UH2"))["station"]
[]
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime, UTC
from xml.sax.saxutils import quoteattr

import pymseed

from geosentry.stream.records import ns_to_iso
from geosentry.stream.seedlink.protocol import (CAPABILITIES_V4, LEGACY_CAPABILITIES, SOFTWARE,
                                      V3_SEQ_MODULUS, stream_id)

V3_LEVELS = ("ID", "CAPABILITIES", "STATIONS", "STREAMS", "GAPS", "CONNECTIONS", "ALL")
V4_LEVELS = ("ID", "CAPABILITIES", "FORMATS", "STATIONS", "STREAMS", "CONNECTIONS")


@dataclass(frozen=True)
class StationInfo:
    network: str
    station: str
    begin_seq: int
    end_seq: int  # next sequence number (last available + 1)
    streams: tuple[tuple[str, str, str, int, int], ...]  # loc, cha, type, begin_ns, end_ns
    gaps: tuple[tuple[tuple[int, int], ...], ...] = ()  # per stream: its (begin_ns, end_ns) gaps

    @property
    def id(self) -> str:
        return f"{self.network}_{self.station}"

    def stream_gaps(self, i: int) -> tuple[tuple[int, int], ...]:
        return self.gaps[i] if i < len(self.gaps) else ()


@dataclass(frozen=True)
class ConnectionInfo:
    """One client session as INFO CONNECTIONS shows it."""

    host: str
    port: int
    connected_ns: int
    protocol: str  # "3" or "4"
    tls: bool
    useragent: str
    state: str  # handshake, real-time, dial-up, window, ended
    packets: int
    bytes: int
    current_seq: dict[str, int]  # station id -> last sequence number sent
    begin_seq: dict[str, int]  # station id -> first sequence number sent


def _v3_time(t_ns: int) -> str:
    return ns_to_iso(t_ns).replace("-", "/").replace("T", " ").rstrip("Z")[:-2]


def _station_attrs(st: StationInfo) -> str:
    return (f'name="{st.station}" network="{st.network}" description="" '
            f'begin_seq="{st.begin_seq % V3_SEQ_MODULUS:06X}" '
            f'end_seq="{st.end_seq % V3_SEQ_MODULUS:06X}"')


def _connection_xml(c: ConnectionInfo, sid: str) -> str:
    seq, begin = c.current_seq.get(sid), c.begin_seq.get(sid)
    return (f'    <connection host={quoteattr(c.host)} port="{c.port}" '
            f'ctime="{_v3_time(c.connected_ns)}" '
            f'begin_seq="{(begin or 0) % V3_SEQ_MODULUS:06X}" '
            f'current_seq="{(seq or 0) % V3_SEQ_MODULUS:06X}" sequence_gaps="0" '
            f'txcount="{c.packets}" totBytes="{c.bytes}" '
            f'begin_seq_valid="{"yes" if begin is not None else "no"}" '
            f'realtime="{"yes" if c.state == "real-time" else "no"}" '
            f'end_of_data="{"yes" if c.state == "ended" else "no"}" '
            f'useragent={quoteattr(c.useragent)}/>')


def info_xml(level: str, organization: str, stations: list[StationInfo],
             connections: list[ConnectionInfo] | None = None, started_ns: int = 0) -> str:
    """Protocol 3 INFO document for one of ``V3_LEVELS``."""
    head = (f'<?xml version="1.0"?>\n<seedlink software={quoteattr(SOFTWARE)} '
            f'organization={quoteattr(organization)} started="{_v3_time(started_ns)}">\n')
    body: list[str] = []
    streams = level in ("STREAMS", "GAPS", "ALL")
    gaps = level in ("GAPS", "ALL")
    conns = (connections or []) if level in ("CONNECTIONS", "ALL") else []
    if level == "CAPABILITIES":
        body = [f'<capability name="{c}"/>' for c in LEGACY_CAPABILITIES]
    elif level in ("STATIONS", "STREAMS", "GAPS", "CONNECTIONS", "ALL"):
        for st in stations:
            children: list[str] = []
            for i, (loc, cha, typ, b, e) in enumerate(st.streams if streams else ()):
                attrs = (f'location="{loc}" seedname="{cha}" type="{typ}" '
                         f'begin_time="{_v3_time(b)}" end_time="{_v3_time(e)}"')
                spans = st.stream_gaps(i) if gaps else ()
                if not spans:
                    children.append(f"  <stream {attrs}/>")
                    continue
                children.append(f'  <stream {attrs} gap_check="enabled">')
                children += [f'    <gap begin_time="{_v3_time(gb)}" end_time="{_v3_time(ge)}"/>'
                             for gb, ge in spans]
                children.append("  </stream>")
            children += [_connection_xml(c, st.id) for c in conns if st.id in c.current_seq]
            if level == "STATIONS" or not children:
                body.append(f"<station {_station_attrs(st)}/>")
            else:
                body += [f'<station {_station_attrs(st)} stream_check="enabled">', *children,
                         "</station>"]
    return head + "\n".join(body) + ("\n" if body else "") + "</seedlink>\n"


def _stream_doc(st: StationInfo, i: int, fs_pattern: str) -> dict[str, object] | None:
    loc, cha, typ, b, e = st.streams[i]
    if not fnmatch.fnmatchcase("2" + typ, fs_pattern + "*"):
        return None
    return {"id": stream_id(loc, cha), "format": "2", "subformat": typ, "origin": "native",
            "start_time": ns_to_iso(b), "end_time": ns_to_iso(e)}


def _connection_doc(c: ConnectionInfo) -> dict[str, object]:
    """One client, with ringserver's key names (what libslink and seedlink-client parse)."""
    return {"host": c.host, "ip_address": c.host, "client_port": str(c.port), "type": "SeedLink",
            "client_id": c.useragent, "connect_time": ns_to_iso(c.connected_ns),
            "protocol_version": "4.0" if c.protocol == "4" else "3.1", "tls": c.tls,
            "state": c.state, "transmit_packets": c.packets, "transmit_bytes": c.bytes,
            "station": [{"id": sid, "start_seq": c.begin_seq.get(sid), "current_seq": seq}
                        for sid, seq in sorted(c.current_seq.items())]}


def info_json(level: str, organization: str, stations: list[StationInfo],
              error: tuple[str, str] | None = None, *, station: str = "*", stream: str = "*",
              connections: list[ConnectionInfo] | None = None, started_ns: int = 0) -> bytes:
    """Protocol 4 INFO document; ``station`` / ``stream[.FS]`` are the optional v4 patterns."""
    doc: dict[str, object] = {"software": SOFTWARE, "organization": organization}
    stream_pat, _, fs_pat = stream.upper().partition(".")
    station = station.upper()
    if error is not None:
        doc["error"] = {"code": error[0], "message": error[1]}
    elif level == "ID":
        doc["server_start"] = ns_to_iso(started_ns)
    elif level == "CAPABILITIES":
        doc["capability"] = list(CAPABILITIES_V4)
    elif level == "FORMATS":
        doc["format"] = {"2": {"mimetype": "application/vnd.fdsn.mseed",
                               "subformat": {"D": "data/generic", "E": "event detection",
                                             "C": "calibration", "T": "timing exception",
                                             "L": "log", "O": "opaque"}}}
    elif level == "CONNECTIONS":
        clients = [_connection_doc(c) for c in connections or []
                   if station == "*" or any(fnmatch.fnmatchcase(s, station)
                                            for s in c.current_seq)]
        doc["connections"] = {"client": clients, "client_count": len(clients)}
    elif level in ("STATIONS", "STREAMS"):
        out: list[dict[str, object]] = []
        for st in stations:
            if not fnmatch.fnmatchcase(st.id, station):
                continue
            entry: dict[str, object] = {"id": st.id, "description": "", "start_seq": st.begin_seq,
                                        "end_seq": st.end_seq, "backfill": 0}
            if level == "STREAMS":
                docs = [_stream_doc(st, i, fs_pat or "*") for i, s in enumerate(st.streams)
                        if fnmatch.fnmatchcase(stream_id(s[0], s[1]), stream_pat)]
                entry["stream"] = [d for d in docs if d is not None]
            out.append(entry)
        doc["station"] = out
    return json.dumps(doc).encode()


def info_records_v3(xml: str) -> list[bytes]:
    """The XML as chained 512-byte miniSEED 2 text records (``SL.INFO..LOG``)."""
    msr = pymseed.MS3Record()
    msr.reclen, msr.formatversion = 512, 2
    msr.encoding = pymseed.DataEncoding.TEXT
    msr.sourceid = pymseed.nslc2sourceid("SL", "INFO", "", "LOG")
    msr.samprate = 0
    msr.set_starttime_str(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return list(msr.generate(xml.encode(), "t"))


def info_packets_v3(xml: str) -> bytes:
    records = info_records_v3(xml)
    return b"".join((b"SLINFO *" if i < len(records) - 1 else b"SLINFO  ") + rec
                    for i, rec in enumerate(records))
