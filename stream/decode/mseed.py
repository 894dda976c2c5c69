"""miniSEED decoding with pymseed (libmseed 3): 2 and 3, Steim1/2, integer and float encodings.

A live feed delivers one small record per packet, so per-record Python overhead is what decoding
costs: ``decode_payload`` calls libmseed's parser through pymseed's own CFFI binding
(``pymseed.clib``) and reads the parsed header fields directly (about 3x fewer Python calls than
``MS3Record.from_buffer`` and its properties). Any status other than success is handed to
``from_buffer``, which words the error, so both paths decode the same and fail the same
(``tests/stream/test_decode.py``).

>>> from stream.testing import synthetic_mseed
>>> payload = synthetic_mseed("XX.TEST..HHZ", n_samples=300)
>>> [(r.sid, r.sampling_rate_hz) for r in decode_payload(payload, arrival_ns=0)][:1]
[('XX.TEST..HHZ', 100.0)]
"""

from __future__ import annotations

import functools
import io
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import obspy
import pymseed
from pymseed.clib import clibmseed, ffi
from pymseed.logging import ensure_thread_logging

from stream.errors import DecodeError
from stream.records import Record, SourceRef

MAX_RATE_HZ = 10_000.0
#: pymseed sample types the service decodes (text records are rejected)
SAMPLE_DTYPES = {"i": np.dtype(np.int32), "f": np.dtype(np.float32), "d": np.dtype(np.float64)}


@functools.lru_cache(maxsize=65536)
def _nslc(sourceid: str) -> tuple[str, str, str, str]:
    """Network, station, location, channel of a FDSN source id (cached: ids repeat per record)."""
    try:
        net, sta, loc, cha = pymseed.sourceid2nslc(sourceid)
    except Exception as exc:  # pymseed raises its own error types for malformed ids
        raise DecodeError(f"malformed source id {sourceid!r}") from exc
    return str(net), str(sta), str(loc), str(cha)


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
            rec = _record(ffi.string(msr.sid).decode("utf-8"),
                          -1.0 / rate if rate < 0.0 else rate,  # negative: a period (libmseed)
                          int(msr.numsamples), None if kind == b"\x00" else kind.decode("ascii"),
                          lambda nbytes: ffi.buffer(msr.datasamples, nbytes),
                          int(msr.starttime), arrival_ns, ref)
            if rec is not None:
                out.append(rec)
            else:
                sid = ffi.string(msr.sid).decode("utf-8")
    finally:
        ffi.release(buf)
    if not out:
        raise DecodeError("payload holds no data samples", sid and ".".join(_nslc(sid)))
    return out


def _record(sourceid: str, rate: float, n: int, kind: str | None,
            samples: Callable[[int], Any], start_ns: int, arrival_ns: int,
            ref: SourceRef | None) -> Record | None:
    """One parsed record's fields as a ``Record`` (None for one without samples), for both
    parse paths. ``samples(nbytes)`` gives libmseed's sample buffer, only read once the header
    checks pass, and copied by ``astype`` before the record is freed or reused."""
    net, sta, loc, cha = _nslc(sourceid)
    sid = f"{net}.{sta}.{loc}.{cha}"
    if not (math.isfinite(rate) and 0.0 < rate <= MAX_RATE_HZ):
        raise DecodeError(f"impossible sample rate {rate} Hz", sid)
    if len(cha) == 1:  # USGS geomag element-only channel ("H", "U") -> SEED "LFH"
        cha = f"{geomag_band_code(rate)}F{cha}"
    if n == 0:
        return None  # empty / log records carry no samples
    dtype = SAMPLE_DTYPES.get(kind) if kind is not None else None
    if dtype is None:
        raise DecodeError(f"unsupported sample type {kind!r}", sid)
    data = np.frombuffer(samples(n * dtype.itemsize), dtype=dtype, count=n).astype(np.float64)
    if kind != "i" and not np.isfinite(data).all():  # integers are always finite
        raise DecodeError("non-finite samples (NaN/inf)", sid)
    return Record(net, sta, loc, cha, start_ns, rate, data, arrival_ns, ref)


def _decode_with_pymseed(payload: bytes, arrival_ns: int,
                         ref: SourceRef | None = None) -> list[Record]:
    """``decode_payload`` through pymseed's public reader (its error messages)."""
    out: list[Record] = []
    sid: str | None = None
    try:
        for msr in pymseed.MS3Record.from_buffer(payload, unpack_data=True):
            sid = ".".join(_nslc(msr.sourceid))
            rec = _record(msr.sourceid, float(msr.samprate), msr.numsamples, msr.sampletype,
                          lambda _: msr.datasamples, int(msr.starttime), arrival_ns, ref)
            if rec is not None:
                out.append(rec)
    except DecodeError:
        raise
    except pymseed.MiniSEEDError as exc:
        raise DecodeError(f"corrupt miniSEED ({exc})", sid) from exc
    if not out and payload:
        raise DecodeError("payload holds no data samples", sid)
    return out


def split_records(buffer: bytes) -> Iterator[tuple[bytes, int | None]]:
    """Split a file's bytes into single-record payloads without unpacking samples.

    Yields ``(payload, end_ns)``; ``end_ns`` is ``None`` for a corrupt stretch, which is skipped
    in 64-byte steps (the smallest miniSEED 2 record) so one bad record does not lose the rest.
    The corrupt bytes are still yielded: decoding them fails and is counted like any bad record.
    """
    pos, size = 0, len(buffer)
    while pos < size:
        try:
            for msr in pymseed.MS3Record.from_buffer(memoryview(buffer)[pos:], unpack_data=False):
                reclen = int(msr.reclen)
                yield bytes(buffer[pos:pos + reclen]), int(msr.endtime)
                pos += reclen
            return
        except pymseed.MiniSEEDError:
            nxt = (pos // 64 + 1) * 64
            yield bytes(buffer[pos:nxt]), None
            pos = nxt


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
