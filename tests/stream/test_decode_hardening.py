"""Decoder hardening regressions (issue "Hardening"): every bad header field, non-UTF-8 ids,
truncated records inside a file, and the reason label set, on real miniSEED bytes.

The byte-patching helpers here (miniSEED 2 fixed header / blockette 1000, miniSEED 3 header
with its CRC recomputed) are shared with ``test_decode_fuzz.py``.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import obspy
import pymseed
import pytest

from geosentry.stream.decode.mseed import _decode_with_pymseed, decode_payload, split_records_at
from geosentry.stream.errors import DecodeError, DecodeReason
from geosentry.stream.sources.files import FileSource, archive_entries
from geosentry.stream.testing import mseed_records, synthetic_trace

OBSPY_MSEED = Path(obspy.__file__).resolve().parent / "io" / "mseed" / "tests" / "data"

# ---- byte-level helpers (shared with the fuzz test) ----------------------------------------

_CRC_TABLE: list[int] = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the miniSEED 3 record checksum."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def fix_crc3(record: bytes) -> bytes:
    """A miniSEED 3 record with its CRC (bytes 28-31, computed with them zeroed) made valid."""
    zeroed = record[:28] + b"\0\0\0\0" + record[32:]
    return record[:28] + struct.pack("<I", crc32c(zeroed)) + record[32:]


def patch3(record: bytes, offset: int, fmt: str, value: object) -> bytes:
    """Overwrite one little-endian miniSEED 3 header field and fix the CRC."""
    raw = struct.pack("<" + fmt, value)
    return fix_crc3(record[:offset] + raw + record[offset + len(raw):])


def mseed3(data: np.ndarray, sid: str = "FDSN:XX_A__H_H_Z", rate: float = 100.0,
           start_ns: int = 1_704_067_200_000_000_000, encoding: str = "STEIM2") -> list[bytes]:
    """``data`` as miniSEED 3 records (pymseed's writer), one ``bytes`` each."""
    kind = {np.dtype(np.int32): "i", np.dtype(np.float32): "f",
            np.dtype(np.float64): "d"}[data.dtype]
    tl = pymseed.MS3TraceList()
    tl.add_data(sid, data, kind, rate, starttime=start_ns)
    return [bytes(r) for r in tl.generate(max_record_length=512,
                                           encoding=getattr(pymseed.DataEncoding, encoding),
                                           format_version=3)]


def with_sid3(record: bytes, sid: bytes) -> bytes:
    """A miniSEED 3 record with its source id bytes replaced (same length), CRC fixed."""
    n = record[33]
    assert len(sid) == n
    return fix_crc3(record[:40] + sid + record[40 + n:])


def patch2(record: bytes, offset: int, fmt: str, value: object) -> bytes:
    """Overwrite one big-endian miniSEED 2 field (ObsPy writes big-endian headers)."""
    raw = struct.pack(">" + fmt, value)
    return record[:offset] + raw + record[offset + len(raw):]


def b1000_offset(record: bytes) -> int:
    """Offset of blockette 1000 in a miniSEED 2 record written by ObsPy (first blockette)."""
    first = struct.unpack(">H", record[46:48])[0]
    assert struct.unpack(">H", record[first:first + 2])[0] == 1000
    return first


#: miniSEED 2 fixed-header offsets: year, day of year, sample count, rate factor/multiplier
MS2_YEAR, MS2_DOY, MS2_NSAMP, MS2_RATE = 20, 22, 30, 32


def float_trace(values: np.ndarray, sid: str = "XX.F..HHZ") -> obspy.Trace:
    net, sta, loc, cha = sid.split(".")
    return obspy.Trace(values, header={"network": net, "station": sta, "location": loc,
                                       "channel": cha, "sampling_rate": 100.0,
                                       "starttime": obspy.UTCDateTime("2024-01-01")})


def reason_of(payload: bytes) -> DecodeReason | None:
    """The decode failure reason of ``payload`` (None: it decodes), asserting both parse paths
    agree on it and raise nothing but ``DecodeError``."""
    got = []
    for decode in (decode_payload, _decode_with_pymseed):
        try:
            decode(payload, 0)
            got.append(None)
        except DecodeError as exc:
            got.append(exc.reason)
    assert got[0] == got[1], got
    return got[0]


@pytest.fixture(scope="module")
def good2() -> list[bytes]:
    return mseed_records(synthetic_trace("XX.A..HHZ", 60))


# ---- non-UTF-8 ids -------------------------------------------------------------------------

def test_non_utf8_source_id_is_a_bad_sid_decode_error() -> None:
    rec = mseed3(synthetic_trace("XX.A..HHZ", 2).data)[0]
    bad = with_sid3(rec, b"FDSN:XX_\xff__H_H_Z")
    with pytest.raises(DecodeError, match="not UTF-8") as fast:
        decode_payload(bad, 0)
    with pytest.raises(DecodeError, match="not UTF-8") as slow:
        _decode_with_pymseed(bad, 0)
    assert fast.value.reason == slow.value.reason == DecodeReason.BAD_SID
    assert str(fast.value) == str(slow.value)
    assert decode_payload(rec, 0)[0].sid == "XX.A..HHZ"  # the helper changed nothing else


async def test_non_utf8_source_id_is_counted_and_the_source_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    from geosentry.stream.testing import run_pipeline

    good = mseed3(synthetic_trace("XX.A..HHZ", 20).data)
    bad = with_sid3(good[0], b"FDSN:XX_\xff__H_H_Z")
    with caplog.at_level(logging.WARNING):
        _, summary, metrics = await run_pipeline([bad] + good + [bad])
    assert summary.records == len(good) + 2 and summary.decode_errors == 2
    assert metrics.value("geosentry_decode_errors_total", reason="bad_sid") == 2
    assert "source failed" not in caplog.text


# ---- header fields -------------------------------------------------------------------------

def _ms2_cases(good: bytes) -> dict[str, tuple[bytes, DecodeReason | None]]:
    b1000 = b1000_offset(good)
    return {
        "rate 0": (patch2(patch2(good, MS2_RATE, "h", 0), MS2_RATE + 2, "h", 0),
                   DecodeReason.BAD_RATE),
        "rate 1.024e9 Hz": (patch2(patch2(good, MS2_RATE, "h", 32000), MS2_RATE + 2, "h", 32000),
                            DecodeReason.BAD_RATE),
        "rate 1e-9 Hz (period)": (patch2(patch2(good, MS2_RATE, "h", -32000), MS2_RATE + 2, "h",
                                         -32000), DecodeReason.BAD_RATE),
        "rate 0.1 Hz (valid)": (patch2(patch2(good, MS2_RATE, "h", -10), MS2_RATE + 2, "h", 1),
                                None),
        "year 9999": (patch2(good, MS2_YEAR, "H", 9999), DecodeReason.BAD_TIME),
        "day 400": (patch2(good, MS2_DOY, "H", 400), DecodeReason.BAD_TIME),
        "sample count 65535": (patch2(good, MS2_NSAMP, "H", 65535), DecodeReason.BAD_SAMPLES),
        # Steim frames hold more than one sample: libmseed decodes the first, a sane record
        "sample count 1": (patch2(good, MS2_NSAMP, "H", 1), None),
        "encoding 99": (patch2(good, b1000 + 4, "B", 99), DecodeReason.BAD_ENCODING),
        "encoding text": (patch2(good, b1000 + 4, "B", 0), DecodeReason.UNSUPPORTED),
        "record length 2^30": (patch2(good, b1000 + 6, "B", 30), DecodeReason.BAD_LENGTH),
        "record length 2^6": (patch2(good, b1000 + 6, "B", 6), DecodeReason.BAD_LENGTH),
        "truncated": (good[:300], DecodeReason.TRUNCATED),
        "not miniSEED": (b"\x13\x37" * 256, DecodeReason.NOT_MSEED),
    }


@pytest.mark.parametrize("case", list(_ms2_cases(
    mseed_records(synthetic_trace("XX.A..HHZ", 10))[0])))
def test_mseed2_header_field(good2: list[bytes], case: str) -> None:
    payload, expected = _ms2_cases(good2[0])[case]
    assert reason_of(payload) == expected


def _ms3_cases(good: bytes) -> dict[str, tuple[bytes, DecodeReason | None]]:
    return {
        "rate 0": (patch3(good, 16, "d", 0.0), DecodeReason.BAD_RATE),
        "rate -0.0": (patch3(good, 16, "d", -0.0), DecodeReason.BAD_RATE),
        "rate 1e-30": (patch3(good, 16, "d", 1e-30), DecodeReason.BAD_RATE),
        "period 1e-30 s": (patch3(good, 16, "d", -1e-30), DecodeReason.BAD_RATE),
        "rate 1e9": (patch3(good, 16, "d", 1e9), DecodeReason.BAD_RATE),
        "rate nan": (patch3(good, 16, "d", float("nan")), DecodeReason.BAD_RATE),
        "rate inf": (patch3(good, 16, "d", float("inf")), DecodeReason.BAD_RATE),
        "period 10 s (valid)": (patch3(good, 16, "d", -10.0), None),
        "year 9999": (patch3(good, 8, "H", 9999), DecodeReason.BAD_TIME),
        "year 1800": (patch3(good, 8, "H", 1800), DecodeReason.BAD_TIME),
        "sample count 2^32-1": (patch3(good, 24, "I", 0xFFFFFFFF), DecodeReason.BAD_SAMPLES),
        "encoding 99": (patch3(good, 15, "B", 99), DecodeReason.BAD_ENCODING),
        "data length 2^31": (patch3(good, 36, "I", 1 << 31), DecodeReason.BAD_LENGTH),
        "bad crc": (good[:28] + b"\1\2\3\4" + good[32:], DecodeReason.BAD_CRC),
    }


@pytest.mark.parametrize("case", list(_ms3_cases(
    mseed3(synthetic_trace("XX.A..HHZ", 2).data)[0])))
def test_mseed3_header_field(case: str) -> None:
    good = mseed3(synthetic_trace("XX.A..HHZ", 2).data)[0]
    payload, expected = _ms3_cases(good)[case]
    assert reason_of(payload) == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples(dtype: type, bad: float) -> None:
    values = np.linspace(-1, 1, 50).astype(dtype)
    values[17] = bad
    enc = "FLOAT32" if dtype is np.float32 else "FLOAT64"
    ms2 = mseed_records(float_trace(values), encoding=enc)[0]
    ms3 = mseed3(values, encoding=enc)[0]
    assert reason_of(ms2) == reason_of(ms3) == DecodeReason.NON_FINITE


def test_obspy_low_rate_record_decodes() -> None:
    """0.1 Hz, written as negative factor and multiplier: a valid record, not a bad rate."""
    path = OBSPY_MSEED / "single_record_negative_sr_fact_and_mult.mseed"
    if not path.exists():
        pytest.skip("ObsPy installed without its test data")
    (rec,) = decode_payload(path.read_bytes(), 0)
    assert rec.sampling_rate_hz == pytest.approx(0.1) and rec.sid == "MN.TNV..VHZ"


# ---- resynchronisation ---------------------------------------------------------------------

def _file_with_truncated(good: list[bytes], cut: dict[int, int]) -> tuple[bytes, list[int]]:
    """``good`` concatenated with record ``i`` cut to ``cut[i]`` bytes; offsets of the cuts."""
    out, at, bad_at = bytearray(), 0, []
    for i, p in enumerate(good):
        if i in cut:
            p = p[:cut[i]]
            bad_at.append(at)
        out += p
        at += len(p)
    return bytes(out), bad_at


def test_truncated_records_in_a_file_lose_only_themselves(tmp_path: Path) -> None:
    """14 truncated records among 153 (cut at any byte, not only at 64-byte steps): the 139
    whole ones all decode, each truncated one is one counted error at its own offset."""
    rng = np.random.default_rng(7)
    good = mseed_records(synthetic_trace("XX.A..HHZ", 153 * 4.5))[:153]
    encodings = {"INT32": mseed_records(synthetic_trace("XX.B..HHZ", 60), encoding="INT32")}
    good = good[:140] + encodings["INT32"][:13]  # uncompressed too: no Steim check to fail
    cut = {int(i): int(rng.integers(8, 500)) for i in rng.choice(153, 14, replace=False)}
    blob, bad_at = _file_with_truncated(good, cut)
    path = tmp_path / "cut.mseed"
    path.write_bytes(blob)

    entries = archive_entries(path)
    whole = [p for end, p, ref in entries if p in good]
    assert sorted(whole) == sorted(p for i, p in enumerate(good) if i not in cut)
    decoded, errors = 0, []
    for _, p, ref in entries:
        try:
            decoded += len(decode_payload(p, 0, ref))
        except DecodeError as exc:
            errors.append((ref.offset, exc.reason))
    assert decoded == 139
    assert sorted(off for off, _ in errors) == bad_at
    assert all(reason in DecodeReason for _, reason in errors)


def test_resync_finds_headers_at_odd_offsets_and_skips_garbage() -> None:
    good = mseed_records(synthetic_trace("XX.A..HHZ", 30))
    ms3 = mseed3(synthetic_trace("XX.C..HHZ", 10).data)
    blob = (b"junk" + good[0] + b"\x00" * 3 + good[1][:77] + ms3[0] + b"x" * 1001 + good[2]
            + ms3[1][:50] + good[3])
    parts = list(split_records_at(blob))
    assert [p for _, p, end in parts if end is not None] == [good[0], ms3[0], good[2], good[3]]
    # junk, 3 NULs, the cut record (its header parses, the next record starts inside it),
    # 1001 x, the cut miniSEED 3 record
    assert [len(p) for _, p, end in parts if end is None] == [4, 3, 77, 1001, 50]
    assert b"".join(p for _, p, _ in parts) == blob  # every byte accounted for, in order
    assert all(blob[off:off + len(p)] == p for off, p, _ in parts)


async def test_decode_warning_names_file_and_byte_offset(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from geosentry.stream.testing import run_pipeline

    good = mseed_records(synthetic_trace("XX.A..HHZ", 30))
    blob, bad_at = _file_with_truncated(good, {3: 200})
    path = tmp_path / "one_cut.mseed"
    path.write_bytes(blob)
    # whatever level earlier tests left on the package logger (the bench sets ERROR)
    with caplog.at_level(logging.WARNING, logger="geosentry.stream"):
        _, summary, metrics = await run_pipeline([FileSource(path)])
    assert summary.decode_errors == 1 and summary.records == len(good)
    assert f"at byte {bad_at[0]} of {path}" in caplog.text
    assert metrics.value("geosentry_decode_errors_total", reason="truncated") == 1


# ---- the reason label set ------------------------------------------------------------------

async def test_decode_error_labels_come_from_the_fixed_set(good2: list[bytes]) -> None:
    """Hundreds of differently worded failures: the label values stay within DecodeReason."""
    from geosentry.stream.testing import run_pipeline

    rng = np.random.default_rng(3)
    bad: list[bytes] = []
    for i in range(300):
        p = bytearray(good2[i % len(good2)])
        for pos in rng.integers(0, 64, 3):
            p[pos] = int(rng.integers(0, 256))
        bad.append(bytes(p[:int(rng.integers(40, 513))]))
    bad += [patch2(good2[0], MS2_YEAR, "H", y) for y in range(2300, 2400)]
    _, summary, metrics = await run_pipeline(bad)
    labels = {s.labels["reason"] for fam in metrics.registry.collect()
              if fam.name == "geosentry_decode_errors" for s in fam.samples
              if s.name.endswith("_total")}
    assert summary.decode_errors > 300
    assert labels and labels <= {r.value for r in DecodeReason}
