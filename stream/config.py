"""Configuration: TOML plus command-line flags, validated once at start-up into frozen dataclasses.

Every error names the key and says why:

>>> load_config_dict({"buffer": {"max_interpolate_gap_s": -1}})
Traceback (most recent call last):
...
geosentry.stream.errors.ConfigError: config key 'buffer.max_interpolate_gap_s': must be >= 0, got -1
>>> load_config_dict({}).buffer.reorder_tolerance_s
5.0
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from geosentry.stream.console.config import ConsoleConfig, parse_console
from geosentry.stream.errors import ConfigError
from geosentry.stream.events.settings import StationsConfig, parse_stations
from geosentry.stream.kafka_security import KafkaConfig, load_kafka_config
from geosentry.stream.metrics_http import KEYS as METRICS_SECURITY_KEYS
from geosentry.stream.metrics_http import BasicAuth, TlsFiles, parse_metrics_security
from geosentry.stream.policy import Policy, check_audiences, load_policy

#: what ``channels`` may name besides band + instrument patterns (``geosentry.stream.buffer.spec``)
CHANNEL_KINDS = ("any", "seismic", "geomagnetic")
MISSING_POLICIES = ("skip", "zeros")


@dataclass(frozen=True)
class BufferConfig:
    """Per-channel buffer policies (see README, "Windowing policies")."""

    max_interpolate_gap_s: float = 0.1
    reorder_tolerance_s: float = 5.0
    max_buffer_s: float = 600.0
    #: clock policy (stream/buffer/clock.py): live feeds reject records starting this long after
    #: the wall clock; replays hold records this far off the channel's timeline until
    #: ``clock_confirm_records`` records in a row agree on the jump (0: policy off)
    max_future_s: float = 60.0
    clock_confirm_records: int = 3
    #: an instrument with no record for this long (arrival time, at least 3 of its records'
    #: spans) lets go of its data so input offsets can be committed (0: never)
    release_silent_s: float = 120.0


OVERLOAD_POLICIES = ("auto", "shed", "backpressure")
PRECISION_SETTINGS = ("auto", "fp32", "bf16")  # inference.precision


@dataclass(frozen=True)
class InferenceConfig:
    device: str = "auto"
    max_batch: int = 64
    max_wait_s: float = 0.02
    max_pending_windows: int = 20_000
    threads: int = 0  # torch intra-op threads per worker; 0: cores / workers
    workers: int = 0  # batches in flight per model detector; 0: one per core (at most 4)
    overload: str = "auto"  # shed | backpressure | auto (shed unless a source is a replay)
    max_lag_s: float = 10.0  # shed windows that waited longer than this for inference
    max_data_latency_s: float = 0.0  # also shed windows whose newest sample is older (0: off)
    precision: str = "auto"  # auto | fp32 | bf16 (stream/inference/precision.py)


@dataclass(frozen=True)
class DetectorConfig:
    """What every detector's config has: its ``name``, its ``type`` and which instruments feed
    it (``channels``: kinds, ``CHANNEL_KINDS``, or band + instrument patterns such as ``"HH"``,
    ``"?F"``). Each type has its own frozen subclass with its own settings and defaults
    (``StaLtaConfig``, ``ModelConfig``, ``DbDtConfig``, ``SscConfig``, ``ArtefactsConfig`` in
    ``geosentry.stream.detectors.registry``); ``DetectorConfig(name, type, **settings)`` builds
    that subclass.

    >>> DetectorConfig("s", "stalta", stride_s=0.5)
    StaLtaConfig(name='s', type='stalta', channels=('any',), components=('Z',), window_s=10.0, \
stride_s=0.5, sta_s=0.5, lta_s=10.0, trigger_on=3.5, trigger_off=1.0, bandpass_hz=None)
    """

    name: str
    type: str
    channels: tuple[str, ...] = ("any",)

    def __new__(cls, *args: Any, **kwargs: Any) -> DetectorConfig:
        if cls is DetectorConfig:  # the base: the config class of the type named
            kind = kwargs.get("type", args[1] if len(args) > 1 else None)
            if kind is not None:
                from geosentry.stream.detectors.registry import detector_type

                cls = detector_type(kind).config
        return super().__new__(cls)


@dataclass(frozen=True)
class CoincidenceConfig:
    """Network detection: ``min_stations`` station triggers within ``window_s`` seconds."""

    enabled: bool = True
    min_stations: int = 3
    window_s: float = 5.0


@dataclass(frozen=True)
class Config:
    sources: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ("jsonl:-",)
    speed: float = 0.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    #: SIGTERM/SIGINT to exit, in every state (an unreachable sink included)
    shutdown_timeout_s: float = 30.0
    #: watchdog: work pending and nothing moving (or the loop blocked) this long is a stall
    watchdog_s: float = 60.0
    #: start-up: how long an unreachable Kafka broker is retried before a one-line error
    connect_timeout_s: float = 30.0
    buffer: BufferConfig = field(default_factory=BufferConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    detectors: tuple[DetectorConfig, ...] = ()
    coincidence: CoincidenceConfig = field(default_factory=CoincidenceConfig)
    #: Kafka transport security: [kafka] and [kafka.profiles.NAME] (geosentry.stream.kafka_security)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    #: restricted stations per sink audience (``policy_file``; geosentry.stream.policy)
    policy: Policy | None = None
    #: /metrics basic auth and TLS (geosentry.stream.metrics_http)
    metrics_auth: BasicAuth | None = None
    metrics_tls: TlsFiles | None = None
    #: the operator console (``[console]``, ``--http-port``; geosentry.stream.console)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    #: the events stage: [stations] inventory, velocity model, association (geosentry.stream.events)
    stations: StationsConfig | None = None


def _num(key: str, value: Any, *, lo: float | None = None, hi: float | None = None,
         integer: bool = False, strict_lo: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    if lo is not None and (value <= lo if strict_lo else value < lo):
        raise ConfigError(key, f"must be {'>' if strict_lo else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(key, f"must be <= {hi}, got {value!r}")
    return value


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _check_keys(prefix: str, table: dict[str, Any], cls: type) -> None:
    known = {f.name for f in fields(cls)}
    for key in table:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _buffer(raw: dict[str, Any]) -> BufferConfig:
    _check_keys("buffer.", raw, BufferConfig)
    cfg = BufferConfig(**raw)
    _num("buffer.max_interpolate_gap_s", cfg.max_interpolate_gap_s, lo=0)
    _num("buffer.reorder_tolerance_s", cfg.reorder_tolerance_s, lo=0)
    _num("buffer.max_buffer_s", cfg.max_buffer_s, lo=0, strict_lo=True)
    _num("buffer.max_future_s", cfg.max_future_s, lo=0)
    _num("buffer.clock_confirm_records", cfg.clock_confirm_records, lo=1, hi=1000, integer=True)
    _num("buffer.release_silent_s", cfg.release_silent_s, lo=0)
    return cfg


def _inference(raw: dict[str, Any]) -> InferenceConfig:
    _check_keys("inference.", raw, InferenceConfig)
    cfg = InferenceConfig(**raw)
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise ConfigError("inference.device", f"must be auto, cpu or cuda[:N], got {cfg.device!r}")
    _num("inference.max_batch", cfg.max_batch, lo=1, integer=True)
    _num("inference.max_wait_s", cfg.max_wait_s, lo=0)
    _num("inference.max_pending_windows", cfg.max_pending_windows, lo=1, integer=True)
    _num("inference.threads", cfg.threads, lo=0, integer=True)
    _num("inference.workers", cfg.workers, lo=0, hi=64, integer=True)
    _num("inference.max_lag_s", cfg.max_lag_s, lo=0, strict_lo=True)
    _num("inference.max_data_latency_s", cfg.max_data_latency_s, lo=0)
    if cfg.overload not in OVERLOAD_POLICIES:
        raise ConfigError("inference.overload", f"must be one of {OVERLOAD_POLICIES}, "
                          f"got {cfg.overload!r}")
    if cfg.precision not in PRECISION_SETTINGS:
        raise ConfigError("inference.precision", f"must be one of {PRECISION_SETTINGS}, "
                          f"got {cfg.precision!r}")
    return cfg


def _channels(key: str, value: Any) -> tuple[str, ...]:
    """``"seismic"``, ``["HH", "EH"]``, ``"?F"`` ... -> a tuple of kinds / 2-letter patterns."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(key, f"must be a string or a non-empty list of strings, got {value!r}")
    for item in items:
        ok = isinstance(item, str) and (item in CHANNEL_KINDS or (
            len(item) == 2 and all(c.isalnum() or c in "?*" for c in item)))
        if not ok:
            raise ConfigError(key, f"{item!r}: must be one of {CHANNEL_KINDS} or a band + "
                                   "instrument code pattern such as 'HH' or '?F'")
    return tuple(items)


