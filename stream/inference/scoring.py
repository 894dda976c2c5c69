"""Model outputs -> alerts: picks from phase probabilities, detections from event probability,
anomalies from reconstruction error. ``state`` is per instrument and persists across windows,
so an event straddling two windows is reported once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.signal import find_peaks

from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef, Window

#: sample ranges of a window where no pick is taken, or a callable that computes them
Excluded = Sequence[tuple[int, int]] | Callable[[], Sequence[tuple[int, int]]]

MIN_PICK_SEPARATION_S = 0.5
#: outputs read beyond a window's owned stretch on either side: peak finding compares a peak with
#: others up to ``MIN_PICK_SEPARATION_S`` away, which compare with theirs in turn
PEAK_CONTEXT_S = 2 * MIN_PICK_SEPARATION_S


#: a P and an S pick of one instrument this close (as reported: after any onset refinement) are
#: one arrival both labels read (an S that close after its P comes from within about 1.6 km of
#: the sensor): it is the S where a P was picked ``PHASE_CONFLICT_S`` to ``MAX_S_MINUS_P_S``
#: before it (the S of that P's earthquake), else a P (an earthquake's first arrival)
PHASE_CONFLICT_S = 0.2
MAX_S_MINUS_P_S = 20.0
#: how far back :func:`drop_phase_conflicts` looks (``WindowSpec.state_s`` of a picker with the
#: ``peaks`` rule): a restarted worker re-reads this much more, so its pairs are judged as the
#: first run judged them
PHASE_STATE_S = MAX_S_MINUS_P_S + PHASE_CONFLICT_S


#: this many seconds of identical consecutive samples are not ground motion: a zero-filled gap, a
#: dead channel, an event cut padded with a constant. A picker reads the step where data meets
#: such a stretch as an onset, so no pick is taken within ``PEAK_CONTEXT_S`` of its ends.
FLAT_STRETCH_S = 0.5


def flat_edges(data: np.ndarray, rate_hz: float) -> list[tuple[int, int]]:
    """Sample ranges ``[a, b)`` of a window ``(C, N)`` where no pick is taken: within
    ``PEAK_CONTEXT_S`` of either end of a stretch of ``FLAT_STRETCH_S`` or more identical samples
    on one component (a stretch that runs into the window's edge has no end there), and wherever
    every component is in such a stretch (nothing but flat lines to pick on: a component flat all
    through the window, a missing one zero-filled, counts as flat everywhere).

    >>> x = np.random.default_rng(0).normal(size=(3, 1000))
    >>> x[2, 200:400] = 0.0     # 2 s of zeros on one component
    >>> x[1] = 0.0              # a missing component
    >>> flat_edges(x, 100.0)
    [(100, 300), (300, 500)]
    >>> x[0, 600:] = x[2, 600:] = 5.0    # flat on every component from 6 s on
    >>> flat_edges(x, 100.0)
    [(100, 300), (300, 500), (500, 700), (600, 1000)]
    >>> flat_edges(np.ones((1, 1000)), 100.0), flat_edges(x[:1, :500], 100.0)
    ([(0, 1000)], [])
    """
    run = max(2, int(round(FLAT_STRETCH_S * rate_hz)))
    ctx = max(1, int(round(PEAK_CONTEXT_S * rate_hz)))
    n = data.shape[-1]
    out: list[tuple[int, int]] = []
    everywhere = np.ones(n, dtype=bool)  # every component flat at the sample
    for row in data.reshape(-1, n):
        same = np.diff(row) == 0
        if same.all():
            continue  # flat all through: no ends, flat everywhere
        flat = np.zeros(n, dtype=bool)
        step = np.diff(np.concatenate(([0], same.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(step == 1), np.flatnonzero(step == -1) + 1
        for a, b in zip(starts.tolist(), ends.tolist()):  # samples [a, b) identical
            if b - a < run:
                continue
            flat[a:b] = True
            for edge in (a, b):
                if 0 < edge < n:
                    out.append((max(0, edge - ctx), min(n, edge + ctx)))
        everywhere &= flat
    if everywhere.any():
        step = np.diff(np.concatenate(([0], everywhere.astype(np.int8), [0])))
        out += zip(np.flatnonzero(step == 1).tolist(), np.flatnonzero(step == -1).tolist())
    return sorted(set(out))


def pick_distance_samples(rate_hz: float) -> int:
    """``MIN_PICK_SEPARATION_S`` in samples: the ``distance`` peak finding keeps between picks."""
    return max(1, int(MIN_PICK_SEPARATION_S * rate_hz))


def cut_near_peak(probs: np.ndarray, start: int, n_samples: int, lo: int, hi: int,
                  labels: tuple[str, ...], thresholds: dict[str, float], rate_hz: float) -> bool:
    """Whether peak finding on a decoded range ``probs`` (window samples ``start`` on, of
    ``n_samples``) might keep other picks in ``[lo, hi)`` than peak finding on the whole window.

    Peaks closer than a pick separation (``d`` samples) suppress one another, in chains, so a
    peak beyond a cut end can decide which peaks inside survive. Not across a quiet stretch,
    though: where some ``d`` consecutive samples between a cut end and ``[lo, hi)`` stay below
    the label's threshold, no peak on one side is within ``d`` of one on the other, and the
    picks inside are the whole window's. So this is True only when a label has no such quiet
    stretch on a side that was cut (rare: threshold crossings all across the context).

    >>> p = np.zeros((3, 300)); p[0, 150] = 0.9
    >>> cut_near_peak(p, 100, 1000, 200, 300, ("P", "S", "N"), {"P": 0.5, "S": 0.5}, 100.0)
    False
    >>> p[0, 10:95:20] = 0.9    # peaks all across the left context, the last near [lo, hi)
    >>> cut_near_peak(p, 100, 1000, 200, 300, ("P", "S", "N"), {"P": 0.5, "S": 0.5}, 100.0)
    True
    >>> cut_near_peak(p, 0, 1000, 100, 200, ("P", "S", "N"), {"P": 0.5, "S": 0.5}, 100.0)
    False
    """
    d = pick_distance_samples(rate_hz)
    width = probs.shape[-1]
    lo_rel, hi_rel = max(0, lo - start), min(width, hi - start)
    sides = ([(0, lo_rel)] if start > 0 else []) + (
        [(hi_rel, width)] if start + width < n_samples else [])
    for i, label in enumerate(labels):
        thr = thresholds.get(label)
        if thr is None:
            continue
        for a, b in sides:
            if not _quiet_run(probs[i, a:b] >= thr, d):
                return True
    return False


def _quiet_run(above: np.ndarray, d: int) -> bool:
    """Whether ``d`` consecutive samples are not ``above`` (a stretch no pick chain crosses)."""
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return above.size >= d
    gaps = np.diff(np.concatenate(([-1], idx, [above.size]))) - 1  # below-threshold run lengths
    return bool(gaps.max() >= d)


def _alert(w: Window, kind: str, t_ns: int, score: float, threshold: float, model: ModelRef,
           name: str, phase: str | None = None, **details: object) -> Alert:
    channel = next((ch for ch in w.channels if ch), "")
    return Alert(kind=AlertKind(kind), network=w.network, station=w.station, location=w.location,
                 channel=channel, time_ns=t_ns, score=score, threshold=threshold, model=model,
                 newest_arrival_ns=w.newest_arrival_ns, phase=phase,
                 details={"detector": name, **details})


def score_picker(w: Window, probs: np.ndarray, labels: tuple[str, ...],
                 thresholds: dict[str, float], lo: int, hi: int, state: dict[str, float],
                 model: ModelRef, name: str, start: int = 0,
                 exclude: Excluded | None = None) -> list[Alert]:
    """One ``pick`` per probability peak above the label's threshold inside ``[lo, hi)``, except
    in the window's sample ranges ``exclude`` (:func:`flat_edges`; a callable is asked only once
    a peak reaches a threshold in ``[lo, hi)``, which most windows never do).

    ``probs[:, k]`` is the window's sample ``start + k`` (a decoded range, which must reach
    ``PEAK_CONTEXT_S`` beyond ``[lo, hi)`` where the window has samples there, and must not be
    ``cut_near_peak``: then the peaks are those of the whole window's outputs)."""
    alerts: list[Alert] = []
    lo, hi = max(0, lo - start), max(0, hi - start)
    distance = pick_distance_samples(w.sampling_rate_hz)
    for i, label in enumerate(labels):
        if label not in thresholds:
            continue  # e.g. the noise class
        thr = thresholds[label]
        if hi <= lo or probs[i, lo:hi].max() < thr:
            continue  # no peak this window owns can reach the threshold (most windows)
        peaks, props = find_peaks(probs[i], height=thr, distance=distance)
        for p, h in zip(peaks, props["peak_heights"]):
            if not lo <= p < hi:
                continue
            if callable(exclude):
                exclude = exclude()
            if any(a <= p + start < b for a, b in exclude or ()):
                continue
            t_ns = w.time_of(int(p) + start)
            last = state.get(label)
            if last is not None and (t_ns - last) < MIN_PICK_SEPARATION_S * NS_PER_S:
                continue  # the same peak seen from the previous window
            state[label] = t_ns
            alerts.append(_alert(w, "pick", t_ns, float(h), thr, model, name, phase=label))
    return alerts


