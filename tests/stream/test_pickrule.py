"""The contract's ``pick_rule``: ``seisbench`` is SeisBench's ``picks_from_annotations`` (ObsPy
``trigger_onset`` at the threshold / half of it, one pick at each stretch's maximum), streamed
over the stretches windows own, each stretch picked exactly once.

* ``trigger_stretches`` equals ObsPy's ``trigger_onset`` on 2,000 random traces;
* a real model (the shipped picker, its contract switched to ``pick_rule = "seisbench"``) runs
  through the whole pipeline on ObsPy's real BW.UH* recordings at stride 15 s and 1 s, with low
  thresholds so that many stretches cross owned-stretch boundaries: its picks are SeisBench's
  rule applied to the stream of owned outputs (each sample from the window that owns it), each
  stretch once, at its maximum, also when only owned stretches are decoded (``forward_range``);
* a contract with an unknown ``pick_rule`` or ``stacking`` is refused with one line; older
  contracts get ``peaks`` and ``none``;
* ``stacking`` ``avg``/``max`` equals SeisBench's stacking of overlapping windows;
* the step from a padded stream's flat-held first samples into the data is not a pick.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from obspy.signal.trigger import trigger_onset

from geosentry.stream.config import load_config_dict
from geosentry.stream.detectors.base import owned_range
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import ModelContract
from geosentry.stream.inference.model import ModelOutputs, TorchScriptDetector
from geosentry.stream.inference.pickrule import (PickRule, Stacking, StackState, stack,
                                                 trigger_stretches)
from geosentry.stream.records import Window
from geosentry.stream.testing import demo_stream, mseed_records, run_pipeline

SHIPPED = Path(__file__).resolve().parents[2] / "stream" / "models"


def test_trigger_stretches_equal_obspy_trigger_onset() -> None:
    rng = np.random.default_rng(0)
    n_stretches = n_open = 0
    for k in range(2000):
        n = int(rng.integers(1, 400))
        # smooth bumps and spikes around the thresholds, some touching the trace ends
        p = np.clip(np.convolve(rng.random(n) ** 6, np.ones(int(rng.integers(1, 9))), "same"),
                    0, 1).astype(np.float32)
        n = len(p)  # "same" keeps the longer of the two
        if k % 7 == 0:
            p[-int(rng.integers(1, n + 1)):] = 0.9  # on at the end
        thr = float(rng.choice([0.1, 0.3, 0.5, 0.8]))
        want = [tuple(map(int, s)) for s in trigger_onset(p, thr, thr / 2)]
        closed, still_on = trigger_stretches(p, thr)
        got = closed + ([(still_on, n - 1)] if still_on is not None else [])
        assert got == want, (k, thr, p.tolist())
        n_stretches += len(closed)
        n_open += still_on is not None
    assert n_stretches > 1000 and n_open > 200  # both kinds exercised


def _contract(tmp_path: Path, **change: object) -> Path:
    """The shipped picker copied with its contract changed (the hash covers the .pt only),
    without its onset refinement: these tests compare picks with the rule on raw outputs."""
    for suffix in (".pt", ".json"):
        shutil.copy(SHIPPED / f"picker{suffix}", tmp_path / f"picker{suffix}")
    raw = json.loads((tmp_path / "picker.json").read_text())
    raw.pop("refine", None)
    raw.update(change)
    (tmp_path / "picker.json").write_text(json.dumps(raw))
    return tmp_path / "picker.pt"


def test_pick_rule_in_the_contract(tmp_path: Path) -> None:
    raw = json.loads((SHIPPED / "picker.json").read_text())
    raw.pop("pick_rule", None)
    assert ModelContract.from_dict(raw).pick_rule == PickRule.PEAKS  # older contracts
    raw["pick_rule"] = "seisbench"
    c = ModelContract.from_dict(raw)
    assert c.pick_rule == PickRule.SEISBENCH and c.to_dict()["pick_rule"] == "seisbench"
    assert ModelContract.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    raw["pick_rule"] = "trigger"
    with pytest.raises(ContractError) as err:
        ModelContract.from_dict(raw)
    assert str(err.value) == "pick_rule: 'trigger' is not one of peaks, seisbench"
    pt = _contract(tmp_path, pick_rule="max")
    cfg = load_config_dict({"detectors": [{"name": "p", "type": "model", "path": str(pt)}]})
    with pytest.raises(ContractError, match=r"picker.json: pick_rule: 'max' is not one of"):
        build_detectors(cfg)


def _run(pt: Path, stride_s: float, whole_windows: bool) -> tuple[
        list[tuple[str, str, int, float]], TorchScriptDetector, list[tuple[Window, np.ndarray]]]:
    """Picks of ``pt`` over BW.UH1-UH4 through the pipeline, and every window with its outputs
    over the whole window (recomputed: what the owned samples of ranged windows equal)."""
    cfg = load_config_dict({
        "detectors": [{"name": "picker", "type": "model", "path": str(pt), "stride_s": stride_s,
                       "missing_components": "zeros", "thresholds": {"P": 0.1, "S": 0.1}}],
        "inference": {"precision": "fp32", "max_batch": 16}})
    dets = build_detectors(cfg)
    det = dets[0]
    assert isinstance(det, TorchScriptDetector)
    assert det.contract.pick_rule == PickRule.SEISBENCH and det.decodes_range
    det.decodes_range = not whole_windows
    seen: list[tuple[Window, np.ndarray]] = []
    score = det.score

    def recording(windows: list[Window], outputs: ModelOutputs) -> list[tuple[Window, list]]:
        for w, v, s in zip(windows, outputs.values, outputs.starts):
            if whole_windows:
                assert s == 0 and v.shape[-1] == w.data.shape[-1]
            else:  # only the owned samples are decoded
                lo, hi = owned_range(w, det.stride_s, det._tail_s)
                assert (s, s + v.shape[-1]) == (lo, hi), (s, v.shape, lo, hi)
            seen.append((w, det.infer_array(w.data[None])[0]))
        return score(windows, outputs)

    det.score = recording  # type: ignore[method-assign]
    payloads = [p for tr in demo_stream() for p in mseed_records(tr)]
    run = asyncio.run(run_pipeline(payloads, cfg, detectors=dets))
    picks = sorted((a.station, a.phase or "", a.time_ns, round(a.score, 4))
                   for a in run[0].alerts if a.kind == "pick")
    return picks, det, seen


def _reference(det: TorchScriptDetector, seen: list[tuple[Window, np.ndarray]]) -> tuple[
        list[tuple[str, str, int, float]], int]:
    """SeisBench's rule (ObsPy ``trigger_onset``) on each station's stream of owned outputs:
    picks (a stretch still on at the end is not one: its end is unknown; nor one on at the
    first sample of a stream whose first window was padded), and how many of them cross an
    owned-stretch boundary."""
    c = det.contract
    streams: dict[str, tuple[list[np.ndarray], list[int], list[int]]] = {}
    padded = {w.station for w, _ in seen if w.first and w.pad_samples > 0}
    for w, out in seen:
        lo, hi = owned_range(w, det.stride_s, det._tail_s)
        lo = max(lo, w.pad_samples) if w.first else lo
        vals, times, bounds = streams.setdefault(w.station, ([], [], []))
        bounds.append(len(times))
        vals.append(out[:, lo:hi])
        times.extend(w.time_of(k) for k in range(lo, hi))
    picks, crossing = [], 0
    for sta, (vals, times, bounds) in streams.items():
        p = np.concatenate(vals, axis=1)
        for i, label in enumerate(c.labels):
            if label not in det.thresholds:
                continue
            thr = det.thresholds[label]
            for s0, s1 in trigger_onset(p[i], thr, thr / 2):
                if s1 == p.shape[1] - 1 and p[i, s1] >= thr / 2:
                    continue  # still on where the stream ends
                if sta in padded and np.all(p[i, :s0 + 1] >= thr / 2):
                    continue  # on from the first sample: the step from the pad
                j = int(s0 + np.argmax(p[i, s0:s1 + 1]))
                picks.append((sta, label, times[j], round(float(p[i, j]), 4)))
                crossing += any(s0 < b <= s1 for b in bounds)
    return sorted(picks), crossing


@pytest.mark.parametrize("stride_s", [15.0, 1.0])
def test_seisbench_rule_streams_exactly_once(tmp_path: Path, stride_s: float) -> None:
    pt = _contract(tmp_path, pick_rule="seisbench")
    whole, det, seen = _run(pt, stride_s, whole_windows=True)
    want, crossing = _reference(det, seen)
    assert len(want) >= 10
    if stride_s == 1.0:
        assert crossing >= 3  # stretches crossing owned-stretch boundaries were exercised
    assert [p[:3] for p in whole] == [p[:3] for p in want]
    np.testing.assert_allclose([p[3] for p in whole], [p[3] for p in want], atol=1e-4)
    ranged, _, _ = _run(pt, stride_s, whole_windows=False)
    assert [p[:3] for p in ranged] == [p[:3] for p in want]
    np.testing.assert_allclose([p[3] for p in ranged], [p[3] for p in want], atol=2e-4)


def test_contract_stacking_values() -> None:
    raw = json.loads((SHIPPED / "picker.json").read_text())
    assert ModelContract.from_dict(raw).stacking == Stacking.NONE  # older contracts
    raw.update(pick_rule="seisbench", stacking="avg")
    assert ModelContract.from_dict(raw).stacking == Stacking.AVG
    raw["stacking"] = "median"
    with pytest.raises(ContractError, match=r"^stacking: 'median' is not one of none, avg, max$"):
        ModelContract.from_dict(raw)
    raw.update(pick_rule="peaks", stacking="avg")
    with pytest.raises(ContractError, match=r"^stacking: 'avg' needs pick_rule 'seisbench'"):
        ModelContract.from_dict(raw)


@pytest.mark.parametrize("how", [Stacking.AVG, Stacking.MAX])
def test_stack_equals_seisbench_stacking(how: Stacking) -> None:
    """Windows of 300 samples every 110 (up to three cover a sample): each window returns its
    first stride, the mean (maximum) over every window covering those samples, as SeisBench's
    ``annotate`` stacks them (``nanmean``/``nanmax`` over the windows); a first window starts
    afresh."""
    rng = np.random.default_rng(1)
    n, stride, k = 300, 110, 12
    outs = rng.random((k, 2, n))
    cover = np.full((k, 2, stride * (k - 1) + n), np.nan)
    for i in range(k):
        cover[i, :, i * stride:i * stride + n] = outs[i]
    want = np.nanmean(cover, axis=0) if how == Stacking.AVG else np.nanmax(cover, axis=0)
    state = StackState()
    got = []
    for i in range(k):
        w = Window("XX", "A", "", ("HHZ",), i * stride * 10_000_000, 100.0, np.zeros((1, n)), 0,
                   "d", first=i == 0)
        got.append(stack(w, outs[i], stride, state, how))
    np.testing.assert_allclose(np.concatenate(got, axis=1), want[:, :k * stride], rtol=1e-12)
    w = Window("XX", "A", "", ("HHZ",), 0, 100.0, np.zeros((1, n)), 0, "d", first=True)
    np.testing.assert_allclose(stack(w, outs[0], stride, state, how), outs[0][:, :stride])


def _window(first: bool, pad: int) -> Window:
    return Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0, np.zeros((3, 400)), 0,
                  "picker", first=first, pad_samples=pad)


def test_step_from_the_pad_is_not_a_pick() -> None:
    """A stream's first window is padded before its first sample (mirrored); the join of the pad
    and the data can look like an onset. A stretch already on at the first real sample of a padded
    window is not reported (also when it ends in a later window); the same stretch in an
    unpadded first window is (SeisBench would pick it at a trace's start)."""
    from geosentry.stream.inference.pickrule import StretchState, score_stretches
    from geosentry.stream.records import ModelRef

    model = ModelRef("m", "1", "0" * 64)
    thr = {"P": 0.5, "S": 0.5}
    p = np.zeros((3, 400))
    p[0, 100:130] = np.linspace(0.9, 0.3, 30)  # on from the first real sample (100)
    p[0, 250:260] = 0.8  # an arrival later on
    for pad, want in ((100, [250]), (0, [100, 250])):
        got = score_stretches(_window(True, pad), p, ("P", "S", "N"), thr, 0, 400,
                              StretchState(), model, "d")
        assert [round(a.time_ns / 1e7) for a in got] == want, pad
    state = StretchState()  # on from the pad to beyond the window's owned end, off in the next
    q = np.zeros((3, 400))
    q[0, 100:] = 0.9
    assert score_stretches(_window(True, 100), q, ("P", "S", "N"), thr, 0, 400, state, model,
                           "d") == []
    assert state.open["P"].step
    assert score_stretches(_window(False, 0), np.zeros((3, 400)), ("P", "S", "N"), thr, 0, 400,
                           state, model, "d") == []


def test_no_pick_at_the_edges_of_a_flat_stretch() -> None:
    """A stretch of identical samples (a zero-filled gap, an event cut padded with a constant)
    meets the data in a step a picker reads as an onset: peaks within PEAK_CONTEXT_S of its ends
    are not picked, peaks elsewhere are, and a component flat all through (a missing one,
    zero-filled) excludes nothing by itself; where every component is flat, nothing is picked."""
    from geosentry.stream.inference.scoring import flat_edges, score_picker
    from geosentry.stream.records import ModelRef

    x = np.random.default_rng(1).normal(size=(3, 400))
    x[1] = 0.0  # a missing component
    x[0, :150] = 0.0  # 1.5 s of zeros, then data
    w = Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0, x, 0, "picker")
    p = np.zeros((3, 400))
    p[0, 160] = p[0, 300] = 0.9  # at the step (0.1 s after it) and 1.5 s after it
    edges = flat_edges(w.data, 100.0)
    assert edges == [(50, 250)]
    got = score_picker(w, p, ("P", "S", "N"), {"P": 0.5, "S": 0.5}, 0, 400, {},
                       ModelRef("m", "1", "0" * 64), "d", 0, edges)
    assert [round(a.time_ns / 1e7) for a in got] == [300]
    got = score_picker(w, p, ("P", "S", "N"), {"P": 0.5, "S": 0.5}, 0, 400, {},
                       ModelRef("m", "1", "0" * 64), "d")
    assert [round(a.time_ns / 1e7) for a in got] == [160, 300]
    # nothing but flat lines (a record padded with a constant to its end): nothing to pick on
    w.data = np.full((3, 400), 34.6)
    assert flat_edges(w.data, 100.0) == [(0, 400)]
    assert score_picker(w, p, ("P", "S", "N"), {"P": 0.5, "S": 0.5}, 0, 400, {},
                        ModelRef("m", "1", "0" * 64), "d", 0, flat_edges(w.data, 100.0)) == []


