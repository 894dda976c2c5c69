"""How a picker's probabilities become picks: the rule a model contract names (``pick_rule``).

* ``peaks`` (the default, and what a contract without ``pick_rule`` gets): one pick per
  probability peak above the label's threshold, peaks at least 0.5 s apart
  (``scoring.score_picker``).
* ``seisbench``: SeisBench's ``WaveformModel.picks_from_annotations`` exactly. ObsPy's
  ``trigger_onset(p, thr, thr / 2)`` switches on at the first sample ``>= thr`` and off after the
  last sample of that run ``>= thr / 2`` (so one stretch per run above half the threshold, however
  often it crosses the threshold inside); the pick is the stretch's first maximum, its score the
  maximum. A stretch still on at the end of a trace ends there.

Streaming (``score_stretches``): every sample of a stream is owned by exactly one window (the
middle stride of overlapping windows, ``detectors.base.owned_range``), and the trigger runs over
the owned samples only, in stream order, carrying an open stretch (its peak so far) from window to
window in per-instrument ``StretchState``. So each stretch is picked exactly once, by the window
that owns the sample where it switches off, at the time of its maximum over every window it
crossed: the picks are those of SeisBench's rule on the stream of owned outputs, whatever the
stride. No context beyond the owned samples is read, so a ``forward_range`` model decodes just
those. The cost: a stretch that crosses into the next window's stretch is reported one stride
later; one still open where a stream ends or resets (a gap) is not reported (its end, hence its
peak, is unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from geosentry.stream.inference.scoring import _alert
from geosentry.stream.records import Alert, ModelRef, Window


class PickRule(StrEnum):
    """``pick_rule`` of a picker's contract."""

    PEAKS = "peaks"
    SEISBENCH = "seisbench"


PICK_RULES = tuple(r.value for r in PickRule)


@dataclass(slots=True)
class OpenStretch:
    """A stretch switched on and not yet off: its maximum so far and where (data time)."""

    peak: float
    peak_ns: int


@dataclass(slots=True)
class StretchState:
    """Per instrument: the open stretch of each label (none: the trigger is off)."""

    open: dict[str, OpenStretch] = field(default_factory=dict)


def trigger_stretches(p: np.ndarray, thr: float, on: bool = False) -> tuple[
        list[tuple[int, int]], int | None]:
    """SeisBench's stretches in ``p``: ``(s0, s1)`` per stretch that switches off inside ``p``
    (``s1`` its last sample, inclusive), and the start of one still on at the end (or None).
    ``on``: a stretch is already on before ``p[0]`` (it then starts at 0, and is ``(0, -1)`` if
    ``p[0]`` is already below half the threshold).

    Equal to ObsPy's ``trigger_onset(p, thr, thr / 2)`` (which also ends the open stretch at
    the last sample):

    >>> p = np.array([0, .6, .3, .6, .2, .9, .1, .5, .5])
    >>> trigger_stretches(p, 0.5)
    ([(1, 3), (5, 5)], 7)
    >>> trigger_stretches(np.array([.3, .1, .6]), 0.5, on=True)
    ([(0, 0)], 2)
    >>> trigger_stretches(np.array([.1, .1]), 0.5, on=True)
    ([(0, -1)], None)
    """
    low = ~(p >= thr / 2)  # as ObsPy: NaN switches off
    high = p >= thr
    out: list[tuple[int, int]] = []
    n = len(p)
    i = 0
    s0: int | None = 0 if on else None
    while i < n:
        if s0 is None:
            ups = np.flatnonzero(high[i:])
            if not ups.size:
                break
            s0 = i + int(ups[0])
        offs = np.flatnonzero(low[s0:])
        if not offs.size:
            return out, s0
        out.append((s0, s0 + int(offs[0]) - 1))
        i, s0 = s0 + int(offs[0]), None
    return out, s0


def score_stretches(w: Window, probs: np.ndarray, labels: tuple[str, ...],
                    thresholds: dict[str, float], lo: int, hi: int, state: StretchState,
                    model: ModelRef, name: str, start: int = 0) -> list[Alert]:
    """Picks of SeisBench's rule from the samples ``[lo, hi)`` that window ``w`` owns
    (``probs[:, k]`` is the window's sample ``start + k`` and must cover ``[lo, hi)``); carries
    open stretches in ``state`` (module docstring). A stream's first window starts at its first
    real sample (after ``pad_samples``), where SeisBench's trace starts."""
    if w.first:
        state.open.clear()
        lo = max(lo, w.pad_samples)
    alerts: list[Alert] = []
    a, b = max(0, lo - start), max(0, hi - start)
    if b <= a:
        return alerts
    for i, label in enumerate(labels):
        thr = thresholds.get(label)
        if thr is None:
            continue  # e.g. the noise class
        p = probs[i, a:b]
        held = state.open.pop(label, None)
        if held is None and not (p >= thr).any():
            continue  # the trigger stays off (most windows)
        stretches, still_on = trigger_stretches(p, thr, on=held is not None)
        for k, (s0, s1) in enumerate(stretches):
            peak, peak_ns = -np.inf, 0
            if s1 >= s0:  # (0, -1): the held stretch switched off before this window's samples
                j = s0 + int(np.argmax(p[s0:s1 + 1]))
                peak, peak_ns = float(p[j]), w.time_of(start + a + j)
            if k == 0 and held is not None and held.peak >= peak:
                peak, peak_ns = held.peak, held.peak_ns  # the first maximum wins ties
            alerts.append(_alert(w, "pick", peak_ns, peak, thr, model, name, phase=label))
        if still_on is not None:
            j = still_on + int(np.argmax(p[still_on:]))
            peak, peak_ns = float(p[j]), w.time_of(start + a + j)
            if not stretches and held is not None and held.peak >= peak:
                peak, peak_ns = held.peak, held.peak_ns
            state.open[label] = OpenStretch(peak, peak_ns)
    return alerts
