"""The wheel installs one top-level import name, ``geosentry``: it leaves another project's
``stream`` (or ``training``) package alone, ships the service's models and schema but not the
GAN generator (the service cannot run it), and works from any directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")  # a copy: the build writes build/ and egg-info
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("src", "stream", "training"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [whl] = out.glob("geosentry-*.whl")
    return whl


def test_one_top_level_name_and_the_right_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"geosentry"}
    assert "geosentry/stream/models/picker.pt" in names
    assert "geosentry/stream/models/picker.json" in names
    assert "geosentry/stream/schemas/alert.v1.json" in names
    assert not [n for n in names if "generator" in n.rsplit("/", 1)[-1]]
    assert "geosentry/training/cli.py" in names


def test_installs_beside_another_stream_package(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    (target / "stream").mkdir(parents=True)
    (target / "stream" / "__init__.py").write_text("OWNER = 'another project'\n")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    check = ("import stream, geosentry, geosentry.stream.pipeline, geosentry.training.cli;"
             "from geosentry.stream.models import shipped;"
             "assert stream.OWNER == 'another project';"
             f"assert geosentry.stream.pipeline.__file__.startswith({str(target)!r});"
             "assert any(m['name'] == 'picker' for m in shipped());"
             "print(geosentry.__version__)")
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == __import__("geosentry").__version__
