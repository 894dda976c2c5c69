"""The Grafana dashboard (deploy/grafana/) asks only for metrics the service exports: every
metric name in every panel query is checked against a live /metrics scrape of `geosentry run`,
and (with Debian's prometheus installed) every query runs on a real Prometheus scraping it."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from opshelpers import ROOT, Service, demo_archive, free_port
from promhelpers import PROMETHEUS, Prometheus

DASHBOARD = ROOT / "deploy" / "grafana" / "geosentry-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",), "summary": ("_sum", "_count", "")}
VARIABLES = {"$__rate_interval": "30s", '"$instance"': '".*"'}


def queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    out += [("variable " + v["name"], v["query"]["query"]) for v in dash["templating"]["list"]
            if isinstance(v.get("query"), dict)]
    return out


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bgeosentry_[a-z0-9_]+", expr))


def test_every_dashboard_metric_is_exported(tmp_path: Path) -> None:
    assert len(queries()) >= 15
    port = free_port()
    svc = Service(tmp_path, "--source", str(demo_archive(tmp_path / "archive")), "--speed", "6",
                  "--metrics-port", str(port), "--sink", f"jsonl:{tmp_path / 'alerts.jsonl'}")
    prom = None
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline and "geosentry_alerts_total{" not in text:
            time.sleep(0.5)
            try:
                text = urllib.request.urlopen(url, timeout=5).read().decode()
            except OSError:
                assert svc.proc.poll() is None, svc.log()
        exported: dict[str, str] = {}
        for fam in text_string_to_metric_families(text):
            for suffix in SUFFIXES.get(fam.type, ("",)):
                exported[fam.name + suffix] = fam.type
        missing = {(title, name) for title, expr in queries() for name in metric_names(expr)
                   if name not in exported}
        assert not missing, f"dashboard queries name metrics the service does not export: {missing}"
        if PROMETHEUS is not None:  # every query is valid PromQL and the core panels have data
            prom = Prometheus(tmp_path, [f"127.0.0.1:{port}"], None)
            deadline = time.monotonic() + 60  # a few scrapes, so rates have two samples
            while time.monotonic() < deadline and not prom.query(
                    'count_over_time(up{job="geosentry"}[1m]) >= 4 and up == 1'):
                time.sleep(0.5)
            empty = []
            for title, expr in queries():
                if expr.startswith("label_values"):
                    continue
                for old, new in VARIABLES.items():
                    expr = expr.replace(old, new)
                result = prom.query(expr)  # raises on a PromQL error
                if not result:
                    empty.append(title)
            for core in ("Records in (per second)", "Stations: seconds since their last record",
                         "Alerts out by kind (per minute)", "Loaded models"):
                assert core not in empty, f"{core}: no data from a running service"
    finally:
        if prom is not None:
            prom.stop()
        svc.stop()
