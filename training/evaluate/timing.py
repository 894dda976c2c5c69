"""Where a pick residual σ comes from: tails, per-network bias, per-event offsets, core scatter.

A pooled residual σ (``picks.pick_scores``: predicted − true over the matches within ±0.5 s)
mixes several things that call for different fixes:

* **tails**: a few picks 0.2–0.5 s off (another peak, an emergent onset) dominate σ²;
  ``tail_share_of_var`` is the part of Σ(r − mean)² from ``|r| > TAIL_S``, ``robust_std_s`` the
  MAD × 1.4826 (σ of the core if it were Gaussian).
* **per-network bias** (a network's analysts pick a different point of the onset): the pooled σ
  includes the spread of the network means; ``within_network_std_s`` removes it.
* **per-event offsets**: every window of an event shows the same arrival, so a model that
  disagrees with the reference pick of that arrival does so in all of them;
  ``between_event_share`` is the part of σ² explained by the event means, ``within_event_std_s``
  what is left (the pick moving with the crop: the pick rule's own scatter). The
  ``WORST_EVENTS`` events with the largest mean offset are named (and σ without them given): when
  independent pickers share them, the reference pick is the odd one out.

``std_diff_ci`` gives a paired event-bootstrap interval for the σ difference of two pickers on the
same windows (each picker's own matches; events resampled together).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TAIL_S = 0.2
WORST_EVENTS = 5  # events with the largest |mean residual| named in the breakdown
MAD_TO_STD = 1.4826


def matched(truth: list[int | None], preds: list[np.ndarray], sampling_rate_hz: float,
            tol_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(window index, residual s)`` of every window whose nearest pick is within ``tol_s`` of
    its true pick (the matches ``pick_scores`` counts and takes its residuals from)."""
    idx, res = [], []
    for i, (t, pr) in enumerate(zip(truth, preds)):
        if t is not None and pr.size:
            d = pr - t
            j = int(np.argmin(np.abs(d)))
            if abs(d[j]) <= tol_s * sampling_rate_hz:
                idx.append(i)
                res.append(float(d[j]) / sampling_rate_hz)
    return np.asarray(idx, dtype=np.int64), np.asarray(res, dtype=float)


def _r(x: float) -> float:
    return round(float(x), 4)


