"""miniSEED decoding with pymseed (libmseed 3): 2 and 3, Steim1/2, integer and float encodings.

A live feed delivers one small record per packet, so per-record Python overhead is what decoding
costs: ``decode_payload`` calls libmseed's parser through pymseed's own CFFI binding
(``pymseed.clib``) and reads the parsed header fields directly (about 3x fewer Python calls than
``MS3Record.from_buffer`` and its properties). Any status other than success is handed to
``from_buffer``, which words the error, so both paths decode the same and fail the same
(``tests/stream/test_decode.py``).

Every failure is a ``DecodeError`` whose ``reason`` is one of ``DecodeReason`` (a fixed set: it is
a metrics label), never another exception type: header values are checked before samples are
read (rate, time span, sample count), ids that are not UTF-8 are refused, and NaN/inf samples
are refused (``non_finite``). ``split_records`` cuts a file into records and, after corrupt or
truncated bytes, resynchronises on the next parseable record header at any byte offset
(``tests/stream/test_decode_hardening.py``, ``tests/stream/test_decode_fuzz.py``).

>>> from geosentry.stream.testing import synthetic_mseed
>>> payload = synthetic_mseed("XX.TEST..HHZ", n_samples=300)
>>> [(r.sid, r.sampling_rate_hz) for r in decode_payload(payload, arrival_ns=0)][:1]
[('XX.TEST..HHZ', 100.0)]
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import obspy
import pymseed
from pymseed.clib import clibmseed, ffi
from pymseed.logging import ensure_thread_logging

from geosentry.stream.errors import DecodeError, DecodeReason
from geosentry.stream.records import NS_PER_S, Record, SourceRef

MAX_RATE_HZ = 10_000.0
#: lowest accepted rate: a period of about 11.6 days, below every SEED band code in use (the
#: slowest, P, is one sample a day); anything slower is a corrupt header (e.g. 1e-30 Hz)
MIN_RATE_HZ = 1e-6
#: accepted data times: after libmseed's error stamp (``NSTERROR``, 1902-01-01) and before
#: 2200-01-01 (int64 nanoseconds end in 2262)
MIN_TIME_NS = int(clibmseed.NSTERROR) + 1
MAX_TIME_NS = 7_258_118_400 * NS_PER_S
#: pymseed sample types the service decodes (text records are rejected)
SAMPLE_DTYPES: dict[str, np.dtype[Any]] = {"i": np.dtype(np.int32), "f": np.dtype(np.float32),
                                           "d": np.dtype(np.float64)}


@functools.lru_cache(maxsize=65536)
def _nslc(sourceid: str) -> tuple[str, str, str, str]:
    """Network, station, location, channel of a FDSN source id (cached: ids repeat per record)."""
    try:
        net, sta, loc, cha = pymseed.sourceid2nslc(sourceid)
    except Exception as exc:  # pymseed raises its own error types for malformed ids
        raise DecodeError(f"malformed source id {sourceid!r}",
                          reason=DecodeReason.BAD_SID) from exc
    return str(net), str(sta), str(loc), str(cha)


def _sid_text(raw: bytes) -> str:
    """A record's source id as text; one that is not UTF-8 is a ``bad_sid`` decode error (it
    would otherwise raise ``UnicodeDecodeError`` and end the whole source)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"source id is not UTF-8 ({raw[:64]!r})",
                          reason=DecodeReason.BAD_SID) from exc


