"""Leave-one-out (cross-validated) cleaning of a small event's picks.

A small event (few phases) fits almost any pick: one wrong pick (the next swarm event's P
labelled S, an S labelled P, a false pick) moves the location until its residual is small, so
``Associator._clean`` (which drops picks by their residuals at the location they shaped) keeps
it, and the origin lands kilometres and seconds off (Iceland 2014 paced replay: first alerts
with 7 right P picks and one P labelled S, 6.6 km and 3.4 s off). Here each pick is predicted
by the location of all the others instead: a pick the others do not predict within its
residual limit (``p_residual_s`` / ``s_residual_s``, times ``limit``) is dropped, the worst
first, and the rest relocated, until every pick is predicted by the others, for events of at
most ``max_phases`` phases that keep at least ``min_phases`` (larger events outvote a wrong
pick; below ``min_phases`` + 1 the others cannot locate alone).
"""

from __future__ import annotations

import numpy as np

from geosentry.stream.events.locate import (Hypocentre, Observations, geiger, geiger_rows,
                                            predict_rows)
from geosentry.stream.events.velocity import TravelTimes


def loo_residuals(tt: TravelTimes, obs: Observations, hypo: Hypocentre) -> np.ndarray:
    """Each pick's residual at the location of all the other picks (started from ``hypo``):
    the n leave-one-out locations in one pass (``geiger_rows``)."""
    n = len(obs)
    x, y, z, t0 = geiger_rows(tt, obs, ~np.eye(n, dtype=bool),
                              (hypo.x_km, hypo.y_km, hypo.depth_km))
    pred = np.diagonal(predict_rows(tt, obs, x, y, z)[0])  # pick k from the others' location
    out: np.ndarray = obs.t_s - t0 - pred
    return out


def crossval_clean(tt: TravelTimes, obs: Observations, hypo: Hypocentre, p_residual_s: float,
                   s_residual_s: float, min_phases: int, max_phases: int,
                   min_sigma_s: float, limit: float = 1.0
                   ) -> tuple[Hypocentre, np.ndarray, bool]:
    """The location, the rows of ``obs`` kept (see the module doc) and whether each of them
    is predicted by the others (False where too few are left to tell)."""
    rows = np.arange(len(obs))
    while min_phases < len(rows) <= max_phases:
        sub = obs.subset(rows)
        res = loo_residuals(tt, sub, hypo)
        ratio = np.abs(res) / np.where(sub.is_s, s_residual_s, p_residual_s)
        worst = int(np.argmax(ratio))
        if ratio[worst] <= limit:
            return hypo, rows, True
        rows = np.delete(rows, worst)
        hypo = geiger(tt, obs.subset(rows), (hypo.x_km, hypo.y_km, hypo.depth_km),
                      min_sigma_s=min_sigma_s)
    return hypo, rows, False