def drop_phase_conflicts(alerts: list[Alert], state: dict[str, float]) -> list[Alert]:
    """``alerts`` (one window's) without the P or S picks that are another pick's arrival read
    with the other label: of a P and an S pick within ``PHASE_CONFLICT_S``, the P where a P
    pick came ``PHASE_CONFLICT_S`` to ``MAX_S_MINUS_P_S`` before it, else the S. Every P pick
    counts as one that came before, kept or not, so a decision depends on the last
    ``MAX_S_MINUS_P_S`` of picks only (``PHASE_STATE_S``: what a restart re-reads). Earlier
    windows' picks count through ``state`` (the instrument's last two P picks and last S pick
    reported): where one of a pair is out already, the other goes if the rule says so.

    >>> def pick(t_s, phase):
    ...     return Alert(kind=AlertKind.PICK, network="XX", station="A", location="",
    ...                  channel="HHZ", time_ns=int(t_s * NS_PER_S), score=0.9, threshold=0.5,
    ...                  model=ModelRef("m", "1", "0"), newest_arrival_ns=0, phase=phase)
    >>> def kept(alerts, state):
    ...     return [(a.phase, a.time_ns / NS_PER_S) for a in drop_phase_conflicts(alerts, state)]
    >>> picks = [pick(1.0, "P"), pick(1.1, "S"), pick(9.0, "P"), pick(9.05, "S")]
    >>> kept(picks, {})
    [('P', 1.0), ('S', 9.05)]

    (the pair at 1 s is a first arrival: its S goes; the one at 9 s comes 8 s after that P:
    its P goes). With a P picked 5 s before, the first pair is an S too:

    >>> kept(picks, {"seen:P": -4.0 * NS_PER_S})
    [('S', 1.1), ('S', 9.05)]

    A pair split across windows: the P at 1 s reported by one window, the S 0.1 s later comes
    in the next; then an S at 9.05 s whose P at 9 s went out (8 s after the one at 1 s: not a
    first arrival, so the S stays):

    >>> state = {}
    >>> kept([pick(1.0, "P")], state), kept([pick(1.1, "S")], state)
    ([('P', 1.0)], [])
    >>> kept([pick(9.0, "P")], state), kept([pick(9.05, "S")], state)
    ([('P', 9.0)], [('S', 9.05)])
    """
    near_ns, far_ns = PHASE_CONFLICT_S * NS_PER_S, MAX_S_MINUS_P_S * NS_PER_S

    def times(phase: str) -> list[int]:
        return sorted(a.time_ns for a in alerts if a.kind == AlertKind.PICK and a.phase == phase)

    p_ns, s_ns = times("P"), times("S")
    if not p_ns and not s_ns:
        return alerts
    seen_p = [state[k] for k in ("seen:P:prev", "seen:P") if k in state]  # earlier windows'
    every_p = seen_p + [float(t) for t in p_ns]

    def after_a_p(t: float) -> bool:
        """Whether a P pick came ``PHASE_CONFLICT_S`` to ``MAX_S_MINUS_P_S`` before ``t``."""
        return any(near_ns < t - k <= far_ns for k in every_p)

    last_s = state.get("reported:S")
    dropped: set[tuple[str, int]] = set()
    for t in p_ns:
        close = [u for u in s_ns if abs(u - t) <= near_ns]
        if close or (last_s is not None and abs(t - last_s) <= near_ns):
            if after_a_p(t):
                dropped.add(("P", t))  # the S of an earlier P's earthquake
            else:
                dropped |= {("S", u) for u in close}  # a first arrival
    if seen_p and not after_a_p(seen_p[-1]):
        # a P picked by an earlier window was a first arrival: an S on it now is that arrival
        dropped |= {("S", u) for u in s_ns if abs(u - seen_p[-1]) <= near_ns}
    out = [a for a in alerts if (a.phase, a.time_ns) not in dropped]
    if p_ns:
        state["seen:P"] = every_p[-1]
        if len(every_p) > 1:
            state["seen:P:prev"] = every_p[-2]
    s_kept = [u for u in s_ns if ("S", u) not in dropped]
    if s_kept:
        state["reported:S"] = s_kept[-1]
    return out


