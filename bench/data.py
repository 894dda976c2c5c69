"""Benchmark load: N three-component 100 Hz stations as real 512-byte Steim2 miniSEED records.

Each station is one of 12 templates: a real ObsPy recording (BW.UH1-UH4, 2010-05-27, three
regional events in 230 s) resampled to 100 Hz as Z, the same recording delayed by 0.37 s / 0.71 s
plus independent coloured noise as N / E, each circularly shifted by 0, 85 or 58 s (tiling).
Templates are encoded once with ObsPy (Steim2, 512 bytes); stations reuse those bytes with the
station code and a per-station start-time offset (0-4 s) patched into the fixed header, so
building 1000 stations costs little and record boundaries are spread as in a real network.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from functools import lru_cache

import numpy as np
import obspy
import pymseed
from scipy.signal import resample_poly

from geosentry.stream.decode.mseed import encode_traces
from geosentry.stream.testing import demo_stream

START = obspy.UTCDateTime("2024-01-01T00:00:00")
SHIFTS_S = (0, 85, 58)  # every template has a P onset 30-35 s in (what the latency runs see)
RATE = 100.0


@dataclass
class Load:
    """Records of N stations, interleaved by record end time as a live feed delivers them."""

    n_stations: int
    seconds: float
    payloads: list[bytes]
    rel_end_s: np.ndarray  # end time of each record relative to the first sample (s)
    stations: list[str]
    station_of: np.ndarray  # index into ``stations`` of each payload's station
    samples_of: np.ndarray  # samples in each payload

    @property
    def samples(self) -> int:
        """Samples in all records."""
        return int(self.samples_of.sum())

    def silenced(self, keep: int, after_s: float) -> Load:
        """This load with every station from index ``keep`` on silent once its records end
        after ``after_s``: what the service sees when part of a network drops out (or when the
        input falls back below capacity after an overload)."""
        mask = (self.station_of < keep) | (self.rel_end_s <= after_s)
        idx = np.flatnonzero(mask)
        return Load(self.n_stations, self.seconds, [self.payloads[j] for j in idx],
                    self.rel_end_s[idx], self.stations, self.station_of[idx],
                    self.samples_of[idx])

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.payloads)


@lru_cache(maxsize=1)
def _base_z() -> list[np.ndarray]:
    out = []
    for tr in demo_stream():
        x = tr.data.astype(np.float64)
        if tr.stats.sampling_rate != RATE:
            x = resample_poly(x, int(RATE), int(tr.stats.sampling_rate))
        out.append(x - np.median(x))
    return out


@lru_cache(maxsize=1)
def templates_arrays() -> list[np.ndarray]:
    """12 templates, each (3, samples) float64 in counts: Z, N, E."""
    rng = np.random.default_rng(6)
    out = []
    for z in _base_z():
        n = len(z)
        for shift in SHIFTS_S:
            zz = np.roll(z, int(shift * RATE))
            rows = [zz]
            for delay in (37, 71):
                noise = np.convolve(rng.normal(0, 0.2 * np.std(z[:500]) + 1, n + 4),
                                    np.ones(5) / 5, mode="valid")[:n]
                rows.append(np.roll(zz, delay) + noise)
            out.append(np.stack(rows))
    return out


@lru_cache(maxsize=8)
def _encoded(seconds: float) -> list[list[tuple[float, bytes, int]]]:
    """Per template: (rel_end_s, payload, n_samples) of its Z/N/E records, ``seconds`` long."""
    n = int(round(seconds * RATE))
    out = []
    for arr in templates_arrays():
        if n > arr.shape[1]:
            reps = -(-n // arr.shape[1])
            arr = np.tile(arr, reps)
        recs = []
        for comp, row in zip("ZNE", arr[:, :n]):
            tr = obspy.Trace(np.round(row).astype(np.int32), header={
                "network": "XB", "station": "TMPL", "location": "", "channel": f"HH{comp}",
                "sampling_rate": RATE, "starttime": START})
            for p in encode_traces(tr):
                msr = next(iter(pymseed.MS3Record.from_buffer(p, unpack_data=False)))
                rel = (int(msr.endtime) - START.ns) / 1e9
                recs.append((rel, p, int(msr.samplecnt)))
        out.append(recs)
    return out


STATION_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def station_code(i: int) -> str:
    """``B`` + four base-36 digits (``B0000`` ... ``BZZZZ``): a SEED station code has at most 5
    characters, so decimal numbering would overflow the header field at 10,000 stations.

    >>> station_code(0), station_code(35), station_code(10_000)
    ('B0000', 'B000Z', 'B07PS')
    """
    if not 0 <= i < 36 ** 4:
        raise ValueError(f"station number {i} outside 0..{36 ** 4 - 1}")
    digits = ""
    for _ in range(4):
        i, d = divmod(i, 36)
        digits = STATION_DIGITS[d] + digits
    return "B" + digits


def station_offset_s(i: int) -> float:
    """Start-time offset of station ``i`` (0-3.99 s in 10 ms steps): real digitisers do not
    start their records together, so record boundaries (and window cuts) are spread in time."""
    return ((i * 7919) % 400) / RATE


def _shift_btime(b: bytearray, offset_s: float) -> None:
    """Add ``offset_s`` to the start time (BTIME, bytes 20-29, big-endian) of a miniSEED 2
    record in place."""
    year, day, hour, minute, sec, _, frac = struct.unpack(">HHBBBBH", b[20:30])
    t = (datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour,
         minutes=minute, seconds=sec, microseconds=frac * 100 + round(offset_s * 1e6)))
    b[20:30] = struct.pack(">HHBBBBH", t.year, t.timetuple().tm_yday, t.hour, t.minute,
                           t.second, 0, t.microsecond // 100)


def build_load(n_stations: int, seconds: float, stagger: bool = True, first: int = 0) -> Load:
    """``n_stations`` stations (numbers ``first`` on) of ``seconds`` each; ``stagger`` offsets
    each station's start (``station_offset_s``) so records of different stations do not all end
    at the same time."""
    enc = _encoded(float(seconds))
    rels: list[float] = []
    payloads: list[bytes] = []
    stations = []
    station_of: list[int] = []
    samples_of: list[int] = []
    for i in range(first, first + n_stations):
        code = station_code(i).ljust(5).encode()
        stations.append(station_code(i))
        offset = station_offset_s(i) if stagger else 0.0
        for rel, p, ns in enc[i % len(enc)]:
            b = bytearray(p)
            b[8:13] = code  # miniSEED 2 fixed header: station code, 5 bytes
            if offset:
                _shift_btime(b, offset)
            payloads.append(bytes(b))
            station_of.append(i - first)
            samples_of.append(ns)
            rels.append(rel + offset)
    order = np.argsort(np.asarray(rels), kind="stable")
    rel_arr = np.asarray(rels)[order]
    return Load(n_stations, seconds, [payloads[j] for j in order], rel_arr, stations,
                np.asarray(station_of)[order], np.asarray(samples_of)[order])


def station_streams(n_stations: int, seconds: float) -> obspy.Stream:
    """The same data as an ObsPy Stream (for SeisBench annotate and ObsPy STA/LTA)."""
    n = int(round(seconds * RATE))
    st = obspy.Stream()
    tmpl = templates_arrays()
    for i in range(n_stations):
        arr = tmpl[i % len(tmpl)]
        if n > arr.shape[1]:
            arr = np.tile(arr, -(-n // arr.shape[1]))
        for comp, row in zip("ZNE", arr[:, :n]):
            st += obspy.Trace(np.round(row).astype(np.int32).astype(np.float32), header={
                "network": "XB", "station": station_code(i), "location": "",
                "channel": f"HH{comp}", "sampling_rate": RATE, "starttime": START})
    return st
