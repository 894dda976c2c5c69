"""``geosentry associate``: picks (QuakeML or CSV) + inventory [+ model] -> QuakeML events."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    a = sub.add_parser("associate", help="associate, locate and ML offline: picks -> QuakeML")
    a.add_argument("--picks", required=True, help="QuakeML or CSV "
                   "(network,station,phase,time[,amplitude,period]; amplitude in nm WA)")
    a.add_argument("--inventory", required=True, help="StationXML, CSV or SEISAN STATION0.HYP")
    a.add_argument("--velocity-model", help="depth_km,vp,vs table or STATION0.HYP (default: "
                   "the inventory's STATION0.HYP model, else IASP91 crust)")
    a.add_argument("--out", required=True, help="QuakeML file to write")
    a.add_argument("--min-stations", type=int, default=4)
    a.add_argument("--max-distance-km", type=float, default=150.0)


def run(args: argparse.Namespace) -> int:
    from geosentry.stream.events.associate import AssociatorConfig, Associator
    from geosentry.stream.events.magnitude import MLScale
    from geosentry.stream.events.picks import read_picks
    from geosentry.stream.events.quakeml import write_quakeml
    from geosentry.stream.events.stations import read_inventory
    from geosentry.stream.events.velocity import (DEFAULT_MODEL, TravelTimes,
                                                  read_velocity_model)

    inventory = read_inventory(args.inventory)
    model, ml = DEFAULT_MODEL, MLScale()
    if args.inventory.lower().endswith(".hyp"):
        from geosentry.stream.events.seisan import read_station0

        s0 = read_station0(args.inventory)
        model, ml = s0.model, s0.ml
    if args.velocity_model:
        model = read_velocity_model(args.velocity_model)
    picks, amps = read_picks(args.picks)
    cfg = AssociatorConfig(min_stations=args.min_stations,
                           max_distance_km=args.max_distance_km)
    tt = TravelTimes(model, max_distance_km=args.max_distance_km + 50.0)
    assoc = Associator(inventory, tt, cfg, ml)
    events, rest = assoc.associate(picks, amps)
    write_quakeml(events, args.out)
    unknown = sum(assoc.unknown_stations.values())
    print(f"{len(events)} events from {len(picks)} picks ({len(rest)} unassociated, {unknown} "
          f"of stations not in the inventory: {sorted(assoc.unknown_stations)[:10]}, "
          f"{assoc.duplicates} duplicates) written to {args.out}", file=sys.stderr)
    return 0
