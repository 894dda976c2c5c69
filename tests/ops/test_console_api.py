"""The console's JSON API and live stream over real HTTP (no browser): bounded state, the map
from an inventory with located events, basic auth and TLS shared with /metrics, errors, and
`geosentry run --http-port` on a port in use (one line, exit 2)."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from opshelpers import free_port

from geosentry.stream.config import load_config_dict
from geosentry.stream.console import ConsoleConfig, attach
from geosentry.stream.console.server import serve_console
from geosentry.stream.console.state import BIN_COUNT, OpsState
from geosentry.stream.decode.mseed import decode_payload
from geosentry.stream.events.stations import Inventory, Station
from geosentry.stream.metrics import Metrics
from geosentry.stream.records import NS_PER_S, Alert, AlertKind, ModelRef
from geosentry.stream.testing import interleaved


def _alert(kind: AlertKind, station: str, t_s: float, **details: Any) -> Alert:
    return Alert(kind=kind, network="BW" if station != "*" else "", station=station,
                 location="", channel="SHZ", time_ns=int(t_s * NS_PER_S), score=0.9,
                 threshold=0.5, model=ModelRef("m", "1", "0" * 64), newest_arrival_ns=0,
                 phase="P" if kind is AlertKind.PICK else None, details=dict(details))


def _event(t_s: float, lat: float, lon: float) -> Alert:
    return _alert(AlertKind.EVENT, "*", t_s, event_id=f"ev{t_s:.0f}", update=0, deleted=False,
                  origin={"time": "2010-05-27T16:24:30Z", "latitude": lat, "longitude": lon,
                          "depth_km": 3.0},
                  magnitudes=[{"type": "ML", "value": 1.2, "station_count": 3}])


def _records() -> list[Any]:
    now = time.time_ns()  # arrived just now: the stations are live
    return [r for p in interleaved() for r in decode_payload(p, now)]


def test_state_is_bounded_and_the_map_places_stations_and_events() -> None:
    inv = Inventory([Station("BW", "UH1", 48.08, 11.64), Station("BW", "UH2", 48.04, 11.65),
                     Station("BW", "UH9", 48.00, 11.70)])
    state = OpsState(ConsoleConfig(waveform_s=60, max_alerts=5), inventory=inv)
    for rec in _records():
        state.record(rec)
    rows = {r["key"]: r for r in state.station_rows()}
    assert set(rows) == {"BW.UH1", "BW.UH2", "BW.UH3", "BW.UH4"}
    assert rows["BW.UH1"]["rate_hz"] == [50.0] and rows["BW.UH1"]["records"] > 10
    wave = state.waveform("BW.UH1")
    assert wave is not None and 0 < len(wave["traces"]["SHZ"]["t"]) <= BIN_COUNT + 1
    assert wave["bin_s"] == pytest.approx(0.1)
    t0 = 1274977473.0
    state.alerts([_alert(AlertKind.PICK, "UH1", t0 + i) for i in range(8)] + [_event(t0, 48.05, 11.66)])
    picks = state.latest_alerts(AlertKind.PICK, 100)
    assert len(picks) == 5 and picks[0]["time"] > picks[-1]["time"]  # newest first, bounded
    assert len(state.by_id) == 6  # evicted picks are gone from the detail index too
    assert rows["BW.UH1"]["alerts"] == 0 and state.station_rows()[0]["alerts"] == 8
    m = state.map_view()
    placed = {s["key"]: s["state"] for s in m["stations"]}
    assert placed == {"BW.UH1": "ok", "BW.UH2": "ok", "BW.UH9": "no data"}
    assert m["unplaced"] == ["BW.UH3", "BW.UH4"]
    assert m["events"][0]["lat"] == 48.05 and m["events"][0]["magnitude"] == 1.2
    # an update moves the event (one point per event); a deletion removes it
    moved = _event(t0, 48.06, 11.67)
    moved.details["update"] = 1
    state.alerts([moved])
    assert [(e["lat"], e["event_id"]) for e in state.map_view()["events"]] == [(48.06, f"ev{t0:.0f}")]
    gone = _event(t0, 48.06, 11.67)
    gone.details.update(update=2, deleted=True)
    state.alerts([gone])
    assert state.map_view()["events"] == []


def _get(url: str, auth: str | None = None, ctx: ssl.SSLContext | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            body = r.read()
            ctype = r.headers["Content-Type"]
            return r.status, json.loads(body) if "json" in ctype else body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_api_live_stream_and_errors() -> None:
    state = OpsState(ConsoleConfig())
    server = serve_console(state, 0, "127.0.0.1", Metrics().metrics_auth_failures)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for rec in _records()[:40]:
            state.record(rec)
        status, page = _get(base + "/")
        assert status == 200 and b"<table id=\"stations\">" in page
        assert _get(base + "/static/app.js")[0] == 200
        status, body = _get(base + "/api/stations")
        assert status == 200 and len(body["stations"]) == 4 and body["summary"]["records"] == 40
        assert _get(base + "/api/alerts?kind=nope")[0] == 400
        assert _get(base + "/api/alerts?limit=x")[0] == 400
        assert _get(base + "/api/alerts/unknown")[0] == 404
        assert _get(base + "/api/waveform?station=XX.NONE")[0] == 404
        assert _get(base + "/static/../../etc/passwd")[0] == 404
        # the live stream: an alert handed to the state reaches a connected client
        stream = urllib.request.urlopen(base + "/api/stream", timeout=10)
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = stream.readline()
        assert first.startswith(b"retry:")
        pick = _alert(AlertKind.PICK, "UH1", 1274977473.2)
        state.alerts([pick])
        events: list[tuple[str, Any]] = []
        name = ""
        while not any(n == "alert" for n, _ in events):
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
        got = next(d for n, d in events if n == "alert")
        assert got["id"] == pick.id and got["kind"] == "pick"
        assert _get(base + f"/api/alerts/{pick.id}")[1]["phase"] == "P"
        stream.close()
    finally:
        server.stop()


def test_console_shares_the_metrics_auth_and_tls(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key.chmod(0o600)
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    pw.chmod(0o600)
    port = free_port()
    cfg = load_config_dict({"metrics_user": "ops", "metrics_password_file": str(pw),
                            "metrics_tls_cert": str(cert), "metrics_tls_key": str(key),
                            "console": {"http_port": port}})
    metrics = Metrics()
    console = attach(cfg, metrics, [])
    assert console is not None and console.port == port
    ctx = ssl.create_default_context(cafile=str(cert))
    base = f"https://127.0.0.1:{port}"
    try:
        assert _get(base + "/api/summary", ctx=ctx)[0] == 401
        assert _get(base + "/api/summary", "ops:wrong", ctx=ctx)[0] == 401
        status, body = _get(base + "/api/summary", "ops:s3cret-pw", ctx=ctx)
        assert status == 200 and body["records"] == 0
        assert metrics.value("geosentry_metrics_auth_failures_total") == 2
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary", timeout=5)
    finally:
        console.stop()


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "x.mseed").write_bytes(interleaved()[0])
        done = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", "run", "--source",
                               str(tmp_path / "x.mseed"), "--http-port", str(port)],
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [ln for ln in done.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "'--http-port': cannot serve the console on 127.0.0.1:" in errors[0]
    assert "Traceback" not in done.stderr
    bad = subprocess.run([sys.executable, "-m", "geosentry.stream.cli", "run", "--source",
                          str(tmp_path / "x.mseed"), "--http-port", "70000"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "'--http-port': must be in [0, 65535]" in bad.stderr


def test_waveform_bins_match_a_brute_force_binning() -> None:
    from geosentry.stream.console.state import Waveform

    bin_ns = NS_PER_S // 2
    wave, want = Waveform(bin_ns), {}
    for rec in _records():
        if rec.station != "UH1":
            continue
        wave.add(rec.start_ns, rec.sampling_rate_hz, rec.data)
        for i, v in enumerate(rec.data.tolist()):
            b = (rec.start_ns + round(i * NS_PER_S / rec.sampling_rate_hz)) // bin_ns
            lo, hi = want.get(b, (v, v))
            want[b] = (min(lo, v), max(hi, v))
    got = wave.series()
    keys = sorted(want)[-BIN_COUNT:]
    assert got["t_s"] == [k * bin_ns / NS_PER_S for k in keys]
    assert list(zip(got["min"], got["max"])) == [want[k] for k in keys]
    # a record longer than the ring keeps its newest bins
    import numpy as np

    long = Waveform(NS_PER_S)
    long.add(0, 1.0, np.arange(5000, dtype=np.int32))
    tail = long.series()
    assert len(tail["t_s"]) >= BIN_COUNT - 1 and tail["max"][-1] == 4999


def test_an_exposed_console_without_credentials_is_warned_about(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    port = free_port()
    with caplog.at_level(logging.WARNING, logger="geosentry.stream.console"):
        console = attach(load_config_dict({"console": {"http_port": port,
                                                      "http_host": "0.0.0.0"}}), Metrics(), [])
    assert console is not None
    try:
        lines = [r.getMessage() for r in caplog.records if "without credentials" in r.message]
        assert len(lines) == 1 and "0.0.0.0" in lines[0]
        assert _get(f"http://127.0.0.1:{port}/api/summary")[0] == 200
    finally:
        console.stop()
