"""The whole in-process path on real ObsPy recordings: decode -> windows -> STA/LTA ->
coincidence -> sinks, plus bad input that must be counted without stopping the stream."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import obspy
import pytest

from geosentry.stream.demo import reference_events
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import ns_to_iso
from geosentry.stream.testing import MemorySink, demo_stream, mseed_records, run_pipeline, interleaved

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "stream" / "schemas" /
                     "alert.v1.json").read_text())


@pytest.fixture(scope="module")
def demo_payloads() -> list[bytes]:
    return interleaved(demo_stream())


def _network_times(sink: MemorySink) -> list[str]:
    return sorted(ns_to_iso(a.time_ns) for a in sink.alerts
                  if a.station == "*" and a.details["detector"] == "stalta")


async def test_finds_the_three_obspy_reference_events(demo_payloads: list[bytes]) -> None:
    sink, _, metrics = await run_pipeline(demo_payloads)
    expected = reference_events()
    got = _network_times(sink)
    assert len(got) == len(expected) == 3
    for g, e in zip(got, expected):
        assert abs(obspy.UTCDateTime(g) - obspy.UTCDateTime(e)) < 0.05
    assert metrics.value("geosentry_records_in_total", source="memory") == len(demo_payloads)
    assert metrics.value("geosentry_windows_total", detector="stalta") > 0


async def test_alerts_match_the_json_schema_and_ids_are_deterministic(
        demo_payloads: list[bytes]) -> None:
    first, _, _ = await run_pipeline(demo_payloads)
    second, _, _ = await run_pipeline(demo_payloads)
    for a in first.alerts:
        jsonschema.validate(json.loads(a.to_json()), SCHEMA)
    assert sorted(a.id for a in first.alerts) == sorted(a.id for a in second.alerts)
    assert len({a.id for a in first.alerts}) == len(first.alerts)


def _bad_payloads(good: list[bytes]) -> dict[str, bytes]:
    truncated = good[0][:200]
    garbage = b"\x13\x37" * 256
    nan_trace = obspy.Trace(np.full(200, np.nan), header={
        "network": "BW", "station": "BAD", "channel": "SHZ", "sampling_rate": 50.0})
    rate = good[0][:32] + (32000).to_bytes(2, "big") + (32000).to_bytes(2, "big") + good[0][36:]
    unknown = obspy.Trace(np.arange(500, dtype=np.int32), header={
        "network": "BW", "station": "UH1", "channel": "LOG", "sampling_rate": 50.0})
    return {"truncated": truncated, "garbage": garbage, "nan": mseed_records(nan_trace)[0],
            "rate": rate, "unknown": mseed_records(unknown)[0]}


@pytest.mark.parametrize("case", ["truncated", "garbage", "nan", "rate", "unknown"])
async def test_bad_input_is_counted_and_the_stream_keeps_flowing(
        demo_payloads: list[bytes], case: str) -> None:
    bad = _bad_payloads(demo_payloads)[case]
    stream = list(demo_payloads)
    for at in (5, len(stream) // 2, len(stream) - 5):  # early, between events, late
        stream.insert(at, bad)
    sink, _, metrics = await run_pipeline(stream)
    if case == "unknown":
        assert metrics.value("geosentry_records_rejected_total", reason="unknown_channel") == 3
    else:
        errors = sum(s.value for fam in metrics.registry.collect()
                     if fam.name == "geosentry_decode_errors" for s in fam.samples
                     if s.name.endswith("_total"))
        assert errors == 3
    assert len(_network_times(sink)) == 3  # every event still detected


async def test_a_gap_raises_one_health_alert(demo_payloads: list[bytes]) -> None:
    uh1 = [p for p in demo_payloads if b"UH1" in p[:20]]
    stream = [p for p in demo_payloads if p is not uh1[10]]
    sink, _, metrics = await run_pipeline(stream)
    health = [a for a in sink.alerts
              if a.kind == "health" and a.details["event"] != "missing_component"]
    assert [(a.station, a.details["event"]) for a in health] == [("UH1", "reset_gap")]
    assert metrics.value("geosentry_gaps_total", action="reset") == 1


async def test_prometheus_endpoint_exports_the_counters(demo_payloads: list[bytes]) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = Metrics()
    metrics.serve(port, addr="127.0.0.1")
    await run_pipeline(demo_payloads, metrics=metrics)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for name in ("geosentry_records_in_total", "geosentry_windows_total",
                 "geosentry_inference_batch_seconds_bucket", "geosentry_alerts_total",
                 "geosentry_alert_latency_seconds_bucket", "geosentry_queue_depth"):
        assert name in body
    assert f'geosentry_records_in_total{{source="memory"}} {float(len(demo_payloads))}' in body


async def test_a_model_faster_than_the_channel_is_refused_with_a_health_alert() -> None:
    """The 1 Hz geomagnetic autoencoder on one-minute data: no windows (it would see 60x
    interpolation), one ``rate_too_low`` health alert, counted, the rest keeps running."""
    from geosentry.stream.testing import synthetic_trace

    st = obspy.Stream()
    for i, comp in enumerate("HEZ"):
        tr = synthetic_trace(f"NT.BOU.R0.UF{comp}", 12 * 3600.0, rate_hz=1 / 60, seed=i)
        tr.data = tr.data + 20_000
        st += tr
    sink, _, metrics = await run_pipeline(interleaved(st), {
        "detectors": [{"name": "ae", "type": "model", "path": "builtin:anomaly-geomag"}]})
    health = [a for a in sink.alerts if a.kind == "health"]
    assert [a.details["event"] for a in health] == ["rate_too_low"]
    assert "needs 1 Hz" in health[0].details["detail"] and health[0].station == "BOU"
    assert not [a for a in sink.alerts if a.kind != "health"]
    assert metrics.value("geosentry_windows_total", detector="ae") in (0, None)
    assert metrics.value("geosentry_records_rejected_total", reason="rate_too_low") == 1
