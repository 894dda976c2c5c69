"""The association's vectorised grid search finds what the plain grid finds; the incremental
stage's memory does not grow with the stream; the benchmark reports its steady state."""

from __future__ import annotations

import gc
import re
import tracemalloc

import numpy as np
import pytest

from geosentry.stream.events import bench
from geosentry.stream.events.associate import Associator
from geosentry.stream.events.locate import Observations, Projection, grid_times
from geosentry.stream.events.stage import EventStage
from geosentry.stream.events.synthetic import Origin, false_picks, grid_network, picks_for
from geosentry.stream.events.velocity import TravelTimes
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef

T0 = 1_700_000_000 * NS_PER_S


def plain_best_node(tt: TravelTimes, obs: Observations, seed_pos: int, sta_of: np.ndarray,
                    cx: float, cy: float, radius: float, n: int, depths: np.ndarray, tol: float
                    ) -> tuple[int, float, float, float, np.ndarray]:
    """Every candidate at every node, times from ``locate.grid_times`` (the reference)."""
    g = np.linspace(-radius, radius, n)
    X, Y, Z = np.meshgrid(cx + g, cy + g, depths, indexing="ij")
    gx, gy, gz = X.ravel(), Y.ravel(), Z.ravel()
    o = obs.t_s[None, :] - grid_times(tt, obs, gx, gy, gz)
    dev = np.abs(o - o[:, seed_pos: seed_pos + 1])
    hit = dev <= tol
    count = np.array([len(set(sta_of[row].tolist())) for row in hit])
    score = count * 1000.0 - np.where(hit, dev, tol).sum(axis=1)
    i = int(np.argmax(score))
    return int(count[i]), float(gx[i]), float(gy[i]), float(gz[i]), hit[i]


def test_grid_search_finds_what_the_plain_grid_finds(tt: TravelTimes) -> None:
    inv = grid_network(64, 15.0, seed=5)
    rng = np.random.default_rng(3)
    picks = [p for k in range(3) for p in picks_for(
        Origin(T0 + k * 12 * NS_PER_S, 45.0 + 0.05 * k, 10.0 - 0.04 * k, 6.0 + 4 * k), inv, tt,
        noise_s=0.1, rng=rng, p_detect=0.9)]
    picks += false_picks(inv, T0 - 20 * NS_PER_S, 80.0, 0.02, rng)
    assoc = Associator(inv, tt)
    cfg = assoc.cfg
    pool = assoc._pool(picks)
    used = np.zeros(len(pool.picks), dtype=bool)
    times = pool.t.tolist()
    step = 2 * cfg.grid_radius_km / (cfg.grid_nodes - 1)
    checked = pruned = 0
    for seed in range(0, len(pool.picks), 3):
        st = pool.sta[seed]
        proj = Projection(st.lat_deg, st.lon_deg)
        cand = assoc._cone(pool, seed, assoc._candidates(pool, seed, used, times, proj), proj)
        obs = assoc._obs(pool, cand, proj)
        pos = int(np.flatnonzero(cand == seed)[0])
        sta_of = pool.sidx[cand]
        coarse = (0.0, 0.0, cfg.grid_radius_km, cfg.grid_nodes,
                  np.asarray(cfg.grid_depths_km), cfg.tolerance_s + 1.5 * step / 5.8)
        fine = (4.0, -3.0, step, 11, np.arange(0.0, 21.0, 3.0), cfg.tolerance_s)
        for args in (coarse, fine):
            want = plain_best_node(tt, obs, pos, sta_of, *args)
            got = assoc._grid.best_node(obs, pos, sta_of, *args)
            assert got[:4] == want[:4]
            assert np.array_equal(got[4], want[4])
            keep = assoc._grid._reachable(obs, pos, args[0], args[1], args[2], args[4], args[5])
            pruned += int((~keep).sum())
            checked += 1
    assert checked > 50 and pruned > 0  # the pruning was exercised, and changed nothing


def _stream(inv_n: int, minutes: float, tt: TravelTimes) -> list[Alert]:
    inv = grid_network(inv_n, 15.0, seed=2)
    rng = np.random.default_rng(4)
    picks = [p for k in range(int(minutes * 3)) for p in picks_for(
        Origin(T0 + k * 20 * NS_PER_S, 45.0 + 0.1 * rng.uniform(-1, 1),
               10.0 + 0.1 * rng.uniform(-1, 1), 8.0), inv, tt, noise_s=0.05, rng=rng,
        p_detect=0.9, tag=f"e{k}:")]
    picks += false_picks(inv, T0, minutes * 60, 1 / 60, rng)
    m = ModelRef("picker", "1", "0" * 64)
    return [Alert(AlertKind.PICK, p.network, p.station, "", "HHZ", p.time_ns, 0.9, 0.3, m,
                  p.time_ns, phase=p.phase.value)
            for p in sorted(picks, key=lambda p: p.time_ns)]


def test_stage_memory_does_not_grow_with_the_stream(tt: TravelTimes) -> None:
    alerts = _stream(49, 6.0, tt)
    stage = EventStage(Associator(grid_network(49, 15.0, seed=2), tt), horizon_s=60.0)
    third = len(alerts) // 3
    n_events = 0
    tracemalloc.start()
    try:
        sizes = []
        for part in range(3):
            for i in range(part * third, (part + 1) * third, 50):
                stage.add(alerts[i:i + 50])
            n_events = stage.sent["new"]
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert n_events >= 12  # events were found all along (3 a minute)
    # what the stage holds after 4 and after 6 minutes: the 60 s pool and its open events
    # (some 100 kB), not the stream behind them
    assert sizes[2] - sizes[1] < 200_000, sizes


def test_bench_stage_reports_its_steady_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--stations", "100", "--minutes", "1", "--stage"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"recall ([0-9.]+), precision ([0-9.]+)", out)
    assert m and float(m.group(1)) >= 0.9 and float(m.group(2)) >= 0.9, out
    assert re.search(r"steady state \(data minutes 0\.5-1\): [0-9.]+ s wall = [0-9.]+ s per "
                     r"minute of data \([0-9.]+x real time\); peak RSS \d+ MB at half-way, "
                     r"\d+ MB at the end", out), out