def _group_share(r: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """(share of Σ(r − mean)² explained by the group means, σ around the group means)."""
    dev = r.copy()
    for g in np.unique(groups):
        m = groups == g
        dev[m] -= r[m].mean()
    total = float(((r - r.mean()) ** 2).sum())
    within = float((dev ** 2).sum())
    return (1.0 - within / total if total > 0 else 0.0), float(np.sqrt(within / r.size))


def breakdown(residuals: np.ndarray, events: np.ndarray, networks: np.ndarray,
              tail_s: float = TAIL_S) -> dict[str, Any]:
    """The σ of ``residuals`` (seconds) taken apart (module docstring); ``events`` and
    ``networks`` label each residual."""
    r = np.asarray(residuals, dtype=float)
    events, networks = np.asarray(events), np.asarray(networks)
    if r.size == 0:
        return {"n": 0}
    dev2 = (r - r.mean()) ** 2
    tail = np.abs(r) > tail_s
    between, within_ev = _group_share(r, events)
    _, within_net = _group_share(r, networks)
    per_net = {str(n): {"n": int((networks == n).sum()), "mean_s": _r(r[networks == n].mean()),
                        "std_s": _r(r[networks == n].std())}
               for n in dict.fromkeys(networks.tolist())}
    ev_mean = {str(e): (int((events == e).sum()), float(r[events == e].mean()))
               for e in dict.fromkeys(events.tolist())}
    worst = sorted(ev_mean, key=lambda e: -abs(ev_mean[e][1]))[:WORST_EVENTS]
    rest = ~np.isin(events.astype(str), worst)
    return {"n": int(r.size), "mean_s": _r(r.mean()), "std_s": _r(r.std()),
            "robust_std_s": _r(MAD_TO_STD * np.median(np.abs(r - np.median(r)))),
            "tail_s": tail_s, "tail_n": int(tail.sum()),
            "tail_share_of_var": _r(dev2[tail].sum() / dev2.sum()) if dev2.sum() > 0 else 0.0,
            "std_without_tail_s": _r(r[~tail].std()) if (~tail).any() else None,
            "between_event_share": _r(between), "within_event_std_s": _r(within_ev),
            "within_network_std_s": _r(within_net),
            "worst_events": [{"event": e, "n": ev_mean[e][0], "mean_s": _r(ev_mean[e][1])}
                             for e in worst],
            "std_without_worst_events_s": _r(r[rest].std()) if rest.any() else None,
            "per_network": per_net}


def _event_moments(r: np.ndarray, ev: np.ndarray, keys: list[str]) -> np.ndarray:
    """``(3, len(keys))``: count, Σr, Σr² per event."""
    pos = {k: i for i, k in enumerate(keys)}
    out = np.zeros((3, len(keys)))
    cols = np.array([pos[e] for e in ev.tolist()], dtype=np.int64)
    for row, v in enumerate((np.ones_like(r), r, r * r)):
        np.add.at(out[row], cols, v)
    return out


def _std(m: np.ndarray) -> np.ndarray:
    n = np.maximum(m[0], 1)
    return np.sqrt(np.maximum(m[2] / n - (m[1] / n) ** 2, 0.0))


def std_diff_ci(res_a: np.ndarray, ev_a: np.ndarray, res_b: np.ndarray, ev_b: np.ndarray,
                n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """σ(a) − σ(b) (seconds) with a 95 % percentile interval, resampling events (both pickers'
    matches of a drawn event go in together, as often as it is drawn)."""
    keys = sorted(set(np.asarray(ev_a).tolist()) | set(np.asarray(ev_b).tolist()))
    ma = _event_moments(np.asarray(res_a, float), np.asarray(ev_a), keys)
    mb = _event_moments(np.asarray(res_b, float), np.asarray(ev_b), keys)
    diff = float(_std(ma.sum(1, keepdims=True))[0] - _std(mb.sum(1, keepdims=True))[0])
    w = np.random.default_rng(seed).multinomial(len(keys), np.full(len(keys), 1 / len(keys)),
                                                size=n_boot).astype(float)
    boot = _std(np.einsum("bk,mk->mb", w, ma)) - _std(np.einsum("bk,mk->mb", w, mb))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"diff_s": _r(diff), "ci95_s": [_r(lo), _r(hi)]}


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{1000 * x:.0f} ms"


def markdown_lines(timing: dict[str, dict[str, Any]], labels: dict[str, str],
                   phase: str = "P") -> list[str]:
    """Report tables for ``timing[picker][phase]`` (a :func:`breakdown` each)."""
    rows = {k: v[phase] for k, v in timing.items() if v.get(phase, {}).get("n")}
    if not rows:
        return []
    lines = ["", f"{phase} timing: the residual σ taken apart (matches within ±0.5 s; tails "
             f"|r| > {TAIL_S:g} s; between-event share: part of σ² that the per-event mean "
             "residuals explain, the same arrival offset in every window of its event):", "",
             "| picker | n | mean | σ | MAD × 1.4826 | tails n / share of σ² | σ without tails "
             "| between-event share | σ within events | σ within networks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, b in rows.items():
        lines.append(f"| {labels.get(name, name)} | {b['n']} | {_ms(b['mean_s'])} | "
                     f"{_ms(b['std_s'])} | {_ms(b['robust_std_s'])} | {b['tail_n']} / "
                     f"{b['tail_share_of_var']:.2f} | {_ms(b['std_without_tail_s'])} | "
                     f"{b['between_event_share']:.2f} | {_ms(b['within_event_std_s'])} | "
                     f"{_ms(b['within_network_std_s'])} |")
    lines += ["", f"{phase}: the {WORST_EVENTS} events with the largest mean offset (event: mean "
              "over its matched windows), and σ without them:", ""]
    lines += [f"* {labels.get(name, name)}: " + ", ".join(
        f"{w['event']} {1000 * w['mean_s']:+.0f} ms ({w['n']})" for w in b["worst_events"])
        + f"; σ without them {_ms(b['std_without_worst_events_s'])}" for name, b in rows.items()]
    nets = list(next(iter(rows.values()))["per_network"])
    lines += ["", f"{phase} residual mean / σ per held-out network (ms):", "",
              "| network | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for net in nets:
        cells = []
        for b in rows.values():
            s = b["per_network"].get(net)
            cells.append("—" if s is None else
                         f"{1000 * s['mean_s']:+.0f} / {1000 * s['std_s']:.0f} (n {s['n']})")
        lines.append(f"| {net} | " + " | ".join(cells) + " |")
    return lines
