"""Local magnitude ML from Wood-Anderson amplitudes.

Station ML = ``a log10(A) + b log10(r) + c r + d`` with A the zero-to-peak Wood-Anderson
amplitude expressed as ground displacement in nm (the WA trace divided by its gain, 2080, as
SEISAN and IASPEI do) and r the hypocentral distance in km. The default is the IASPEI standard,
Hutton & Boore (1987) for southern California: a = 1, b = 1.11, c = 0.00189, d = -2.09. A
SEISAN ``STATION0.HYP`` brings its own constants (TEST(75)-(78)). The event ML is the median of
the station MLs (one per station: the largest amplitude), with the station count.

>>> round(MLScale().station_ml(1000.0, 100.0), 2)  # 1 um at 100 km
3.32
>>> event_ml([1.0, 1.4, 0.9, 3.0])
(1.2, 4)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class MLScale:
    a: float = 1.0
    b: float = 1.11
    c: float = 0.00189
    d: float = -2.09
    name: str = "IASPEI (Hutton & Boore 1987)"
    min_distance_km: float = 1.0

    def station_ml(self, amplitude_nm: float, hypo_distance_km: float) -> float:
        r = max(hypo_distance_km, self.min_distance_km)
        return self.a * math.log10(amplitude_nm) + self.b * math.log10(r) + self.c * r + self.d


def event_ml(station_mls: list[float]) -> tuple[float, int]:
    """Median of the station magnitudes and their count."""
    return round(statistics.median(station_mls), 3), len(station_mls)