def test_stacking_owns_each_windows_first_stride(tmp_path: Path) -> None:
    """With ``stacking`` a window owns its first stride (reported ``window - stride`` later,
    which the coincidence watermark is told), whole windows are decoded, and a detector's
    ``lookahead_s`` is refused with one line naming the detector."""
    pt = _contract(tmp_path, pick_rule="seisbench", stacking="avg")
    det = build_detectors(load_config_dict({"detectors": [
        {"name": "p", "type": "model", "path": str(pt), "stride_s": 10.0}]}))[0]
    assert isinstance(det, TorchScriptDetector)
    assert det.spec.report_lag_s == pytest.approx(det.contract.window_s - 10.0)
    assert not det.decodes_range
    w = Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0,
               np.zeros((3, det.contract.window_samples), np.float32), 0, "p")
    assert owned_range(w, det.stride_s, det._tail_s) == (0, 1000)
    cfg = load_config_dict({"detectors": [{"name": "p", "type": "model", "path": str(pt),
                                           "lookahead_s": 2.0}]})
    with pytest.raises(ContractError, match=r"^detector p: lookahead_s does not apply"):
        build_detectors(cfg)


def test_a_p_and_an_s_at_one_arrival_are_one_pick(tmp_path: Path) -> None:
    """Both labels peaking within PHASE_CONFLICT_S of each other read one arrival: reported as
    the P where no P came up to MAX_S_MINUS_P_S before (an earthquake's first arrival), as the
    S where one did (also a P picked in an earlier window), through the detector's scoring."""
    from geosentry.stream.inference.scoring import PHASE_CONFLICT_S, PHASE_STATE_S

    cfg = load_config_dict({"detectors": [{"name": "p", "type": "model",
                                           "path": str(_contract(tmp_path)),
                                           "thresholds": {"P": 0.5, "S": 0.5}}]})
    det = build_detectors(cfg)[0]
    assert isinstance(det, TorchScriptDetector) and det.contract.refine is None
    # a restart re-reads the P picks a pair is judged by (geosentry.stream.resume)
    assert det.spec.state_s == PHASE_STATE_S and det.spec.resume_s > 20.0 + det.spec.window_s
    sb = tmp_path / "sb"
    sb.mkdir()
    other = build_detectors(load_config_dict({"detectors": [
        {"name": "p", "type": "model", "path": str(_contract(sb, pick_rule="seisbench"))}]}))[0]
    assert other.spec.state_s == 0.0  # SeisBench's picks: no pair rule
    n = det.contract.window_samples
    rng = np.random.default_rng(0)

    def picks(w: Window, at: list[tuple[str, int]]) -> list[tuple[str, int]]:
        out = np.zeros((3, n), np.float32)
        for phase, k in at:
            out["PS".index(phase), k - 3:k + 4] = [0.6, 0.7, 0.8, 0.9, 0.8, 0.7, 0.6]
        [(_, alerts)] = det.score([w], ModelOutputs.whole(out[None]))
        return [(a.phase or "", round((a.time_ns - w.start_ns) / 1e7)) for a in alerts]

    w = Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0,
               rng.normal(size=(3, n)).astype(np.float32), 0, "picker", first=True)
    assert owned_range(w, det.stride_s, det._tail_s)[1] > 2100  # the first window owns these
    gap = round(PHASE_CONFLICT_S * 100) - 5  # 0.15 s apart
    # a first arrival read as both: the P; 5 s later an arrival read as both: that P's S
    assert picks(w, [("P", 1000), ("S", 1000 + gap), ("P", 1500), ("S", 1500 - gap)]) == [
        ("P", 1000), ("S", 1500 - gap)]
    # farther apart than PHASE_CONFLICT_S: two picks, as the model put them
    assert picks(w, [("P", 2000), ("S", 2030)]) == [("P", 2000), ("S", 2030)]
    # the next window: a pair a few seconds after the P picked at sample 2000 is an S
    stride = round(det.stride_s * 100)
    w2 = Window("XX", "A", "", w.channels, w.time_of(stride), 100.0, w.data, 0, "picker")
    lo, hi = owned_range(w2, det.stride_s, det._tail_s)
    at = lo + 100
    assert at + gap < hi and 1 < (stride + at - 2000) / 100 < 20
    assert picks(w2, [("P", at), ("S", at + gap)]) == [("S", at + gap)]


