"""IAGA-2002 reader (``.sec``, ``.min``, optionally gzipped) for geomagnetic observatory data.

A thin adapter over the service's decoder (:mod:`geosentry.stream.decode.iaga`): training parses files
with exactly the code the service runs, so it sees the same elements in the same units --
declination D (minutes of arc) arrives as the east component ``E = H sin D`` in nT, missing
values (99999, 88888) as NaN. (``training`` may import ``stream``; never the reverse.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geosentry.stream.decode.iaga import parse_iaga, read_text


@dataclass
class IagaRecord:
    """One IAGA-2002 file: ``data`` is ``(n, len(components))`` float64 with NaN for missing;
    ``components`` are the service's elements in file order with D replaced by E (all in nT)."""

    station: str
    components: tuple[str, ...]
    times: np.ndarray  # datetime64[ms], (n,)
    data: np.ndarray
    location: str = "R0"

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
        """``(3, n)`` H, E, Z in nT, as the service sees the file."""
        return self.channels("HEZ")


def read_iaga2002(path: str | Path) -> IagaRecord:
    """Parse one file with :func:`geosentry.stream.decode.iaga.parse_iaga` (gzip detected by content)."""
    f = parse_iaga(read_text(Path(path)))
    order = list(f.elements)
    if "E" in order and "H" in order:  # the decoder appends E after dropping D: put it back
        order.remove("E")               # where D was in an H, D, Z, F file
        order.insert(order.index("H") + 1, "E")
    data = np.stack([f.elements[c] for c in order], axis=1).astype(np.float64)
    step_ms = int(round(f.interval_s * 1000))
    times = (np.datetime64(f.start_ns, "ns").astype("datetime64[ms]")
             + np.arange(len(data)) * np.timedelta64(step_ms, "ms"))
    return IagaRecord(f.station, tuple(order), times, data, f.location)
