"""Command line for training, evaluating and exporting models.

``geosentry train|evaluate|export ...`` (the service CLI) calls :func:`main` with argv minus the
program name; ``python -m geosentry.training ...`` does the same.

    train {picker,detector,anomaly,anomaly-geomag,gan} [--epochs N] [--steps-per-epoch K]
          [--out DIR] [--resume] [--seed S] [--export-dir DIR | --no-export] [--quick]
    train picker --init MODEL --data DIR --out DIR [--force] ...  (training.train.finetune)
    evaluate TASK [--run DIR] --out DIR [--seed S]
    evaluate geomag [--out DIR] [--per-file N] [--jobs J] (training.evaluate.geomag)
    evaluate gan-augmentation [--out DIR] [--epochs N] [--steps-per-epoch K] [--arms A,B]
                                                          (training.evaluate.gan_augmentation)
    evaluate picker-compare [--out DIR] [--bootstrap N] [--no-seisbench]
                                                          (training.evaluate.compare)
    evaluate picker-kfold|detector-kfold [--folds K] [--epochs N] [--steps-per-epoch K] [--out DIR]
                                                          (training.evaluate.kfold)
    evaluate picker-lono [--out DIR] [--networks NC,PG] [--epochs N] [--steps-per-epoch K]
                                                          (training.evaluate.lono)
    evaluate picker-lono --through-run [--out DIR] [--networks NC,PG] [--model PT]
    evaluate picker-lono --through-run --threshold-sweep [--out DIR] [--with DIR2]
                                                          (training.evaluate.lono_run)
    evaluate picker-lono --refine-sweep [--out DIR]       (training.evaluate.lono_refine)
    evaluate seisbench-parity [--model CLASS --weights PATH --version V] [--through-run]
                                                          (training.evaluate.seisbench_parity)
    evaluate precision [--out DIR] [--write-contracts]    (training.evaluate.precision)
    export TASK [--run DIR] [--out DIR] [--seed S]        (TASK may also be tiny-picker)
    export picker --from-model PT [--out DIR]            (same weights, current model code)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch

from geosentry.training.paths import MODELS_DIR, runs_dir

TASK_NAMES = ("picker", "detector", "anomaly", "anomaly-geomag", "gan")


@dataclass(frozen=True)
class TaskSpec:
    """Defaults for one task and how to build it (``quick`` = tiny sizes for tests)."""

    build: Callable[..., Any]
    epochs: int
    steps_per_epoch: int


def _build(name: str) -> Callable[..., Any]:
    def build(seed: int, quick: bool, recipe: str = "baseline") -> Any:
        from geosentry.training.train import tasks  # lazy: keeps `--help` and the service CLI fast

        return tasks.build_task(name, seed, quick, recipe)

    return build


SPECS: dict[str, TaskSpec] = {
    "picker": TaskSpec(_build("picker"), 10, 200),
    "detector": TaskSpec(_build("detector"), 10, 250),
    "anomaly": TaskSpec(_build("anomaly"), 8, 300),
    "anomaly-geomag": TaskSpec(_build("anomaly-geomag"), 8, 300),
    "gan": TaskSpec(_build("gan"), 10, 400),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geosentry", description="geosentry model training")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model, evaluate it, export it")
    t.add_argument("task", choices=TASK_NAMES)
    t.add_argument("--epochs", type=int)
    t.add_argument("--steps-per-epoch", type=int)
    t.add_argument("--out", type=Path, help="run dir for checkpoints/history (default runs/TASK)")
    t.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--export-dir", type=Path,
                   help="where the exported .pt/.json go (default: the run dir; the shipped "
                        "models' folder only with --overwrite)")
    t.add_argument("--no-export", action="store_true")
    t.add_argument("--overwrite", action="store_true",
                   help="allow replacing a shipped model (stream/models)")
    t.add_argument("--quick", action="store_true", help="tiny model and data (smoke test)")
    from geosentry.training.train.tasks import PICKER_RECIPES, recipes_help  # no torch: cheap

    t.add_argument("--recipe", choices=tuple(PICKER_RECIPES), default="baseline",
                   help=recipes_help("picker only: "))
    e = sub.add_parser("evaluate", help="evaluate a trained run (held-out stations)")
    e.add_argument("task", choices=TASK_NAMES)
    e.add_argument("--run", type=Path, help="run dir with checkpoint.pt (default runs/TASK)")
    e.add_argument("--out", type=Path, required=True, help="where to write TASK.json / TASK.md")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--quick", action="store_true")
    x = sub.add_parser("export", help="export a trained run (or tiny-picker) as TorchScript + contract")
    x.add_argument("task", choices=TASK_NAMES + ("tiny-picker",))
    x.add_argument("--run", type=Path)
    x.add_argument("--from-model", type=Path,
                   help="picker only: re-export this TorchScript file's weights under the current "
                        "model code (contract carried over; training.export.reexport)")
    x.add_argument("--out", type=Path, help="where the .pt/.json go (default: the run dir, or "
                                             "runs/export; stream/models only with --overwrite)")
    x.add_argument("--overwrite", action="store_true",
                   help="allow replacing a shipped model (stream/models)")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--quick", action="store_true")
    x.add_argument("--window-samples", type=int, default=400, help="tiny-picker only")
    x.add_argument("--stride-samples", type=int, default=200, help="tiny-picker only")
    return p


class ShippedModelError(Exception):
    """An export would replace a model that ships with the package, and nobody asked."""


def _export_dir(target: Path, overwrite: bool) -> Path:
    """``target``, unless it is the shipped models' folder and ``--overwrite`` was not given:
    a smoke run (``--quick``) must never replace what ``geosentry run`` loads by default."""
    if target.resolve() == MODELS_DIR.resolve() and not overwrite:
        raise ShippedModelError(
            f"{target} holds the shipped models: pass --overwrite to replace them, or choose "
            "another --export-dir/--out")
    return target


def _restore(task: Any, run: Path) -> None:
    from geosentry.training.train.loop import checkpoint_path

    ckpt = checkpoint_path(run)
    if not ckpt.exists():
        raise SystemExit(f"no checkpoint at {ckpt}: train first (geosentry train ...)")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    for k, m in task.modules().items():
        m.load_state_dict(state["modules"][k])
        m.eval()


def _figures(task: Any, out: Path) -> list[Path]:
    """PNG figures of the last ``task.evaluate()`` (tasks that define ``figures``)."""
    fn = getattr(task, "figures", None)
    return list(fn(out)) if fn is not None else []


def _cmd_train(a: argparse.Namespace) -> int:
    from geosentry.training.evaluate.report import write_report
    from geosentry.training.train.loop import FitConfig, fit

    spec = SPECS[a.task]
    run = a.out or runs_dir() / a.task
    export_dir = None if a.no_export else _export_dir(a.export_dir or run, a.overwrite)
    if a.recipe != "baseline" and a.task != "picker":
        raise ShippedModelError(f"--recipe {a.recipe} is a picker recipe, not {a.task}'s")
    task = spec.build(a.seed, a.quick, a.recipe)
    cfg = FitConfig(epochs=a.epochs or spec.epochs,
                    steps_per_epoch=a.steps_per_epoch or spec.steps_per_epoch,
                    seed=a.seed, out_dir=run, resume=a.resume)
    argv = ["train", a.task, "--epochs", str(cfg.epochs), "--steps-per-epoch",
            str(cfg.steps_per_epoch), "--seed", str(a.seed)] + (["--quick"] if a.quick else []) \
        + (["--recipe", a.recipe] if a.recipe != "baseline" else [])
    Path(run).mkdir(parents=True, exist_ok=True)
    (Path(run) / "run.json").write_text(json.dumps(
        {"command": "python -m geosentry.training " + " ".join(argv), "seed": a.seed, "epochs": cfg.epochs,
         "steps_per_epoch": cfg.steps_per_epoch, "threads": cfg.threads}, indent=2) + "\n")
    t0 = time.perf_counter()
    history = fit(task, cfg)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    metrics = task.evaluate()
    eval_s = time.perf_counter() - t1
    write_report(metrics, run, a.task)
    _figures(task, run)
    print(json.dumps(metrics, indent=2, default=str))
    if export_dir is not None:
        training = {"command": "python -m geosentry.training " + " ".join(argv), "seed": a.seed,
                    "epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch,
                    "train_seconds_this_invocation": round(train_s, 1),
                    "eval_seconds": round(eval_s, 1),
                    "final_epoch": history[-1] if history else {}, "threads": cfg.threads}
        pt, js = task.export(export_dir, metrics, training)
        print(f"exported {pt} and {js}")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from geosentry.training.evaluate.report import write_report

    task = SPECS[a.task].build(a.seed, a.quick)
    _restore(task, a.run or runs_dir() / a.task)
    metrics = task.evaluate()
    js, md = write_report(metrics, a.out, a.task)
    pngs = _figures(task, a.out)
    print(json.dumps(metrics, indent=2, default=str))
    print(f"wrote {js} and {md}" + "".join(f", {p}" for p in pngs))
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    default = (runs_dir() / "export" if a.task == "tiny-picker" or a.from_model
               else a.run or runs_dir() / a.task)
    a.out = _export_dir(a.out or default, a.overwrite)
    if a.task == "tiny-picker":
        from geosentry.training.export import export_tiny_picker

        pt, js = export_tiny_picker(a.out, a.window_samples, a.stride_samples, seed=a.seed)
    elif a.from_model is not None:
        from geosentry.training.export.reexport import reexport_picker

        if a.task != "picker":
            raise SystemExit("--from-model re-exports a picker only")
        pt, js = reexport_picker(a.from_model, a.out, "python -m geosentry.training export picker "
                                 f"--from-model {a.from_model} --out {a.out}")
    else:
        run = a.run or runs_dir() / a.task
        task = SPECS[a.task].build(a.seed, a.quick)
        _restore(task, run)
        report = run / f"{a.task}.json"
        metrics = json.loads(report.read_text()) if report.exists() else task.evaluate()
        info: dict[str, Any] = {"exported_from_run": str(run), "seed": a.seed}
        if (run / "run.json").exists():
            info.update(json.loads((run / "run.json").read_text()))
        if (run / "history.json").exists():
            history = json.loads((run / "history.json").read_text())
            info["final_epoch"] = history[-1] if history else {}
            info["train_seconds_total"] = history[-1]["elapsed_s"] if history else None
        pt, js = task.export(a.out, metrics, info)
    print(f"exported {pt} and {js}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; ``argv`` excludes the program name. Returns a process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["train", "picker"] and any(a.split("=")[0] == "--init" for a in argv):
        from geosentry.training.train.finetune import main as finetune_main  # fine-tune a picker

        return finetune_main(argv[2:])
    if argv[:2] == ["export", "picker-ensemble"]:  # several exported pickers as one
        from geosentry.training.export.ensemble import main as ensemble_main

        return ensemble_main(argv[2:])
    if argv[:2] == ["evaluate", "geomag"]:  # the service's geomagnetic detectors on real data
        from geosentry.training.evaluate.geomag import main as geomag_main

        return geomag_main(argv[2:])
    if argv[:1] == ["evaluate"] and argv[1:2] in (["picker-kfold"], ["detector-kfold"]):
        from geosentry.training.evaluate.kfold import main as kfold_main  # k-fold cross-validation by station

        return kfold_main(argv[2:], argv[1].split("-")[0])
    if argv[:2] == ["evaluate", "picker-lono"] and "--refine-sweep" in argv:  # onset refinement
        from geosentry.training.evaluate.lono_refine import main as lono_refine_main

        return lono_refine_main(argv[2:])
    if argv[:2] == ["evaluate", "picker-lono"] and "--threshold-sweep" in argv:  # via the run
        from geosentry.training.evaluate.lono_thresholds import main as lono_thresholds_main

        return lono_thresholds_main(argv[2:])
    if argv[:2] == ["evaluate", "picker-lono"] and "--through-run" in argv:  # via geosentry run
        from geosentry.training.evaluate.lono_run import main as lono_run_main

        return lono_run_main(argv[2:])
    if argv[:2] == ["evaluate", "picker-lono"]:  # leave-one-network-out, CNN vs PhaseNetLight
        from geosentry.training.evaluate.lono import main as lono_main

        return lono_main(argv[2:])
    if argv[:2] == ["evaluate", "seisbench-parity"]:  # imported SeisBench picker vs classify
        from geosentry.training.evaluate.seisbench_parity import main as parity_main

        return parity_main(argv[2:])
    if argv[:2] == ["evaluate", "picker-compare"]:  # CNN vs STA/LTA vs PhaseNetLight + bootstrap
        from geosentry.training.evaluate.compare import main as compare_main

        return compare_main(argv[2:])
    if argv[:2] == ["evaluate", "precision"]:  # shipped models at bfloat16 vs float32, held out
        from geosentry.training.evaluate.precision import main as precision_main

        return precision_main(argv[2:])
    if argv[:2] == ["evaluate", "gan-augmentation"]:  # picker F1 with vs without GAN augmentation
        from geosentry.training.evaluate.gan_augmentation import main as gan_aug_main

        return gan_aug_main(argv[2:])
    a = _parser().parse_args(argv)
    try:
        return {"train": _cmd_train, "evaluate": _cmd_evaluate, "export": _cmd_export}[a.cmd](a)
    except ShippedModelError as exc:
        print(f"geosentry {a.cmd}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
