"""Shared fixtures of the events tests."""

from __future__ import annotations

import pytest

from geosentry.stream.events.velocity import DEFAULT_MODEL, TravelTimes


@pytest.fixture(scope="session")
def tt() -> TravelTimes:
    """Travel times of the default model to 250 km, sources to 40 km deep."""
    return TravelTimes(DEFAULT_MODEL, max_distance_km=250.0, max_depth_km=40.0)
