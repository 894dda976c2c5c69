"""Configuration errors name the key and say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from geosentry.stream.config import load_config, load_config_dict
from geosentry.stream.errors import ConfigError


@pytest.mark.parametrize("raw, key, why", [
    ({"buffer": {"max_interpolate_gap_s": -1}}, "buffer.max_interpolate_gap_s", ">= 0"),
    ({"buffer": {"gap": 1}}, "buffer.gap", "unknown key"),
    ({"inference": {"device": "tpu"}}, "inference.device", "auto, cpu or cuda"),
    ({"inference": {"max_batch": 0}}, "inference.max_batch", ">= 1"),
    ({"detectors": [{"name": "x", "type": "magic"}]}, "detectors[0].type", "must be one of"),
    ({"detectors": [{"name": "m", "type": "model"}]}, "detectors[0].path", "required"),
    ({"detectors": [{"name": "s", "type": "stalta", "sta_s": 20}]}, "detectors[0].sta_s",
     "shorter than lta_s"),
    ({"detectors": [{"name": "s", "type": "stalta", "bandpass_hz": [5, 1]}]},
     "detectors[0].bandpass_hz", "low < high"),
    ({"detectors": [{"name": "a", "type": "stalta"}, {"name": "a", "type": "stalta"}]},
     "detectors", "unique"),
    ({"sinks": []}, "sinks", "at least one"),
    ({"nonsense": 1}, "nonsense", "unknown section"),
])
def test_errors_name_the_key(raw: dict, key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        load_config_dict(raw)
    assert info.value.key == key


def test_toml_file_and_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('sinks = ["jsonl:/tmp/x"]\n[buffer]\nreorder_tolerance_s = 2.5\n'
                    '[[detectors]]\nname = "s"\ntype = "stalta"\nstride_s = 0.5\n')
    cfg = load_config(path, sources=["/data"], speed=2.0)
    assert cfg.buffer.reorder_tolerance_s == 2.5
    assert cfg.sources == ("/data",) and cfg.speed == 2.0 and cfg.sinks == ("jsonl:/tmp/x",)
    assert cfg.detectors[0].stride_s == 0.5 and cfg.detectors[0].window_s == 10.0


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[buffer\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
