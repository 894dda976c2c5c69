"""geosentry training: builds, evaluates and exports every model the service runs.

Nothing in :mod:`stream` imports this package; the only thing shared is the model contract JSON
(:mod:`stream.inference.contract`), which :mod:`training.export` writes next to each TorchScript file.
"""

from __future__ import annotations

__version__ = "0.1.0"
