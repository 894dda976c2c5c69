"""First-arrival tables are continuous in source depth, on layer interfaces too: a source on
an interface (a table row on a layer boundary) used to get no direct ray beyond a short
distance and, before the head waves began, a straight ray at the slowest speed (31.2 s instead
of 10.0 s at 45 km for the Iceland model's 10 km interface); a source at the model top missed
the wave along it."""

from __future__ import annotations

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
