"""Detectors: turn windows into alerts. Non-learned ones live here; models in ``stream.inference``."""
