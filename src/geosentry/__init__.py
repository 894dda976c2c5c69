"""geosentry: real-time detection for seismic and geomagnetic streams.

The service is ``geosentry.stream`` (``geosentry run``); model training, evaluation and export
are ``geosentry.training`` (the ``training`` extra). The version is written here only.
"""

__version__ = "0.1.0"