def load_config_dict(raw: dict[str, Any], **overrides: Any) -> Config:
    """Validate a parsed TOML document plus flag overrides (``None`` overrides are ignored)."""
    top = {"buffer", "inference", "kafka", "detectors", "coincidence", "sources", "sinks", "speed",
           "metrics_port", "metrics_host", "shutdown_timeout_s", "watchdog_s",
           "connect_timeout_s", "policy_file", "console", "stations", *METRICS_SECURITY_KEYS}
    for key in raw:
        if key not in top:
            raise ConfigError(key, f"unknown section (known: {', '.join(sorted(top))})")
    detectors_raw = raw.get("detectors", [])
    if not isinstance(detectors_raw, list):
        raise ConfigError("detectors", "must be an array of tables ([[detectors]])")
    from geosentry.stream.detectors.registry import parse_detector

    detectors = tuple(parse_detector(i, d) for i, d in enumerate(detectors_raw))
    names = [d.name for d in detectors]
    if len(set(names)) != len(names):
        raise ConfigError("detectors", f"detector names must be unique, got {names}")
    coinc_raw = _section(raw, "coincidence")
    _check_keys("coincidence.", coinc_raw, CoincidenceConfig)
    coincidence = CoincidenceConfig(**coinc_raw)
    _num("coincidence.min_stations", coincidence.min_stations, lo=1, integer=True)
    _num("coincidence.window_s", coincidence.window_s, lo=0, strict_lo=True)
    values: dict[str, Any] = {
        "sources": tuple(raw.get("sources", ())), "sinks": tuple(raw.get("sinks", ("jsonl:-",))),
        "speed": raw.get("speed", 0.0), "metrics_port": raw.get("metrics_port", 0),
        **{k: raw[k] for k in ("metrics_host", "shutdown_timeout_s", "watchdog_s",
                               "connect_timeout_s") if k in raw},
    }
    values.update({k: (tuple(v) if isinstance(v, list) else v)
                   for k, v in overrides.items() if v is not None and v != []})
    _num("speed", values["speed"], lo=0)
    _num("metrics_port", values["metrics_port"], lo=0, hi=65535, integer=True)
    for key in ("shutdown_timeout_s", "watchdog_s", "connect_timeout_s"):
        if key in values:
            _num(key, values[key], lo=0, strict_lo=True)
    if not isinstance(values.get("metrics_host", ""), str) or values.get("metrics_host") == "":
        raise ConfigError("metrics_host", "must be a host name or address, e.g. 127.0.0.1")
    if not values["sinks"]:
        raise ConfigError("sinks", "at least one sink is required")
    policy = load_policy(str(raw["policy_file"])) if "policy_file" in raw else None
    check_audiences(values["sinks"], policy)
    metrics_auth, metrics_tls = parse_metrics_security(raw)
    kafka = load_kafka_config(_section(raw, "kafka"), [("--source", s) for s in values["sources"]]
                              + [("--sink", s) for s in values["sinks"]])
    return Config(buffer=_buffer(_section(raw, "buffer")), kafka=kafka,
                  inference=_inference(_section(raw, "inference")),
                  detectors=detectors, coincidence=coincidence, policy=policy,
                  metrics_auth=metrics_auth, metrics_tls=metrics_tls,
                  console=parse_console(_section(raw, "console")),
                  stations=parse_stations(_section(raw, "stations")) if "stations" in raw else None,
                  **values)


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Read TOML at ``path`` (or the built-in defaults) and apply flag overrides."""
    if path is None:
        return load_config_dict(default_config_dict(), **overrides)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError("--config", f"file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    if "detectors" not in raw:
        raw["detectors"] = default_config_dict()["detectors"]
    return load_config_dict(raw, **overrides)


#: The geomagnetic detectors of ``deploy/geomag.toml`` with their built-in per-latitude profiles.
GEOMAG_DEFAULTS: tuple[dict[str, Any], ...] = (
    {"name": "dbdt", "type": "dbdt"}, {"name": "ssc", "type": "ssc"},
    {"name": "artefacts", "type": "artefacts"})


def default_config_dict() -> dict[str, Any]:
    """The embedded defaults, routed by what a channel is: on seismic channels the classic
    STA/LTA trigger on vertical components plus the learned models that ship with the package
    (``geosentry.stream.models.default_detector_tables``); on geomagnetic channels (magnetometers, e.g.
    IAGA-2002 files) the dB/dt, sudden-commencement and artefact detectors.
    """
    from geosentry.stream.models import default_detector_tables

    seismic = [{**t, "channels": "seismic"} for t in default_detector_tables()]
    geomag = [{**t, "channels": "geomagnetic"} for t in GEOMAG_DEFAULTS]
    return {"detectors": seismic + geomag}
