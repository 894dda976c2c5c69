"""Per-latitude-class threshold profiles, their config overrides, and the robust artefact rules
(trend-relative steps, quantisation-aware flat lines, noisy sensors are not impulses)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geosentry.stream.config import DetectorConfig, load_config_dict
from geosentry.stream.detectors.factory import build_detectors
from geosentry.stream.detectors.geomag import (ArtefactDetector, DbDtDetector, Profiles, SscDetector,
                                     latitude_class)
from geosentry.stream.errors import ConfigError
from geosentry.stream.testing import geomag_alerts, write_iaga
from geosentry.stream.testing import quiet_geomag as quiet


#: alerts from ``path`` replayed with its components interleaved, as a live feed sends them
run = functools.partial(geomag_alerts, interleave=True)


def det(kind: str, **thresholds: Any) -> dict[str, Any]:
    return {"name": kind, "type": kind, "thresholds": thresholds}


def test_classes_follow_geomagnetic_latitude() -> None:
    assert [latitude_class(x) for x in (5.9, -27.7, 48.0, 60.4, 70.0)] == \
        ["low", "low", "mid", "subauroral", "auroral"]
    p = Profiles(DetectorConfig("a", "artefacts"), "artefacts")
    assert p.station("BRW")[0] == "auroral" and p.station("GUA")[0] == "low"
    assert p.station("SIT")[0] == "subauroral" and p.station("BOU")[0] == "mid"
    assert p.station("XYZ")[0].startswith("mid (observatory not in table")


def test_overrides_most_specific_last() -> None:
    cfg = DetectorConfig("a", "artefacts", thresholds={
        "spike_nT": 4.0, "auroral": {"spike_nT": 20.0, "step_nT": 12.0},
        "BRW": {"spike_nT": 25.0}, "XYZ": {"mlat_deg": -66.0}})
    p = Profiles(cfg, "artefacts")
    assert p.station("BOU")[1]["spike_nT"] == 4.0
    assert p.station("DED")[1]["spike_nT"] == 20.0 and p.station("DED")[1]["step_nT"] == 12.0
    assert p.station("BRW")[1]["spike_nT"] == 25.0 and p.station("BRW")[1]["step_nT"] == 12.0
    assert p.station("XYZ")[0].startswith("auroral") and p.station("XYZ")[1]["spike_nT"] == 20.0


def test_dbdt_shorthands() -> None:
    p = Profiles(DetectorConfig("d", "dbdt", thresholds={"default": 25.0, "BRW": 300.0}), "dbdt")
    assert p.station("BOU")[1]["rate_nT_per_min"] == 25.0
    assert p.station("BRW")[1]["rate_nT_per_min"] == 300.0


@pytest.mark.parametrize(("kind", "thresholds", "key"), [
    ("artefacts", {"spike_nt": 3.0}, "spike_nt"),
    ("artefacts", {"step_nT": -1.0}, "step_nT"),
    ("ssc", {"mid": {"amplitude_nT": "big"}}, "mid.amplitude_nT"),
    ("ssc", {"BOU": {"mlat_deg": 120.0}}, "BOU.mlat_deg"),
    ("dbdt", {"auroral": 90.0}, "auroral"),
])
def test_bad_thresholds_name_the_key(kind: str, thresholds: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Profiles(DetectorConfig(kind, kind, thresholds=thresholds), kind)


def test_dbdt_threshold_depends_on_the_observatory(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    h[3000:3060] += np.linspace(0, 60, 60)  # 60 nT in a minute: above mid, below auroral
    h[3060:] += 60
    mid = run(write_iaga(tmp_path / "bou.sec", h, d, z, f, code="BOU"), det("dbdt"))
    assert len(mid) == 1 and mid[0].threshold == 30.0 and mid[0].details["profile"] == "mid"
    assert run(write_iaga(tmp_path / "brw.sec", h, d, z, f, code="BRW"), det("dbdt")) == []
    low = run(write_iaga(tmp_path / "b2.sec", h, d, z, f, code="BRW"), det("dbdt", BRW=40.0))
    assert [a.threshold for a in low] == [40.0]


def _ssc(h: np.ndarray, onset: int = 4000, amp: float = 20.0) -> np.ndarray:
    h = h.copy()
    h[onset:] += amp * np.clip(np.arange(len(h) - onset) / 120.0, 0, 1)
    return h


def test_ssc_is_off_at_auroral_observatories_unless_enabled(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    path = write_iaga(tmp_path / "brw.sec", _ssc(h, amp=60.0), d, z, f, code="BRW")
    assert run(path, det("ssc")) == []
    on = run(path, det("ssc", auroral={"enabled": 1.0}))
    assert len(on) == 1 and on[0].details["profile"] == "auroral"


def test_a_noisy_sensor_is_not_a_sudden_impulse(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    rng = np.random.default_rng(1)
    h[4000:4900] += 10 + rng.normal(0, 6, 900)  # a shaken fluxgate: H jumps about by +-6 nT
    alerts = run(write_iaga(tmp_path / "noisy.sec", h, d, z, f), det("ssc"))
    assert alerts == []
    assert len(run(write_iaga(tmp_path / "clean.sec", _ssc(quiet()[0]), d, z, f),
                   det("ssc"))) == 1


def test_a_steep_smooth_variation_is_not_a_step(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    ramp = 3.0 * np.clip(np.arange(len(h)) - 3000, 0, 180)  # 3 nT/s for 3 min (a substorm)
    h = h + ramp
    f = np.hypot(h, z) + 1.5
    alerts = run(write_iaga(tmp_path / "ramp.sec", h, d, z, f, code="BRW"), det("artefacts"))
    assert [a.details["artefact"] for a in alerts] == []


def test_a_quantised_channel_that_repeats_by_itself_is_not_flat(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    rng = np.random.default_rng(2)
    z = 45000 + np.round(np.cumsum(rng.normal(0, 0.0015, len(h))), 2)  # repeats 88 % of seconds
    z[5000:5120] = z[5000]  # 120 s unchanged is then plausible (0.88 ** 120 ~ 2e-7), not stuck
    alerts = run(write_iaga(tmp_path / "quant.sec", h, d, z, f), det("artefacts"))
    assert "flat_line" not in [a.details["artefact"] for a in alerts]
    z[5000:6800] = z[5000]  # but 30 min is not
    alerts = run(write_iaga(tmp_path / "stuck.sec", h, d, z, f), det("artefacts"))
    assert [a.channel for a in alerts if a.details["artefact"] == "flat_line"] == ["LFZ"]


def test_east_from_a_declination_of_zero_is_not_flat(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    d[3000:5000] = 0.0  # E = H sin(0) = 0 exactly for 33 min: D below its 0.01' resolution
    alerts = run(write_iaga(tmp_path / "d0.sec", h, d, z, f), det("artefacts"))
    assert "flat_line" not in [a.details["artefact"] for a in alerts]


def test_the_example_deploy_config_loads() -> None:
    import tomllib

    path = Path(__file__).resolve().parents[2] / "deploy" / "geomag.toml"
    cfg = load_config_dict(tomllib.loads(path.read_text()))
    dbdt, ssc, artefacts = build_detectors(cfg)
    assert isinstance(dbdt, DbDtDetector) and isinstance(ssc, SscDetector)
    assert isinstance(artefacts, ArtefactDetector)
    assert dbdt.profiles.station("SIT")[1]["rate_nT_per_min"] == 60.0
    assert ssc.profiles.station("CMO")[1]["enabled"] == 0.0
    assert artefacts.profiles.station("XYZ")[0].startswith("auroral")


def test_one_minute_floors_scale_with_the_interval(tmp_path: Path) -> None:
    """On 1 min data the spike floor is 3 nT x sqrt(60) ~ 23 nT: a 10 nT minute is the field."""
    rng = np.random.default_rng(3)
    n = 1440
    h = 20000 + np.cumsum(rng.normal(0, 0.5, n))
    z = 45000 + np.cumsum(rng.normal(0, 0.3, n))
    d = -7 + np.cumsum(rng.normal(0, 0.01, n))

    def minute_file(path: Path, h: np.ndarray) -> Path:
        lines = [" IAGA CODE              TST" + " " * 42 + "|",
                 "DATE       TIME         DOY     TSTH      TSTD      TSTZ      TSTF   |"]
        for i in range(n):
            t = str(np.datetime64("2014-04-07T00:00") + np.timedelta64(i, "m")).replace("T", " ")
            lines.append(f"{t}:00.000 097 {h[i]:12.2f} {d[i]:9.2f} {z[i]:9.2f} "
                         f"{np.hypot(h[i], z[i]) + 1.5:9.2f}")
        path.write_text("\n".join(lines) + "\n")
        return path

    small, big = h.copy(), h.copy()
    small[700] += 10.0
    big[700] += 60.0
    # with the ssc detector beside (as deployed): its 40-sample windows keep the buffers long
    # enough for 1 min records (55 samples each); artefacts alone on 1 min data see few windows
    detectors = (det("ssc"), det("artefacts"))
    kinds = [a.details.get("artefact") for a in run(minute_file(tmp_path / "s.min", small),
                                                    *detectors)]
    assert "spike" not in kinds
    kinds = [a.details.get("artefact") for a in run(minute_file(tmp_path / "b.min", big),
                                                    *detectors)]
    assert "spike" in kinds
