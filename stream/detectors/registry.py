"""Detector types: each one's frozen config, how a ``[[detectors]]`` table becomes that config
(validated once, at start-up, every error naming its key) and how the detector is built.

Config loading (``geosentry.stream.config``) and the factory
(``geosentry.stream.detectors.factory``) both go through :data:`DETECTOR_TYPES`, so a new
detector type is one entry here (its config class, its parser, its builder) beside its
implementation. Every default of a detector's settings is a field default of its config class.

>>> parse_detector(0, {"name": "s", "type": "stalta", "bandpass_hz": [1, 20]})
StaLtaConfig(name='s', type='stalta', channels=('any',), components=('Z',), window_s=10.0, \
stride_s=1.0, sta_s=0.5, lta_s=10.0, trigger_on=3.5, trigger_off=1.0, bandpass_hz=(1.0, 20.0))
>>> parse_detector(1, {"name": "d", "type": "dbdt", "components": ["X", "Y"]}).components
('X', 'Y')
>>> parse_detector(2, {"name": "d", "type": "dbdt", "sta_s": 1.0})
Traceback (most recent call last):
...
geosentry.stream.errors.ConfigError: config key 'detectors[2].sta_s': not a setting of a 'dbdt' \
detector (its keys: channels, components, missing_components, name, stride_s, thresholds, type, \
window_s)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from geosentry.stream.config import MISSING_POLICIES, DetectorConfig, _channels, _num
from geosentry.stream.errors import ConfigError, ContractError

if TYPE_CHECKING:
    import torch

    from geosentry.stream.detectors.base import Detector
    from geosentry.stream.inference.contract import ModelContract


@dataclass(frozen=True)
class StaLtaConfig(DetectorConfig):
    """Classic recursive STA/LTA trigger on one component (``geosentry.stream.detectors.stalta``)."""

    type: str = "stalta"
    components: tuple[str, ...] = ("Z",)  # exactly one
    window_s: float = 10.0
    stride_s: float = 1.0
    sta_s: float = 0.5
    lta_s: float = 10.0
    trigger_on: float = 3.5
    trigger_off: float = 1.0
    bandpass_hz: tuple[float, float] | None = None


@dataclass(frozen=True)
class ModelConfig(DetectorConfig):
    """An exported TorchScript model behind its contract (``geosentry.stream.inference.model``).
    ``components``, ``stride_s``: the contract's unless given; ``thresholds``: label -> threshold,
    over the contract's. ``lookahead_s``: data a window holds after the stretch it reports on
    (default half of window - stride: the stretch is centred); less reports picks sooner (early
    warning) with less context after them, at least ``PEAK_CONTEXT_S`` (1 s). ``highpass_hz``:
    a zero-phase high-pass on each window before the model (e.g. 2 Hz where ocean microseism
    buries small local events: the shipped picker finds about twice the P picks of the Iceland
    swarm with it)."""

    type: str = "model"
    path: str = ""  # a .pt file (its .json contract beside it) or builtin:NAME
    components: tuple[str, ...] | None = None  # as many as the contract's, in its order
    stride_s: float | None = None
    lookahead_s: float | None = None
    highpass_hz: float | None = None  # zero-phase high-pass before the model (none: off)
    missing_components: str = "skip"
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GeomagConfig(DetectorConfig):
    """What the geomagnetic detectors share (``geosentry.stream.detectors.geomag``):
    native-rate windows of nT components and per-latitude threshold profiles that ``thresholds``
    overrides (``geosentry.stream.detectors.geomag_base.Profiles``)."""

    components: tuple[str, ...] = ()
    window_s: float = 600.0
    stride_s: float = 60.0
    missing_components: str = "skip"
    thresholds: dict[str, Any] = field(default_factory=dict)

    #: how many components the detector reads (``None``: any number)
    n_components: ClassVar[int | None] = None


@dataclass(frozen=True)
class DbDtConfig(GeomagConfig):
    """Horizontal dB/dt of one-minute means: the two horizontal components (H, E or X, Y)."""

    type: str = "dbdt"
    components: tuple[str, ...] = ("H", "E")
    window_s: float = 600.0
    n_components: ClassVar[int | None] = 2


@dataclass(frozen=True)
class SscConfig(GeomagConfig):
    """Storm sudden commencement / sudden impulse on the northward component."""

    type: str = "ssc"
    components: tuple[str, ...] = ("H",)
    window_s: float = 2400.0
    n_components: ClassVar[int | None] = 1


@dataclass(frozen=True)
class ArtefactsConfig(GeomagConfig):
    """Instrument artefacts (spikes, steps, flat lines, F vs the vector) on every component."""

    type: str = "artefacts"
    components: tuple[str, ...] = ("H", "E", "Z", "F")
    window_s: float = 900.0
    missing_components: str = "zeros"


C = TypeVar("C", bound=DetectorConfig)
Builder = Callable[[C, "torch.device", str], "Detector"]


@dataclass(frozen=True)
class DetectorType(Generic[C]):
    """One detector type: its config class, ``check(prefix, cfg)`` (raises ``ConfigError``
    naming ``prefix + key``; the table's values are already typed) and ``build(cfg, device,
    precision)``."""

    config: type[C]
    check: Callable[[str, C], None]
    build: Builder[C]

    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(f.name for f in fields(self.config)))


# -- per-type checks and builders ------------------------------------------------------------


def _check_stalta(p: str, cfg: StaLtaConfig) -> None:
    _components(p, cfg.components, 1, "STA/LTA runs on one component")
    for key in ("window_s", "stride_s", "sta_s", "lta_s", "trigger_on"):
        _num(p + key, getattr(cfg, key), lo=0, strict_lo=True)
    _num(p + "trigger_off", cfg.trigger_off, lo=0)
    if cfg.stride_s > cfg.window_s:
        raise ConfigError(p + "stride_s", f"{cfg.stride_s} exceeds window_s {cfg.window_s}")
    if cfg.sta_s >= cfg.lta_s:
        raise ConfigError(p + "sta_s", "must be shorter than lta_s")


def _build_stalta(cfg: StaLtaConfig, device: torch.device, precision: str) -> Detector:
    from geosentry.stream.detectors.stalta import StaLtaDetector

    return StaLtaDetector(cfg)


def _check_model(p: str, cfg: ModelConfig) -> None:
    if not cfg.path:
        raise ConfigError(p + "path", "is required for type = 'model' (a .pt file or builtin:NAME)")
    if cfg.stride_s is not None:
        _num(p + "stride_s", cfg.stride_s, lo=0, strict_lo=True)
    if cfg.highpass_hz is not None:
        _num(p + "highpass_hz", cfg.highpass_hz, lo=0, strict_lo=True)
    if cfg.lookahead_s is not None:
        from geosentry.stream.inference.scoring import PEAK_CONTEXT_S

        _num(p + "lookahead_s", cfg.lookahead_s, lo=PEAK_CONTEXT_S)
    if cfg.missing_components not in MISSING_POLICIES:
        raise ConfigError(p + "missing_components", f"must be one of {MISSING_POLICIES}")
    if cfg.components is not None:
        _components(p, cfg.components, None, "")
    if not isinstance(cfg.thresholds, dict):
        raise ConfigError(p + "thresholds", "must be a table of label = threshold")
    if not cfg.thresholds and cfg.components is None:
        return  # nothing to check against the contract
    contract = model_contract(p, cfg.path)
    if cfg.components is not None and len(cfg.components) != len(contract.components):
        raise ConfigError(p + "components", f"model {contract.name!r} takes "
                          f"{len(contract.components)} components "
                          f"({''.join(contract.components)}), got {list(cfg.components)}")
    for label, value in cfg.thresholds.items():
        threshold_check(f"{p}thresholds.{label}", contract, label, value)


def model_contract(p: str, path: str) -> ModelContract:
    """The contract of a model detector's ``path`` (its JSON only: cheap), as a config error."""
    from geosentry.stream.inference.contract import ModelContract, contract_path_for
    from geosentry.stream.models import resolve

    try:
        return ModelContract.load(contract_path_for(resolve(path)))
    except ContractError as exc:
        raise ConfigError(p + "path", str(exc)) from exc


