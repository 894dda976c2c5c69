"""Onset refinement: a picker's P pick moved to the onset the waveform itself shows.

A picker trained with wide labels (the shipped one: Gaussians of σ 0.2 s) puts its probability
peak near an onset, not on it: on networks it never saw, its P picks of some earthquakes are
100-250 ms early or late in every window (``geosentry.training.evaluate.timing``). The classic
cure is an Akaike information criterion (AIC) picker run around the model's pick (Maeda 1985;
the two-stage "detect, then refine" scheme of many automatic pickers): on the band-passed
vertical trace around the pick, the onset is the split point where two stationary segments (noise
before, signal after) explain the trace best,
``AIC(k) = k log var(x[:k]) + (n - k - 1) log var(x[k:])``.

A contract states it (``refine``: :class:`PickRefinement`); without one the picks are the model's.
The refinement keeps the model's pick where the trace cannot be trusted around it: a missing
component, a flat stretch (a gap filled by the detector's policy, the flat padding before a
stream's first sample, a clipped record) or too little data on either side.

>>> rate = 100.0
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(0, 1, 600)
>>> x[300:] += 8 * np.cos(2 * np.pi * 5 * np.arange(300) / rate)   # onset at sample 300
>>> r = PickRefinement()
>>> aic_onset(x, rate, 280, r), aic_onset(x, rate, 330, r)   # the model's pick 0.2 s off
(299, 299)

(within a sample: the zero-phase band-pass spreads a step both ways)

>>> x[200:240] = 0.0    # a flat stretch (a zero-filled gap) near the pick: left alone
>>> aic_onset(x, rate, 280, r) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.signal import butter, sosfiltfilt

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.scoring import MIN_PICK_SEPARATION_S
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, Window

#: filter run-in on either side of the searched stretch (the zero-phase filter's transients)
PAD_S = 1.0
#: the searched stretch must have this many samples on each side of the model's pick
MIN_SIDE_SAMPLES = 10
#: this many identical consecutive samples make a stretch flat (gap fill, padding, clipping)
FLAT_RUN_S = 0.1
#: the band's upper edge at most this share of the sampling rate (below Nyquist)
MAX_BAND_SHARE = 0.45


class RefineMethod(StrEnum):
    """``refine.method`` of a picker's contract."""

    AIC = "aic"