#: libmseed status codes with one meaning (``MS_GENERROR`` is worded, see ``_MESSAGE_REASONS``)
_STATUS_REASONS = {
    clibmseed.MS_ENDOFFILE: DecodeReason.TRUNCATED,
    clibmseed.MS_NOTSEED: DecodeReason.NOT_MSEED,
    clibmseed.MS_WRONGLENGTH: DecodeReason.BAD_LENGTH,
    clibmseed.MS_OUTOFRANGE: DecodeReason.BAD_LENGTH,
    clibmseed.MS_UNKNOWNFORMAT: DecodeReason.BAD_ENCODING,
    clibmseed.MS_STBADCOMPFLAG: DecodeReason.BAD_ENCODING,
    clibmseed.MS_INVALIDCRC: DecodeReason.BAD_CRC,
}
#: words of libmseed's generic-error messages -> reason, first match wins
_MESSAGE_REASONS = (
    (("year", "day-of-year", "time"), DecodeReason.BAD_TIME),
    (("sample rate", "samprate"), DecodeReason.BAD_RATE),
    (("encoding", "steim", "frame", "compression"), DecodeReason.BAD_ENCODING),
    (("sample",), DecodeReason.BAD_SAMPLES),
    (("record length", "reclen"), DecodeReason.BAD_LENGTH),
    (("blockette", "offset", "header"), DecodeReason.BAD_HEADER),
    (("crc",), DecodeReason.BAD_CRC),
)


def _libmseed_reason(exc: pymseed.MiniSEEDError) -> DecodeReason:
    """The fixed reason of a libmseed failure (its status code, else the words it logged)."""
    code = int(exc.status_code)
    if code > 0:
        return DecodeReason.TRUNCATED  # "this many more bytes needed"
    if code in _STATUS_REASONS:
        return _STATUS_REASONS[code]
    text = re.sub(r"fdsn:\S*", "", " ".join(exc.error_messages).lower())  # not the id's words
    for words, reason in _MESSAGE_REASONS:
        if any(w in text for w in words):
            return reason
    return DecodeReason.CORRUPT


def geomag_band_code(rate_hz: float) -> str:
    """USGS/INTERMAGNET SEED band code of a geomagnetic sampling rate (10 Hz B, 1 s L, 1 min U,
    1 h R, 1 d P)."""
    for code, rate in (("B", 10.0), ("L", 1.0), ("U", 1 / 60), ("R", 1 / 3600), ("P", 1 / 86400)):
        if rate_hz >= rate * 0.5:
            return code
    return "P"


#: what ``MS3Record.from_buffer(payload, unpack_data=True)`` asks of libmseed
_PARSE_FLAGS = (clibmseed.MSF_UNPACKDATA | clibmseed.MSF_VALIDATECRC | clibmseed.MSF_ATENDOFFILE)


_local = threading.local()


def _thread_record() -> Any:
    """This thread's ``MS3Record **``, reused by every parse (freed with the thread). Each C
    call releases the GIL, and getting it back while inference threads run can take a while,
    so the decode path makes as few as it can: no allocation or free per record."""
    ptr = getattr(_local, "msr_ptr", None)
    if ptr is None:
        ensure_thread_logging()  # libmseed's messages to pymseed's registry, not to stderr
        ptr = _local.msr_ptr = ffi.gc(ffi.new("MS3Record **"), clibmseed.msr3_free)
    return ptr


def decode_payload(payload: bytes, arrival_ns: int, ref: SourceRef | None = None) -> list[Record]:
    """Decode every miniSEED record in ``payload``.

    Raises ``DecodeError`` (with the SEED id when the header was readable) for truncated or
    corrupt bytes, impossible sample rates and non-finite samples. A payload either decodes
    completely or raises: callers count the error and move on.
    """
    out: list[Record] = []
    size = len(payload)
    if size < clibmseed.MINRECLEN:
        return _decode_with_pymseed(payload, arrival_ns, ref)
    msr_ptr = _thread_record()
    buf = ffi.from_buffer(payload)
    offset = 0
    sid: str | None = None
    try:
        while offset < size:
            if size - offset < clibmseed.MINRECLEN or clibmseed.msr3_parse(
                    buf + offset, size - offset, msr_ptr, _PARSE_FLAGS, 0) != clibmseed.MS_NOERROR:
                return _decode_with_pymseed(payload, arrival_ns, ref)  # words the error
            msr = msr_ptr[0]
            offset += msr.reclen
            rate = float(msr.samprate)
            kind = msr.sampletype
            rec = _record(_sid_text(ffi.string(msr.sid)),
                          -1.0 / rate if rate < 0.0 else rate,  # negative: a period (libmseed)
                          int(msr.numsamples), None if kind == b"\x00" else kind.decode("ascii"),
                          lambda nbytes: ffi.buffer(msr.datasamples, nbytes),  # noqa: B023 (called now)
                          int(msr.starttime), arrival_ns, ref)
            if rec is not None:
                out.append(rec)
            else:
                sid = _sid_text(ffi.string(msr.sid))
    finally:
        ffi.release(buf)
    if not out:
        raise DecodeError("payload holds no data samples", sid and ".".join(_nslc(sid)),
                          DecodeReason.NO_DATA)
    return out