def test_a_batch_that_raises_leaves_the_picker_state_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner scores a failed batch's windows again one by one (``runner._isolate``): the
    windows scored before the failing one must give their picks then, not find them already
    remembered (and skip them as seen) because the failed batch advanced the state. The fault
    (scoring station B raises) is injected."""
    import geosentry.stream.inference.model as model_module

    det = build_detectors(load_config_dict({"detectors": [
        {"name": "p", "type": "model", "path": str(_contract(tmp_path)),
         "thresholds": {"P": 0.5, "S": 0.5}}]}))[0]
    assert isinstance(det, TorchScriptDetector)
    n = det.contract.window_samples
    data = np.random.default_rng(0).normal(size=(3, n)).astype(np.float32)
    # not a stream's first window (that one clears the state anyway)
    good = Window("XX", "A", "", ("HHZ", "HHN", "HHE"), 0, 100.0, data, 0, "picker")
    bad = Window("XX", "B", "", good.channels, 0, 100.0, data, 0, "picker")
    lo, hi = owned_range(good, det.stride_s, det._tail_s)
    k = (lo + hi) // 2
    out = np.zeros((3, n), np.float32)
    out[0, k - 3:k + 4] = [0.6, 0.7, 0.8, 0.9, 0.8, 0.7, 0.6]
    real = model_module.drop_phase_conflicts

    def failing(alerts: list, state: dict) -> list:
        if alerts and alerts[0].station == "B":
            raise RuntimeError("injected")
        return real(alerts, state)

    monkeypatch.setattr(model_module, "drop_phase_conflicts", failing)
    with pytest.raises(RuntimeError, match="injected"):
        det.score([good, bad], ModelOutputs([out, out], (0, 0)))
    [(_, alerts)] = det.score([good], ModelOutputs([out], (0,)))
    assert [(a.phase, a.time_ns) for a in alerts] == [("P", good.time_of(k))]