def score_detector(w: Window, prob: np.ndarray, step_samples: int, thresholds: dict[str, float],
                   lo: int, hi: int, state: dict[str, float], model: ModelRef,
                   name: str) -> list[Alert]:
    """A ``detection`` when the event probability rises through the threshold (re-armed below
    half of it)."""
    thr = thresholds.get("event", 0.5)
    armed = state.get("armed", 1.0) > 0
    alerts: list[Alert] = []
    for k in range(lo // step_samples, min(len(prob), -(-hi // step_samples))):
        value = float(prob[k])
        if armed and value >= thr:
            seg = prob[k:]
            end = k + int(np.argmax(seg < thr / 2)) if (seg < thr / 2).any() else len(prob)
            alerts.append(_alert(w, "detection", w.time_of(k * step_samples), value, thr, model,
                                 name, peak=round(float(prob[k:end].max()), 4)))
            armed = False
        elif not armed and value < thr / 2:
            armed = True
    state["armed"] = 1.0 if armed else 0.0
    return alerts


def score_anomaly(w: Window, score: float, thresholds: dict[str, float], state: dict[str, float],
                  model: ModelRef, name: str) -> list[Alert]:
    """An ``anomaly`` when the reconstruction error first exceeds the threshold; re-armed when a
    later window scores below it again."""
    thr = thresholds.get("anomaly", float("inf"))
    above = score > thr
    was_above = state.get("above", 0.0) > 0
    state["above"] = 1.0 if above else 0.0
    if not above or was_above:
        return []
    window_s = w.data.shape[-1] / w.sampling_rate_hz
    return [_alert(w, "anomaly", w.start_ns, score, thr, model, name, window_s=window_s,
                   components="".join(ch[-1:] for ch in w.channels if ch))]
