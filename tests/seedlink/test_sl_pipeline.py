"""Server -> our client (protocol 3 and 4) -> pipeline: the same alerts as replaying the files."""

from __future__ import annotations

from pathlib import Path

import pytest
from slhelpers import serving

from geosentry.stream.demo import demo_config_dict, reference_events
from geosentry.stream.records import Alert
from geosentry.stream.sources import open_source
from geosentry.stream.sources.seedlink import SeedLinkSource
from geosentry.stream.testing import run_pipeline


def _stalta_config() -> dict:
    raw = demo_config_dict()
    raw["detectors"] = [d for d in raw["detectors"] if d["type"] == "stalta"]
    return raw


async def _alerts(source_uri: str) -> tuple[list[Alert], object]:
    source = open_source(source_uri)
    sink, _, _ = await run_pipeline([source], _stalta_config())
    return sink.alerts, source


def _key(a: Alert) -> tuple:
    return (a.id, a.kind, a.station, a.time_ns, round(a.score, 6), tuple(a.details.get("stations", ())))


@pytest.fixture(scope="module")
async def file_alerts(demo_archive: Path) -> list[Alert]:
    alerts, _ = await _alerts(str(demo_archive))
    return alerts


@pytest.mark.parametrize("proto", ["3", "4"])
async def test_alerts_identical_to_file_replay(demo_archive: Path, tmp_path: Path, proto: str,
                                               file_alerts: list[Alert]) -> None:
    async with serving(demo_archive) as server:
        uri = (f"seedlink://127.0.0.1:{server.port}?streams=BW_UH1:SHZ,BW_UH2:SHZ,BW_*:?HZ"
               f"&proto={proto}&dialup=1&state={tmp_path / 'sl.state'}")
        alerts, source = await _alerts(uri)
    assert sorted(map(_key, alerts)) == sorted(map(_key, file_alerts))
    network = sorted(a.time_ns for a in alerts if a.station == "*")
    assert len(network) == len(reference_events()) == 3
    assert isinstance(source, SeedLinkSource)
    # everything was processed and acknowledged: the state file holds each station's last seq
    text = (tmp_path / "sl.state").read_text().splitlines()
    assert text[0].startswith("#V2")
    assert sorted(text[1:]) == sorted(f"{sid} {len(ps)}" for sid, ps in
                                      server.archive.by_station.items())
