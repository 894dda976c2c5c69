"""Decoding real miniSEED bytes, and refusing bad ones with a clear error."""

from __future__ import annotations

import struct

import numpy as np
import obspy
import pytest

from geosentry.stream.decode.mseed import decode_payload, split_records
from geosentry.stream.errors import DecodeError
from geosentry.stream.testing import demo_stream, mseed_records, synthetic_trace


def test_decodes_obspy_recording_exactly() -> None:
    tr = demo_stream()[0]
    payloads = mseed_records(tr)
    records = [r for p in payloads for r in decode_payload(p, arrival_ns=1)]
    assert {r.sid for r in records} == {"BW.UH1..SHZ"}
    assert all(r.sampling_rate_hz == 50.0 for r in records)
    data = np.concatenate([r.data for r in records])
    np.testing.assert_array_equal(data, tr.data.astype(np.float64))
    assert records[0].start_ns == tr.stats.starttime.ns


def test_truncated_record_is_a_decode_error() -> None:
    payload = mseed_records(synthetic_trace("XX.A..HHZ", 10))[0]
    with pytest.raises(DecodeError, match="corrupt"):
        decode_payload(payload[:300], arrival_ns=0)


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_payload(b"\x00garbage" * 64, arrival_ns=0)


def _with_rate_factor(payload: bytes, factor: int, multiplier: int) -> bytes:
    # miniSEED 2 fixed header: sample rate factor/multiplier are big-endian int16 at bytes 32-35.
    return payload[:32] + struct.pack(">hh", factor, multiplier) + payload[36:]


def test_impossible_sample_rate_is_refused_with_seed_id() -> None:
    payload = mseed_records(synthetic_trace("XX.A..HHZ", 10))[0]
    bad = _with_rate_factor(payload, 32000, 32000)  # 1.024e9 Hz
    with pytest.raises(DecodeError, match=r"XX\.A\.\.HHZ.*impossible sample rate"):
        decode_payload(bad, arrival_ns=0)


def test_nan_samples_are_refused() -> None:
    tr = obspy.Trace(np.array([1.0, np.nan, 3.0] * 100, dtype=np.float64),
                     header={"network": "XX", "station": "A", "channel": "HHZ",
                             "sampling_rate": 100.0})
    payload = mseed_records(tr)[0]
    with pytest.raises(DecodeError, match="non-finite"):
        decode_payload(payload, arrival_ns=0)


def test_split_records_resyncs_after_corruption() -> None:
    payloads = mseed_records(synthetic_trace("XX.A..HHZ", 30))
    blob = payloads[0] + b"\xff" * 512 + b"".join(payloads[1:])
    parts = list(split_records(blob))
    good = [p for p, end in parts if end is not None]
    assert good == payloads
    assert any(end is None for _, end in parts)


def _mseed3(tr: obspy.Trace) -> bytes:
    """The trace as miniSEED 3 records (pymseed's writer), one payload."""
    import pymseed

    tl = pymseed.MS3TraceList()
    tl.add_data(f"FDSN:{tr.stats.network}_{tr.stats.station}__H_H_Z",
                tr.data.astype(np.int32), "i", tr.stats.sampling_rate,
                starttime=tr.stats.starttime.ns)
    return b"".join(bytes(r) for r in tl.generate(max_record_length=512,
                                                  encoding=pymseed.DataEncoding.STEIM2,
                                                  format_version=3))


@pytest.mark.parametrize("encoding", ["STEIM1", "STEIM2", "INT32", "FLOAT32", "FLOAT64"])
def test_direct_parse_equals_pymseed_reader(encoding: str) -> None:
    """``decode_payload`` reads libmseed's struct directly; pymseed's public reader must give the
    same records (ids, times, rates, samples), for every encoding, one record or several per
    payload, and miniSEED 3."""
    from geosentry.stream.decode.mseed import _decode_with_pymseed

    tr = demo_stream()[1]
    if encoding.startswith("FLOAT"):
        tr.data = tr.data.astype(np.float32 if encoding == "FLOAT32" else np.float64) / 7.0
    payloads = mseed_records(tr, encoding=encoding)
    payloads += [b"".join(payloads[:5])]  # several records in one payload (a Kafka message)
    if encoding == "STEIM2":
        payloads.append(_mseed3(demo_stream()[1]))
    for p in payloads:
        fast, slow = decode_payload(p, 7), _decode_with_pymseed(p, 7)
        assert [(r.sid, r.start_ns, r.sampling_rate_hz, r.arrival_ns) for r in fast] == \
            [(r.sid, r.start_ns, r.sampling_rate_hz, r.arrival_ns) for r in slow]
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a.data, b.data)
            assert a.data.dtype == np.float64


def test_direct_parse_fails_as_pymseed_reader() -> None:
    """Bad bytes anywhere in a payload: the same DecodeError text from both paths."""
    from geosentry.stream.decode.mseed import _decode_with_pymseed

    good = mseed_records(synthetic_trace("XX.A..HHZ", 10))
    bad = [good[0][:300], b"\x00garbage" * 64, good[0] + good[1][:200],
           good[0] + b"\xff" * 512, _with_rate_factor(good[0], 32000, 32000)]
    for p in bad:
        with pytest.raises(DecodeError) as fast:
            decode_payload(p, 0)
        with pytest.raises(DecodeError) as slow:
            _decode_with_pymseed(p, 0)
        assert str(fast.value) == str(slow.value)
