"""What a detector consumes (``WindowSpec``), which channels it applies to, and at which rates it
can run: the one place a channel's rate is judged runnable for a detector.

A detector states its rates through its spec: a fixed model rate (``rate_hz``: channels are
resampled, at most ``MAX_UPSAMPLE`` times up), a native-rate range (``min_rate_hz`` ..
``max_rate_hz``) and the durations it needs to be at least one sample long (window, stride and
``lengths_s``, e.g. STA/LTA's ``sta_s``). ``WindowSpec.refusal(rate_hz)`` says why a channel
cannot run (``None`` when it can); the windower reports that once per instrument and detector.

Channel kinds route detectors by what a channel is (SEED instrument code, the channel's second
letter): ``seismic`` (seismometers, accelerometers, geophones, gravimeters: ``HHZ``, ``EHZ``,
``BHN``, ``HNZ``, ``LHZ``, ``VHZ``), ``geomagnetic`` (magnetometers, ``F``: ``LFH``, ``UFZ``,
``BFE`` from IAGA-2002 files). A seismometer at a rate the seismic detectors cannot use (``VHZ``,
0.1 Hz) is still routed to them, so the operator gets a ``health`` alert instead of silence.

>>> spec = WindowSpec("stalta", ("Z",), 10.0, 1.0, lengths_s=(("sta_s", 0.5),))
>>> spec.refusal(100.0) is None
True
>>> spec.refusal(0.1)
('rate_unsupported', 'stalta: stride_s 1 s is 0 samples at 0.1 Hz (needs >= 1)')
>>> channel_kind("LF"), channel_kind("HH"), channel_kind("LK")
('geomagnetic', 'seismic', 'other')
>>> geomag = WindowSpec("d", ("H",), 600.0, 60.0, channels=("geomagnetic",))
>>> spec.applies_to("LF"), geomag.applies_to("LF"), geomag.applies_to("HH")
(True, True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from geosentry.stream.records import seconds_to_samples

#: Most a channel is upsampled to a detector's rate (20 Hz broadband into a 100 Hz model); a
#: slower channel (one-minute data into a 1 Hz model) is refused: the model would see
#: interpolation, not data.
MAX_UPSAMPLE = 5.0
#: Largest window cut, in samples (a 600 s dB/dt window at 1 kHz is 600 000): beyond it a
#: detector's window at that rate is refused rather than held in memory.
MAX_WINDOW_SAMPLES = 1_000_000
#: SEED instrument codes (second letter of the channel code) per channel kind.
SEISMIC_INSTRUMENTS = frozenset("HLGNP")  # high/low-gain seismometer, gravimeter, accel., geophone
GEOMAGNETIC_INSTRUMENTS = frozenset("F")  # magnetometer
CHANNEL_KINDS = ("any", "seismic", "geomagnetic")


def channel_kind(prefix: str) -> str:
    """``seismic``, ``geomagnetic`` or ``other`` for a band + instrument code (``HH``, ``LF``)."""
    code = prefix[1:2].upper()
    if code in GEOMAGNETIC_INSTRUMENTS:
        return "geomagnetic"
    if code in SEISMIC_INSTRUMENTS:
        return "seismic"
    return "other"


@dataclass(frozen=True)
class WindowSpec:
    """What one detector consumes. ``rate_hz=None`` means the instrument's native rate.

    ``channels``: channel kinds (``CHANNEL_KINDS``) or band + instrument patterns (``HH``,
    ``?F``) it applies to. ``min_rate_hz`` / ``max_rate_hz``: the native rates it runs on.
    ``lengths_s``: named durations that must be at least one sample at the rate it runs at.
    ``state_s``: how much data before a window the detector's state remembers (a recursive
    filter's settling time); with ``window_s`` and ``stride_s`` it makes ``resume_s``.
    """

    detector: str
    components: tuple[str, ...]
    window_s: float
    stride_s: float
    rate_hz: float | None = None
    missing: str = "skip"
    channels: tuple[str, ...] = ("any",)
    min_rate_hz: float = 0.0
    max_rate_hz: float = math.inf
    lengths_s: tuple[tuple[str, float], ...] = ()
    state_s: float = 0.0
    #: events in a window's last ``report_lag_s`` are reported by a later window (a picker's
    #: tail): the window tells that its stream is final only up to its end minus this
    report_lag_s: float = 0.0
    #: where a stream ends (end of input, a released instrument) one more window, ending on its
    #: last sample, owns what the grid's windows left (``Windower._cut_last``): for detectors
    #: that score each window on its own (a picker's peaks), not those carrying state across them
    tail: bool = False

    @property
    def resume_s(self) -> float:
        """Data a restarted worker re-reads before the first window it owes, so that window
        and every later one come out as they did before the restart (``geosentry.stream.resume``):
        the window before it (``window_s + stride_s``) plus the state the detector carries."""
        return self.window_s + self.stride_s + self.state_s

    def samples(self, rate_hz: float) -> tuple[int, int]:
        """(window, stride) in samples at ``rate_hz``."""
        return (seconds_to_samples(self.window_s, rate_hz),
                seconds_to_samples(self.stride_s, rate_hz))

    def applies_to(self, prefix: str) -> bool:
        """Whether instruments with this band + instrument code (``HH``) feed this detector."""
        kind = channel_kind(prefix)
        return any(c == "any" or c == kind or (c not in CHANNEL_KINDS
                                               and fnmatchcase(prefix.upper(), c.upper()))
                   for c in self.channels)

    def refusal(self, native_hz: float) -> tuple[str, str] | None:
        """``(event kind, detail)`` when a channel at ``native_hz`` cannot run, else ``None``."""
        return _refusal(self, float(native_hz))

    def lowest_rate_hz(self) -> float:
        """The native rate this spec starts to run from (for the start-up log)."""
        if self.rate_hz:
            return max(self.min_rate_hz, self.rate_hz / MAX_UPSAMPLE)
        shortest_s = min([self.window_s, self.stride_s] + [s for _, s in self.lengths_s])
        return max(self.min_rate_hz, 0.5 / shortest_s)  # rounds to one sample from there

    def describe(self) -> str:
        """One line: which channels, components and rates this detector takes."""
        kinds = ", ".join(self.channels)
        hi = "" if math.isinf(self.max_rate_hz) else f" to {self.max_rate_hz:g} Hz"
        at = f", resampled to {self.rate_hz:g} Hz" if self.rate_hz else ""
        return (f"detector {self.detector} takes {kinds} channels, components "
                f"{''.join(self.components)}, native rate from {self.lowest_rate_hz():.4g} Hz{hi}"
                f"{at}; windows {self.window_s:g} s every {self.stride_s:g} s")


@lru_cache(maxsize=4096)
def _refusal(spec: WindowSpec, native_hz: float) -> tuple[str, str] | None:
    name = spec.detector
    if not (math.isfinite(native_hz) and native_hz > 0):
        return "rate_unsupported", f"{name}: channel rate {native_hz:g} Hz"
    if spec.rate_hz and native_hz * MAX_UPSAMPLE < spec.rate_hz:
        return "rate_too_low", (f"{name}: needs {spec.rate_hz:g} Hz, channel has {native_hz:g} Hz "
                                f"(more than {MAX_UPSAMPLE:g}x upsampling refused)")
    if not spec.min_rate_hz <= native_hz <= spec.max_rate_hz:
        hi = "" if math.isinf(spec.max_rate_hz) else f" to {spec.max_rate_hz:g} Hz"
        return "rate_unsupported", (f"{name}: runs on channels from {spec.min_rate_hz:.4g} Hz{hi}, "
                                    f"channel has {native_hz:g} Hz")
    rate_hz = spec.rate_hz or native_hz
    for what, secs in (("window_s", spec.window_s), ("stride_s", spec.stride_s), *spec.lengths_s):
        n = seconds_to_samples(secs, rate_hz)
        if n < 1:
            return "rate_unsupported", (f"{name}: {what} {secs:g} s is {n} samples at "
                                        f"{rate_hz:g} Hz (needs >= 1)")
    n_window = seconds_to_samples(spec.window_s, rate_hz)
    if n_window > MAX_WINDOW_SAMPLES:
        return "rate_unsupported", (f"{name}: window_s {spec.window_s:g} s is {n_window} samples "
                                    f"at {rate_hz:g} Hz (more than {MAX_WINDOW_SAMPLES})")
    return None


def owned_samples(n_samples: int, rate_hz: float, stride_s: float, tail_s: float, first: bool,
                  warmup_s: float = 0.0, owned_from: int | None = None) -> tuple[int, int]:
    """Sample range ``[lo, hi)`` of a window of ``n_samples`` whose events it reports:
    consecutive windows of one stream own consecutive ``stride``-long stretches ending
    ``tail_s`` before each window's end; a stream's first window (``first``) also owns everything
    after ``warmup_s``; a stream's last window (``owned_from`` set: ``Window.owned_from_samples``)
    owns from that sample to its end.

    >>> owned_samples(1000, 100.0, 2.0, 1.0, False), owned_samples(1000, 100.0, 2.0, 1.0, True)
    ((700, 900), (0, 900))
    >>> owned_samples(1000, 100.0, 2.0, 1.0, False, owned_from=850)
    (850, 1000)
    """
    hi = max(0, n_samples - seconds_to_samples(tail_s, rate_hz))
    lo = max(0, hi - seconds_to_samples(stride_s, rate_hz))
    if owned_from is not None:
        lo, hi = min(owned_from, n_samples), n_samples
    if first:
        lo = min(seconds_to_samples(warmup_s, rate_hz), hi)
    return lo, hi
