"""The operator console: a live view of the network served by the service itself
(``geosentry run --http-port N``): station table, latest picks/detections/anomalies/events,
a map from the inventory, one station's waveform with its picks, live updates over
server-sent events, and a JSON API behind every view (README, "Operating").

``attach`` also exports per-station gauges beside the service's metrics whenever ``/metrics``
is served, so an alert rule can tell a silent station.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geosentry.stream.console.config import ConsoleConfig, parse_console
from geosentry.stream.errors import ConfigError

if TYPE_CHECKING:  # stream.config imports .config above: nothing here may import it back
    from geosentry.stream.buffer.spec import WindowSpec
    from geosentry.stream.config import Config
    from geosentry.stream.console.server import ConsoleServer
    from geosentry.stream.console.state import OpsState
    from geosentry.stream.metrics import Metrics

__all__ = ["Console", "ConsoleConfig", "attach", "parse_console"]
log = logging.getLogger(__name__)


@dataclass
class Console:
    state: OpsState
    server: ConsoleServer | None

    @property
    def port(self) -> int:
        return 0 if self.server is None else int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def attach(cfg: Config, metrics: Metrics, specs: Sequence[WindowSpec]) -> Console | None:
    """The console's state (an observer for ``Pipeline.observer``) when ``/metrics`` or the
    console is served, and the console's HTTP server when ``console.http_port`` is set.
    A port that cannot be bound is a ``ConfigError`` (one line, exit 2)."""
    from geosentry.stream.console.server import serve_console
    from geosentry.stream.console.state import OpsState, register_station_metrics

    ccfg = cfg.console
    if not ccfg.http_port and not cfg.metrics_port:
        return None
    inventory, source = None, ccfg.inventory
    if ccfg.inventory:
        from geosentry.stream.events.stations import read_inventory

        inventory = read_inventory(ccfg.inventory)
    elif cfg.stations is not None:  # the events stage's inventory ([stations], read at start-up)
        inventory, source = cfg.stations.stations, f"[stations] {cfg.stations.inventory}"
    if not ccfg.http_port:  # /metrics only: the station gauges, no waveforms or alert history
        from dataclasses import replace

        ccfg = replace(ccfg, max_waveform_channels=0, max_alerts=1)
    state = OpsState(ccfg, specs, inventory, source)
    register_station_metrics(state, metrics.registry)
    server = None
    if ccfg.http_port:
        try:
            server = serve_console(state, ccfg.http_port, ccfg.http_host,
                                   metrics.metrics_auth_failures, cfg.metrics_auth,
                                   cfg.metrics_tls)
        except OSError as exc:
            raise ConfigError("--http-port", f"cannot serve the console on {ccfg.http_host}:"
                              f"{ccfg.http_port} ({exc.strerror or exc})") from exc
        if cfg.metrics_auth is None and ccfg.http_host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("console on %s without credentials: whoever reaches it sees the "
                        "network's state (set metrics_user + metrics_password_file, and "
                        "metrics_tls_*)", ccfg.http_host)
        scheme = "https" if cfg.metrics_tls else "http"
        log.info("console on %s://%s:%d/%s", scheme, ccfg.http_host, server.server_address[1],
                 " (basic auth)" if cfg.metrics_auth else "")
    return Console(state, server)


def with_flags(cfg: Config, http_port: int | None, http_host: str | None) -> Config:
    """``--http-port`` / ``--http-host`` over the ``[console]`` table, checked alike."""
    from dataclasses import asdict, replace

    if http_port is None and http_host is None:
        return cfg
    raw = {k: v for k, v in asdict(cfg.console).items()}
    raw.update({k: v for k, v in (("http_port", http_port), ("http_host", http_host))
                if v is not None})
    try:
        return replace(cfg, console=parse_console(raw))
    except ConfigError as exc:  # name the flag, not the table key
        raise ConfigError(f"--{exc.key.removeprefix('console.').replace('_', '-')}",
                          exc.why) from exc
