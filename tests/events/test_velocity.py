"""First-arrival tables are continuous in source depth, on layer interfaces too: a source on
an interface (a table row on a layer boundary) used to get no direct ray beyond a short
distance and, before the head waves began, a straight ray at the slowest speed (31.2 s instead
of 10.0 s at 45 km for the Iceland model's 10 km interface); a source at the model top missed
the wave along it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes, VelocityModel

# a layered crust with many interfaces on the table's 0.5-km grid (as QuakeMigrate's Iceland
# model for the 2014 dike swarm: 1-km layers over the swarm's depths)
LAYERED = VelocityModel((-3.0, 1.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 13.0, 18.0, 22.0, 30.0),
                        (1.5, 4.0, 5.2, 6.1, 6.404, 6.583, 6.688, 6.792, 6.896, 7.038, 7.133,
                         7.21, 7.362),
                        (0.843, 2.247, 2.921, 3.427, 3.598, 3.698, 3.757, 3.816, 3.874, 3.954,
                         4.007, 4.051, 4.136), name="layered")


@pytest.mark.parametrize("model", [DEFAULT_MODEL, LAYERED], ids=["iasp91", "layered"])
@pytest.mark.parametrize("phase", ["P", "S"])
def test_tables_are_continuous_in_depth(model: VelocityModel, phase: str) -> None:
    tt = TravelTimes(model, max_distance_km=200.0, max_depth_km=40.0)
    jump = np.abs(np.diff(tt.tables[phase], axis=0))  # adjacent depth rows, every distance
    # a source moved down by dz is at most dz / (slowest speed) earlier or later anywhere
    assert float(jump.max()) <= tt.step_km / float(model.velocities(phase).min()) + 1e-9


def test_a_source_on_an_interface_is_timed_like_one_just_off_it() -> None:
    tt = TravelTimes(LAYERED, max_distance_km=200.0, max_depth_km=40.0)
    x = np.arange(0.0, 200.0, 5.0)
    for z in (5.0, 10.0, 13.0, 22.0):
        on = tt.time("P", x, np.full_like(x, z))
        for dz in (-0.01, 0.01):
            off = tt.time("P", x, np.full_like(x, z + dz))
            assert np.abs(on - off).max() < 0.05, (z, dz)
    t45 = float(tt.time("P", np.array([45.0]), np.array([10.0]))[0])
    assert 9.0 < t45 < 11.0  # about 45 km / 6.9 km/s plus the way up; was 31.2 s


def test_a_surface_source_has_the_wave_along_the_surface() -> None:
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=100.0)
    t = tt.time("P", np.array([80.0]), np.array([0.0]))[0]
    assert abs(float(t) - 80.0 / 5.8) < 0.01  # was 15.42 s (a head wave) for 13.79 s


def test_nonlinloc_layers_and_named_columns_read_as_the_table(tmp_path: Path) -> None:
    """The same model as a NonLinLoc LAYER file and as a table whose header orders the columns
    depth, vs, vp reads as the plain table; a NonLinLoc gradient becomes sublayers at their
    mid-depth speeds."""
    from geosentry.stream.events.velocity import GRADIENT_STEP_KM, read_velocity_model

    m = DEFAULT_MODEL
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"{z} {vp} {vs}\n" for z, vp, vs in
                             zip(m.top_km, m.vp_km_s, m.vs_km_s)))
    nll = tmp_path / "model.nll"
    nll.write_text("# NonLinLoc\n" + "".join(
        f"LAYER {z} {vp} 0.00 {vs} 0.00 2.7 0.0\n"
        for z, vp, vs in zip(m.top_km, m.vp_km_s, m.vs_km_s)))
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("depth,vs,vp\n" + "".join(
        f"{z},{vs},{vp}\n" for z, vp, vs in zip(m.top_km, m.vp_km_s, m.vs_km_s)))
    want = read_velocity_model(plain)
    for f in (nll, swapped):
        got = read_velocity_model(f)
        assert (got.top_km, got.vp_km_s, got.vs_km_s) == (want.top_km, want.vp_km_s,
                                                           want.vs_km_s), f.name
    grad = tmp_path / "grad.nll"
    grad.write_text("LAYER 0.0 5.0 0.1 3.0 0.05 2.7 0.0\nLAYER 2.0 6.0 0.0 3.5 0.0 2.7 0.0\n")
    g = read_velocity_model(grad)
    n = round(2.0 / GRADIENT_STEP_KM)
    assert len(g.top_km) == n + 1 and g.top_km[-1] == 2.0
    assert g.vp_km_s[0] == pytest.approx(5.0 + 0.1 * GRADIENT_STEP_KM / 2)
    assert g.vs_km_s[n - 1] == pytest.approx(3.0 + 0.05 * (2.0 - GRADIENT_STEP_KM / 2))
    assert (g.vp_km_s[-1], g.vs_km_s[-1]) == (6.0, 3.5)
