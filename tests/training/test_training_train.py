"""Training loop resume and the CLI, on the synthetic fallback (fast, no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from geosentry.stream.inference.contract import ModelContract
from geosentry.training.cli import main
from geosentry.training.train.loop import FitConfig, fit
from geosentry.training.train.tasks import build_task


def _weights(task) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {k: v.clone() for k, v in task.modules()["model"].state_dict().items()}


class _Interrupted(Exception):
    pass


def test_resume_after_interruption_continues_exactly(no_shared: Path, tmp_path: Path) -> None:
    """Kill a 2-epoch run mid-epoch 2, resume it: same weights as an uninterrupted run."""
    full = build_task("picker", seed=3, quick=True)
    fit(full, FitConfig(epochs=2, steps_per_epoch=3, seed=3, out_dir=tmp_path / "a", log_every=99))
    part = build_task("picker", seed=3, quick=True)
    step = part.train_step
    calls = {"n": 0}

    def dying_step(rng, progress):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:  # second step of epoch 2
            raise _Interrupted
        return step(rng, progress)

    part.train_step = dying_step
    try:
        fit(part, FitConfig(epochs=2, steps_per_epoch=3, seed=3, out_dir=tmp_path / "b", log_every=99))
    except _Interrupted:
        pass
    resumed = build_task("picker", seed=3, quick=True)
    hist = fit(resumed, FitConfig(epochs=2, steps_per_epoch=3, seed=3, out_dir=tmp_path / "b",
                                  resume=True, log_every=99))
    assert [h["epoch"] for h in hist] == [1, 2]
    a, b = _weights(full), _weights(resumed)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_cli_train_evaluate_export(no_shared: Path, tmp_path: Path) -> None:
    run, models = tmp_path / "run", tmp_path / "models"
    assert main(["train", "detector", "--quick", "--epochs", "1", "--steps-per-epoch", "2",
                 "--out", str(run), "--export-dir", str(models)]) == 0
    c = ModelContract.load(models / "detector.json")
    assert c.kind == "detector" and c.labels == ("event",) and c.output_step_samples == 10
    assert c.training["data_source"] == "fallback:obspy+synthetic"
    assert "event" in c.metrics
    assert main(["evaluate", "detector", "--quick", "--run", str(run), "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev" / "detector.json").read_text())["threshold"] >= 0
    assert (tmp_path / "ev" / "detector_scores.png").exists()
    assert (tmp_path / "ev" / "detector_pr_threshold.png").exists()
    assert main(["export", "tiny-picker", "--out", str(models)]) == 0
    assert ModelContract.load(models / "tiny-picker.json").window_samples == 400


def test_cli_quick_all_tasks_export(no_shared: Path, tmp_path: Path) -> None:
    for task in ("anomaly", "anomaly-geomag", "gan"):
        assert main(["train", task, "--quick", "--epochs", "1", "--steps-per-epoch", "1",
                     "--out", str(tmp_path / task), "--export-dir", str(tmp_path / "m")]) == 0
    assert (tmp_path / "anomaly" / "anomaly_scores.png").stat().st_size > 1000  # PNG figure
    geo = ModelContract.load(tmp_path / "m" / "anomaly-geomag.json")
    assert geo.domain == "geomagnetic" and geo.components == ("H", "E", "Z")
    assert "anomaly" in geo.thresholds and geo.normalisation.method == "none"
    assert ModelContract.load(tmp_path / "m" / "generator.json").kind == "generator"


def test_gan_augmentation_command_compares_arms(no_shared: Path, tmp_path: Path) -> None:
    """``evaluate gan-augmentation`` trains every arm with the same seed/budget and merges the
    arms of separate invocations into one report (quick models, synthetic fallback)."""
    models = tmp_path / "m"
    assert main(["train", "gan", "--quick", "--epochs", "1", "--steps-per-epoch", "1",
                 "--out", str(tmp_path / "gan"), "--export-dir", str(models)]) == 0
    assert main(["export", "tiny-picker", "--out", str(models)]) == 0
    out = tmp_path / "ga"
    common = ["evaluate", "gan-augmentation", "--quick", "--epochs", "1", "--steps-per-epoch", "1",
              "--out", str(out), "--generator", str(models / "generator.pt"),
              "--picker", str(models / "tiny-picker.pt")]
    assert main(common + ["--arms", "baseline"]) == 0
    assert main(common + ["--arms", "gan-noise,gan-full"]) == 0
    report = json.loads((out / "gan_augmentation.json").read_text())
    assert list(report["arms"]) == ["baseline", "gan-noise", "gan-full"]
    assert report["arms"]["baseline"]["P_f1_0.5s_minus_baseline"] == 0.0
    assert "| gan-full |" in (out / "gan_augmentation.md").read_text()


def test_quick_training_never_replaces_a_shipped_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # `geosentry train picker --quick` used to overwrite stream/models/picker.pt silently
    import hashlib

    from geosentry.stream.models import MODELS_DIR
    from geosentry.training.cli import main

    shipped = MODELS_DIR / "picker.pt"
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert main(["train", "picker", "--quick", "--epochs", "1", "--steps-per-epoch", "1",
                 "--out", str(tmp_path / "run"), "--export-dir", str(MODELS_DIR)]) == 2
    assert main(["export", "tiny-picker", "--out", str(MODELS_DIR)]) == 2
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
    # without --export-dir the export lands in the run dir
    assert main(["train", "picker", "--quick", "--epochs", "1", "--steps-per-epoch", "1",
                 "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "picker.pt").exists()
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
