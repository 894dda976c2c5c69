"""Seeded fuzzing of the miniSEED decoder: 100,000 mutated records (bit flips, header fields,
non-UTF-8 ids, truncation, NaN/inf floats, splices) mixed with valid ones.

Contract checked: only ``DecodeError`` escapes ``decode_payload``, its reason is a
``DecodeReason``, nothing hangs (pytest-timeout) or allocates without bound (peak RSS), and
the valid records decode exactly as in a clean run; a smaller mixed stream through the real
``Pipeline`` (STA/LTA) gives the valid stations the same alerts as a clean run.
"""

from __future__ import annotations

import resource
import struct
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.errors import DecodeError, DecodeReason
from geosentry.stream.records import Record
from geosentry.stream.testing import demo_stream, mseed_records, synthetic_trace, interleaved
from tests.stream.test_decode_hardening import (MS2_DOY, MS2_NSAMP, MS2_RATE, MS2_YEAR,
                                                b1000_offset, fix_crc3, float_trace, mseed3,
                                                patch2, patch3)

N_MUTATED = 100_000
VALID_EVERY = 10  # one valid record between every 10 mutated ones
MAX_RSS_GROWTH_MB = 300
RATES3 = (0.0, -0.0, 1e-30, -1e-30, 1e9, -1e9, float("nan"), float("inf"), 0.1, -10.0, 1e-7)
RATES2 = ((0, 0), (0, 1), (32000, 32000), (-32000, -32000), (-10, 1), (1, -32768), (-1, 0))
Rng = np.random.Generator


def _base_records() -> tuple[list[bytes], list[bytes]]:
    """(miniSEED 2 records, miniSEED 3 records) of every encoding, station ZZ.FUZZ."""
    ints = synthetic_trace("ZZ.FUZZ..HHZ", 12, seed=5)
    floats = float_trace(np.sin(np.arange(1200) / 7.0) * 1e3, "ZZ.FUZZ..HHN")
    ms2 = (mseed_records(ints) + mseed_records(ints, encoding="STEIM1")[:6]
           + mseed_records(ints, encoding="INT32")[:6]
           + mseed_records(float_trace(floats.data.astype(np.float32), "ZZ.FUZZ..HHE"),
                           encoding="FLOAT32")[:6]
           + mseed_records(floats, encoding="FLOAT64")[:6])
    ms3 = (mseed3(ints.data, "FDSN:ZZ_FUZZ__H_H_Z")[:6]
           + mseed3(floats.data.astype(np.float32), "FDSN:ZZ_FUZZ__H_H_N", encoding="FLOAT32")[:4]
           + mseed3(floats.data, "FDSN:ZZ_FUZZ__H_H_E", encoding="FLOAT64")[:4])
    return ms2, ms3


def _flip_bits(rng: Rng, p: bytes, header_only: bool) -> bytes:
    b = bytearray(p)
    hi = 64 if header_only else len(b)
    for pos, bit in zip(rng.integers(0, hi, int(rng.integers(1, 9))), rng.integers(0, 8, 8)):
        b[pos] ^= 1 << int(bit)
    return bytes(b)


def _ms2_field(rng: Rng, p: bytes) -> bytes:
    which = int(rng.integers(0, 6))
    if which == 0:
        factor, mult = RATES2[int(rng.integers(0, len(RATES2)))]
        return patch2(patch2(p, MS2_RATE, "h", factor), MS2_RATE + 2, "h", mult)
    if which == 1:
        return patch2(p, MS2_YEAR, "H", int(rng.choice([9999, 0, 1800, 2262, 65535])))
    if which == 2:
        return patch2(p, MS2_DOY, "H", int(rng.integers(0, 65536)))
    if which == 3:
        return patch2(p, MS2_NSAMP, "H", int(rng.integers(0, 65536)))
    b1000 = b1000_offset(p)
    if which == 4:  # encoding byte
        return patch2(p, b1000 + 4, "B", int(rng.integers(0, 256)))
    return patch2(p, b1000 + 6, "B", int(rng.integers(0, 256)))  # record length exponent


def _ms3_field(rng: Rng, p: bytes) -> bytes:
    which = int(rng.integers(0, 7))
    if which == 0:
        return patch3(p, 16, "d", RATES3[int(rng.integers(0, len(RATES3)))])
    if which == 1:
        return patch3(p, 8, "H", int(rng.choice([9999, 0, 1800, 2262, 65535])))
    if which == 2:
        return patch3(p, 24, "I", int(rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF,
                                                  int(rng.integers(0, 1 << 32))])))
    if which == 3:
        return patch3(p, 15, "B", int(rng.integers(0, 256)))  # encoding
    if which == 4:
        return patch3(p, 36, "I", int(rng.integers(0, 1 << 32)))  # data length
    if which == 5:
        return patch3(p, 33, "B", int(rng.integers(0, 256)))  # source id length
    n = p[33]  # a byte of the source id that is not UTF-8 (a lone continuation/lead byte)
    at = 40 + int(rng.integers(0, n))
    return fix_crc3(p[:at] + bytes([int(rng.choice([0x80, 0xBF, 0xC0, 0xFE, 0xFF]))]) + p[at + 1:])