def threshold_check(key: str, contract: ModelContract, label: str, value: Any) -> None:
    """A threshold override must name one of the model's labels and be a probability (picker,
    detector: ``[0, 1]``) or a positive anomaly score (anomaly)."""
    if label not in contract.labels:
        raise ConfigError(key, f"not a label of model {contract.name!r} "
                               f"(labels: {', '.join(contract.labels)})")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, f"must be a number, got {value!r}")
    if contract.kind == "anomaly":
        if value <= 0:
            raise ConfigError(key, f"must be > 0 (an anomaly score), got {value!r}")
    elif not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"must be in [0, 1], got {value!r}")


def _build_model(cfg: ModelConfig, device: torch.device, precision: str) -> Detector:
    from geosentry.stream.inference.model import TorchScriptDetector
    from geosentry.stream.models import resolve

    return TorchScriptDetector(cfg, resolve(cfg.path), device, precision)


def _check_geomag(p: str, cfg: GeomagConfig) -> None:
    from geosentry.stream.detectors.geomag_base import Profiles

    what = {"dbdt": "the two horizontal components (e.g. H, E or X, Y)",
            "ssc": "the northward component (H or X)"}.get(cfg.type, "")
    _components(p, cfg.components, cfg.n_components, what)
    for key in ("window_s", "stride_s"):
        _num(p + key, getattr(cfg, key), lo=0, strict_lo=True)
    if cfg.missing_components not in MISSING_POLICIES:
        raise ConfigError(p + "missing_components", f"must be one of {MISSING_POLICIES}")
    if not isinstance(cfg.thresholds, dict):
        raise ConfigError(p + "thresholds", "must be a table of thresholds")
    Profiles(cfg, cfg.type, where=p + "thresholds")  # validates every override


