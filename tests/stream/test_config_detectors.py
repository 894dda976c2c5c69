"""Per-type detector configs behind the registry: each ``[[detectors]]`` table is validated once at
load (model threshold overrides against the model's contract), explicit ``components`` are used
as given, and the registry builds every type."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from geosentry.stream.config import DetectorConfig, load_config, load_config_dict
from geosentry.stream.detectors.factory import build_detector
from geosentry.stream.detectors.registry import (DETECTOR_TYPES, ArtefactsConfig, DbDtConfig,
                                                 ModelConfig, SscConfig, StaLtaConfig)
from geosentry.stream.errors import ConfigError
from geosentry.stream.models import MODELS_DIR

ROOT = Path(__file__).resolve().parents[2]
needs_picker = pytest.mark.skipif(not (MODELS_DIR / "picker.pt").exists(),
                                  reason="shipped picker missing")


def _one(table: dict[str, Any]) -> Any:
    return load_config_dict({"detectors": [{"name": "s", "type": "stalta"}, table]}).detectors[1]


def _error(table: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _one(table)
    assert "\n" not in str(info.value)  # one line, as the CLI prints it
    return info.value


@needs_picker
@pytest.mark.parametrize("thresholds, key, why", [
    ({"Q": 0.3}, "detectors[1].thresholds.Q", "not a label of model 'picker' (labels: P, S, N)"),
    ({"P": 1.5}, "detectors[1].thresholds.P", "must be in [0, 1], got 1.5"),
    ({"S": -0.1}, "detectors[1].thresholds.S", "must be in [0, 1]"),
    ({"P": "high"}, "detectors[1].thresholds.P", "must be a number"),
    ({"P": True}, "detectors[1].thresholds.P", "must be a number"),
])
def test_model_threshold_overrides_are_checked_at_load(thresholds: dict, key: str,
                                                        why: str) -> None:
    err = _error({"name": "picker", "type": "model", "path": "builtin:picker",
                  "thresholds": thresholds})
    assert err.key == key and err.why.startswith(why)
    assert str(err).startswith(f"config key {key!r}: ")


@pytest.mark.skipif(not (MODELS_DIR / "anomaly.pt").exists(), reason="shipped anomaly missing")
def test_anomaly_threshold_is_a_positive_score() -> None:
    table = {"name": "ae", "type": "model", "path": "builtin:anomaly"}
    assert _one({**table, "thresholds": {"anomaly": 3.0}}).thresholds == {"anomaly": 3.0}
    assert _error({**table, "thresholds": {"anomaly": 0}}).why.startswith("must be > 0")
    assert _error({**table, "thresholds": {"P": 0.5}}).key == "detectors[1].thresholds.P"


def test_thresholds_of_a_model_without_a_contract_name_the_path(tmp_path: Path) -> None:
    err = _error({"name": "m", "type": "model", "path": str(tmp_path / "none.pt"),
                  "thresholds": {"P": 0.5}})
    assert err.key == "detectors[1].path" and "not found" in err.why
    # no overrides: nothing to check at load (the model is checked when it is built)
    assert _one({"name": "m", "type": "model", "path": str(tmp_path / "none.pt")}).path


@needs_picker
def test_valid_overrides_reach_the_detector() -> None:
    cfg = _one({"name": "picker", "type": "model", "path": "builtin:picker",
                "thresholds": {"P": 0.3, "S": 0.3}})
    det = build_detector(cfg, torch.device("cpu"), "fp32")
    assert det.thresholds["P"] == 0.3 and det.thresholds["S"] == 0.3  # type: ignore[attr-defined]


def test_geomagnetic_threshold_errors_are_raised_at_load_naming_the_key() -> None:
    err = _error({"name": "a", "type": "artefacts", "thresholds": {"spike_nt": 3.0}})
    assert err.key == "detectors[1].thresholds.spike_nt" and "unknown threshold" in err.why
    err = _error({"name": "c", "type": "ssc", "thresholds": {"BOU": {"mlat_deg": 120.0}}})
    assert err.key == "detectors[1].thresholds.BOU.mlat_deg"


@pytest.mark.parametrize("table, components", [
    ({"name": "a", "type": "artefacts", "components": ["Z"]}, ("Z",)),  # was turned into HEZF
    ({"name": "a", "type": "artefacts", "components": ["H", "E", "Z"]}, ("H", "E", "Z")),
    ({"name": "a", "type": "artefacts"}, ("H", "E", "Z", "F")),
    ({"name": "d", "type": "dbdt", "components": ["X", "Y"]}, ("X", "Y")),
    ({"name": "d", "type": "dbdt"}, ("H", "E")),
    ({"name": "c", "type": "ssc", "components": ["X"]}, ("X",)),
    ({"name": "c", "type": "ssc"}, ("H",)),
    ({"name": "t", "type": "stalta", "components": ["N"]}, ("N",)),
    ({"name": "t", "type": "stalta", "components": "Z"}, ("Z",)),
    ({"name": "t", "type": "stalta"}, ("Z",)),
])
def test_explicit_components_are_used_as_given(table: dict, components: tuple) -> None:
    cfg = _one(table)
    assert cfg.components == components
    assert build_detector(cfg, torch.device("cpu")).spec.components == components


@needs_picker
def test_model_components_are_the_contracts_unless_given() -> None:
    table = {"name": "picker", "type": "model", "path": "builtin:picker"}
    det = build_detector(_one(table), torch.device("cpu"), "fp32")
    assert det.spec.components == ("Z", "N", "E")
    det = build_detector(_one({**table, "components": ["Z", "1", "2"]}), torch.device("cpu"),
                         "fp32")
    assert det.spec.components == ("Z", "1", "2")
    err = _error({**table, "components": ["Z"]})
    assert err.key == "detectors[1].components" and "takes 3 components (ZNE)" in err.why


@pytest.mark.parametrize("table, key, why", [
    ({"name": "t", "type": "stalta", "components": ["Z", "N"]}, "components", "must be 1 comp"),
    ({"name": "d", "type": "dbdt", "components": ["H"]}, "components", "must be 2 components"),
    ({"name": "a", "type": "artefacts", "components": []}, "components", "distinct one-letter"),
    ({"name": "a", "type": "artefacts", "components": ["H", "H"]}, "components", "distinct"),
    ({"name": "d", "type": "dbdt", "sta_s": 1.0}, "sta_s", "not a setting of a 'dbdt' detector"),
    ({"name": "t", "type": "stalta", "path": "x"}, "path", "not a setting of a 'stalta'"),
    ({"name": "m", "type": "model", "path": "x", "window_s": 5.0}, "window_s", "fixed by"),
    ({"name": "d", "type": "ssc", "missing_components": "guess"}, "missing_components", "one of"),
    ({"name": "d", "type": "ssc", "stride_s": 0}, "stride_s", "> 0"),
    ({"name": "m", "type": "model", "path": "x", "thresholds": 0.5}, "thresholds", "table"),
])
def test_settings_are_checked_per_type(table: dict, key: str, why: str) -> None:
    err = _error(table)
    assert err.key == f"detectors[1].{key}" and why in err.why


def test_the_registry_builds_every_type() -> None:
    tables = {"stalta": {}, "dbdt": {}, "ssc": {}, "artefacts": {},
              "model": {"path": "builtin:picker"}}
    assert set(tables) == set(DETECTOR_TYPES)
    if not (MODELS_DIR / "picker.pt").exists():
        del tables["model"]
    for kind, extra in tables.items():
        cfg = _one({"name": f"my-{kind}", "type": kind, "channels": ["HH", "?F"], **extra})
        assert type(cfg) is DETECTOR_TYPES[kind].config and isinstance(cfg, DetectorConfig)
        det = build_detector(cfg, torch.device("cpu"), "fp32")
        assert det.name == f"my-{kind}" and det.spec.detector == f"my-{kind}"
        assert det.spec.channels == ("HH", "?F")  # the routing key reaches every type


def test_detector_config_builds_the_types_own_config() -> None:
    assert DetectorConfig("s", "stalta", stride_s=0.5) == StaLtaConfig("s", stride_s=0.5)
    assert type(DetectorConfig(name="m", type="model", path="x")) is ModelConfig
    assert [type(DetectorConfig(k, k)) for k in ("dbdt", "ssc", "artefacts")] == \
        [DbDtConfig, SscConfig, ArtefactsConfig]
    with pytest.raises(ConfigError, match="must be one of"):
        DetectorConfig("x", "magic")


def _readme_tables() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[[detectors]]" in b]


def test_every_shipped_config_loads_and_means_the_same(tmp_path: Path) -> None:
    """README's and deploy/'s configs load; the settings users write are what the configs hold."""
    blocks = _readme_tables()
    assert blocks
    paths = [ROOT / "deploy" / "geomag.toml"]
    for i, block in enumerate(blocks):
        paths.append(tmp_path / f"readme{i}.toml")
        paths[-1].write_text(block)
    for path in paths:
        raw = tomllib.loads(path.read_text())
        cfg = load_config(path)
        for table, det in zip(raw["detectors"], cfg.detectors):
            for key, value in table.items():
                got = getattr(det, key)
                want = tuple(value) if isinstance(value, list) else value
                want = (want,) if key == "channels" and isinstance(want, str) else want
                assert got == want, (path.name, det.name, key)
    defaults = load_config().detectors
    stalta = next(d for d in defaults if d.type == "stalta")
    assert stalta == StaLtaConfig("stalta", channels=("seismic",), bandpass_hz=(1.0, 20.0))


@needs_picker
def test_a_bad_threshold_override_stops_geosentry_run_at_start_up(tmp_path: Path) -> None:
    """Exit 2 with one line naming the key, before any data is read (it used to fail inside an
    inference worker)."""
    import subprocess
    import sys

    cfg = tmp_path / "g.toml"
    cfg.write_text('[[detectors]]\nname = "picker"\ntype = "model"\npath = "builtin:picker"\n'
                   'thresholds = { P = 1.3 }\n')
    done = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", "run", "--source",
                           str(tmp_path), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "config key 'detectors[0].thresholds.P': must be in [0, 1], got 1.3")
    assert "Traceback" not in done.stderr
