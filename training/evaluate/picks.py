"""Pick extraction and scoring: P/S precision, recall, F1 at several tolerances; residuals.

Each evaluation window has at most one true P and one true S (sample index inside the window,
``None`` if the phase falls outside). A predicted pick is a local maximum of the phase probability
above the threshold (peaks closer than ``min_distance`` merged). Per window and phase: TP if the
nearest predicted pick is within the tolerance of the true pick, every other predicted pick is a
FP, a missed true pick is a FN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import find_peaks


@dataclass(frozen=True)
class PickWindow:
    """One evaluation window: event index, crop offset, true P/S positions in the window."""

    event: int
    offset: int
    p: int | None
    s: int | None


def make_pick_windows(itps: list[int], itss: list[int], record_len: int, window: int,
                      per_event: int, seed: int, margin: int = 100) -> list[PickWindow]:
    """``per_event`` windows per event with P uniformly in ``[margin, window - margin)``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (itp, its) in enumerate(zip(itps, itss)):
        for _ in range(per_event):
            ppos = int(rng.integers(margin, window - margin))
            off = int(np.clip(itp - ppos, 0, record_len - window))
            p = itp - off
            s = its - off
            out.append(PickWindow(i, off, p if 0 <= p < window else None,
                                  s if 0 <= s < window else None))
    return out


def extract_picks(prob: np.ndarray, threshold: float, min_distance: int = 50) -> np.ndarray:
    """Sample indices of peaks of ``prob`` (1-D) above ``threshold``."""
    if prob.max(initial=0.0) < threshold:
        return np.zeros(0, dtype=np.int64)
    peaks, _ = find_peaks(np.concatenate([[0.0], prob, [0.0]]), height=threshold,
                          distance=max(int(min_distance), 1))
    return (peaks - 1).astype(np.int64)


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": tp, "fp": fp, "fn": fn}


def pick_scores(truth: list[int | None], preds: list[np.ndarray], sampling_rate_hz: float,
                tolerances_s: tuple[float, ...] = (0.1, 0.5)) -> dict[str, Any]:
    """Scores for one phase over many windows: ``{"0.1s": {...}, "0.5s": {...}, residual}``.

    Residuals (predicted - true, seconds) are over the matches at the largest tolerance.
    """
    out: dict[str, Any] = {}
    residuals: list[float] = []
    for tol in tolerances_s:
        tol_n = tol * sampling_rate_hz
        tp = fp = fn = 0
        for t, pr in zip(truth, preds):
            hit = False
            if t is not None and pr.size:
                d = pr - t
                j = int(np.argmin(np.abs(d)))
                if abs(d[j]) <= tol_n:
                    hit = True
                    if tol == max(tolerances_s):
                        residuals.append(float(d[j]) / sampling_rate_hz)
            tp += int(hit)
            fp += int(pr.size) - int(hit)
            fn += int(t is not None and not hit)
        out[f"{tol:g}s"] = _prf(tp, fp, fn)
    res = np.asarray(residuals)
    out["residual_mean_s"] = round(float(res.mean()), 4) if res.size else None
    out["residual_std_s"] = round(float(res.std()), 4) if res.size else None
    out["n_windows"] = len(truth)
    out["n_true"] = int(sum(t is not None for t in truth))
    return out


def matched_residuals(truth: list[int | None], preds: list[np.ndarray], sampling_rate_hz: float,
                      tol_s: float = 0.5) -> list[float]:
    """Residuals (predicted - true, seconds) of the nearest pick within ``tol_s`` per window
    (the matches :func:`pick_scores` counts as true positives)."""
    out = []
    for t, pr in zip(truth, preds):
        if t is not None and pr.size:
            d = pr - t
            j = int(np.argmin(np.abs(d)))
            if abs(d[j]) <= tol_s * sampling_rate_hz:
                out.append(float(d[j]) / sampling_rate_hz)
    return out


def detection_scores(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Window-level detection: positive when ``score >= threshold``."""
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(score) >= threshold
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    out = _prf(tp, fp, fn)
    out["threshold"] = round(float(threshold), 4)
    out["false_alarm_rate"] = round(fp / max(int(np.sum(~truth)), 1), 4)
    return out


def best_threshold(score_fn: Callable[[float], float], grid: np.ndarray) -> tuple[float, float]:
    """``argmax`` of ``score_fn(threshold) -> f1`` over ``grid``; returns (threshold, f1)."""
    best = (float(grid[0]), -1.0)
    for thr in grid:
        f = float(score_fn(float(thr)))
        if f > best[1]:
            best = (float(thr), f)
    return best
