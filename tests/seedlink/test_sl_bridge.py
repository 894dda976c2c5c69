"""archive -> `geosentry serve-seedlink` -> `geosentry ingest` -> real Kafka -> `geosentry run`
-> alerts; a second ingest resumes from its state file and adds nothing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import obspy
import pytest
from slhelpers import GEOSENTRY

from geosentry.stream.demo import DEMO_BAND_HZ, reference_events
from geosentry.stream.testing import read_topic

pytestmark = pytest.mark.kafka


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(GEOSENTRY + args, capture_output=True, text=True, timeout=timeout)


async def test_archive_server_bridge_kafka_run_alerts(kafka_bootstrap: str, demo_archive: Path,
                                                      tmp_path: Path, topic_name: str) -> None:
    server = subprocess.Popen(GEOSENTRY + ["serve-seedlink", str(demo_archive), "--port", "0",
                                           "--speed", "0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        assert "serving 153 records of 4 stations" in line
        state = tmp_path / "bridge.state"
        src = f"seedlink://127.0.0.1:{port}?streams=BW_*:?HZ&dialup=1&state={state}"
        waveforms, alerts = f"{topic_name}-wf", f"{topic_name}-alerts"
        ing = _run(["ingest", src, "--to", f"kafka://{kafka_bootstrap}/{waveforms}"])
        assert ing.returncode == 0, ing.stderr[-3000:]
        assert "ingested 153 records" in ing.stderr
        again = _run(["ingest", src, "--to", f"kafka://{kafka_bootstrap}/{waveforms}"])
        assert again.returncode == 0 and "ingested 0 records" in again.stderr, again.stderr
    finally:
        server.terminate()
        server.wait(10)
    assert server.returncode == 0

    records = await read_topic(kafka_bootstrap, waveforms)
    archive_bytes = {f.read_bytes() for f in demo_archive.iterdir()}
    per_station: dict[bytes, bytes] = {}
    for key, value in records:
        per_station[key] = per_station.get(key, b"") + value
    assert set(per_station.values()) == archive_bytes  # original bytes, in order, per key
    assert sorted(per_station) == [b"BW.UH1", b"BW.UH2", b"BW.UH3", b"BW.UH4"]

    config = tmp_path / "geosentry.toml"
    config.write_text(f'[[detectors]]\nname = "stalta"\ntype = "stalta"\n'
                      f"bandpass_hz = [{DEMO_BAND_HZ[0]}, {DEMO_BAND_HZ[1]}]\n")
    run = _run(["run", "--source", f"kafka://{kafka_bootstrap}/{waveforms}?group=g&idle_exit_s=4",
                "--sink", f"kafka://{kafka_bootstrap}/{alerts}", "--config", str(config)])
    assert run.returncode == 0, run.stderr[-3000:]
    network = sorted(json.loads(v)["time"] for _, v in await read_topic(kafka_bootstrap, alerts)
                     if json.loads(v)["station"] == "*")
    expected = reference_events()
    assert len(network) == len(expected) == 3
    for got, want in zip(network, expected):
        assert abs(obspy.UTCDateTime(got) - obspy.UTCDateTime(want)) < 0.05
