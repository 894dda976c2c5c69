"""SeedLink wire codec shared by the replay server: headers, selectors, times, sequences.

Pure functions, no I/O. Protocol 3 packets are ``"SL"`` + 6 hex digits (24-bit sequence) + one
512-byte miniSEED 2 record; INFO replies are XML carried as text in chained miniSEED "LOG"
records behind ``"SLINFO *"`` (more follow) / ``"SLINFO  "`` (last) headers. Protocol 4 packets
are ``"SE"`` + format + subformat + payload length (u32 LE) + 64-bit sequence (u64 LE) + station
id length (u8) + station id + payload; INFO replies are one JSON packet (format ``J``). INFO
documents are built in ``info.py``.

>>> v3_header(0x1A2B)
b'SL001A2B'
>>> len(v4_header("2", "D", 512, 7, "BW_UH1"))
23
>>> SelectorSet.parse(["SHZ"], v4=False).matches("", "SHZ", "D")
True
>>> SelectorSet.parse(["*_S_H_?"], v4=True).matches("", "SHZ", "D")
True
>>> parse_time_ns("2010,05,27,16,24,33") == parse_time_ns("2010-05-27T16:24:33Z")
True
>>> hex(resolve_v3_seq(0x000002, 0x1000005)), hex(resolve_v3_seq(0xFFFFFE, 0x1000005))
('0x1000002', '0xfffffe')
"""

from __future__ import annotations

import fnmatch
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, UTC

from geosentry.stream.records import NS_PER_S

V3_SEQ_MODULUS = 1 << 24
_V4_HEADER = struct.Struct("<2sccIQB")
SOFTWARE = "SeedLink v4.0 (geosentry 0.1)"
#: libslink (slinktool, slarchive, SeisComP and Earthworm clients) reads each HELLO line into a
#: 200-byte buffer: a longer line is cut and every later reply is read one line off
MAX_HELLO_LINE = 190
CAPABILITIES_V4 = ("SLPROTO:3.1", "SLPROTO:4.0", "CAP", "EXTREPLY", "NSWILDCARD", "BATCH",
                   "MULTISTATION", "TIME", "INFO:ID", "INFO:CAPABILITIES", "INFO:STATIONS",
                   "INFO:STREAMS", "INFO:GAPS", "INFO:CONNECTIONS", "INFO:ALL")
AUTH_CAPABILITIES = ("AUTH:USERPASS", "AUTH:JWT")  # with a users file (serve-seedlink --users)
LEGACY_CAPABILITIES = ("dialup", "multistation", "window-extraction", "info:id",
                       "info:capabilities", "info:stations", "info:streams", "info:gaps",
                       "info:connections", "info:all")
_V3_SELECTOR = re.compile(r"^([A-Z0-9?\-]{2})?([A-Z0-9?]{3})(\.[DECOTL?])?$")
_V4_SELECTOR = re.compile(r"^([A-Z0-9_?*\-]+)(\.[A-Z0-9?*]{1,2})?(:[A-Z0-9]+)?$")


class ProtocolError(ValueError):
    """A command's arguments are invalid; ``code`` is the v4 error code."""

    def __init__(self, message: str, code: str = "ARGUMENTS") -> None:
        super().__init__(message)
        self.code = code


def v3_header(seq: int) -> bytes:
    return b"SL%06X" % (seq % V3_SEQ_MODULUS)


def v4_header(fmt: str, subformat: str, length: int, seq: int, station_id: str) -> bytes:
    sid = station_id.encode("ascii")
    return _V4_HEADER.pack(b"SE", fmt.encode(), subformat.encode(), length, seq, len(sid)) + sid


def stream_id(location: str, channel: str) -> str:
    """v4 stream id ``LOC_B_S_SS`` from SEED location/channel (``"" , "SHZ"`` -> ``_S_H_Z``)."""
    return f"{location}_" + "_".join(channel) if len(channel) == 3 else f"{location}_{channel}"


def _v3_to_v4(selector: str) -> str:
    """``[LL]CCC[.T]`` -> ``LOC_B_S_SS[.2T]`` pattern (``--`` = empty location)."""
    m = _V3_SELECTOR.match(selector)
    if m is None:
        raise ProtocolError(f"invalid selector {selector!r} (expected [LL]CCC[.T])")
    loc, cha, typ = m.group(1), m.group(2), m.group(3)
    loc_pat = "*" if loc is None else loc.replace("-", "")
    return f"{loc_pat}_{'_'.join(cha)}" + (f".2{typ[1]}" if typ else "")


