"""Every command's ``--help`` prints and exits 0: argparse formats help text with ``%``, so a
help string with a bare "15 %" made ``python -m geosentry.training evaluate picker-lono --help``
raise ``ValueError`` (the recipes' descriptions)."""

from __future__ import annotations

import argparse
import importlib

import pytest

#: modules whose ``main(argv)`` parses a command line (each their own parser)
MAINS = ["bench.gamma_reference", "bench.pyocto_reference", "bench.run",
         "geosentry.stream.events.bench", "geosentry.stream.events.evaluate",
         "geosentry.stream.events.latency", "geosentry.stream.events.pyocto_compare",
         "geosentry.training.evaluate.compare", "geosentry.training.evaluate.gan_augmentation",
         "geosentry.training.evaluate.geomag", "geosentry.training.evaluate.kfold",
         "geosentry.training.evaluate.lono", "geosentry.training.evaluate.lono_refine",
         "geosentry.training.evaluate.lono_run", "geosentry.training.evaluate.lono_thresholds",
         "geosentry.training.evaluate.precision", "geosentry.training.evaluate.seisbench_parity",
         "geosentry.training.train.finetune"]


def _helps(parser: argparse.ArgumentParser) -> list[str]:
    """The help of ``parser`` and of every subcommand under it."""
    out = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _helps(sub)
    return out


@pytest.mark.parametrize("module", ["geosentry.stream.cli", "geosentry.training.cli"])
def test_every_subcommand_formats_its_help(module: str) -> None:
    helps = _helps(importlib.import_module(module)._parser())
    assert len(helps) > 3 and all("usage:" in h for h in helps)


@pytest.mark.parametrize("module", MAINS)
def test_every_command_module_prints_its_help(module: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        importlib.import_module(module).main(["--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out
