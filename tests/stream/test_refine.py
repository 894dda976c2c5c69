"""The contract's ``refine``: a picker's P picks moved to the AIC onset on the band-passed vertical
trace (``stream/inference/refine.py``).

* ``evaluate picker-lono --through-run`` serves fold models with the refinement and, with
  ``--no-refine``, without it (whether it helps: README "Onset refinement", and the Iceland
  swarm's P picks against QuakeMigrate's in ``tests/events/test_service.py``);
* on ObsPy's bundled RJOB earthquake, a pick 0.3 s early or late lands on the same onset; a
  window whose vertical is missing or flat there keeps the model's pick;
* a contract with a bad ``refine`` table is refused with one line naming the key; a contract
  without one (an import, an older file) picks as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import obspy
import pytest

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import ModelContract
from geosentry.stream.inference.refine import PickRefinement, aic_onset, refine_picks
from geosentry.stream.records import Alert, AlertKind, ModelRef, Window
from geosentry.training.cli import main as training_main

SHIPPED = Path(__file__).resolve().parents[2] / "stream" / "models"


def _rjob() -> Window:
    st = obspy.read()  # ObsPy's example: BW.RJOB EH[ZNE], 100 Hz, a local earthquake
    data = np.stack([st.select(component=c)[0].data.astype(np.float32) for c in "ZNE"])
    start_ns = st[0].stats.starttime.ns
    return Window("BW", "RJOB", "", ("EHZ", "EHN", "EHE"), start_ns, 100.0, data, 0, "picker")


def _pick(w: Window, index: int) -> Alert:
    return Alert(kind=AlertKind.PICK, network=w.network, station=w.station, location="",
                 channel="EHZ", time_ns=w.time_of(index), score=0.9, threshold=0.3,
                 model=ModelRef("picker", "1", "0" * 64), newest_arrival_ns=0, phase="P")


def test_a_pick_off_the_onset_lands_on_it_and_bad_traces_keep_the_pick() -> None:
    w = _rjob()
    r = PickRefinement()
    z = w.data[0]
    # a crude onset: the first sample of the band-passed trace beyond 10 noise σ (sample 478)
    f = obspy.read().select(component="Z")[0].detrend("linear").taper(0.05) \
        .filter("bandpass", freqmin=1.0, freqmax=20.0).data
    onset = 400 + int(np.argmax(np.abs(f[400:]) > 10 * f[100:400].std()))
    found = aic_onset(z, 100.0, onset, r)
    assert found is not None and 0 <= onset - found <= 10  # just before the crude onset
    for off in (-30, +30):  # the model's pick 0.3 s early or late
        a = _pick(w, found + off)
        refine_picks(w, [a], r, 0, {})
        assert a.time_ns == w.time_of(found), off
        assert a.details == {"onset": "aic", "moved_s": -off / 100.0}
    # two model picks 0.6 s apart around the onset find it both: one arrival, reported once (the
    # first; the phase's picks stay MIN_PICK_SEPARATION_S apart), across windows too (state)
    state: dict[str, float] = {}
    first, second = _pick(w, found - 30), _pick(w, found + 30)
    assert refine_picks(w, [first], r, 0, state) == [first]
    assert refine_picks(w, [second], r, 0, state) == []
    assert first.time_ns == w.time_of(found)
    both = [_pick(w, found - 30), _pick(w, found + 30)]  # in one window
    assert refine_picks(w, both, r, 0, {}) == both[:1]
    later = _pick(w, found + 130)  # 1.3 s on: another arrival's pick, kept
    assert refine_picks(w, [later], r, 0, state) == [later]
    # other pick rules (seisbench: picks closer than 0.5 s by design) keep such a pick, at the
    # model's time
    both = [_pick(w, found - 30), _pick(w, found + 30)]
    assert refine_picks(w, both, r, 0, {}, separate=False) == both
    assert both[1].time_ns == w.time_of(found + 30) and "onset" not in both[1].details
    s = _pick(w, found + 30)
    s.phase = "S"  # S picks are not refined by the default
    refine_picks(w, [s], r, 0, {})
    assert s.time_ns == w.time_of(found + 30) and "onset" not in s.details
    # the vertical missing (its row zeros): the model's pick stays
    missing = Window(w.network, w.station, "", ("", "EHN", "EHE"), w.start_ns, 100.0,
                     w.data.copy(), 0, "picker")
    missing.data[0] = 0.0
    a = _pick(missing, found + 30)
    refine_picks(missing, [a], r, 0, {})
    assert a.time_ns == missing.time_of(found + 30) and "onset" not in a.details
    # a zero-filled gap just before the onset: the model's pick stays
    gap = Window(w.network, w.station, "", w.channels, w.start_ns, 100.0, w.data.copy(), 0,
                 "picker")
    gap.data[0, found - 40:found - 20] = 0.0
    a = _pick(gap, found + 30)
    refine_picks(gap, [a], r, 0, {})
    assert a.time_ns == gap.time_of(found + 30) and "onset" not in a.details


def _contract(**refine: object) -> dict[str, object]:
    raw = json.loads((SHIPPED / "picker.json").read_text())
    raw["refine"] = {**raw["refine"], **refine}
    return raw


@pytest.mark.parametrize("bad, key", [
    ({"component": "H"}, "refine.component"), ({"phases": ["Pn"]}, "refine.phases"),
    ({"method": "kurtosis"}, "refine.method"), ({"band_hz": [10, 1]}, "refine.band_hz"),
    ({"half_window_s": 0}, "refine.half_window_s"), ({"width": 1}, "refine: unknown keys")])
def test_a_bad_refine_table_is_refused_naming_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(ContractError, match=key.replace(".", r"\.")) as err:
        ModelContract.from_dict(_contract(**bad))
    assert "\n" not in str(err.value)


def test_the_shipped_picker_refines_p_and_older_contracts_do_not() -> None:
    c = ModelContract.load(SHIPPED / "picker.json")
    assert c.refine == PickRefinement() and c.refine.phases == ("P",)
    assert ModelContract.from_dict(c.to_dict()) == c
    raw = c.to_dict()
    del raw["refine"]
    assert ModelContract.from_dict(raw).refine is None
    assert "refine" not in ModelContract.from_dict(raw).to_dict()
    # geosentry models show says it
    from geosentry.stream.catalog import describe
    assert "onset refinement aic on Z for P, within ±0.5 s, 1-30 Hz" in describe("picker")


@pytest.mark.shared
def test_through_run_serves_fold_models_with_and_without_refinement(
        tmp_path: Path, shared_data: Callable[[str], Path]) -> None:
    """The mechanism through ``geosentry run``. (Whether refinement helps is measured on models
    that never saw the network: the LONO folds, README; and in this suite on the Iceland swarm,
    ``tests/events/test_service.py``. The shipped weights used here saw these stations, and
    their picks move little.)"""
    from tests.training.test_lono_run import _fold

    shared_data("phasenet")
    out = tmp_path / "lono"
    _fold(out, "PB", {"P": 0.3, "S": 0.35})
    scores, moved = {}, {}
    for extra, work in (([], "through-run"), (["--no-refine"], "through-run-unrefined")):
        assert training_main(["evaluate", "picker-lono", "--through-run", "--networks", "PB",
                              "--no-seisbench", "--bootstrap", "20", "--out", str(out),
                              *extra]) == 0
        r = json.loads((out / work / "picker_lono_run.json").read_text())
        assert r["command"].endswith(" --no-refine") == bool(extra)
        scores[work] = r["scores"]["pooled"]["cnn"]["P"]
        c = ModelContract.load(out / work / "models" / "picker-lono-PB.json")
        assert (c.refine is None) == bool(extra)
        alerts = [json.loads(x) for x in (out / work / "run" / "cnn-PB" / "alerts.jsonl")
                  .read_text().splitlines()]
        moved[work] = [a["details"].get("moved_s") for a in alerts
                       if a["kind"] == "pick" and a["phase"] == "P"]
    assert moved["through-run"] and all(m is not None for m in moved["through-run"])
    assert all(m is None for m in moved["through-run-unrefined"])
    assert any(m != 0 for m in moved["through-run"])
    # the same picks, moved: as many hits within 0.5 s
    assert scores["through-run"]["0.5s"]["tp"] == scores["through-run-unrefined"]["0.5s"]["tp"]
