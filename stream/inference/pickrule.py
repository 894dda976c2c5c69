"""How a picker's probabilities become picks: how overlapping windows' outputs are combined
(``stacking``) and the rule that picks from them (``pick_rule``), both named by the contract.

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
later; one still open where a stream ends or resets (a gap) ends with the stream's last window
(``Window.owned_from_samples``), as SeisBench ends one still on at a trace's end.

Stacking (``stack``): with ``none`` (the default) each sample's outputs come from the one window
that owns it. With ``avg`` (SeisBench's ``annotate`` default, written by ``geosentry models import
seisbench``; ``max`` likewise) they are the mean (maximum) over every window covering the sample,
as SeisBench stacks its overlapping windows: a window then owns its first stride (no later window covers it), adds its
outputs to per-instrument running sums and scores the now complete means there. Needs the
``seisbench`` pick rule (which reads owned samples only); costs ``window - stride`` of latency.
On a stream that starts on the window grid the service then cuts SeisBench's windows and stacks
them as SeisBench does; where a stream ends, its last window (ending on its last sample, as
SeisBench adds one at a trace's end) joins the sums from the samples it owns on (SeisBench also
averages it into the samples before those, which a stream had scored before it knew its end).
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


class Stacking(StrEnum):
    """``stacking`` of a picker's contract (module docstring)."""

    NONE = "none"
    AVG = "avg"
    MAX = "max"


STACKINGS = tuple(s.value for s in Stacking)


@dataclass(slots=True)
class StackState:
    """Per instrument: running sums and counts of outputs from the next unscored sample on."""

    start_ns: int = 0
    sums: np.ndarray | None = None  # (labels, samples)
    counts: np.ndarray | None = None  # (samples,)


def stack(w: Window, out: np.ndarray, stride: int, state: StackState,
          how: Stacking = Stacking.AVG) -> np.ndarray:
    """Add window ``w``'s outputs ``(labels, n)`` to the running sums (``max``: maxima) and
    return the means (maxima) over its first ``stride`` samples, which no later window covers. A
    stream's first window (or one that does not start where the sums do: never, between windows
    of one stream) starts afresh.

    >>> w = Window("XX", "A", "", ("HHZ",), 0, 100.0, np.zeros((1, 4)), 0, "d", first=True)
    >>> st = StackState()
    >>> stack(w, np.array([[1., 1., 1., 1.]]), 2, st).tolist()
    [[1.0, 1.0]]
    >>> w.first, w.start_ns = False, 20_000_000
    >>> stack(w, np.array([[3., 3., 3., 3.]]), 2, st).tolist()
    [[2.0, 2.0]]
    """
    if w.owned_from_samples is not None:
        return _stack_last(w, out, state, how)
    n = out.shape[-1]
    if (w.first or state.sums is None or state.counts is None
            or w.start_ns != state.start_ns):
        state.sums, state.counts = np.zeros((out.shape[0], 0)), np.zeros(0)
    sums, counts = state.sums, state.counts
    if sums.shape[1] < n:
        sums = np.pad(sums, ((0, 0), (0, n - sums.shape[1])))
        counts = np.pad(counts, (0, n - counts.shape[0]))
    if how == Stacking.MAX:
        sums[:, :n] = np.where(counts[:n] > 0, np.maximum(sums[:, :n], out), out)
    else:
        sums[:, :n] += out
    counts[:n] += 1
    mean: np.ndarray = sums[:, :stride] if how == Stacking.MAX else sums[:, :stride] / counts[:stride]
    state.sums, state.counts, state.start_ns = sums[:, stride:], counts[stride:], w.time_of(stride)
    return mean


def _stack_last(w: Window, out: np.ndarray, state: StackState, how: Stacking) -> np.ndarray:
    """A stream's last window (``Window.owned_from_samples``: ending on the stream's last
    sample, off the grid, as SeisBench's ``annotate`` adds one at a trace's end): its outputs
    join the running sums from the first sample it owns to its end; the means there, in an array
    of the window's width (zeros before). The stream ends: the sums are dropped.

    >>> st = StackState()
    >>> w = Window("XX", "A", "", ("HHZ",), 0, 100.0, np.zeros((1, 4)), 0, "d", first=True)
    >>> stack(w, np.array([[1., 1., 1., 1.]]), 2, st).tolist()
    [[1.0, 1.0]]
    >>> w = Window("XX", "A", "", ("HHZ",), 10_000_000, 100.0, np.zeros((1, 4)), 0, "d",
    ...            owned_from_samples=1)   # starts a sample before the sums: owns 3 samples
    >>> stack(w, np.array([[3., 3., 3., 3.]]), 2, st).tolist()
    [[0.0, 2.0, 2.0, 3.0]]
    """
    n = out.shape[-1]
    d = 0 if w.first else min(w.owned_from_samples or 0, n)
    sums = np.zeros((out.shape[0], n - d))
    counts = np.zeros(n - d)
    if (not w.first and state.sums is not None and state.counts is not None
            and state.start_ns == w.time_of(d)):
        k = min(n - d, state.sums.shape[1])
        sums[:, :k], counts[:k] = state.sums[:, :k], state.counts[:k]
    tail = out[:, d:]
    if how == Stacking.MAX:
        sums = np.where(counts > 0, np.maximum(sums, tail), tail)
        means = sums
    else:
        means = (sums + tail) / (counts + 1)
    state.sums, state.counts = None, None
    full = np.zeros_like(out, dtype=float)
    full[:, d:] = means
    return full


@dataclass(slots=True)
class OpenStretch:
    """A stretch switched on and not yet off: its maximum so far and where (data time);
    ``step``: it was on at a padded stream's first sample (not reported)."""

    peak: float
    peak_ns: int
    step: bool = False


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
    real sample (after ``pad_samples``), where SeisBench's trace starts; when it was padded
    (mirrored before that sample, ``buffer.rows.pad_front``), a stretch already on there is
    the join of the pad and the data, not an arrival, and is not reported."""
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
        if w.first and 0 < w.pad_samples == a + start and p.size and p[0] >= thr / 2:
            held = OpenStretch(-np.inf, 0, step=True)  # on where the pad steps into the data
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
            if k == 0 and held is not None and held.step:
                continue
            alerts.append(_alert(w, "pick", peak_ns, peak, thr, model, name, phase=label))
        if still_on is not None:
            j = still_on + int(np.argmax(p[still_on:]))
            peak, peak_ns = float(p[j]), w.time_of(start + a + j)
            if not stretches and held is not None and held.peak >= peak:
                peak, peak_ns = held.peak, held.peak_ns
            state.open[label] = OpenStretch(peak, peak_ns,
                                            step=not stretches and held is not None and held.step)
    if w.owned_from_samples is not None:  # the stream ends here: so do stretches still on
        for label, held in sorted(state.open.items()):
            if not held.step:
                alerts.append(_alert(w, "pick", held.peak_ns, held.peak, thresholds[label], model,
                                     name, phase=label))
        state.open.clear()
    return alerts
