"""Detectors: turn windows into alerts. Non-learned ones live here; models in ``geosentry.stream.inference``."""
