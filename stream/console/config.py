"""``[console]`` settings (top-level config section), checked once at start-up.

>>> parse_console({"http_port": 8088}).http_host
'127.0.0.1'
>>> parse_console({"waveform_s": 0})
Traceback (most recent call last):
...
geosentry.stream.errors.ConfigError: config key 'console.waveform_s': must be in [10, 3600], got 0
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from geosentry.stream.errors import ConfigError


@dataclass(frozen=True)
class ConsoleConfig:
    """The operator console (``--http-port``); auth and TLS are the metrics endpoint's
    (``metrics_user``/``metrics_password_file``/``metrics_auth_file``, ``metrics_tls_*``)."""

    http_port: int = 0  # 0: no console
    http_host: str = "127.0.0.1"
    #: station file (StationXML, CSV, SEISAN STATION0.HYP) for the map; "": the events stage's
    #: ``[stations] inventory`` when configured, else no map positions
    inventory: str = ""
    #: waveform history kept per channel for the waveform view
    waveform_s: float = 300.0
    #: latest alerts kept per kind (pick, detection, anomaly, event, health)
    max_alerts: int = 200
    #: a station whose last record arrived longer ago than this is shown (and exported) silent
    silent_after_s: float = 60.0
    #: channels with a waveform history (memory bound: ~20 kB each)
    max_waveform_channels: int = 3000


def _number(key: str, value: Any, lo: float, hi: float, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"console.{key}", f"must be {'an integer' if integer else 'a number'}, "
                                            f"got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"console.{key}", f"must be in [{lo:g}, {hi:g}], got {value!r}")


def parse_console(raw: dict[str, Any]) -> ConsoleConfig:
    """Check a ``[console]`` table."""
    if not isinstance(raw, dict):
        raise ConfigError("console", "must be a table")
    known = {f.name for f in fields(ConsoleConfig)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"console.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    cfg = ConsoleConfig(**raw)
    _number("http_port", cfg.http_port, 0, 65535, integer=True)
    if not isinstance(cfg.http_host, str) or not cfg.http_host:
        raise ConfigError("console.http_host", "must be a host name or address, e.g. 127.0.0.1")
    if not isinstance(cfg.inventory, str):
        raise ConfigError("console.inventory", f"must be a path, got {cfg.inventory!r}")
    if cfg.inventory and not Path(cfg.inventory).is_file():
        raise ConfigError("console.inventory", f"file not found: {cfg.inventory}")
    _number("waveform_s", cfg.waveform_s, 10, 3600)
    _number("max_alerts", cfg.max_alerts, 1, 100_000, integer=True)
    _number("silent_after_s", cfg.silent_after_s, 1, 86_400)
    _number("max_waveform_channels", cfg.max_waveform_channels, 0, 1_000_000, integer=True)
    return cfg