@dataclass(frozen=True)
class PickRefinement:
    """How a contract's picks are refined (``refine`` in the contract).

    ``phases``: the labels refined; ``component``: the contract component whose trace is read;
    ``half_window_s``: the onset is searched within this of the model's pick; ``band_hz``:
    zero-phase Butterworth band-pass (order 4) applied first. The defaults are the ones chosen
    on the leave-one-network-out windows (README, "Onset refinement")."""

    method: RefineMethod = RefineMethod.AIC
    phases: tuple[str, ...] = ("P",)
    component: str = "Z"
    half_window_s: float = 0.5
    band_hz: tuple[float, float] = (1.0, 30.0)

    @classmethod
    def from_dict(cls, raw: Any, labels: tuple[str, ...],
                  components: tuple[str, ...]) -> PickRefinement:
        """Validate the contract's ``refine`` table; every problem names its key."""
        if not isinstance(raw, dict):
            raise ContractError(f"refine: must be a table, got {raw!r}")
        unknown = set(raw) - {"method", "phases", "component", "half_window_s", "band_hz"}
        if unknown:
            raise ContractError(f"refine: unknown keys {sorted(unknown)}")
        method = raw.get("method", RefineMethod.AIC.value)
        if method not in tuple(m.value for m in RefineMethod):
            raise ContractError(f"refine.method: {method!r} is not one of "
                                f"{', '.join(m.value for m in RefineMethod)}")
        phases = tuple(str(p) for p in raw.get("phases", ("P",)))
        if not phases or not set(phases) <= set(labels):
            raise ContractError(f"refine.phases: {list(phases)} must be labels of the model "
                                f"{list(labels)}")
        component = str(raw.get("component", "Z"))
        if component not in components:
            raise ContractError(f"refine.component: {component!r} is not a component of the "
                                f"model {list(components)}")
        half = float(raw.get("half_window_s", 0.5))
        if not 0.05 <= half <= 5.0:
            raise ContractError(f"refine.half_window_s: {half} outside [0.05, 5]")
        band = tuple(float(b) for b in raw.get("band_hz", (1.0, 30.0)))
        if len(band) != 2 or not 0.0 < band[0] < band[1]:
            raise ContractError(f"refine.band_hz: {list(band)} must be [low, high] with "
                                "0 < low < high")
        return cls(RefineMethod(method), phases, component, half, (band[0], band[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method.value, "phases": list(self.phases),
                "component": self.component, "half_window_s": self.half_window_s,
                "band_hz": list(self.band_hz)}


def _flat(x: np.ndarray, run: int) -> bool:
    """Whether ``x`` holds ``run`` identical consecutive samples."""
    same = np.diff(x) == 0
    if run < 2 or same.size < run - 1:
        return False
    counts = np.convolve(same.astype(np.int32), np.ones(run - 1, dtype=np.int32), mode="valid")
    return bool(counts.max() >= run - 1)


def aic_onset(x: np.ndarray, rate_hz: float, index: int, r: PickRefinement) -> int | None:
    """The AIC onset within ``r.half_window_s`` of sample ``index`` of trace ``x``, or None
    where the trace around it cannot be trusted (module docstring)."""
    half = int(round(r.half_window_s * rate_hz))
    pad = int(round(PAD_S * rate_hz))
    lo, hi = max(0, index - half), min(x.size, index + half + 1)
    if index - lo < MIN_SIDE_SAMPLES or hi - index < MIN_SIDE_SAMPLES:
        return None
    a, b = max(0, lo - pad), min(x.size, hi + pad)
    raw = np.asarray(x[a:b], dtype=np.float64)
    if _flat(raw, max(2, int(round(FLAT_RUN_S * rate_hz)))):
        return None
    low, high = r.band_hz[0], min(r.band_hz[1], MAX_BAND_SHARE * rate_hz)
    if low >= high:
        return None
    sos = butter(4, (low, high), btype="bandpass", fs=rate_hz, output="sos")
    padlen = min(raw.size - 1, 3 * (2 * sos.shape[0] + 1))
    seg = sosfiltfilt(sos, raw - raw.mean(), padlen=padlen)[lo - a:hi - a]
    n = seg.size
    k = np.arange(1, n - 1)
    c = np.cumsum(seg * seg)
    before = np.maximum(c[k - 1] / k, 1e-30)
    after = np.maximum((c[-1] - c[k - 1]) / (n - k), 1e-30)
    aic = k * np.log(before) + (n - k - 1) * np.log(after)
    return lo + int(k[int(np.argmin(aic))])


def refine_picks(w: Window, alerts: list[Alert], r: PickRefinement, row: int,
                 state: dict[str, float], separate: bool = True) -> list[Alert]:
    """Move each pick of ``r.phases`` among ``alerts`` (window ``w``'s) to its onset on
    ``w.data[row]`` (the contract's ``r.component``), in place; the alerts kept. A moved pick
    says so in its details (``onset``: the method, ``moved_s``: onset minus the model's pick);
    one left where the model put it (:func:`aic_onset` gave None, or the component is missing)
    has no such key.

    The ``peaks`` rule keeps a phase's picks ``MIN_PICK_SEPARATION_S`` apart; two model picks
    0.5-1 s apart around one onset may both move onto it (or near it). With ``separate`` (that
    rule) the later one is then the same arrival as the pick already reported: dropped, so the
    phase's picks of an instrument stay that far apart from the last one (no arrival reported
    twice, no two picks at one time nor one alert id; refined times can cross only by less than
    twice ``half_window_s``, so with the default 0.5 s no two kept picks come closer). Without
    it (other pick rules, whose picks may be closer by design) such a pick keeps the model's
    time. ``state`` (per instrument, kept across its windows) remembers the last pick per phase.
    """
    rate = w.sampling_rate_hz
    kept: list[Alert] = []
    for a in alerts:
        if a.kind != AlertKind.PICK or a.phase not in r.phases:
            kept.append(a)
            continue
        index = int(round((a.time_ns - w.start_ns) * rate / 1e9))
        onset = aic_onset(w.data[row], rate, index, r) if w.channels[row] else None
        t_ns = a.time_ns if onset is None else w.time_of(onset)
        key = f"refined:{a.phase}"
        if abs(t_ns - state.get(key, -1e30)) < MIN_PICK_SEPARATION_S * NS_PER_S:
            if not separate:
                kept.append(a)  # keeps the model's time
            continue  # separate: the arrival of the phase's last pick, already reported
        state[key] = t_ns
        kept.append(a)
        if onset is not None:
            a.time_ns = t_ns
            a.details["onset"] = r.method.value
            a.details["moved_s"] = round((onset - index) / rate, 4)
    return kept
