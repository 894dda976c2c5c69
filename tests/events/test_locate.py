"""Location and travel times on small fixed cases: synthetic times from the model recover
the origin they came from."""

from __future__ import annotations

import numpy as np
import pytest

from geosentry.stream.events.associate import Associator
from geosentry.stream.events.locate import (Observations, Projection, azimuthal_gap_deg, geiger,
                                            grid_start)
from geosentry.stream.events.magnitude import MLScale
from geosentry.stream.events.synthetic import Origin, grid_network, picks_for
from geosentry.stream.events.velocity import TravelTimes, VelocityModel
from geosentry.stream.records import NS_PER_S

T0 = 1_700_000_000 * NS_PER_S


def test_travel_times_match_hand_computed_rays(tt: TravelTimes) -> None:
    # straight up through the top layer, then Pn at 200 km (head wave along the Moho)
    assert tt.time("P", np.array([0.0]), np.array([12.0]))[0] == pytest.approx(12.0 / 5.8)
    q = lambda v, vm: np.sqrt(1 / v**2 - 1 / vm**2)  # noqa: E731
    pn = 200 / 8.04 + (20 + 10) * q(5.8, 8.04) + 2 * 15 * q(6.5, 8.04)
    assert tt.time("P", np.array([200.0]), np.array([10.0]))[0] == pytest.approx(pn, abs=1e-6)
    direct = np.hypot(30.0, 10.0) / 3.36
    assert tt.time("S", np.array([30.0]), np.array([10.0]))[0] == pytest.approx(direct, rel=1e-3)


def test_velocity_model_rejects_bad_tables() -> None:
    with pytest.raises(Exception, match="depths must increase"):
        VelocityModel((0.0, 0.0), (5.0, 6.0), (3.0, 3.5))


@pytest.mark.parametrize("depth_km", [4.0, 12.0, 28.0])
def test_geiger_recovers_a_synthetic_origin(tt: TravelTimes, depth_km: float) -> None:
    inv = grid_network(25, 15.0, seed=1)
    origin = Origin(T0, 45.03, 10.05, depth_km)
    picks = picks_for(origin, inv, tt, noise_s=0.0)
    assoc = Associator(inv, tt)
    events, rest = assoc.associate(picks)
    assert len(events) == 1 and not rest
    e = events[0]
    proj = Projection(origin.lat_deg, origin.lon_deg)
    x, y = proj.to_xy(np.array([e.lat_deg]), np.array([e.lon_deg]))
    assert float(np.hypot(x, y)[0]) < 0.2
    assert abs(e.depth_km - depth_km) < 0.5
    assert abs(e.time_ns - T0) / NS_PER_S < 0.05
    assert e.rms_s < 0.05 and e.gap_deg < 90 and e.n_phases == 50 and e.n_stations == 25


def test_noisy_picks_give_errors_that_cover_the_truth(tt: TravelTimes) -> None:
    inv = grid_network(36, 12.0, seed=2)
    rng = np.random.default_rng(7)
    origin = Origin(T0, 44.98, 9.97, 9.0)
    picks = picks_for(origin, inv, tt, noise_s=0.1, rng=rng)
    e = Associator(inv, tt).associate(picks)[0][0]
    proj = Projection(origin.lat_deg, origin.lon_deg)
    x, y = proj.to_xy(np.array([e.lat_deg]), np.array([e.lon_deg]))
    assert abs(float(x[0])) < 4 * e.err_lon_km + 0.3 and abs(float(y[0])) < 4 * e.err_lat_km + 0.3
    assert abs(e.depth_km - 9.0) < 4 * e.err_depth_km + 0.5
    assert 0.05 < e.rms_s < 0.2


def test_grid_start_and_gap_on_one_sided_network(tt: TravelTimes) -> None:
    # all stations east of the source: a large gap, and the grid still finds the start
    xs = np.array([20.0, 25.0, 30.0, 22.0, 28.0])
    ys = np.array([-10.0, 0.0, 10.0, 15.0, -15.0])
    d = np.hypot(xs, ys)
    t = tt.time("P", d, np.full(5, 8.0)) + 3.0
    obs = Observations(xs, ys, np.zeros(5), np.zeros(5, dtype=bool), t, np.ones(5))
    start = grid_start(tt, obs, 0.0, 0.0, 30.0, np.array([5.0, 10.0]))
    h = geiger(tt, obs, start)
    assert abs(h.t0_s - 3.0) < 0.3 and np.hypot(h.x_km, h.y_km) < 3.0
    assert azimuthal_gap_deg(xs, ys, h.x_km, h.y_km) > 180.0


def test_ml_uses_hypocentral_distance_and_median() -> None:
    s = MLScale()
    assert s.station_ml(480.77, 100.0) == pytest.approx(3.0, abs=0.005)  # 1 mm WA at 100 km
    seisan = MLScale(1.0, 1.0, 0.0041, -1.0)
    assert seisan.station_ml(10.0, 10.0) == pytest.approx(1.041)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leave_one_out_in_one_pass_equals_one_location_per_pick(tt: TravelTimes,
                                                                 seed: int) -> None:
    """``crossval.loo_residuals`` locates the n leave-one-out subsets in one pass
    (``geiger_rows``): the same origins as ``geiger`` on each subset, and the same residuals,
    for picks of both phases, noise, a wrong pick and a start off the truth."""
    from geosentry.stream.events.crossval import loo_residuals
    from geosentry.stream.events.locate import geiger_rows, predict

    rng = np.random.default_rng(seed)
    n = 9
    xs, ys = rng.uniform(-40, 40, n), rng.uniform(-40, 40, n)
    is_s = rng.random(n) < 0.4
    d = np.hypot(xs - 3.0, ys + 2.0)
    t = np.array([tt.time("S" if s else "P", np.array([di]), np.array([8.0]))[0]
                  for s, di in zip(is_s, d)]) + rng.normal(0, 0.05, n)
    t[4] += 1.5  # one wrong pick
    obs = Observations(xs, ys, np.zeros(n), is_s, t, np.where(is_s, 0.5, 1.0))
    start = (8.0, 5.0, 12.0)
    keep = ~np.eye(n, dtype=bool)
    x, y, z, t0 = geiger_rows(tt, obs, keep, start)
    for k in range(n):
        h = geiger(tt, obs.subset(keep[k]), start)
        assert (x[k], y[k], z[k], t0[k]) == pytest.approx(
            (h.x_km, h.y_km, h.depth_km, h.t0_s), abs=1e-9)
    first = geiger(tt, obs, start)
    got = loo_residuals(tt, obs, first)
    again = [t[k] - g.t0_s - predict(tt, obs.subset(np.array([k])), g.x_km, g.y_km,
                                      g.depth_km)[0][0]
             for k in range(n)
             for g in [geiger(tt, obs.subset(keep[k]),
                              (first.x_km, first.y_km, first.depth_km))]]
    assert got == pytest.approx(again, abs=1e-9)
    assert np.argmax(np.abs(got)) == 4  # the wrong pick is the one the others do not predict