def _record(sourceid: str, rate: float, n: int, kind: str | None,
            samples: Callable[[int], Any], start_ns: int, arrival_ns: int,
            ref: SourceRef | None) -> Record | None:
    """One parsed record's fields as a ``Record`` (None for one without samples), for both
    parse paths. ``samples(nbytes)`` gives libmseed's sample buffer, only read once the header
    checks pass, and copied by ``astype`` before the record is freed or reused."""
    net, sta, loc, cha = _nslc(sourceid)
    sid = f"{net}.{sta}.{loc}.{cha}"
    if not (math.isfinite(rate) and MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
        raise DecodeError(f"impossible sample rate {rate} Hz", sid, DecodeReason.BAD_RATE)
    if not MIN_TIME_NS <= start_ns <= MAX_TIME_NS - max(0, n - 1) * NS_PER_S / rate:
        raise DecodeError(f"start time {start_ns} ns and {n} samples at {rate} Hz are outside "
                          "the years 1902-2200", sid, DecodeReason.BAD_TIME)
    if len(cha) == 1:  # USGS geomag element-only channel ("H", "U") -> SEED "LFH"
        cha = f"{geomag_band_code(rate)}F{cha}"
    if n == 0:
        return None  # empty / log records carry no samples
    dtype = SAMPLE_DTYPES.get(kind) if kind is not None else None
    if dtype is None:
        raise DecodeError(f"unsupported sample type {kind!r}", sid, DecodeReason.UNSUPPORTED)
    data = np.frombuffer(samples(n * dtype.itemsize), dtype=dtype, count=n).astype(np.float64)
    if kind != "i" and not np.isfinite(data).all():  # integers are always finite
        raise DecodeError("non-finite samples (NaN/inf)", sid, DecodeReason.NON_FINITE)
    return Record(net, sta, loc, cha, start_ns, rate, data, arrival_ns, ref)


def _decode_with_pymseed(payload: bytes, arrival_ns: int,
                         ref: SourceRef | None = None) -> list[Record]:
    """``decode_payload`` through pymseed's public reader (its error messages)."""
    out: list[Record] = []
    sid: str | None = None
    try:
        for msr in pymseed.MS3Record.from_buffer(payload, unpack_data=True):
            try:
                sourceid = msr.sourceid
            except UnicodeDecodeError as exc:
                sourceid = _sid_text(bytes(exc.object))  # raises, worded as the direct path
            sid = ".".join(_nslc(sourceid))
            rec = _record(sourceid, float(msr.samprate), msr.numsamples, msr.sampletype,
                          lambda _: msr.datasamples,  # noqa: B023 (called in this iteration)
                          int(msr.starttime), arrival_ns, ref)
            if rec is not None:
                out.append(rec)
    except DecodeError:
        raise
    except pymseed.MiniSEEDError as exc:
        raise DecodeError(f"corrupt miniSEED ({exc})", sid, _libmseed_reason(exc)) from exc
    if not out and payload:
        raise DecodeError("payload holds no data samples", sid, DecodeReason.NO_DATA)
    return out


#: where a record may start: libmseed's ``MS2_ISVALIDHEADER`` first 8 bytes (sequence number
#: of digits, spaces or NULs, a quality indicator, a space or NUL) or ``MS3_ISVALIDHEADER``'s
#: "MS" + version 3; a match is only a candidate until libmseed parses a header there
_HEADER_START = re.compile(rb"MS\x03|[0-9 \x00]{6}[DRQM][ \x00]")
#: header-only parse: record length and end time, no samples
_SPLIT_FLAGS = clibmseed.MSF_VALIDATECRC | clibmseed.MSF_ATENDOFFILE


class _HeaderReader:
    """Parses record headers at given offsets of one buffer (libmseed, samples not unpacked)."""

    def __init__(self, buffer: bytes) -> None:
        ensure_thread_logging()
        self.size = len(buffer)
        self.buffer = buffer
        self._buf = ffi.from_buffer(buffer)
        self._msr = ffi.gc(ffi.new("MS3Record **"), clibmseed.msr3_free)

    def parse(self, pos: int) -> tuple[int, int] | None:
        """``(record length, end time ns)`` of a whole record at ``pos``, None if there is none."""
        left = self.size - pos
        if left < clibmseed.MINRECLEN or clibmseed.msr3_parse(
                self._buf + pos, left, self._msr, _SPLIT_FLAGS, 0) != clibmseed.MS_NOERROR:
            return None
        msr = self._msr[0]
        reclen = int(msr.reclen)
        if not 0 < reclen <= left:
            return None
        return reclen, int(clibmseed.msr3_endtime(msr))

    def next_record(self, start: int, before: int) -> int | None:
        """Offset of the first parseable record header in ``[start, before)``, any alignment."""
        endpos = min(self.size, before + 8)  # a candidate starting just before ``before``
        while (m := _HEADER_START.search(self.buffer, start, endpos)) is not None:
            if m.start() >= before:
                return None
            if self.parse(m.start()) is not None:
                return m.start()
            start = m.start() + 1
        return None

    def close(self) -> None:
        ffi.release(self._buf)


def split_records(buffer: bytes) -> Iterator[tuple[bytes, int | None]]:
    """Split a file's bytes into single-record payloads without unpacking samples.

    Yields ``(payload, end_ns)``. ``end_ns`` is ``None`` for a corrupt stretch: bytes where no
    record header parses, or a record cut short by the next one (a parseable header starting
    inside the length its own header claims, which a truncated record followed by a whole one
    looks like). Reading resumes at the next parseable miniSEED 2 or 3 record header at *any*
    byte offset, so one bad record costs only itself; the corrupt bytes are still yielded as
    one payload, whose decoding fails and is counted like any bad record.
    """
    for _, payload, end_ns in split_records_at(buffer):
        yield payload, end_ns


def split_records_at(buffer: bytes) -> Iterator[tuple[int, bytes, int | None]]:
    """``split_records`` with each payload's byte offset in ``buffer``: ``(offset, payload,
    end_ns)``, payloads in file order (for warnings that name where a bad record is)."""
    reader = _HeaderReader(buffer)
    pos, size = 0, len(buffer)
    try:
        while pos < size:
            parsed = reader.parse(pos)
            if parsed is None:
                nxt = reader.next_record(pos + 1, size)
                nxt = size if nxt is None else nxt
                yield pos, bytes(buffer[pos:nxt]), None
                pos = nxt
                continue
            reclen, end_ns = parsed
            inner = reader.next_record(pos + 1, pos + reclen)
            if inner is not None:  # cut short by the record at ``inner``
                yield pos, bytes(buffer[pos:inner]), None
                pos = inner
                continue
            yield pos, bytes(buffer[pos:pos + reclen]), end_ns
            pos += reclen
    finally:
        reader.close()


def encode_traces(traces: obspy.Trace | obspy.Stream, reclen: int = 512,
                  encoding: str | None = None) -> list[bytes]:
    """miniSEED 2 records, one ``bytes`` each: ``encoding`` (an ObsPy name), by default Steim2
    for int32 samples and FLOAT64 otherwise."""
    st = obspy.Stream([traces]) if isinstance(traces, obspy.Trace) else traces
    out: list[bytes] = []
    for tr in st:
        buf = io.BytesIO()
        enc = encoding or ("STEIM2" if tr.data.dtype == np.int32 else "FLOAT64")
        tr.write(buf, format="MSEED", reclen=reclen, encoding=enc)
        raw = buf.getvalue()
        out.extend(raw[i:i + reclen] for i in range(0, len(raw), reclen))
    return out
