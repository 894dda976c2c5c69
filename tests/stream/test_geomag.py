"""Geomagnetic ingest and detectors on small fixed cases (synthetic IAGA-2002 files) and, when
../shared/data is present, on real observatory files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geosentry.stream.decode.iaga import parse_iaga, read_text
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.records import NS_PER_S
from geosentry.stream.sources.files import archive_records
from geosentry.stream.testing import IAGA_T0 as T0
from geosentry.stream.testing import geomag_alerts as run
from geosentry.stream.testing import write_iaga
from geosentry.stream.testing import quiet_geomag as quiet


def test_iaga_is_converted_with_usgs_channel_names(tmp_path: Path) -> None:
    path = write_iaga(tmp_path / "tst20140407vsec.sec", *quiet(600))
    sids = {r.sid for _, p in archive_records(path) for r in decode_payload(p, 0)}
    assert sids == {"NT.TST.R0.LFH", "NT.TST.R0.LFE", "NT.TST.R0.LFZ", "NT.TST.R0.LFF"}


def test_quiet_data_raises_nothing(tmp_path: Path) -> None:
    path = write_iaga(tmp_path / "q.sec", *quiet())
    assert run(path, "dbdt", "ssc", "artefacts") == []


def test_sudden_commencement_onset_amplitude_rise(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    onset = 4000
    h[onset:] += 20 * np.clip(np.arange(len(h) - onset) / 120.0, 0, 1)
    alerts = run(write_iaga(tmp_path / "ssc.sec", h, d, z, f), "ssc")
    assert len(alerts) == 1
    a = alerts[0]
    t_onset = int(T0.astype("datetime64[ns]").astype(np.int64)) + onset * NS_PER_S
    assert abs(a.time_ns - t_onset) <= 60 * NS_PER_S
    assert 15 <= a.details["amplitude_nT"] <= 25 and a.details["rise_time_s"] <= 180


def test_dbdt_fires_once_per_disturbance(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    h[3000:3060] += np.linspace(0, 100, 60)  # 100 nT in a minute
    h[3060:] += 100
    alerts = run(write_iaga(tmp_path / "db.sec", h, d, z, f), "dbdt")
    assert [a.details["detector"] for a in alerts] == ["dbdt"]
    assert alerts[0].score >= 30 and alerts[0].details["unit"] == "nT/min"


@pytest.mark.parametrize("kind", ["spike", "step", "flat_line", "f_inconsistency"])
def test_artefacts_are_named(tmp_path: Path, kind: str) -> None:
    h, d, z, f = quiet()
    if kind == "spike":
        z[3500] += 30
    elif kind == "step":
        z[3500:] += 15
    elif kind == "flat_line":
        z[3500:3800] = z[3500]
    else:
        f[3500:] += 6
    alerts = run(write_iaga(tmp_path / f"{kind}.sec", h, d, z, f), "artefacts")
    assert [a.details["artefact"] for a in alerts] == [kind]
    assert all(a.kind == "health" for a in alerts)


def test_dropout_is_a_gap_health_alert(tmp_path: Path) -> None:
    h, d, z, f = quiet()
    path = write_iaga(tmp_path / "gap.sec", h, d, z, f)
    text = path.read_text().splitlines()
    for i in range(3 + 3000, 3 + 3300):  # 5 minutes of 99999 in every element
        text[i] = text[i][:30] + "   99999.00  99999.00  99999.00  99999.00"
    path.write_text("\n".join(text) + "\n")
    assert parse_iaga(read_text(path)).elements["H"][3100] != parse_iaga(read_text(path)).elements["H"][3100]
    alerts = run(path, "artefacts")
    assert {a.details["event"] for a in alerts} == {"reset_gap"}


@pytest.mark.shared
def test_catalogued_ssc_at_boulder_is_found_within_two_minutes(
        shared_data: Callable[[str], Path]) -> None:
    path = shared_data("geomag/usgs-geomag-algorithms/adjusted/BOU201601vmin.min")
    text = read_text(path).splitlines()
    header = [ln for ln in text if not ln[:4].isdigit()]
    days = [ln for ln in text if ln.startswith(("2016-01-17", "2016-01-18"))]
    cut = Path(__file__).parent / ".bou-ssc.min"
    try:
        cut.write_text("\n".join(header + days) + "\n")
        alerts = [a for a in run(cut, "ssc")]
    finally:
        cut.unlink(missing_ok=True)
    catalogue = int(np.datetime64("2016-01-18T21:57:00", "ns").astype(np.int64))
    assert any(abs(a.time_ns - catalogue) <= 120 * NS_PER_S for a in alerts)
