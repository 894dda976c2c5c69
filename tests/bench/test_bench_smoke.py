"""Smoke test of the benchmark (issue 6): the smallest case of every section, in-process.

Checks that ``bench`` runs end to end on the real path and writes JSON with every figure; it
asserts no performance number (floors are measured by ``python -m bench``, never by tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.run import markdown, run

FIGURES = ("median", "min", "max", "n", "unit", "values")


def _is_stat(d: dict) -> bool:
    return all(k in d for k in FIGURES)


def test_smallest_case_writes_every_field(tmp_path: Path) -> None:
    res = run("smoke", tmp_path, command="python -m bench (smoke test)")
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["schema"] == "geosentry.bench.v1"
    assert data["machine"]["cpus"] >= 1
    for name in ("picker", "anomaly"):  # what inference.precision = "auto" chose here, and why
        assert data["models"][name]["precision"] in ("fp32", "bf16") and data["models"][name]["reason"]
    # decided once ("auto" times bf16 against fp32) and pinned: every row at the reported choice
    assert data["forward"]["service_precision"] == data["models"]["picker"]["precision"]
    assert "GEOSENTRY_BENCH_PRECISION" not in os.environ  # restored after the run
    for det in ("picker", "stalta"):
        tp = data["throughput"][det]
        for key in ("samples_per_s", "station_seconds_per_s", "windows_per_s"):
            assert _is_stat(tp[key]) and tp[key]["median"] > 0, (det, key)
        assert tp["windows"] > 0
    assert data["throughput"]["picker"]["stride_s"] == 15.0  # default: half the 30 s window
    if data["machine"]["cores"] > 1:  # scaled out: one service process per core, same windows
        so = data["throughput"]["picker_scaleout"]
        assert so["processes"] == data["machine"]["cores"]
        assert so["windows"] == data["throughput"]["picker"]["windows"]
        assert so["precision"] == [data["models"]["picker"]["precision"]]  # pinned there too
        assert _is_stat(so["station_seconds_per_s"]) and so["station_seconds_per_s"]["median"] > 0
    assert data["decode"]["pymseed"]["median"] > 0 and data["decode"]["obspy"]["median"] > 0
    assert data["decode"]["ratio_pymseed_vs_obspy"] > 0
    ref = data["references"]
    assert ref["obspy_stalta"]["station_seconds_per_s"]["median"] > 0
    assert "seisbench_annotate_same_net" in ref or "seisbench_skipped" in ref
    if "seisbench_skipped" not in ref:
        sbs = ref["seisbench_streaming_same_net"]
        assert sbs["calls"] == 2 and sbs["seconds_of_data"] == 60.0  # 2 windows, as the service
        assert _is_stat(sbs["station_seconds_per_s"])
        pr = ref["paired"]
        assert _is_stat(pr["ratio_vs_streaming"]) and _is_stat(pr["ratio_vs_whole_trace"])
        if "service_scaleout" in pr:  # one process per core, paired the same way
            assert _is_stat(pr["service_scaleout"]) and _is_stat(pr["ratio_scaleout_vs_whole_trace"])
        if pr["service_precision"] == "bf16":  # like for like at fp32 too
            assert _is_stat(pr["ratio_fp32_vs_streaming"]) and _is_stat(pr["whole_bf16"])
    lat = data["latency"]["3"]
    for key in ("p50_ms", "p95_ms", "p99_ms", "source_lag_p99_s"):
        assert _is_stat(lat[key]), key
    assert data["capacity"]["estimate_stations"] > 0
    ov = data["overload"]  # twice the capacity, then a quarter of the stations
    started, stopped = (ov["health_events"].count(e) for e in ("overload_started",
                                                               "overload_stopped"))
    assert ov["stations_after"] == ov["stations"] // 4 and started - stopped in (0, 1)
    assert (ov["stopped_after_drop_s"] is None) == (stopped == 0)
    rss = data["rss"]["by_stations"]["2"]
    assert rss["rss_peak_mb"]["median"] > 0
    assert set(data["floors"]) == {
        "throughput_vs_seisbench_streaming_ge_1.2", "throughput_vs_seisbench_whole_trace_ge_1.2",
        "realtime_stations_ge_5000", "p99_le_100ms_at_500", "rss_le_1.5GB_at_1000",
        "throughput_deployment"}
    table = (tmp_path / "latest.md").read_text()
    assert table == markdown(res) and "| figure | geosentry | reference | ratio |" in table


def test_station_codes_fit_seed_headers_beyond_10000() -> None:
    """Loads of more than 10,000 stations keep 5-character SEED station codes (decimal numbering
    overflowed the header field and corrupted the records)."""
    import pymseed

    from bench.data import build_load, station_code

    assert len({station_code(i) for i in range(0, 36 ** 4, 997)}) == len(range(0, 36 ** 4, 997))
    load = build_load(2, 10.0, first=10_000)
    got = {next(iter(pymseed.MS3Record.from_buffer(p, unpack_data=False))).sourceid
           for p in load.payloads}
    assert {s.split("_")[1] for s in got} == {station_code(10_000), station_code(10_001)}


def test_kafka_ack_latency_at_every_latency_n(kafka_bootstrap: str) -> None:
    """``--kafka``: alerts go to the real broker (acks=all) and the latency to their
    acknowledgement is reported at each N the sink latency is, with its own table row."""
    from dataclasses import replace

    from bench.common import PLANS
    from bench.latency import bench_kafka
    from bench.report import latency_rows

    # 8 s of paced data after the 29 s prefill: the templates' first P onsets (30-35 s) alert
    plan = replace(PLANS["smoke"], latency_ns=(2, 3), latency_paced_s=8.0,
                   latency_overload_paced_s=8.0)
    out = bench_kafka(plan, kafka_bootstrap)
    assert out["bootstrap"] == kafka_bootstrap and set(out["by_stations"]) == {"2", "3"}
    for n, kl in out["by_stations"].items():
        assert kl["stations"] == int(n) and "kafka" in kl["sink"] and kl["alerts_per_run"][0] > 0
        for key in ("acked_p50_ms", "acked_p99_ms", "p99_ms"):
            assert _is_stat(kl[key]), (n, key)
        # acknowledged only after being handed over: the ack latency cannot be the smaller
        assert kl["acked_p99_ms"]["median"] >= kl["p99_ms"]["median"]
    rows = [r[0] for r in latency_rows({"latency": {}, "latency_kafka": out})]
    assert [r.split(",")[1].strip() for r in rows] == ["N = 2", "N = 3"]


def test_silenced_load_drops_only_the_silent_stations_later_records() -> None:
    from bench.data import build_load

    load = build_load(4, 20.0)
    cut = load.silenced(keep=1, after_s=10.0)
    late = load.rel_end_s > 10.0
    assert set(load.station_of[late]) == {0, 1, 2, 3}
    assert set(cut.station_of[cut.rel_end_s > 10.0]) == {0}
    assert (cut.rel_end_s <= 10.0).sum() == (~late).sum()  # nothing before the drop is lost
    assert 0 < cut.samples < load.samples and len(cut.payloads) == len(cut.rel_end_s)
