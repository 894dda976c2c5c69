"""PyOcto as the offline association reference (issue 17): the exchange folder geosentry writes
for it (PyOcto's travel-time table must give geosentry's travel times), geosentry's run on that
folder, one-line errors when PyOcto's environment or the folder is missing, and, where
``scripts/pyocto-env.sh`` has made the environment, both associators end to end on a small
synthetic set."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geosentry.stream.events import pyocto_io
from geosentry.stream.events.evaluate import RefEvent
from geosentry.stream.events.picks import Phase, Pick
from geosentry.stream.events.pyocto_compare import (REFERENCE, CompareError, PickSet, compare,
                                                    main, pyocto_python, score)
from geosentry.stream.events.stations import Inventory, Station
from geosentry.stream.events.synthetic import Origin, false_picks, grid_network, picks_for
from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes, VelocityModel
from geosentry.stream.records import NS_PER_S

T0 = 1_700_000_000 * NS_PER_S


def _small_set() -> PickSet:
    """64 stations 20 km apart, 3 events 20 s apart, 0.05 s pick noise, ~30 false picks."""
    tt = TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
    inv = grid_network(64, 20.0, jitter_km=2.0, seed=5)
    rng = np.random.default_rng(7)
    origins = [Origin(T0 + 5 * NS_PER_S, 45.05, 9.9, 8.0),
               Origin(T0 + 25 * NS_PER_S, 44.9, 10.15, 15.0),
               Origin(T0 + 45 * NS_PER_S, 45.2, 10.2, 4.0)]
    picks = [p for k, o in enumerate(origins) for p in picks_for(
        o, inv, tt, noise_s=0.05, max_distance_km=100.0, rng=rng, tag=f"e{k}:")]
    picks += false_picks(inv, T0, 60.0, 0.5 / 60.0, rng)
    ref = [RefEvent(o.time_ns, o.lat_deg, o.lon_deg, o.depth_km, None, f"e{k}", {})
           for k, o in enumerate(origins)]
    return PickSet("small", "small synthetic", picks, inv, DEFAULT_MODEL, ref)


def _bilinear(tab: np.ndarray, delta: float, x: float, z: float) -> float:
    """PyOcto's ``VelocityModel1D::travel_time`` lookup (distance-major table)."""
    ix, iz = int(x // delta), int(z // delta)
    ax, az = x / delta - ix, z / delta - iz
    return float(tab[ix, iz] * (1 - ax) * (1 - az) + tab[ix + 1, iz] * ax * (1 - az)
                 + tab[ix, iz + 1] * (1 - ax) * az + tab[ix + 1, iz + 1] * ax * az)


def test_pyocto_table_gives_geosentrys_travel_times(tmp_path: Path) -> None:
    # a model whose top is above sea level (as Iceland's), stations 0.8 and 1.2 km up
    model = VelocityModel((-3.0, 1.0, 5.0), (1.5, 4.0, 6.0), (0.85, 2.25, 3.4), name="layers")
    inv = Inventory([Station("XX", "A", 64.70, -16.90, 800.0),
                     Station("XX", "B", 64.80, -16.70, 1200.0)])
    picks = [Pick("p1", "XX", "A", Phase.P, T0), Pick("p2", "XX", "B", Phase.S, T0 + NS_PER_S),
             Pick("p3", "XX", "C", Phase.P, T0)]  # station C is not in the inventory
    exp = pyocto_io.export(tmp_path, picks, inv, model)
    assert (exp.n_picks, exp.n_unknown_station) == (2, 1)
    assert (tmp_path / pyocto_io.PICKS).read_text().count("\n") == 3  # header + 2 picks
    meta = json.loads((tmp_path / pyocto_io.PARAMS).read_text())
    raw = (tmp_path / pyocto_io.TABLE).read_bytes()
    nx, nz, delta = struct.unpack("<iid", raw[:16])
    assert len(raw) == 16 + 2 * nx * nz * 8
    tables = np.frombuffer(raw[16:], dtype="<f8").reshape(2, nx, nz)
    assert (nx - 1) * delta >= 110.0  # the area's diagonal and more
    tt = TravelTimes(model, max_distance_km=250.0, max_depth_km=40.0)
    for k, phase in enumerate(("P", "S")):
        v_surface = meta[f"surface_{phase.lower()}_velocity_km_s"]
        for elev_km in (0.8, 1.2):
            for x, z in ((0.0, 2.0), (12.3, 4.7), (80.25, 20.1), (110.0, 0.4)):
                pyocto = _bilinear(tables[k], delta, x, z) + elev_km / v_surface
                ours = float(tt.time(phase, np.array([x]), np.array([z]))[0]
                             - tt.vertical_s(phase, np.array([-elev_km]))[0])
                assert pyocto == pytest.approx(ours, abs=1e-6), (phase, elev_km, x, z)


def test_geosentry_side_on_an_exchange_folder(tmp_path: Path) -> None:
    ps = _small_set()
    pyocto_io.export(tmp_path, ps.picks, ps.inventory, ps.model)
    assert main(["--associate-geosentry", str(tmp_path)]) == 0
    res = pyocto_io.read_result(tmp_path / "geosentry")
    r = score(ps, res)
    assert (r["events"], r["recall"], r["precision"]) == (3, 1.0, 1.0), r
    assert r["median_epicentral_km"] < 3.0
    assert not {p for p in res.pick_ids if p.startswith("false.")}  # no false pick in events
    assert res.wall_s > 0 and res.peak_rss_mb >= res.rss_before_mb > 0


def test_missing_pyocto_environment_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--dataset", "synthetic", "--pyocto-python", str(tmp_path / "none" / "python")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "scripts/pyocto-env.sh" in err, err


def test_reference_refuses_a_folder_that_is_not_an_exchange(tmp_path: Path) -> None:
    # runs before PyOcto is imported: any Python will do
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        rc = subprocess.run([sys.executable, str(REFERENCE), str(tmp_path)], stdout=out,
                            stderr=err, timeout=60).returncode
    msg = (tmp_path / "err").read_text().strip()
    assert rc == 2 and len(msg.splitlines()) == 1 and "params.json" in msg, msg


def _pyocto() -> Path | None:
    try:
        return pyocto_python()
    except CompareError:
        return None


@pytest.mark.skipif(_pyocto() is None, reason="PyOcto environment absent (.venv-pyocto or "
                    "$GEOSENTRY_PYOCTO_VENV): create it with scripts/pyocto-env.sh")
def test_both_associators_find_the_small_sets_events(tmp_path: Path) -> None:
    py = _pyocto()
    assert py is not None
    ps = _small_set()
    rows = compare(ps, tmp_path / "small", py, params=pyocto_io.DENSE, timeout_s=240)
    assert [r["associator"].split()[0] for r in rows] == ["geosentry", "PyOcto"]
    for r in rows:
        assert (r["events"], r["matched"], r["recall"], r["precision"]) == (3, 3, 1.0, 1.0), r
        assert r["median_epicentral_km"] < 5.0, r
        assert r["picks_per_s"] > 0 and r["peak_rss_mb"] > 0, r
    # PyOcto puts the events' picks, not the false ones, in its events
    got = pyocto_io.read_result(tmp_path / "small" / "pyocto").pick_ids
    true = {p.id for p in ps.picks if not p.id.startswith("false.")}
    assert len(got & true) >= 0.9 * len(true) and len(got - true) <= 3, (len(got), len(true))
