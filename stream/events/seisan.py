"""SEISAN ``STATION0.HYP``: stations, the 1-D model and the ML constants (TEST(75)-(78)).

Stations: ``(1x, a5, i2, f5.x, a1, i3, f5.x, a1, i4)`` (degrees + decimal minutes, a minutes
field without a point has 3 implied decimals; N/S, E/W; elevation in m). The model follows
the first blank line: ``Vp  depth-of-top  [Vs]  [N = Moho]``, then a blank line and the control
line ``start-depth  xnear  xfar  vp/vs``. SEISAN's ML: ``ML = a log10(A) + b log10(r) + c r + d``
with A in nm and r the hypocentral distance in km (TEST 75, 76, 77, 78).

>>> _dm("43", "18960"), _dm("43", "15.66")
(43.316, 43.261)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geosentry.stream.events.magnitude import MLScale
from geosentry.stream.events.stations import Inventory, InventoryError, Station
from geosentry.stream.events.velocity import VelocityModel


@dataclass(frozen=True)
class Station0:
    inventory: Inventory
    model: VelocityModel
    ml: MLScale


def _dm(deg: str, minutes: str) -> float:
    m = float(minutes) if "." in minutes else float(minutes.strip() or 0) / 1000.0
    return round(float(deg) + m / 60.0, 6)


def read_station0(path: str | Path) -> Station0:
    p = Path(path)
    lines = p.read_text(errors="replace").splitlines()
    tests: dict[int, float] = {}
    i = 0
    while i < len(lines) and lines[i].strip():
        s = lines[i].strip()
        if s.startswith("RESET TEST(") and "=" in s:
            tests[int(s[11:s.index(")")])] = float(s.split("=", 1)[1])
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    stations: list[Station] = []
    while i < len(lines) and lines[i].strip():
        ln = lines[i].ljust(27)
        i += 1
        name = ln[1:6].strip()
        if not name or name.startswith("."):
            continue
        try:
            lat = _dm(ln[6:8], ln[8:13]) * (-1.0 if ln[13] == "S" else 1.0)
            lon = _dm(ln[14:17], ln[17:22]) * (-1.0 if ln[22] == "W" else 1.0)
            elev = float(ln[23:27].strip() or 0)
        except ValueError as exc:
            raise InventoryError(f"{p} line {i}: not a SEISAN station line ({exc})") from exc
        stations.append(Station("", name, lat, lon, elev))
    while i < len(lines) and not lines[i].strip():
        i += 1
    layers: list[tuple[float, float, float | None]] = []
    while i < len(lines) and lines[i].strip():
        parts = lines[i].split()
        i += 1
        vs = float(parts[2]) if len(parts) > 2 and parts[2] != "N" else None
        layers.append((float(parts[1]), float(parts[0]), vs))
    while i < len(lines) and not lines[i].strip():
        i += 1
    vpvs = 1.73
    if i < len(lines):
        ctl = lines[i]
        try:
            vpvs = float(ctl[15:20]) if len(ctl) >= 20 else float(ctl.split()[-1])
        except ValueError:
            vpvs = 1.73
    if not stations or not layers:
        raise InventoryError(f"{p}: no stations or no velocity model found")
    model = VelocityModel(tuple(d for d, _, _ in layers), tuple(vp for _, vp, _ in layers),
                          tuple(vs if vs is not None else vp / vpvs for _, vp, vs in layers),
                          name=f"{p.name} (vp/vs {vpvs:g})")
    default = MLScale()
    ml = MLScale(a=tests.get(75, default.a), b=tests.get(76, default.b),
                 c=tests.get(77, default.c), d=tests.get(78, default.d),
                 name=f"SEISAN TEST(75-78) of {p.name}")
    return Station0(Inventory(stations), model, ml)
