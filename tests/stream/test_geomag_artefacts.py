"""Artefacts against the smoothness of the band-limited field
(``geosentry.stream.detectors.geomag_artefacts``): at an auroral observatory a few-nT spike, step or F
offset is found even on a steep substorm variation, while the variation alone, with its slope
reversals, raises nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geosentry.stream.testing import quiet_geomag as quiet
from geosentry.stream.testing import geomag_alerts, write_iaga
from tests.stream.test_geomag_profiles import det

T0, T1 = 3000, 4680  # the substorm: samples (s) into the 2 h record, 4 bay periods


def substorm() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quiet H, D, Z, F plus a 28 min disturbance of H and Z: 200 nT at a 7 min period (up to
    3 nT/s, reversing its slope every 3.5 min) and 5 nT pulsations at 40 s; F sees it all."""
    h, d, z, _ = quiet()
    t = np.arange(len(h), dtype=np.float64)
    on = (t >= T0) & (t < T1)
    bay = np.where(on, 200 * np.sin(2 * np.pi * (t - T0) / 420) ** 2, 0.0)
    envelope = np.sin(np.pi * (t - T0) / (T1 - T0))
    pulses = np.where(on, 5 * np.sin(2 * np.pi * (t - T0) / 40) * envelope, 0.0)
    h, z = h - bay + pulses, z + 0.5 * bay
    return h, d, z, np.hypot(h, z) + 1.5


def kinds(path: Path) -> list[tuple[str, str, float]]:
    alerts = geomag_alerts(path, det("artefacts"), interleave=True)
    return [(a.details["artefact"], a.channel, a.time_ns / 1e9) for a in alerts
            if a.kind == "health" and a.details.get("event") == "artefact"]


def test_the_smooth_substorm_alone_raises_nothing(tmp_path: Path) -> None:
    h, d, z, f = substorm()
    assert kinds(write_iaga(tmp_path / "storm.sec", h, d, z, f, code="BRW")) == []


def test_a_5nT_spike_on_a_steep_variation_is_found(tmp_path: Path) -> None:
    h, d, z, f = substorm()
    i = T0 + 105  # where H changes fastest (3 nT/s); F is a separate instrument: it stays
    h[i] += 5.0
    found = kinds(write_iaga(tmp_path / "spike.sec", h, d, z, f, code="BRW"))
    assert [(k, c) for k, c, _ in found] == [("spike", "LFH")]


def test_a_5nT_step_on_a_steep_variation_is_found(tmp_path: Path) -> None:
    h, d, z, f = substorm()
    i = T0 + 420 + 110
    h[i:] -= 5.0
    found = kinds(write_iaga(tmp_path / "step.sec", h, d, z, f, code="BRW"))
    assert ("step", "LFH") in [(k, c) for k, c, _ in found]
    assert "spike" not in [k for k, _, _ in found]


def test_a_3nT_f_offset_at_an_auroral_observatory_is_found(tmp_path: Path) -> None:
    h, d, z, f = substorm()
    f[T0 + 800:] += 3.0
    found = kinds(write_iaga(tmp_path / "f.sec", h, d, z, f, code="BRW"))
    assert [(k, c) for k, c, _ in found] == [("f_inconsistency", "LFF")]


def test_a_sharp_band_limited_slope_reversal_is_not_an_artefact(tmp_path: Path) -> None:
    """H up at 4 nT/s for a minute and straight back down, as 0.25 Hz low-passed 1 s data show
    it: off the 7-sample median by ~6 nT at the turn, but the slopes around change as much."""
    from scipy.signal import firwin

    h, d, z, _ = quiet()
    t = np.arange(len(h), dtype=np.float64)
    tent = np.clip(240 - 4 * np.abs(t - 4000), 0, None)
    taps = firwin(123, 0.25, fs=10, window="blackman")[1::10]
    h = h + np.convolve(tent, taps / taps.sum(), mode="same")
    f = np.hypot(h, z) + 1.5
    assert kinds(write_iaga(tmp_path / "turn.sec", h, d, z, f, code="BRW")) == []
