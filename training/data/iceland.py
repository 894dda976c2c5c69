"""The Iceland dike-swarm events (``<shared>/events/iceland-2014-dike``, network Z7, HH[ZNE] at
100 Hz, QuakeMigrate's automatic P/S picks with pick errors) as picker training records: a
second region for the picker (``evaluate picker-lono --recipe network-iceland``).

Each (event, station) with a P pick becomes a :class:`PhaseNetEvent` whose ``pick_error_s``
holds the P and S pick errors (the label width follows them: an uncertain automatic pick gets a
wider, lower-confidence target). The cuts are 32.5 s long with P about 10 s in; to let crops put
P anywhere in a 30 s window the record is padded to 90 s on both sides with its own pre-P noise,
mirrored and tiled (no zero steps), so P sits at 30 s like the PhaseNet records.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from geosentry.training.data.phasenet import PhaseNetEvent
from geosentry.training.paths import shared_data_dir

log = logging.getLogger(__name__)
FOLDER = "events/iceland-2014-dike/events"
SR = 100.0
RECORD = 9001
P_AT = 3000


def _pad_noise(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(C, n)`` of ``noise`` ``(C, M)`` mirrored and tiled from a random start."""
    reps = int(np.ceil(n / max(noise.shape[1], 1))) + 2
    tiled = np.concatenate([noise, noise[:, ::-1]] * reps, axis=1)
    start = int(rng.integers(0, tiled.shape[1] - n))
    return tiled[:, start: start + n]


def load_iceland(root: Path | None = None, max_error_s: float = 0.5,
                 seed: int = 0) -> list[PhaseNetEvent]:
    """Records of every (event, station) with a P pick whose error is at most ``max_error_s``."""
    import obspy

    folder = (root or shared_data_dir()) / FOLDER
    if not folder.is_dir():
        log.warning("Iceland events absent (%s): no second region", folder)
        return []
    rng = np.random.default_rng(seed)
    out: list[PhaseNetEvent] = []
    for picks_file in sorted(folder.glob("*.picks")):
        st = obspy.read(str(picks_file.with_suffix(".m")), format="MSEED")
        with open(picks_file, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["PickTime"] != "-1"]
        by_station: dict[str, dict[str, tuple[obspy.UTCDateTime, float]]] = {}
        for r in rows:
            by_station.setdefault(r["Station"], {})[r["Phase"]] = (
                obspy.UTCDateTime(r["PickTime"]), float(r["PickError"]))
        for sta, ph in sorted(by_station.items()):
            if "P" not in ph or ph["P"][1] > max_error_s:
                continue
            sel = st.select(station=sta)
            if not sel.select(component="Z"):
                continue
            t0 = min(tr.stats.starttime for tr in sel)
            n = max(tr.stats.npts for tr in sel)
            cut = np.zeros((3, n), np.float32)
            for k, c in enumerate("ZNE"):
                tr = sel.select(component=c)
                if tr:
                    cut[k, : tr[0].stats.npts] = tr[0].data.astype(np.float32)
            itp_cut = int(round((ph["P"][0] - t0) * SR))
            if not 300 < itp_cut < n - 300:
                continue
            noise = cut[:, : itp_cut - 100] - cut[:, : itp_cut - 100].mean(axis=1, keepdims=True)
            cut -= cut[:, : itp_cut - 100].mean(axis=1, keepdims=True)
            left = P_AT - itp_cut
            data = np.empty((3, RECORD), np.float32)
            data[:, :left] = _pad_noise(noise, left, rng)
            data[:, left: left + n] = cut
            data[:, left + n:] = _pad_noise(noise, RECORD - left - n, rng)
            its = -1
            if "S" in ph and ph["S"][1] <= max_error_s:
                its = P_AT + int(round((ph["S"][0] - ph["P"][0]) * SR))
            ev = PhaseNetEvent(f"Z7_{sta}_{picks_file.stem}", "Z7", sta, data, P_AT, its,
                               "HHE_HHN_HHZ", source="iceland")
            ev.pick_error_s = {"P": ph["P"][1], "S": ph["S"][1] if its > 0 else None}  # type: ignore[attr-defined]
            out.append(ev)
    log.info("Iceland: %d records from %d stations", len(out), len({e.station for e in out}))
    return out
