"""Reader for the PhaseNet training npz files and a station-held-out split.

Each file holds ``data`` (9001 x 3, columns E, N, Z, 100 Hz, raw counts), ``itp``, ``its`` (sample
indices of P and S; P is always 3000) and ``channels``. We return channels reordered to Z, N, E.
Vertical-only events have all-zero N and E (``three_component`` is False).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geosentry.training.paths import shared_data_dir

log = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("Z", "N", "E")
SAMPLING_RATE_HZ = 100.0


@dataclass
class PhaseNetEvent:
    """One three-channel event record (Z, N, E) with sample-index P and S picks."""

    name: str
    network: str
    station: str
    data: np.ndarray  # (3, n) float32, rows Z, N, E
    itp: int
    its: int
    channels: str = ""
    source: str = "phasenet"

    @property
    def three_component(self) -> bool:
        return bool(np.any(self.data[1] != 0) or np.any(self.data[2] != 0))

    @property
    def station_id(self) -> str:
        return f"{self.network}.{self.station}"


def station_of(fname: str) -> tuple[str, str]:
    """``NC_MEM_2017100709282692.npz`` -> ``("NC", "MEM")``."""
    parts = Path(fname).stem.split("_")
    if len(parts) < 3:
        raise ValueError(f"{fname}: expected NET_STA_ORIGINTIME[_suffix].npz")
    return parts[0], parts[1]


def read_npz(path: str | Path) -> PhaseNetEvent:
    """Read one PhaseNet npz file (E, N, Z columns) into a Z, N, E :class:`PhaseNetEvent`."""
    path = Path(path)
    with np.load(path) as npz:
        raw = np.asarray(npz["data"], dtype=np.float64)
        itp, its = int(npz["itp"]), int(npz["its"])
        channels = str(npz["channels"]) if "channels" in npz else ""
    if raw.ndim != 2 or raw.shape[1] != 3:
        raise ValueError(f"{path}: data shape {raw.shape}, expected (n, 3)")
    zne = np.stack([raw[:, 2], raw[:, 1], raw[:, 0]]).astype(np.float32)
    net, sta = station_of(path.name)
    return PhaseNetEvent(path.name, net, sta, zne, itp, its, channels)


def read_phasenet_csv(path: str | Path) -> dict[str, tuple[int, int, str]]:
    """PhaseNet's ``waveform.csv`` (``fname,itp,its,channels``): ``{fname: (itp, its, channels)}``."""
    import csv

    with open(path, newline="") as fh:
        return {r["fname"].strip(): (int(r["itp"]), int(r["its"]), r.get("channels", "").strip())
                for r in csv.DictReader(fh)}


def phasenet_dir(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else shared_data_dir() / "phasenet"


def load_phasenet(root: str | Path | None = None, limit: int | None = None) -> list[PhaseNetEvent]:
    """All events under ``root/waveform_train`` sorted by name (``root`` defaults to shared data)."""
    folder = phasenet_dir(root) / "waveform_train"
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no PhaseNet npz files in {folder}")
    events = [read_npz(f) for f in files[:limit]]
    table = phasenet_dir(root) / "waveform.csv"
    if table.exists():  # the catalogue beside the npz files: picks must agree
        rows = read_phasenet_csv(table)
        bad = [e.name for e in events if e.name in rows and rows[e.name][:2] != (e.itp, e.its)]
        if bad:
            log.warning("%d npz files disagree with %s on itp/its (npz used): %s", len(bad), table,
                        bad[:5])
    return events


def load_events(root: str | Path | None = None, seed: int = 0,
                n_synthetic: int = 64) -> tuple[list[PhaseNetEvent], str]:
    """PhaseNet events if the shared data exists, else the ObsPy/synthetic fallback.

    Returns ``(events, source)`` where ``source`` says which one was used (and is logged).
    """
    folder = phasenet_dir(root)
    if (folder / "waveform_train").is_dir():
        return load_phasenet(folder), f"phasenet:{folder}"
    from geosentry.training.data.synthetic import fallback_events

    log.warning("shared data %s absent: falling back to ObsPy's bundled waveforms + synthetic "
                "events (numbers will not be comparable)", folder)
    return fallback_events(n_synthetic, seed=seed), "fallback:obspy+synthetic"


def station_split(events: list[PhaseNetEvent], test_fraction: float = 0.2,
                  seed: int = 0) -> tuple[list[PhaseNetEvent], list[PhaseNetEvent]]:
    """Split so that no station appears in both sets; test gets ~``test_fraction`` of events.

    Stations are shuffled with ``seed`` and assigned to test until the fraction is reached.
    """
    stations = sorted({e.station_id for e in events})
    rng = np.random.default_rng(seed)
    rng.shuffle(stations)
    target = test_fraction * len(events)
    counts = {s: sum(e.station_id == s for e in events) for s in stations}
    test_st: set[str] = set()
    n = 0
    for s in stations:
        if n >= target:
            break
        if n + counts[s] > target + 2:  # don't let one big station overshoot the fraction
            continue
        test_st.add(s)
        n += counts[s]
    train = [e for e in events if e.station_id not in test_st]
    test = [e for e in events if e.station_id in test_st]
    return train, test
