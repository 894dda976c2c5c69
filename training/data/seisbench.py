"""Minimal reader for SeisBench-format datasets (``metadata.csv`` + ``waveforms.hdf5``).

Trace names are either an HDF5 dataset name under ``data/`` or a bucket reference
``bucketK$i,:c,:n`` (row ``i`` of ``data/bucketK``, first ``c`` channels and ``n`` samples).
Needs ``h5py`` (imported lazily).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np

_BUCKET = re.compile(r"^(?P<bucket>[^$]+)\$(?P<index>\d+)(?P<slices>(,:?\d*:?\d*)*)$")


class SeisBenchDataset:
    """Read-only access to a SeisBench dataset folder; ``len(ds)``, ``ds.metadata[i]``,
    ``ds.waveform(i)`` -> ``(C, N)`` float32 in the file's component order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta = self.path / "metadata.csv"
        if not meta.exists():
            raise FileNotFoundError(f"{meta} not found")
        with open(meta, newline="") as fh:
            self.metadata: list[dict[str, str]] = list(csv.DictReader(fh))
        self._h5: Any = None

    def __len__(self) -> int:
        return len(self.metadata)

    def _file(self) -> Any:
        if self._h5 is None:
            import h5py  # optional dependency

            self._h5 = h5py.File(self.path / "waveforms.hdf5", "r")
        return self._h5

    @property
    def attrs(self) -> dict[str, Any]:
        """Dataset-level attributes in ``data_format`` (component_order, sampling_rate, ...)."""
        fmt = self._file().get("data_format")
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in
                ({} if fmt is None else {k: fmt[k][()] for k in fmt}).items()}

    def waveform(self, i: int) -> np.ndarray:
        name = self.metadata[i]["trace_name"]
        m = _BUCKET.match(name)
        data = self._file()["data"]
        if m is None:
            return np.asarray(data[name], dtype=np.float32)
        arr = data[m.group("bucket")]
        idx: list[Any] = [int(m.group("index"))]
        for part in filter(None, m.group("slices").split(",")):
            lo, _, hi = part.partition(":")
            idx.append(slice(int(lo) if lo else None, int(hi) if hi else None))
        return np.asarray(arr[tuple(idx)], dtype=np.float32)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
