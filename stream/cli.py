"""``geosentry`` command line: run, replay, demo, models; train/evaluate/export go to ``training``.

SIGTERM/SIGINT stop reading, drain, flush the producer and commit offsets within
``shutdown_timeout_s``; a second signal exits at once. Exit status (``ExitCode``): 0 all
delivered, 1 a source or detector failed, 2 bad input or configuration (one line, no
traceback), 3 stopped with alerts undelivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from geosentry.stream.config import Config, load_config
from geosentry.stream.errors import ConfigError, GeosentryError

log = logging.getLogger("geosentry")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geosentry", description=__doc__)
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the detection service")
    run.add_argument("--source", action="append", default=[], metavar="URI",
                     help="miniSEED file/dir, kafka://HOST:PORT/TOPIC[?group=NAME] or "
                          "seedlink://HOST:PORT?streams=NET_STA[:SELECTORS],...")
    run.add_argument("--sink", action="append", default=[], metavar="URI",
                     help="jsonl:- (default), jsonl:PATH or kafka://HOST:PORT/TOPIC")
    run.add_argument("--config", help="TOML configuration file")
    run.add_argument("--speed", type=float, help="replay pace: 1 = real time, 0 = max (default)")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    run.add_argument("--metrics-host", help="address for --metrics-port (default 127.0.0.1; "
                                            "0.0.0.0 serves every interface)")
    run.add_argument("--http-port", type=int, help="serve the operator console on this port "
                     "(same auth/TLS as /metrics)")
    run.add_argument("--http-host", help="address for --http-port (default 127.0.0.1)")

    from geosentry.stream import plot  # geosentry plot

    plot.add_parser(sub)

    rep = sub.add_parser("replay", help="publish archived miniSEED records into Kafka")
    rep.add_argument("path")
    rep.add_argument("--to", required=True, metavar="kafka://HOST:PORT/TOPIC")
    rep.add_argument("--speed", type=float, default=0.0)
    rep.add_argument("--config", help="TOML configuration file: its [kafka] section (TLS, SASL)")

    sls = sub.add_parser("serve-seedlink", help="serve a miniSEED archive over SeedLink 3/4")
    sls.add_argument("archive", help="miniSEED file or directory")
    sls.add_argument("--port", type=int, default=18000, help="TCP port (0 = any free port)")
    sls.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sls.add_argument("--speed", type=float, default=1.0,
                     help="pace: 1 = original (default), 10 = ten times faster, 0 = at once")
    sls.add_argument("--ring-records", type=int, help="keep only this many records per station")
    sls.add_argument("--tls-cert", help="PEM certificate (chain): serve TLS on --port")
    sls.add_argument("--tls-key", help="PEM private key of --tls-cert (if not in that file)")
    sls.add_argument("--first-seq", type=int, default=1,
                     help="number each station's records from this sequence number (default 1)")
    sls.add_argument("--users", metavar="FILE",
                     help="users file (TOML: password hashes or token digests, allowed streams); "
                          "clients then log in with AUTH (needs --tls-cert)")

    sli = sub.add_parser("seedlink-info", help="ask a SeedLink server for INFO (JSON to stdout)")
    sli.add_argument("server", metavar="seedlink[s]://HOST:PORT[?proto=3|4&ca_file=PATH...]")
    sli.add_argument("level", nargs="*", default=["STATIONS"],
                     help="ID, STATIONS (default), STREAMS, CONNECTIONS, GAPS (v3), ...; "
                          "v4 patterns may follow: STREAMS 'GE_*' '*_B_H_?'")

    ing = sub.add_parser("ingest", help="bridge SeedLink records into a Kafka topic")
    ing.add_argument("source", metavar="seedlink://HOST:PORT?streams=...&state=PATH")
    ing.add_argument("--to", required=True, metavar="kafka://HOST:PORT/TOPIC")
    ing.add_argument("--config", help="TOML configuration file: its [kafka] section (TLS, SASL)")

    demo = sub.add_parser("demo", help="replay ObsPy's bundled BW.UH* recordings, no network")
    demo.add_argument("--sink", action="append", default=[], metavar="URI")

    dec = sub.add_parser("decimate", help="observatory-standard decimation (1 s -> 1 min, "
                                          "10 Hz -> 1 s) of miniSEED/IAGA-2002 into miniSEED")
    dec.add_argument("path")
    dec.add_argument("--out", required=True)
    dec.add_argument("--interval", choices=("second", "minute"), default="minute")
    dec.add_argument("--fir", help="FIR coefficients JSON {\"window\": [...]} (10 Hz -> 1 s; "
                     "default USGS geomag-algorithms' firwin(123, 0.25 Hz, blackman))")

    from geosentry.stream import models_cli  # geosentry models list|show|import

    models_cli.add_parser(sub)

    from geosentry.stream.events import offline as events_offline  # geosentry associate

    events_offline.add_parser(sub)

    for name in ("train", "evaluate", "export"):
        t = sub.add_parser(name, help=f"{name} models (training package)", add_help=False)
        t.add_argument("args", nargs=argparse.REMAINDER)
    return p


async def _serve(cfg: Config) -> int:
    from geosentry.stream.detectors.factory import build_detectors
    from geosentry.stream.metrics import Metrics
    from geosentry.stream.pipeline import Pipeline
    from geosentry.stream.sinks.policy import open_sinks
    from geosentry.stream.sources import open_source
    from geosentry.stream.supervision import SignalGuard

    if not cfg.sources:
        raise GeosentryError("no --source given (a miniSEED path or kafka://HOST:PORT/TOPIC)")
    metrics = Metrics()
    if cfg.metrics_port:
        try:
            metrics.serve(cfg.metrics_port, cfg.metrics_host, cfg.metrics_auth, cfg.metrics_tls)
        except OSError as exc:
            raise ConfigError("--metrics-port", f"cannot serve metrics on {cfg.metrics_host}:"
                              f"{cfg.metrics_port} ({exc.strerror or exc})") from exc
    sources = [open_source(s, cfg.speed, cfg.connect_timeout_s, cfg.kafka) for s in cfg.sources]
    sinks = open_sinks(cfg, metrics)  # each behind its audience's policy (policy_file)
    pipeline = Pipeline(cfg, sources, sinks, build_detectors(cfg), metrics)
    from geosentry.stream.console import attach

    console = attach(cfg, metrics, [d.spec for d in pipeline.detectors])
    pipeline.observer = console.state if console else None
    guard = SignalGuard(pipeline.request_stop, cfg.shutdown_timeout_s)
    guard.install()
    try:
        summary = await pipeline.run()
    finally:
        guard.uninstall()
        if console is not None:
            console.stop()
    code = summary.exit_code
    log.info("done: %d records, %d decode errors, %d windows, alerts %s; exit status %d (%s)",
             summary.records, summary.decode_errors, summary.windows, dict(summary.alerts),
             code, code.name.lower())
    return int(code)


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, sources=args.source, sinks=args.sink, speed=args.speed,
                      metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    from geosentry.stream.console import with_flags

    cfg = with_flags(cfg, args.http_port, args.http_host)
    return asyncio.run(_serve(cfg))


def _cmd_replay(args: argparse.Namespace) -> int:
    from geosentry.stream.replay import replay_to_kafka

    security = load_config(args.config).kafka.for_uri(args.to, "--to")
    n = asyncio.run(replay_to_kafka(args.path, args.to, args.speed, security))
    print(f"published {n} records to {args.to}", file=sys.stderr)
    return 0


def _cmd_serve_seedlink(args: argparse.Namespace) -> int:
    from geosentry.stream.seedlink.server import SeedLinkServer
    from geosentry.stream.seedlink.users import load_users

    async def serve() -> None:
        server = SeedLinkServer(args.archive, args.host, args.port, args.speed, args.ring_records,
                                tls_cert=args.tls_cert, tls_key=args.tls_key,
                                first_seq=args.first_seq,
                                users=load_users(args.users) if args.users else None)
        port = await server.start()
        a = server.archive
        print(f"serving {len(a.packets)} records of {len(a.by_station)} stations on "
              f"{args.host}:{port}{' (TLS)' if server.tls else ''} (speed {args.speed:g})",
              file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(serve())
    return 0


def _cmd_seedlink_info(args: argparse.Namespace) -> int:
    from geosentry.stream.sources.seedlink import seedlink_info

    print(json.dumps(asyncio.run(seedlink_info(args.server, " ".join(args.level))), indent=2))
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from geosentry.stream.seedlink.bridge import Bridge

    async def ingest() -> int:
        bridge = Bridge(args.source, args.to, load_config(args.config).kafka.for_uri(args.to, "--to"))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.request_stop)
        return await bridge.run()

    n = asyncio.run(ingest())
    print(f"ingested {n} records into {args.to}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from geosentry.stream.demo import run_demo

    return asyncio.run(run_demo(args.sink or ["jsonl:-"]))


def _cmd_decimate(args: argparse.Namespace) -> int:
    from geosentry.stream.filters import decimate_archive

    n = decimate_archive(args.path, args.out, 60.0 if args.interval == "minute" else 1.0, args.fir)
    print(f"wrote {n} channels to {args.out}", file=sys.stderr)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from geosentry.stream.models_cli import run

    return run(args)


def _cmd_associate(args: argparse.Namespace) -> int:
    from geosentry.stream.events.offline import run

    return run(args)


def _cmd_plot(args: argparse.Namespace) -> int:
    from geosentry.stream.plot import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["evaluate", "events"]:  # events evaluation: geosentry.stream.events
        from geosentry.stream.events.evaluate import main as events_evaluate

        return events_evaluate(argv[2:])
    if argv and argv[0] in ("train", "evaluate", "export"):
        from geosentry.training.cli import main as training_main  # lazily: `run` never imports training

        return int(training_main(argv) or 0)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from geosentry.stream.supervision import RateLimit

    for handler in logging.getLogger().handlers:  # a broker outage: one line a minute, not 100/s
        handler.addFilter(RateLimit())
    handlers = {"run": _cmd_run, "replay": _cmd_replay, "demo": _cmd_demo,
                "models": _cmd_models, "decimate": _cmd_decimate, "serve-seedlink": _cmd_serve_seedlink,
                "ingest": _cmd_ingest, "seedlink-info": _cmd_seedlink_info,
                "associate": _cmd_associate, "plot": _cmd_plot}
    try:
        return handlers[args.command](args)
    except GeosentryError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
