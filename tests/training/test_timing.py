"""``training.evaluate.timing``: a residual σ taken apart (tails, per-network bias, per-event
offsets) and the paired event-bootstrap σ difference, on residuals built to have each cause."""

from __future__ import annotations

import numpy as np

from geosentry.training.evaluate.picks import pick_scores
from geosentry.training.evaluate.timing import breakdown, markdown_lines, matched, std_diff_ci


def _core(rng: np.random.Generator, n_events: int = 40, per_event: int = 8,
          sd: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ev = np.repeat([f"N{k % 2}:{k}" for k in range(n_events)], per_event)
    return rng.normal(0.0, sd, ev.size), ev, np.array([e.split(":")[0] for e in ev])


def test_matched_is_pick_scores_matching() -> None:
    truth = [100, None, 300, 400, 500]
    preds = [np.array([90, 180]), np.array([5]), np.array([345]), np.array([]), np.array([560])]
    idx, res = matched(truth, preds, 100.0, tol_s=0.5)
    assert idx.tolist() == [0, 2] and np.allclose(res, [-0.10, 0.45])  # 0.6 s off: no match
    scores = pick_scores(truth, preds, 100.0, (0.5,))
    assert scores["0.5s"]["tp"] == 2 and np.isclose(scores["residual_std_s"], res.std(), atol=1e-4)


def test_tails_dominate_variance_robust_sigma_sees_the_core() -> None:
    rng = np.random.default_rng(0)
    r, ev, net = _core(rng)
    r[:6] = [0.3, 0.35, -0.4, 0.45, -0.3, 0.25]  # 6 of 320 picks 0.25-0.45 s off
    b = breakdown(r, ev, net)
    assert b["n"] == 320 and b["tail_n"] == 6
    assert b["tail_share_of_var"] > 0.8  # 2 % of the picks, most of σ²
    assert b["std_s"] > 0.05 and 0.015 < b["robust_std_s"] < 0.025
    assert 0.015 < b["std_without_tail_s"] < 0.025


def test_per_event_offsets_and_network_bias_are_separated() -> None:
    rng = np.random.default_rng(1)
    r, ev, net = _core(rng, sd=0.005)
    offsets = {e: rng.normal(0.0, 0.05) for e in dict.fromkeys(ev.tolist())}
    r_ev = r + np.array([offsets[e] for e in ev])
    b = breakdown(r_ev, ev, net)
    assert b["between_event_share"] > 0.95 and b["within_event_std_s"] < 0.006
    worst = max(offsets, key=lambda e: abs(offsets[e]))
    assert b["worst_events"][0]["event"] == worst and b["worst_events"][0]["n"] == 8
    assert b["std_without_worst_events_s"] < b["std_s"]
    # a per-network bias (N1 picks 80 ms late): pooled σ includes it, within-network σ does not
    r_net = r + np.where(net == "N1", 0.08, 0.0)
    bn = breakdown(r_net, ev, net)
    assert bn["std_s"] > 0.035 and bn["within_network_std_s"] < 0.006
    assert bn["per_network"]["N1"]["mean_s"] - bn["per_network"]["N0"]["mean_s"] > 0.075


def test_std_diff_ci_paired_over_events() -> None:
    rng = np.random.default_rng(2)
    r, ev, _ = _core(rng, sd=0.05)
    same = std_diff_ci(r, ev, r, ev, n_boot=200)
    assert same == {"diff_s": 0.0, "ci95_s": [0.0, 0.0]}
    tight = std_diff_ci(r / 2, ev, r, ev, n_boot=200)
    assert tight["diff_s"] < -0.02 and tight["ci95_s"][1] < 0  # resolved: half the σ
    assert np.isclose(tight["diff_s"], (r / 2).std() - r.std(), atol=1e-4)


def test_markdown_lines_name_the_parts() -> None:
    rng = np.random.default_rng(3)
    r, ev, net = _core(rng)
    lines = markdown_lines({"cnn": {"P": breakdown(r, ev, net)}}, {"cnn": "CNN"})
    text = "\n".join(lines)
    assert "| CNN | 320 |" in text and "MAD × 1.4826" in text and "| N0 |" in text
    assert markdown_lines({"cnn": {"P": {"n": 0}}}, {}) == []
