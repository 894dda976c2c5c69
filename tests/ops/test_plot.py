"""`geosentry plot`: PNGs of an archive with the alerts of a run (`geosentry run` on the same
data) drawn on them; no two texts of a figure overlap; bad input is one line and exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opshelpers import ROOT, demo_archive

matplotlib = pytest.importorskip("matplotlib", reason='matplotlib is the [plot] extra: pip install "geosentry[plot]"')

from geosentry.stream import plot_figures  # noqa: E402
from geosentry.stream.plot import read_alerts, read_archive  # noqa: E402

STALTA_ONLY = """
[[detectors]]
name = "stalta"
type = "stalta"
channels = "seismic"
bandpass_hz = [1.0, 20.0]
"""


def _geosentry(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geosentry.stream.cli", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def _no_overlapping_text(fig: Any) -> int:
    """Every visible, non-empty text of the figure, pairwise: no two bounding boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = list(fig.texts) + [t for leg in fig.legends for t in leg.get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):  # tick labels drawn: ticks inside the view only
            lo, hi = sorted(axis.get_view_interval())
            eps = (hi - lo) * 1e-9
            texts += [t.label1 for t in axis.get_major_ticks()
                      if lo - eps <= t.get_loc() <= hi + eps and t.label1.get_visible()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts
             if t.get_visible() and t.get_text().strip()]
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            assert not ba.overlaps(bb), f"texts overlap: {a!r} and {b!r}"
    return len(boxes)


def _has_colour(png: Path, hex_colour: str) -> bool:
    from matplotlib import image

    img = image.imread(str(png))[:, :, :3]
    want = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(img - want).max(axis=2) < 0.02).any())


def test_seismic_plot_with_the_alerts_of_a_run(tmp_path: Path) -> None:
    archive = demo_archive(tmp_path / "archive")
    (tmp_path / "stalta.toml").write_text(STALTA_ONLY)
    alerts = tmp_path / "alerts.jsonl"
    run = _geosentry("run", "--source", str(archive), "--config", str(tmp_path / "stalta.toml"),
                     "--sink", f"jsonl:{alerts}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    out = tmp_path / "waveforms.png"
    done = _geosentry("plot", str(archive), "--alerts", str(alerts), "--out", str(out),
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    n_alerts = len(alerts.read_text().splitlines())
    assert f"4 traces, {n_alerts} of {n_alerts} alerts on them" in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _has_colour(out, plot_figures.STYLE["network"]["color"])  # network detections drawn
    assert _has_colour(out, plot_figures.STYLE["detection"]["color"])
    # the same figure in-process: its texts do not overlap
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = plot_figures.seismic(plt, read_archive(archive), read_alerts(alerts), None, 24)
    assert _no_overlapping_text(fig) > 10
    plt.close(fig)


@pytest.mark.shared
def test_geomag_plot_with_ssc_and_artefacts(shared_data: Callable[[str], Path],
                                            tmp_path: Path) -> None:
    text = shared_data("geomag/usgs-geomag-algorithms/adjusted/BOU201601vmin.min").read_text(
        errors="replace").splitlines()
    header = [ln for ln in text if not ln[:4].isdigit()]
    days = [ln for ln in text if ln.startswith(("2016-01-18", "2016-01-19"))]
    for k, ln in enumerate(days):  # one +250 nT spike in H: an artefact to flag
        if ln.startswith("2016-01-18 06:00"):
            parts = ln.split()
            parts[3] = f"{float(parts[3]) + 250:.2f}"
            days[k] = " ".join(parts[:3]) + "     " + "  ".join(f"{float(x):8.2f}" for x in parts[3:7])
    data = tmp_path / "bou.min"
    data.write_text("\n".join(header + days) + "\n")
    alerts = tmp_path / "alerts.jsonl"
    run = _geosentry("run", "--config", str(ROOT / "deploy" / "geomag.toml"), "--source",
                     str(data), "--sink", f"jsonl:{alerts}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    marks = read_alerts(alerts)
    kinds = {m.kind for m in marks}
    assert {"ssc", "artefact"} <= kinds, kinds
    out = tmp_path / "geomag.png"
    done = _geosentry("plot", str(data), "--alerts", str(alerts), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _has_colour(out, plot_figures.STYLE["ssc"]["color"])
    assert _has_colour(out, plot_figures.STYLE["artefact"]["color"])
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = plot_figures.geomag(plt, read_archive(data), marks, None)
    assert {ax.get_ylabel() for ax in fig.axes} >= {"H (nT)", "E (nT)", "Z (nT)", "dB/dt\n(nT/min)"}
    assert _no_overlapping_text(fig) > 10
    plt.close(fig)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    archive = demo_archive(tmp_path / "archive")
    bad = tmp_path / "alerts.jsonl"
    bad.write_text('{"kind": "pick"}\nnot json\n')
    done = _geosentry("plot", str(archive), "--alerts", str(bad), "--out",
                      str(tmp_path / "x.png"), cwd=tmp_path)
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and f"{bad}:1: not a geosentry alert" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    done = _geosentry("plot", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png"),
                      cwd=tmp_path)
    assert done.returncode == 2 and "not found" in done.stderr
    done = _geosentry("plot", str(archive), "--out", str(tmp_path / "no" / "x.png"), cwd=tmp_path)
    assert done.returncode == 2 and "folder not found for --out" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_parser_is_registered() -> None:
    from geosentry.stream.cli import _parser

    ns = _parser().parse_args(["plot", "a", "--out", "b.png"])
    assert isinstance(ns, argparse.Namespace) and ns.kind == "auto"


@pytest.mark.shared
def test_event_origin_times_on_the_waveforms(shared_data: Callable[[str], Path],
                                             tmp_path: Path) -> None:
    """The Iceland swarm through the events stage: located events' origin times are drawn on
    every panel beside the picks."""
    data = shared_data("events/iceland-2014-dike")
    waveforms = tmp_path / "waveforms"
    waveforms.mkdir()
    for f in sorted((data / "events").glob("*.m"))[:6]:  # the first events (00:01-00:03)
        (waveforms / f.name).symlink_to(f)
    config = tmp_path / "iceland.toml"
    config.write_text((ROOT / "deploy" / "events" / "iceland.toml").read_text().replace(
        "../shared/data/events/iceland-2014-dike", str(data)))
    alerts = tmp_path / "alerts.jsonl"
    run = _geosentry("run", "--config", str(config), "--source", str(waveforms), "--sink",
                     f"jsonl:{alerts}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    marks = read_alerts(alerts)
    assert any(m.kind == "event" for m in marks) and any(m.kind.startswith("pick") for m in marks)
    out = tmp_path / "event.png"
    done = _geosentry("plot", str(waveforms), "--alerts", str(alerts), "--out", str(out),
                      "--stations", "Z7.FLUR,KVER", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6 traces" in done.stdout
    assert _has_colour(out, plot_figures.STYLE["event"]["color"])
    assert _has_colour(out, plot_figures.STYLE["pick-P"]["color"])