def _build_dbdt(cfg: DbDtConfig, device: torch.device, precision: str) -> Detector:
    from geosentry.stream.detectors.geomag import DbDtDetector

    return DbDtDetector(cfg)


def _build_ssc(cfg: SscConfig, device: torch.device, precision: str) -> Detector:
    from geosentry.stream.detectors.geomag import SscDetector

    return SscDetector(cfg)


def _build_artefacts(cfg: ArtefactsConfig, device: torch.device, precision: str) -> Detector:
    from geosentry.stream.detectors.geomag_artefacts import ArtefactDetector

    return ArtefactDetector(cfg)


#: type name -> what the type is; the order is the one error messages list
DETECTOR_TYPES: dict[str, DetectorType[Any]] = {
    "stalta": DetectorType(StaLtaConfig, _check_stalta, _build_stalta),
    "model": DetectorType(ModelConfig, _check_model, _build_model),
    "dbdt": DetectorType(DbDtConfig, _check_geomag, _build_dbdt),
    "ssc": DetectorType(SscConfig, _check_geomag, _build_ssc),
    "artefacts": DetectorType(ArtefactsConfig, _check_geomag, _build_artefacts),
}


def detector_type(name: str) -> DetectorType[Any]:
    try:
        return DETECTOR_TYPES[name]
    except KeyError:
        raise ConfigError("type", f"must be one of {tuple(DETECTOR_TYPES)}, got {name!r}") from None


# -- tables -> configs -------------------------------------------------------------------------


def _components(p: str, comps: tuple[str, ...], n: int | None, what: str) -> None:
    key = p + "components"
    if not comps or len(set(comps)) != len(comps) or \
            any(not isinstance(c, str) or len(c) != 1 or not c.isalnum() for c in comps):
        raise ConfigError(key, f"must be distinct one-letter component codes, got {list(comps)}")
    if n is not None and len(comps) != n:
        raise ConfigError(key, f"must be {n} component{'s' if n > 1 else ''} "
                               f"({what}), got {list(comps)}")


def _typed(p: str, key: str, value: Any) -> Any:
    """A TOML value as the config field holds it (lists -> tuples)."""
    if key == "components":
        if isinstance(value, str):
            value = list(value)  # "HEZF" as ["H", "E", "Z", "F"]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(p + key, f"must be a list of component codes, got {value!r}")
        return tuple(value)
    if key == "channels":
        return _channels(p + key, value)
    if key == "bandpass_hz" and value is not None:
        band = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if len(band) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                     for b in band) or not 0 < band[0] < band[1]:
            raise ConfigError(p + key, f"must be [low, high] with 0 < low < high, got {value}")
        return (float(band[0]), float(band[1]))
    return value


def parse_detector(i: int, raw: Any) -> DetectorConfig:
    """``detectors[i]``, a TOML table, as its type's config; every error names its key."""
    p = f"detectors[{i}]."
    if not isinstance(raw, dict):
        raise ConfigError(f"detectors[{i}]", "must be a table")
    for key in ("name", "type"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            raise ConfigError(p + key, "is required (a non-empty string)")
    if raw["type"] not in DETECTOR_TYPES:
        raise ConfigError(p + "type", f"must be one of {tuple(DETECTOR_TYPES)}, "
                                      f"got {raw['type']!r}")
    kind = DETECTOR_TYPES[raw["type"]]
    keys = kind.keys()
    for key in raw:
        if key == "window_s" and kind.config is ModelConfig:
            raise ConfigError(p + key, "is fixed by the model's contract; set stride_s only")
        if key not in keys:
            raise ConfigError(p + key, f"not a setting of a {raw['type']!r} detector "
                                       f"(its keys: {', '.join(keys)})")
    cfg: DetectorConfig = kind.config(**{k: _typed(p, k, v) for k, v in raw.items()})
    kind.check(p, cfg)
    return cfg


def build(cfg: DetectorConfig, device: torch.device, precision: str = "auto") -> Detector:
    """The detector ``cfg`` describes (``cfg`` as ``parse_detector`` gives it)."""
    return detector_type(cfg.type).build(cfg, device, precision)
