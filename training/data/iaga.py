"""IAGA-2002 reader (``.sec``, ``.min``, optionally gzipped) for geomagnetic observatory data."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MISSING = (99999.0, 88888.0)


@dataclass
class IagaRecord:
    """One IAGA-2002 file: ``data`` is ``(n, len(components))`` float64 with NaN for missing."""

    station: str
    components: tuple[str, ...]
    times: np.ndarray  # datetime64[ms], (n,)
    data: np.ndarray
    header: dict[str, str] = field(default_factory=dict)

    @property
    def sampling_interval_s(self) -> float:
        if len(self.times) < 2:
            return float("nan")
        return float(np.median(np.diff(self.times).astype("timedelta64[ms]").astype(np.int64))) / 1000.0

    def channels(self, components: str | tuple[str, ...]) -> np.ndarray:
        """Rows for the requested component letters, ``(len(components), n)``."""
        idx = [self.components.index(c) for c in components]
        return self.data[:, idx].T.copy()

    def hez(self) -> np.ndarray:
        """``(3, n)`` H, E, Z in nT, as the service sees the file (``stream.decode.iaga``):
        a file reporting declination D (minutes of arc) gets ``E = H sin D``."""
        if "E" in self.components:
            return self.channels("HEZ")
        h, d, z = self.channels("HDZ")
        return np.stack([h, east_from_declination(h, d), z])


def east_from_declination(h: np.ndarray, d_arcmin: np.ndarray) -> np.ndarray:
    """East component in nT from H (nT) and declination D (minutes of arc): ``E = H sin D``,
    exactly the conversion of the service's IAGA-2002 decoder."""
    return h * np.sin(np.deg2rad(d_arcmin / 60.0))


def _open(path: Path) -> list[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="ascii", errors="replace") as fh:
            return fh.read().splitlines()
    return path.read_text(encoding="ascii", errors="replace").splitlines()


def read_iaga2002(path: str | Path) -> IagaRecord:
    """Parse header lines (``key  value |``), comments (`` # ``), the ``DATE TIME DOY ...`` column
    line and the data rows. Values 99999 / 88888 (missing / not recorded) become NaN."""
    path = Path(path)
    lines = _open(path)
    header: dict[str, str] = {}
    start = None
    columns: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("DATE"):
            columns = line.rstrip("|").split()
            start = i + 1
            break
        text = line.rstrip().rstrip("|").strip()
        if not text or text.startswith("#"):
            continue
        key, _, value = text.partition("  ")
        header[key.strip()] = value.strip()
    if start is None or len(columns) < 4:
        raise ValueError(f"{path}: no 'DATE TIME DOY ...' column line")
    station = header.get("IAGA CODE", columns[3][:3]).strip()
    comps = tuple(c[len(station):] if c.upper().startswith(station.upper()) else c[-1]
                  for c in columns[3:])
    times, rows = [], []
    for line in lines[start:]:
        parts = line.split()
        if len(parts) < 3 + len(comps):
            continue
        times.append(f"{parts[0]}T{parts[1]}")
        rows.append([float(v) for v in parts[3: 3 + len(comps)]])
    data = np.asarray(rows, dtype=np.float64).reshape(-1, len(comps))
    for bad in MISSING:
        data[np.isclose(data, bad)] = np.nan
    return IagaRecord(station, comps, np.asarray(times, dtype="datetime64[ms]"), data, header)
