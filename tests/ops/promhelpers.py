"""A real Prometheus for the tests (Debian's `prometheus` package): started on a free port with
its own storage dir, a 1 s scrape and rule evaluation interval, stopped at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from opshelpers import ROOT, free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
RULES = ROOT / "deploy" / "prometheus" / "geosentry-rules.yml"
#: the test copy of the rules: what each shipped duration or threshold becomes, so the rules
#: fire within seconds (every key must occur in the shipped rules; the test says so when not)
FAST = {"for": "1s", "[5m]": "[20s]", "[2m]": "[30s]", "[10m]": "[30s]",
        "geosentry_station_last_arrival_timestamp_seconds > 300":
            "geosentry_station_last_arrival_timestamp_seconds > 6",
        "(geosentry_consumer_lag) > 10000": "(geosentry_consumer_lag) > 300"}


def fast_rules(dest: Path) -> Path:
    doc = yaml.safe_load(RULES.read_text())
    text_before = RULES.read_text()
    for key in FAST:
        assert key == "for" or key in text_before, f"{key!r} is no longer in {RULES}"
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FAST["for"]
            for old, new in FAST.items():
                if old != "for":
                    rule["expr"] = rule["expr"].replace(old, new)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


class Prometheus:
    def __init__(self, tmp: Path, targets: list[str], rules: Path | None) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "scrape_configs": [{"job_name": "geosentry",
                                   "static_configs": [{"targets": targets}]}]}
        if rules is not None:
            cfg["rule_files"] = [str(rules)]
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        raise AssertionError(f"prometheus did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["state"] == "firing"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        return list(self.api(f"query?query={quote(expr)}")["result"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
