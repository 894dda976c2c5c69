"""Deployment files, each checked by a tool that runs here: the Kubernetes manifests against the
API schemas kubernetes-validate ships (offline, strict), the compose file by `docker-compose
config`, the systemd units by `systemd-analyze verify`, the Prometheus configs by `promtool`;
and in each, the geosentry command line parses and the geosentry TOML loads."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from opshelpers import ROOT

from geosentry.stream.cli import _parser
from geosentry.stream.config import load_config_dict
from geosentry.stream.metrics import Metrics

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"


def _parses(args: list[str]) -> None:
    """The command line is one `geosentry` accepts (argparse exits 2 otherwise)."""
    ns = _parser().parse_args(args)
    assert ns.command in ("run", "replay")


def _loads(toml_text: str) -> None:
    cfg = load_config_dict(tomllib.loads(toml_text))
    assert cfg.sources and cfg.sinks


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="kubernetes-validate is in the test extra (pip install -e .[test])")
    docs = _k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"Deployment", "ConfigMap", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget"} <= kinds
    for name, doc in docs:
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}: {exc}")
    # the validator bites: a misspelt field and a wrong type are refused
    deploy = next(d for _, d in docs if d["kind"] == "Deployment")
    bad = copy.deepcopy(deploy)
    bad["spec"]["replica"] = 3
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)
    bad = copy.deepcopy(deploy)
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)
    # what the manifests say to geosentry is valid for geosentry
    cm = next(d for _, d in docs if d["kind"] == "ConfigMap" and "geosentry.toml" in d["data"])
    _loads(cm["data"]["geosentry.toml"])
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    _parses(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(ports["metrics"]) in container["args"] and str(ports["console"]) in container["args"]
    # the HPA scales on a metric the service exports, within the topic's partitions
    hpa = next(d for _, d in docs if d["kind"] == "HorizontalPodAutoscaler")
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    assert metric in {m.name for m in Metrics().registry.collect()}
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]


def test_compose_file(tmp_path: Path) -> None:
    compose = DEPLOY / "compose" / "compose.yaml"
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (scripts/setup.sh installs Debian's as root)")
    done = subprocess.run([tool, "-f", str(compose), "config"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    services = resolved["services"]
    assert {"kafka", "geosentry", "prometheus", "grafana"} <= set(services)
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert not any("zookeeper" in str(s).lower() for s in services.values())
    # every file mounted from the repository exists
    raw = yaml.safe_load(compose.read_text())
    for name, svc in raw["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (compose.parent / src).exists(), f"{name}: {src} does not exist"
    _parses(services["geosentry"]["command"])
    _parses(services["replay"]["command"])
    _loads((compose.parent / "geosentry.toml").read_text())
    dash = "/var/lib/grafana/dashboards/geosentry-dashboard.json"
    assert any(dash in str(v) for v in raw["services"]["grafana"]["volumes"])
    # the compose Prometheus loads the shipped rules (promtool, with the path as mounted here)
    promtool = shutil.which("promtool")
    if promtool is not None:
        cfg = (compose.parent / "prometheus.yml").read_text().replace(
            "/etc/prometheus/geosentry-rules.yml", str(DEPLOY / "prometheus" / "geosentry-rules.yml"))
        (tmp_path / "prometheus.yml").write_text(cfg)
        done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_compose_config_refuses_a_broken_file(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (scripts/setup.sh installs Debian's as root)")
    raw = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    raw["services"]["geosentry"]["depends_on"]["topics"]["condition"] = "whenever"
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(raw))
    done = subprocess.run([tool, "-f", str(tmp_path / "compose.yaml"), "config", "-q"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0


def test_systemd_units_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    geosentry = Path(sys.executable).with_name("geosentry")
    assert geosentry.exists(), f"{geosentry}: the venv's entry point (pip install -e .)"
    for unit in ("geosentry.service", "geosentry@.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        exec_start = re.search(r"^ExecStart=(\S+) (.*)$", text, re.M)
        assert exec_start is not None
        args = exec_start.group(2).replace("%i", "9108").split()
        _parses(args)
        # the units name the install path of the README; verify against this venv's entry point
        (tmp_path / unit).write_text(text.replace(exec_start.group(1), str(geosentry)))
    for name in ("geosentry.service", "geosentry@9108.service"):
        done = subprocess.run([tool, "verify", str(tmp_path / name)], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    # it bites: an unknown directive is reported
    (tmp_path / "bad.service").write_text(
        (tmp_path / "geosentry.service").read_text().replace("[Service]", "[Service]\nRestartt=no"))
    done = subprocess.run([tool, "verify", str(tmp_path / "bad.service")], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert "Restartt" in done.stderr


def test_container_image_definition() -> None:
    """No container runtime daemon here: the Dockerfile is checked as text (what it copies
    exists, unprivileged numeric user, its command parses); `docker build` runs in CI that has one."""
    text = (DEPLOY / "container" / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    for ln in lines:
        if ln.startswith("COPY "):
            for src in ln.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    assert "USER 10001:10001" in lines
    cmd = next(ln for ln in lines if ln.startswith("CMD "))
    _parses(yaml.safe_load(cmd[4:]))
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in lines  # the CUDA variant
