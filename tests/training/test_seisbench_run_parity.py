"""An imported SeisBench picker reproduces SeisBench's own picks through ``geosentry run``.

PhaseNetLight-ETHZ is imported (contract ``pick_rule: seisbench``, ``stacking: avg``) and served
by ``geosentry run`` (a subprocess) over continuous real recordings: the Iceland 2014 dike-swarm
cuts of 4 Z7 stations merged into their continuous stretches (12 stretches, 25 min compared),
each starting on the service's window grid so that the service cuts SeisBench's windows. Its
pick alerts are compared with SeisBench ``classify`` on the same files. Needs the optional
``seisbench`` extra and ``../shared/data`` (skipped, saying which, without them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

PNL = "reference/seisbench-phasenetlight-ethz"


@pytest.mark.shared
def test_geosentry_run_reproduces_seisbench_classify(
        tmp_path: Path, shared_data: Callable[[str], Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """>= 99 % of the picks within one sample, both ways (measured: 37 of 37); SeisBench itself
    does not reproduce its picks within one sample when its windows move by one sample (the
    reason the traces are aligned to the grid: measured 19 of 37), so the comparison needs the
    same windows."""
    try:
        import seisbench.models  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"seisbench not installed ({exc}): pip install 'geosentry[seisbench]' "
                    "to run the SeisBench interoperability tests")
    weights = shared_data(PNL) / "ethz"
    shared_data("events/iceland-2014-dike/events")
    monkeypatch.setenv("GEOSENTRY_SHARED_DATA", str(shared_data("")))
    from geosentry.stream.inference.contract import ModelContract
    from geosentry.training.evaluate.seisbench_run_parity import through_run
    from geosentry.training.export.seisbench_import import import_seisbench, load_checkpoint

    pt, js = import_seisbench("PhaseNetLight", weights, tmp_path / "models", "2")
    c = ModelContract.load(js)
    assert (c.pick_rule.value, c.stacking.value) == ("seisbench", "avg")
    model = load_checkpoint("PhaseNetLight", weights, "2")
    r = through_run(pt, model, tmp_path / "run", stations=4, aligned=True)
    assert r["stations"] == 4 and r["compared_hours"] > 0.3, r
    assert r["picks_seisbench"] >= 30 and r["picks_geosentry"] >= 30, r
    assert r["share_of_seisbench_matched"] >= 0.99, r["unmatched_seisbench"]
    assert r["share_of_geosentry_matched"] >= 0.99, r["unmatched_geosentry"]
    shifted = r["seisbench_vs_itself_one_sample_later"]
    assert shifted["matched"] < 0.9 * shifted["picks_seisbench"], shifted