@dataclass
class SelectorSet:
    """Positive and negative stream selectors of one station request (none = everything)."""

    include: list[tuple[str, str]] = field(default_factory=list)
    exclude: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, selectors: list[str], v4: bool) -> SelectorSet:
        out = cls()
        for raw in selectors:
            out.add(raw, v4)
        return out

    def add(self, raw: str, v4: bool) -> None:
        neg = raw.startswith("!")
        text = raw[1:] if neg else raw
        upper = text.upper()
        if v4 and "_" in upper:
            m = _V4_SELECTOR.match(upper)
            if m is None:
                raise ProtocolError(f"invalid selector {raw!r} (expected LOC_B_S_SS[.FS])")
            stream_pat, fs = m.group(1), (m.group(2) or ".*")[1:]
            if len(fs) == 1 and fs.isalpha():
                # a subformat alone (``*_B_H_Z.D``, what libslink sends): any format, that type
                fs = "?" + fs
        else:
            stream_pat, _, fs = _v3_to_v4(upper).partition(".")
            fs = fs or "*"
        (self.exclude if neg else self.include).append((stream_pat, fs))

    def matches(self, location: str, channel: str, record_type: str) -> bool:
        sid, fs = stream_id(location, channel), "2" + record_type

        def hit(pats: list[tuple[str, str]]) -> bool:
            return any(fnmatch.fnmatchcase(sid, s) and fnmatch.fnmatchcase(fs, f + "*")
                       for s, f in pats)

        return (not self.include or hit(self.include)) and not hit(self.exclude)


def parse_time_ns(text: str) -> int:
    """SeedLink time: v3 ``Y,M,D,h,m,s[,ns]`` or v4 ISO ``YYYY-MM-DDThh:mm:ss[.f]Z``."""
    try:
        if "," in text:
            parts = [int(p) for p in text.split(",")]
            if len(parts) not in (6, 7):
                raise ValueError(text)
            year, month, day, hour, minute, second = parts[:6]
            dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            return int(dt.timestamp()) * NS_PER_S + (parts[6] if len(parts) == 7 else 0)
        t = text.rstrip("Z")
        whole, _, frac = t.partition(".")
        dt = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return int(dt.timestamp()) * NS_PER_S + int((frac + "000000000")[:9] or 0)
    except ValueError as exc:
        raise ProtocolError(f"invalid time {text!r}") from exc


def parse_seq(text: str, v4: bool) -> int | None:
    """Sequence argument of DATA/FETCH: decimal in v4 (-1 = next), hex in v3; None = next.

    ``ALL`` (sent by libslink-style clients for "everything held") is None too: this replay
    server starts DATA/FETCH without a sequence at the oldest record anyway."""
    if text.upper() == "ALL":
        return None
    try:
        value = int(text, 10 if v4 else 16)
    except ValueError as exc:
        raise ProtocolError(f"invalid sequence number {text!r}") from exc
    return None if value < 0 else value


def resolve_v3_seq(seq24: int, newest_seq: int) -> int:
    """The largest 64-bit sequence <= newest+1 whose low 24 bits are ``seq24``."""
    candidate = (newest_seq + 1) - ((newest_seq + 1 - seq24) % V3_SEQ_MODULUS)
    return candidate if candidate >= 0 else seq24


def hello_reply(organization: str, extra: tuple[str, ...] = ()) -> bytes:
    """The two HELLO lines: software and capabilities (``extra`` after the protocol versions),
    then the organization; each at most ``MAX_HELLO_LINE`` characters (capabilities that do not
    fit are left for GETCAPABILITIES).

    >>> all(len(line) <= MAX_HELLO_LINE for line in hello_reply("x" * 500).splitlines())
    True
    """
    line = SOFTWARE + " ::"
    for cap in CAPABILITIES_V4[:2] + extra + CAPABILITIES_V4[2:]:
        if len(line) + 1 + len(cap) > MAX_HELLO_LINE:
            break
        line += " " + cap
    org = organization.replace("\r", " ").replace("\n", " ")[:MAX_HELLO_LINE]
    return f"{line}\r\n{org}\r\n".encode()