def _non_finite(rng: Rng, p: bytes, ms3: bool) -> bytes:
    """A float record with one sample replaced by NaN/inf (same width and byte order)."""
    value = float(rng.choice([np.nan, np.inf, -np.inf]))
    if ms3:
        enc, start = p[15], 40 + p[33] + struct.unpack("<H", p[34:36])[0]
        fmt, width = ("<f", 4) if enc == 4 else ("<d", 8)
        n = struct.unpack("<I", p[24:28])[0]
        at = start + width * int(rng.integers(0, n))
        return fix_crc3(p[:at] + struct.pack(fmt, value) + p[at + width:])
    b1000 = b1000_offset(p)
    fmt, width = (">f", 4) if p[b1000 + 4] == 4 else (">d", 8)
    start = struct.unpack(">H", p[44:46])[0]
    n = struct.unpack(">H", p[MS2_NSAMP:MS2_NSAMP + 2])[0]
    at = start + width * int(rng.integers(0, n))
    return p[:at] + struct.pack(fmt, value) + p[at + width:]


def mutations(seed: int, n: int) -> tuple[list[bytes], Counter[str]]:
    """``n`` mutated payloads (seeded) and how many of each mutation kind."""
    rng = np.random.default_rng(seed)
    ms2, ms3 = _base_records()
    floats2 = [p for p in ms2 if p[b1000_offset(p) + 4] in (4, 5)]
    floats3 = [p for p in ms3 if p[15] in (4, 5)]
    kinds: dict[str, Callable[[], bytes]] = {
        "flip": lambda: _flip_bits(rng, _pick(rng, ms2 + ms3), False),
        "flip_header": lambda: _flip_bits(rng, _pick(rng, ms2 + ms3), True),
        "ms2_field": lambda: _ms2_field(rng, _pick(rng, ms2)),
        "ms3_field": lambda: _ms3_field(rng, _pick(rng, ms3)),
        "truncate": lambda: (p := _pick(rng, ms2 + ms3))[:int(rng.integers(0, len(p)))],
        "non_finite": lambda: (_non_finite(rng, _pick(rng, floats3), True) if rng.random() < .3
                               else _non_finite(rng, _pick(rng, floats2), False)),
        "splice": lambda: (_pick(rng, ms2) + _pick(rng, ms2 + ms3)[:int(rng.integers(1, 512))]),
        "garbage": lambda: rng.bytes(int(rng.integers(0, 1024))),
    }
    names = list(kinds)
    out, counts = [], Counter[str]()
    for i in rng.integers(0, len(names), n):
        counts[names[i]] += 1
        out.append(kinds[names[i]]())
    return out, counts


def _pick(rng: Rng, items: list[bytes]) -> bytes:
    return items[int(rng.integers(0, len(items)))]


def _key(records: list[Record]) -> list[tuple[str, int, float, bytes]]:
    return [(r.sid, r.start_ns, r.sampling_rate_hz, r.data.tobytes()) for r in records]


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.mark.timeout(240)
def test_fuzzed_records_only_raise_decode_errors() -> None:
    ms2, ms3 = _base_records()
    valid = ms2 + ms3
    clean = [_key(decode_payload(p, 0)) for p in valid]
    mutated, counts = mutations(seed=20240601, n=N_MUTATED)
    assert min(counts.values()) > N_MUTATED // 20  # every mutation kind well represented
    rss_before = _max_rss_mb()
    reasons: Counter[DecodeReason] = Counter()
    decoded = 0
    for i, payload in enumerate(mutated):
        if i % VALID_EVERY == 0:
            j = (i // VALID_EVERY) % len(valid)
            assert _key(decode_payload(valid[j], 0)) == clean[j]
        try:
            decode_payload(payload, 0)
            decoded += 1
        except DecodeError as exc:
            reasons[exc.reason] += 1
            assert isinstance(exc.reason, DecodeReason)
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            pytest.fail(f"mutated payload {i} raised {exc!r}: {payload[:64]!r}")
    growth = _max_rss_mb() - rss_before
    assert growth < MAX_RSS_GROWTH_MB, f"peak RSS grew {growth:.0f} MB"
    assert decoded + sum(reasons.values()) == N_MUTATED
    # the header mutations reach the checks they target
    for reason in (DecodeReason.BAD_RATE, DecodeReason.BAD_TIME, DecodeReason.BAD_SID,
                   DecodeReason.NON_FINITE, DecodeReason.TRUNCATED, DecodeReason.NOT_MSEED,
                   DecodeReason.BAD_CRC, DecodeReason.BAD_ENCODING):
        assert reasons[reason] > 0, (reason, reasons)


@pytest.mark.timeout(240)
async def test_fuzzed_stream_keeps_the_alerts_of_the_valid_records() -> None:
    """Demo recordings with 2,000 mutated ZZ.FUZZ payloads between them, through the real
    pipeline with the STA/LTA detector: the BW alerts are those of a clean run."""
    from geosentry.stream.config import load_config_dict
    from geosentry.stream.demo import demo_config_dict
    from geosentry.stream.metrics import Metrics
    from geosentry.stream.testing import run_pipeline

    raw = demo_config_dict()
    raw["detectors"] = [d for d in raw["detectors"] if d["type"] == "stalta"]
    cfg = load_config_dict(raw)
    clean = interleaved(demo_stream())
    mutated, _ = mutations(seed=7, n=2000)
    mixed: list[bytes] = []
    per = len(mutated) // len(clean) + 1
    for i, p in enumerate(clean):
        mixed += mutated[i * per:(i + 1) * per] + [p]

    async def alerts(payloads: list[bytes]) -> tuple[list[str], Metrics]:
        sink, _, metrics = await run_pipeline(payloads, cfg)
        return sorted(a.id for a in sink.alerts if a.network == "BW"), metrics

    want, _ = await alerts(clean)
    got, metrics = await alerts(mixed)
    assert want and got == want
    labels = {s.labels["reason"] for fam in metrics.registry.collect()
              if fam.name == "geosentry_decode_errors" for s in fam.samples
              if s.name.endswith("_total")}
    assert labels <= {r.value for r in DecodeReason}
