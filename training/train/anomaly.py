"""Autoencoder anomaly models: seismic (noise-only training) and geomagnetic (quiet days).

The service scores a window by the MSE between its (normalised) input and the reconstruction;
``thresholds["anomaly"]`` is the (1 - target_far) quantile of scores on quiet training windows.

The code lives in three modules (this one re-exports their public names, so callers need not
change): ``anomaly_common`` (false-alarm target, score, training step), ``anomaly_seismic``
(``SeismicAnomalyTask``) and ``anomaly_geomag`` (``GeomagAnomalyTask`` and its data).
"""

from __future__ import annotations

from geosentry.training.train.anomaly_common import TARGET_FAR, AETask, flat_lined, mse_scores
from geosentry.training.train.anomaly_geomag import (ARTEFACT_TYPES, GEOMAG_COMPONENTS,
                                                     HIGH_LATITUDE, GeomagAnomalyTask,
                                                     inject_artefact, inject_ssc, load_geomag)
from geosentry.training.train.anomaly_seismic import SeismicAnomalyTask

_AETask = AETask  # the shared base's name before the split

__all__ = ["ARTEFACT_TYPES", "GEOMAG_COMPONENTS", "HIGH_LATITUDE", "TARGET_FAR", "AETask",
           "GeomagAnomalyTask", "SeismicAnomalyTask", "flat_lined", "inject_artefact",
           "inject_ssc", "load_geomag", "mse_scores"]
