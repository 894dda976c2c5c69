"""``geosentry associate``: picks (QuakeML or CSV) + inventory [+ model] -> QuakeML events."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geosentry.stream.events.settings import StationsConfig

log = logging.getLogger(__name__)


#: the ``[stations]`` settings the command takes as options (validated as the service's are),
#: with their defaults for ``--help`` (``tests/events/test_depth_bound.py`` checks them against
#: ``StationsConfig``'s, which an option left out gets)
SETTINGS = {"min_stations": 4, "min_phases": 5, "p_residual_s": 1.0, "s_residual_s": 1.5,
            "max_distance_km": 150.0, "max_depth_km": 60.0}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    a = sub.add_parser("associate", help="associate, locate and ML offline: picks -> QuakeML",
                       description="The events stage of `geosentry run` on a pick file: the "
                       "same association, location and ML, with the same [stations] settings "
                       "as options (defaults as the service's).")
    a.add_argument("--picks", required=True, help="QuakeML or CSV "
                   "(network,station,phase,time[,amplitude,period]; amplitude in nm WA)")
    a.add_argument("--inventory", required=True, help="StationXML, CSV or SEISAN STATION0.HYP")
    a.add_argument("--velocity-model", help="depth_km,vp,vs table or STATION0.HYP (default: "
                   "the inventory's STATION0.HYP model, else IASP91 crust)")
    a.add_argument("--out", required=True, help="QuakeML file to write")
    for key, default in SETTINGS.items():  # defaults: parse_stations' (one place), shown here
        kind = int if key in ("min_stations", "min_phases") else float
        a.add_argument("--" + key.replace("_", "-"), type=kind,
                       help=f"[stations] {key} (default {default:g})")


def stations_config(args: argparse.Namespace) -> StationsConfig:
    """The options as a ``[stations]`` table, validated and loaded by ``parse_stations`` (a bad
    value or file is a ``ConfigError`` naming the table key)."""
    from geosentry.stream.errors import ConfigError, GeosentryError
    from geosentry.stream.events.settings import parse_stations

    raw: dict[str, Any] = {"inventory": args.inventory}
    if args.velocity_model:
        raw["velocity_model"] = args.velocity_model
    raw.update({key: getattr(args, key) for key in SETTINGS if getattr(args, key) is not None})
    try:
        return parse_stations(raw)
    except ConfigError as exc:  # named as the option the user gave
        option = "--" + exc.key.removeprefix("stations.").replace("_", "-")
        raise GeosentryError(f"option {option}: {exc.why}") from exc


def run(args: argparse.Namespace) -> int:
    from geosentry.stream.events.associate import Associator
    from geosentry.stream.events.picks import read_picks
    from geosentry.stream.events.quakeml import write_quakeml

    cfg = stations_config(args)
    picks, amps = read_picks(args.picks)
    tt = cfg.travel_times()
    assoc = Associator(cfg.stations, tt, cfg.associator_config(), cfg.ml_scale)
    events, rest = assoc.associate(picks, amps)
    unknown = sum(assoc.unknown_stations.values())
    if unknown == len(picks):
        from geosentry.stream.errors import GeosentryError

        raise GeosentryError(
            f"none of the {len(picks)} picks' stations is in the inventory {args.inventory} "
            f"(e.g. {', '.join(sorted(assoc.unknown_stations)[:5])}; a pick finds its station "
            f"by NET.STA, else by its code where that is unique in the inventory)")
    write_quakeml(events, args.out)
    deep = [e for e in events if tt.at_bottom(e.depth_km)]
    if deep:
        print(f"{len(deep)} of {len(events)} events located at {tt.max_depth_km:g} km, the "
              f"deepest source --max-depth-km allows: they may be deeper (origin time and "
              f"depth not to be trusted; a larger --max-depth-km searches there): "
              f"{', '.join(e.id for e in deep[:5])}{' ...' if len(deep) > 5 else ''}",
              file=sys.stderr)
    print(f"{len(events)} events from {len(picks)} picks ({len(rest)} unassociated, {unknown} "
          f"of stations not in the inventory: {sorted(assoc.unknown_stations)[:10]}, "
          f"{assoc.duplicates} duplicates) written to {args.out}", file=sys.stderr)
    return 0
