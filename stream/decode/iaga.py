"""IAGA-2002 geomagnetic files (``.sec``, ``.min``, gzipped or not) -> miniSEED records.

Channel naming follows the USGS Geomagnetism Program's SEED convention (adopted by INTERMAGNET's
miniSEED proposal): network ``NT``, station = IAGA code, location from the data type (``R0``
variation, ``A0`` adjusted, ``Q0`` quasi-definitive, ``D0`` definitive), channel = band code of
the interval (``B`` 10 Hz, ``L`` 1 s, ``U`` 1 min) + ``F`` (magnetometer) + element. Declination
``D`` (minutes of arc) becomes the east component ``E = H sin D`` in nT, so every vector element
is in nT. Missing values (99999, 88888) split the data: they reach the buffers as gaps, never as
numbers.

>>> sample = '''
... IAGA CODE              BOU                                          |
... Data Type              variation                                    |
... DATE       TIME         DOY     BOUH      BOUD      BOUZ      BOUF   |
... 2014-04-07 00:00:00.000 097     20886.60     -7.09  47539.03  52460.14
... 2014-04-07 00:00:01.000 097     20886.56     -7.08  99999.00  52460.11
... '''
>>> f = parse_iaga(sample)
>>> f.station, f.location, f.interval_s, sorted(f.elements)
('BOU', 'R0', 1.0, ['E', 'F', 'H', 'Z'])
>>> round(float(f.elements["E"][0]), 2), bool(np.isnan(f.elements["Z"][1]))
(-43.08, True)
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import obspy

from geosentry.stream.decode.mseed import encode_traces, geomag_band_code
from geosentry.stream.errors import DecodeError

MISSING_MIN = 88887.0
LOCATIONS = {"variation": "R0", "provisional": "R0", "adjusted": "A0",
             "quasi-definitive": "Q0", "definitive": "D0"}
IAGA_SUFFIXES = (".sec", ".min", ".sec.gz", ".min.gz")


@dataclass
class IagaFile:
    station: str
    location: str
    start_ns: int
    interval_s: float
    elements: dict[str, np.ndarray]  # nT, NaN where missing


def is_iaga(path: Path) -> bool:
    return path.name.lower().endswith(IAGA_SUFFIXES)


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("ascii", errors="replace")


def parse_iaga(text: str) -> IagaFile:
    header: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("DATE"):
            columns = line.rstrip("|").split()
            body = lines[i + 1:]
            break
        stripped = line.strip().rstrip("|").strip()
        if stripped and not stripped.startswith("#"):
            key, _, value = stripped.partition("  ")
            header[key.strip().upper()] = value.strip()
    else:
        raise DecodeError("IAGA-2002: no DATE TIME column header line")
    station = header.get("IAGA CODE", columns[3][:3] if len(columns) > 3 else "XXX").upper()
    elements = [c[len(station):] if c.upper().startswith(station) else c[-1] for c in columns[3:]]
    rows = [r.split() for r in body if r.strip()]
    if not rows:
        raise DecodeError(f"IAGA-2002 {station}: no data rows")
    try:
        times = np.array([np.datetime64(f"{r[0]}T{r[1]}", "ns") for r in rows]).astype(np.int64)
        values = np.array([[float(v) for v in r[3:3 + len(elements)]] for r in rows])
    except (ValueError, IndexError) as exc:
        raise DecodeError(f"IAGA-2002 {station}: malformed data row ({exc})") from exc
    values[values >= MISSING_MIN] = np.nan
    steps = np.diff(times)
    interval_s = float(np.median(steps)) / 1e9 if len(steps) else 60.0
    data = {e.upper(): values[:, k] for k, e in enumerate(elements)}
    if "D" in data and "H" in data:  # declination in minutes of arc -> east component in nT
        data["E"] = data["H"] * np.sin(np.deg2rad(data.pop("D") / 60.0))
    location = LOCATIONS.get(header.get("DATA TYPE", "variation").lower(), "R0")
    return IagaFile(station, location, int(times[0]), interval_s, data)


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous [start, stop) runs of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def iaga_to_mseed(path: Path, network: str = "NT") -> list[bytes]:
    """Every element of an IAGA-2002 file as FLOAT64 miniSEED records (gaps where missing)."""
    return elements_to_mseed(parse_iaga(read_text(path)), network)


def elements_to_mseed(f: IagaFile, network: str = "NT") -> list[bytes]:
    """miniSEED records of every element; NaN runs become gaps between records."""
    rate_hz = 1.0 / f.interval_s
    channel_prefix = f"{geomag_band_code(rate_hz)}F"
    traces = obspy.Stream()
    for element, values in f.elements.items():
        for lo, hi in _runs(~np.isnan(values)):
            start = obspy.UTCDateTime(ns=f.start_ns + round(lo * f.interval_s * 1e9))
            traces += obspy.Trace(values[lo:hi].astype(np.float64), header={
                "network": network, "station": f.station, "location": f.location,
                "channel": channel_prefix + element, "sampling_rate": rate_hz, "starttime": start})
    return encode_traces(traces)
