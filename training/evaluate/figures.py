"""PNG figures for evaluation reports (matplotlib, Agg backend; comes with ObsPy).

Every function returns the written path, or ``None`` when matplotlib is missing (reports still
get their JSON and Markdown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np


def plt_or_none() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib ships with obspy
        return None
    return plt


def residual_histograms(residuals: Mapping[str, Sequence[float]], path: Path,
                        title: str = "Pick residuals (predicted − true), matches within ±0.5 s",
                        limit_s: float = 0.5) -> Path | None:
    """One histogram panel per entry of ``residuals`` (label -> residuals in seconds)."""
    plt = plt_or_none()
    if plt is None or not residuals:
        return None
    n = len(residuals)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), sharey=False, squeeze=False)
    bins = np.linspace(-limit_s, limit_s, 41)
    for ax, (label, res) in zip(axes[0], residuals.items()):
        r = np.asarray(res, dtype=float)
        ax.hist(r, bins=bins, color="tab:blue", alpha=0.8)
        stats = f"n={r.size}" + (f"\nmean {r.mean():+.3f} s\nσ {r.std():.3f} s" if r.size else "")
        ax.text(0.02, 0.97, stats, transform=ax.transAxes, va="top", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("residual (s)")
    axes[0][0].set_ylabel("picks")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pr_vs_threshold(curves: Mapping[str, Callable[[float], Mapping[str, Any]]], grid: np.ndarray,
                    path: Path, chosen: Mapping[str, float] | None = None,
                    title: str = "Precision / recall / F1 vs threshold (±0.5 s)") -> Path | None:
    """One panel per entry: ``curves[label](threshold) -> {"precision", "recall", "f1"}`` over
    ``grid``; a vertical line marks ``chosen[label]`` (the threshold the report uses)."""
    plt = plt_or_none()
    if plt is None or not curves:
        return None
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.0), squeeze=False)
    for ax, (label, fn) in zip(axes[0], curves.items()):
        rows = [fn(float(t)) for t in grid]
        for key, style in (("precision", "-"), ("recall", "--"), ("f1", "-")):
            ax.plot(grid, [r[key] for r in rows], style, label=key, lw=2 if key == "f1" else 1)
        if chosen and label in chosen:
            ax.axvline(chosen[label], color="k", lw=0.8, ls=":")
        ax.set_ylim(0, 1.02)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("threshold")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def score_histograms(groups: dict[str, Sequence[float]], path: Path, threshold: float | None = None,
                     title: str = "Scores", log_x: bool = True) -> Path | None:
    """Overlaid histograms of ``groups`` (label -> scores), threshold as a vertical line."""
    plt = plt_or_none()
    if plt is None or not groups:
        return None
    vals = np.concatenate([np.asarray(v, float) for v in groups.values()])
    vals = vals[np.isfinite(vals) & (vals > 0)] if log_x else vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    bins = (np.logspace(np.log10(vals.min()), np.log10(vals.max()), 40) if log_x
            else np.linspace(vals.min(), vals.max(), 40))
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for label, v in groups.items():
        ax.hist(np.asarray(v, float), bins=bins, alpha=0.55, label=f"{label} (n={len(v)})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls=":", lw=1, label=f"threshold {threshold:.3g}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("score")
    ax.set_ylabel("windows")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
