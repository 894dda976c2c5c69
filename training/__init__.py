"""geosentry training: builds, evaluates and exports every model the service runs.

Nothing in :mod:`geosentry.stream` imports this package; the only thing shared is the model contract JSON
(:mod:`geosentry.stream.inference.contract`), which :mod:`geosentry.training.export` writes next to each TorchScript file.
"""

from __future__ import annotations

from geosentry import __version__

__all__ = ["__version__"]
