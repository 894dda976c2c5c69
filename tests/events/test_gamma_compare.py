"""GaMMA as the second offline association reference (issue 17): its settings file, one-line
errors when GaMMA's environment or the exchange folder is missing, and, where
``scripts/gamma-env.sh`` has made the environment, GaMMA on the small synthetic set (all three
events found and matched) and on the New Zealand analyst picks (shared data)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from geosentry.stream.events import gamma_io, pyocto_io
from geosentry.stream.events.pyocto_compare import (GAMMA_REFERENCE, CompareError, compare,
                                                    gamma_python, main, shared_set, table)

from .test_pyocto_compare import _small_set


def _gamma() -> Path | None:
    try:
        return gamma_python()
    except CompareError:
        return None


needs_gamma = pytest.mark.skipif(
    _gamma() is None, reason="GaMMA environment absent (.venv-gamma or $GEOSENTRY_GAMMA_VENV): "
    "create it with scripts/gamma-env.sh")


def test_gamma_params_file_and_validation(tmp_path: Path) -> None:
    with pytest.raises(pyocto_io.ExchangeError, match="params.json"):
        gamma_io.write_params(tmp_path, gamma_io.SPARSE)
    ps = _small_set()
    pyocto_io.export(tmp_path, ps.picks, ps.inventory, ps.model)
    d = json.loads(gamma_io.write_params(tmp_path, gamma_io.DENSE).read_text())
    assert (d["method"], d["min_picks_per_eq"], d["min_s_picks_per_eq"]) == ("BGMM", 20, 5)
    assert d["use_amplitude"] is False and d["dbscan_eps_s"] is None
    assert d["covariance_prior_s2"] == 1.0 and gamma_io.SPARSE.covariance_prior_s2 is None
    with pytest.raises(ValueError, match="min_picks_per_eq"):
        gamma_io.GammaParams(min_picks_per_eq=2)
    with pytest.raises(ValueError, match="dbscan_eps_s"):
        gamma_io.GammaParams(dbscan_eps_s=0.0)
    with pytest.raises(ValueError, match="covariance_prior_s2"):
        gamma_io.GammaParams(covariance_prior_s2=-1.0)


def test_missing_gamma_environment_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--dataset", "synthetic", "--associator", "gamma",
               "--gamma-python", str(tmp_path / "none" / "python")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "scripts/gamma-env.sh" in err, err


def test_gamma_reference_refuses_a_folder_that_is_not_an_exchange(tmp_path: Path) -> None:
    # runs before GaMMA is imported: any Python will do
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        rc = subprocess.run([sys.executable, str(GAMMA_REFERENCE), str(tmp_path)], stdout=out,
                            stderr=err, timeout=60).returncode
    msg = (tmp_path / "err").read_text().strip()
    assert rc == 2 and len(msg.splitlines()) == 1 and "gamma.json" in msg, msg


def test_a_reference_past_its_timeout_is_a_row_not_a_failure(tmp_path: Path) -> None:
    # a fault no real GaMMA run produces on demand: an "interpreter" that hangs
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    hang.chmod(0o755)
    ps = _small_set()
    rows = compare(ps, tmp_path / "small", None, timeout_s=3.0, gamma_py=hang)
    assert [r["associator"].split()[0] for r in rows] == ["geosentry", "GaMMA"]
    assert rows[1]["timed_out_s"] == 3.0 and rows[0]["recall"] == 1.0
    assert "GaMMA (1 thread) | not finished within 3 s" in table(rows)


@needs_gamma
def test_gamma_finds_the_small_sets_events(tmp_path: Path) -> None:
    py = _gamma()
    assert py is not None
    ps = _small_set()
    rows = compare(ps, tmp_path / "small", None, gamma_py=py, timeout_s=300,
                   gamma_params=gamma_io.DENSE)
    assert [r["associator"].split()[0] for r in rows] == ["geosentry", "GaMMA"]
    r = rows[1]
    assert (r["events"], r["matched"], r["recall"], r["precision"]) == (3, 3, 1.0, 1.0), r
    assert r["median_epicentral_km"] < 5.0, r
    assert r["picks_per_s"] > 0 and r["peak_rss_mb"] > 0, r
    got = pyocto_io.read_result(tmp_path / "small" / "gamma").pick_ids
    true = {p.id for p in ps.picks if not p.id.startswith("false.")}
    assert len(got & true) >= 0.9 * len(true) and len(got - true) <= 3, (len(got), len(true))


@needs_gamma
@pytest.mark.shared
def test_gamma_on_the_nz_analyst_picks(tmp_path: Path,
                                       shared_data: Callable[[str], Path]) -> None:
    py = _gamma()
    assert py is not None
    ps = shared_set("nz", shared_data("events/nz-2013-alpine-fault").parents[1])
    rows = compare(ps, tmp_path / "nz", None, gamma_py=py, timeout_s=300)
    r = rows[1]
    assert r["associator"].startswith("GaMMA"), r
    # 40 reference earthquakes; measured 2026-12-06: see README "PyOcto and GaMMA comparison"
    assert r["recall"] >= 0.8 and r["precision"] >= 0.8, r
    assert r["median_epicentral_km"] < 5.0, r
