"""GaMMA's settings for the offline association comparison (issue 17).

GaMMA (PyPI ``gmma``, AI4EPS, MIT) pins scikit-learn 1.7 and needs numba, so, as PyOcto, it runs
in its own virtual environment (``scripts/gamma-env.sh``) and never imports geosentry:
``bench/gamma_reference.py`` reads the exchange folder ``pyocto_io.export`` writes (stations,
picks, ``model.csv``, the area in ``params.json``) and ``gamma.json``, written here, and writes
its events in ``pyocto_io``'s result form (``events.csv``, ``assignments.csv``, ``run.json``),
so that ``pyocto_compare`` scores it as the others.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from geosentry.stream.events.pyocto_io import ExchangeError

PARAMS = "gamma.json"


class GammaMethod(Enum):
    BGMM = "BGMM"  # Bayesian Gaussian mixture (GaMMA's default)
    GMM = "GMM"


@dataclass(frozen=True)
class GammaParams:
    """GaMMA's settings, matched to geosentry's ``AssociatorConfig`` and to ``PyOctoParams``
    where GaMMA has a counterpart:

    * travel times from geosentry's 1-D model through GaMMA's ``eikonal`` option (its own
      2-D eikonal solver on a ``eikonal_h_km`` grid, the layers as steps); ``vel_*`` for the
      DBSCAN pre-clustering's time-distance scale: the model's mean velocities over 0-20 km;
    * ``use_amplitude`` False (the pick sets carry no amplitudes);
    * DBSCAN pre-clustering on (time, x/vp, y/vp): ``dbscan_eps_s`` (None: GaMMA's own
      ``estimate_eps`` from the station spacing, sigma 2), ``dbscan_min_samples`` 3;
    * ``max_sigma11_s`` 1.5 (largest pick residual kept in an event) = ``s_residual_s`` and
      PyOcto's ``pick_match_tolerance``;
    * pick counts as PyOcto's: ``SPARSE`` 5 picks, 2 P, no S; ``DENSE`` 20 picks, 10 P, 5 S;
    * ``covariance_prior_s2``: None keeps GaMMA's own time-variance prior, which grows
      exponentially with the DBSCAN cluster's spatial spread (0.5 s^2 at 0 km, 4.5 at 30 km,
      about 2,400 at 100 km); on the 1,000-station network that merges the events of a wide
      cluster and ``max_sigma11`` then drops them (4 of the first synthetic minute's 10
      found), so ``DENSE`` sets 1 s^2 (9 of 10; 0.25 s^2 the same, slower);
    * ``method`` BGMM, ``oversample_factor`` 5 (candidate events per cluster = the most picks at
      one station x this), depths 0-40 km, ``ncpu`` 1 (geosentry's associator has one thread).
    """

    method: GammaMethod = GammaMethod.BGMM
    oversample_factor: int = 5
    dbscan_eps_s: float | None = None
    dbscan_min_samples: int = 3
    min_picks_per_eq: int = 5
    min_p_picks_per_eq: int = 2
    min_s_picks_per_eq: int = 0
    max_sigma11_s: float = 1.5
    covariance_prior_s2: float | None = None
    eikonal_h_km: float = 0.5
    zlim_km: tuple[float, float] = (0.0, 40.0)
    use_amplitude: bool = False
    ncpu: int = 1

    def __post_init__(self) -> None:
        if self.min_picks_per_eq < 3 or self.oversample_factor < 1 or self.ncpu < 1:
            raise ValueError(f"GammaParams: min_picks_per_eq >= 3, oversample_factor >= 1 and "
                             f"ncpu >= 1 needed, got {self}")
        if self.covariance_prior_s2 is not None and self.covariance_prior_s2 <= 0:
            raise ValueError(f"GammaParams: covariance_prior_s2 must be > 0, got "
                             f"{self.covariance_prior_s2}")
        if self.dbscan_eps_s is not None and self.dbscan_eps_s <= 0:
            raise ValueError(f"GammaParams: dbscan_eps_s must be > 0, got {self.dbscan_eps_s}")


SPARSE = GammaParams()
DENSE = GammaParams(min_picks_per_eq=20, min_p_picks_per_eq=10, min_s_picks_per_eq=5,
                    covariance_prior_s2=1.0)


def write_params(folder: Path, params: GammaParams) -> Path:
    """``gamma.json`` in an exchange folder ``pyocto_io.export`` wrote."""
    if not (folder / "params.json").is_file():
        raise ExchangeError(f"exchange {folder}: params.json missing (pyocto_io.export first)")
    d = asdict(params)
    d["method"] = params.method.value
    path = folder / PARAMS
    path.write_text(json.dumps(d, indent=1))
    return path
