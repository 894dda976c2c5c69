"""Tuned ObsPy recursive STA/LTA baseline for P picking and event detection.

Characteristic function on the (optionally band-passed) vertical channel of the raw window;
P picks = trigger onsets (``trigger_onset(cft, on, off)``); detection score = max(cft).
Parameters are tuned by grid search on the *training* windows only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
from obspy.signal.filter import bandpass
from obspy.signal.trigger import recursive_sta_lta, trigger_onset

from geosentry.training.evaluate.picks import pick_scores


@dataclass(frozen=True)
class StaLtaParams:
    sta_s: float = 0.5
    lta_s: float = 5.0
    on: float = 3.0
    off: float = 1.5
    band: tuple[float, float] | None = (2.0, 15.0)

    def as_dict(self) -> StaLtaParamsDict:
        return {"sta_s": self.sta_s, "lta_s": self.lta_s, "on": self.on, "off": self.off,
                "band": list(self.band) if self.band is not None else None}

    @classmethod
    def from_dict(cls, d: StaLtaParamsDict) -> StaLtaParams:
        """The parameters :meth:`as_dict` gave (``band`` a list there, a pair here)."""
        band = d["band"]
        return cls(d["sta_s"], d["lta_s"], d["on"], d["off"],
                   (band[0], band[1]) if band else None)


class StaLtaParamsDict(TypedDict):
    """:meth:`StaLtaParams.as_dict` (JSON: ``band`` a list, or None)."""

    sta_s: float
    lta_s: float
    on: float
    off: float
    band: list[float] | None


class StaLtaDetection(TypedDict):
    """:func:`tuned_stalta_detection`: held-out ``scores`` (of ``detection_scores``), the tuned
    ``params`` and the held-out windows' ``test_scores`` (max cft each)."""

    scores: dict[str, float]
    params: StaLtaParamsDict
    test_scores: np.ndarray


def cft(z: np.ndarray, sampling_rate_hz: float, p: StaLtaParams) -> np.ndarray:
    """Recursive STA/LTA characteristic function of ``z`` (demeaned, optionally filtered)."""
    x = np.asarray(z, dtype=np.float64) - float(np.mean(z))
    if p.band is not None:
        x = bandpass(x, p.band[0], p.band[1], sampling_rate_hz, corners=2, zerophase=False)
    return recursive_sta_lta(x, int(p.sta_s * sampling_rate_hz), int(p.lta_s * sampling_rate_hz))


def stalta_picks(z: np.ndarray, sampling_rate_hz: float, p: StaLtaParams) -> np.ndarray:
    c = cft(z, sampling_rate_hz, p)
    on = trigger_onset(c, p.on, p.off)
    return np.asarray([int(a) for a, _ in on], dtype=np.int64) if len(on) else np.zeros(0, np.int64)


def _grid() -> list[StaLtaParams]:
    out = []
    for sta, lta, on, band in itertools.product((0.2, 0.5, 1.0), (3.0, 5.0, 10.0),
                                                (2.0, 3.0, 4.0, 6.0, 10.0),
                                                (None, (2.0, 15.0))):
        out.append(StaLtaParams(sta, lta, on, max(1.0, on / 2.0), band))
    return out


def tune_stalta_picker(windows_z: list[np.ndarray], truth_p: list[int | None],
                       sampling_rate_hz: float, tol_s: float = 0.5) -> tuple[StaLtaParams, float]:
    """Grid search maximising P F1 at ``tol_s`` on the given (training) windows."""
    best, best_f1 = StaLtaParams(), -1.0
    for p in _grid():
        preds = [stalta_picks(z, sampling_rate_hz, p) for z in windows_z]
        f1 = pick_scores(truth_p, preds, sampling_rate_hz, (tol_s,))[f"{tol_s:g}s"]["f1"]
        if f1 > best_f1:
            best, best_f1 = p, float(f1)
    return best, best_f1


def stalta_scores(windows_z: list[np.ndarray], sampling_rate_hz: float,
                  p: StaLtaParams) -> np.ndarray:
    """Detection score per window: max of the characteristic function."""
    return np.asarray([float(np.max(cft(z, sampling_rate_hz, p))) for z in windows_z])


def tuned_stalta_detection(train_z: list[np.ndarray], train_truth: np.ndarray,
                           test_z: list[np.ndarray], test_truth: np.ndarray,
                           sampling_rate_hz: float) -> StaLtaDetection:
    """Window-level STA/LTA detector (score = max cft) with (sta, lta, band, threshold) tuned for
    F1 on the training windows; returns its test scores and the chosen parameters."""
    from geosentry.training.evaluate.picks import best_threshold, detection_scores

    best: tuple[float, StaLtaParams, float] = (-1.0, StaLtaParams(), 0.0)
    for sta, lta in ((0.5, 5.0), (1.0, 10.0), (0.2, 3.0)):
        for band in (None, (2.0, 15.0)):
            p = StaLtaParams(sta, lta, band=band)
            s = stalta_scores(train_z, sampling_rate_hz, p)
            t, f = best_threshold(lambda t: detection_scores(train_truth, s, t)["f1"],  # noqa: B023
                                  np.arange(1.5, 20.0, 0.5))  # (called in this iteration)
            if f > best[0]:
                best = (f, p, t)
    _, params, thr = best
    test_scores = stalta_scores(test_z, sampling_rate_hz, params)
    scores = detection_scores(test_truth, test_scores, thr)
    return {"scores": scores, "params": params.as_dict(), "test_scores": test_scores}
