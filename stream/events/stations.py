"""Station metadata: StationXML (ObsPy), a simple CSV, or SEISAN ``STATION0.HYP``.

CSV: a header naming ``network,station,lat,lon,elevation`` (elevation in metres; aliases
``latitude``, ``longitude``, ``elevation_m``, ``name``; QuakeMigrate's
``Latitude,Longitude,Elevation,Name`` with elevation in km is recognised by its header;
QuakeFlow's tab-separated ``station_id`` NET.STA..CHA, ``elevation(m)`` too; comma, tab or
semicolon separated).

>>> inv = Inventory([Station("NZ", "WHYM", -43.44, 170.37, 906.0)])
>>> inv.lookup("", "WHYM").key, inv.lookup("XX", "NONE") is None
('NZ.WHYM', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geosentry.stream.errors import GeosentryError
from geosentry.stream.events import csvfile


class InventoryError(GeosentryError):
    """A station file that cannot be read (one line, names the file and the line)."""


@dataclass(frozen=True, slots=True)
class Station:
    network: str
    station: str
    lat_deg: float
    lon_deg: float
    elevation_m: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.network}.{self.station}"


class Inventory:
    """Stations by ``NET.STA``; a pick without a network (SEISAN, select.out) finds its station
    by code alone when that code is unique."""

    def __init__(self, stations: list[Station]) -> None:
        self.stations: dict[str, Station] = {}
        by_code: dict[str, list[Station]] = {}
        for s in stations:
            if s.key in self.stations:
                continue  # first entry wins (STATION0.HYP repeats some stations)
            if not (-90.0 <= s.lat_deg <= 90.0 and -180.0 <= s.lon_deg <= 360.0):
                raise InventoryError(f"station {s.key}: coordinates out of range "
                                     f"({s.lat_deg}, {s.lon_deg})")
            self.stations[s.key] = s
            by_code.setdefault(s.station, []).append(s)
        self._by_code = {k: v[0] for k, v in by_code.items() if len(v) == 1}

    def __len__(self) -> int:
        return len(self.stations)

    def lookup(self, network: str, station: str) -> Station | None:
        s = self.stations.get(f"{network}.{station}")
        if s is None and (not network or f".{station}" in self.stations
                          or station in self._by_code):
            s = self._by_code.get(station)
        return s


def read_inventory(path: str | Path) -> Inventory:
    """StationXML (``.xml``), SEISAN ``STATION0.HYP`` (``.hyp``) or CSV, by content."""
    p = Path(path)
    try:
        head = p.read_text(errors="replace")[:4096]
    except OSError as exc:
        raise InventoryError(f"inventory {p}: {exc.strerror or exc}") from exc
    if head.lstrip().startswith("<"):
        return _stationxml(p)
    if p.suffix.lower() == ".hyp" or "RESET TEST" in head:
        from geosentry.stream.events.seisan import read_station0

        return read_station0(p).inventory
    return _csv(p)


def _stationxml(p: Path) -> Inventory:
    import obspy

    try:
        inv = obspy.read_inventory(str(p))
    except Exception as exc:  # ObsPy raises many types for a bad file
        raise InventoryError(f"inventory {p}: not readable StationXML ({exc})") from exc
    out = [Station(net.code, sta.code, float(sta.latitude), float(sta.longitude),
                   float(sta.elevation or 0.0)) for net in inv for sta in net]
    if not out:
        raise InventoryError(f"inventory {p}: no stations")
    return Inventory(out)


_ALIASES = {"network": ("network", "net"), "station": ("station", "sta", "name", "code"),
            "lat": ("lat", "latitude", "lat_deg"), "lon": ("lon", "longitude", "lon_deg"),
            "elevation": ("elevation", "elevation_m", "elev", "elev_m", "elevation(m)"),
            "station_id": ("station_id", "id")}


def _csv(p: Path) -> Inventory:
    try:
        rows = csvfile.rows(p)
    except csvfile.CsvTextError as exc:
        raise InventoryError(f"inventory {exc}") from exc
    if not rows:
        raise InventoryError(f"inventory {p}: empty")
    header = [h.strip().lower() for h in rows[0]]
    cols: dict[str, int] = {}
    for name, aliases in _ALIASES.items():
        for a in aliases:
            if a in header:
                cols[name] = header.index(a)
                break
    if "station" not in cols and "station_id" in cols:  # QuakeFlow: NET.STA[.LOC.CHA]
        for row in rows[1:]:
            if len(row) > cols["station_id"]:
                net, _, rest = row[cols["station_id"]].strip().partition(".")
                row += [net, rest.split(".")[0]] if rest else ["", net]
        cols["network"], cols["station"] = len(rows[0]), len(rows[0]) + 1
    missing = [k for k in ("station", "lat", "lon") if k not in cols]
    if missing:
        raise InventoryError(f"inventory {p}: CSV header needs network,station,lat,lon,elevation "
                             f"(missing {', '.join(missing)}; got {','.join(rows[0])})")
    # QuakeMigrate's station file: Latitude,Longitude,Elevation,Name with elevation in km
    elev_scale = 1000.0 if rows[0][:4] == ["Latitude", "Longitude", "Elevation", "Name"] else 1.0
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            out.append(Station(
                row[cols["network"]].strip() if "network" in cols else "",
                row[cols["station"]].strip(), float(row[cols["lat"]]), float(row[cols["lon"]]),
                float(row[cols["elevation"]]) * elev_scale if "elevation" in cols else 0.0))
        except (ValueError, IndexError) as exc:
            raise InventoryError(f"inventory {p} line {n}: {exc}") from exc
    return Inventory(out)
