"""``geosentry models list | show | import``: the command group (``stream/cli.py`` hands it on).

``list`` and ``show`` read contracts only (``stream/catalog.py``): the shipped models and the
imported, trained and fine-tuned ones in ``--path`` folders and ``$GEOSENTRY_MODEL_PATH``.
``import seisbench`` turns a SeisBench checkpoint into TorchScript + contract; it needs the
training package and the optional ``seisbench`` extra, imported only for that command
(``geosentry run`` never imports either).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from geosentry.stream.catalog import describe, list_models, trained_on

INSTALL_HINT = "pip install 'geosentry[seisbench]' (SeisBench is GPL-3.0, an optional extra)"


def add_parser(sub: Any) -> None:
    """The ``models`` group on the ``geosentry`` subparsers ``sub``."""
    models = sub.add_parser("models", help="list, explain or import the models the service "
                                           "can load")
    msub = models.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="shipped, imported, trained and fine-tuned models")
    ml.add_argument("--json", action="store_true")
    ml.add_argument("--path", action="append", default=[], metavar="DIR",
                    help="also list the models in DIR (and its sub-folders); "
                         "$GEOSENTRY_MODEL_PATH adds folders too")
    ms = msub.add_parser("show", help="one model's contract and provenance")
    ms.add_argument("name", help="name, file stem or .pt path")
    ms.add_argument("--path", action="append", default=[], metavar="DIR")
    imp = msub.add_parser("import", help="import a model from another framework")
    isub = imp.add_subparsers(dest="framework", required=True)
    sb = isub.add_parser("seisbench", help=f"a SeisBench WaveformModel checkpoint (needs "
                                           f"{INSTALL_HINT})")
    sb.add_argument("--model", required=True, metavar="CLASS",
                    help="SeisBench class: PhaseNet, PhaseNetLight, EQTransformer, ...")
    sb.add_argument("--weights", required=True, metavar="PATH_WITHOUT_SUFFIX",
                    help="the checkpoint's path without .json/.pt (SeisBench's save/load path)")
    sb.add_argument("--version", help="weights version: files PATH.json.vV and PATH.pt.vV")
    sb.add_argument("--name", help="model name (default: CLASS-WEIGHTSNAME, lower case)")
    sb.add_argument("--out", required=True, metavar="DIR", help="folder for NAME.pt + NAME.json")


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``models`` command; its exit status."""
    if args.models_command == "import":
        try:
            from geosentry.training.export import seisbench_import
        except ImportError as exc:  # the service installed without the training extra
            print(f"geosentry models import: needs the training package ({exc}); "
                  "pip install 'geosentry[training,seisbench]'", file=sys.stderr)
            return 2
        code: int = seisbench_import.run(args)
        return code
    if args.models_command == "list":
        entries = list_models(args.path)
        if args.json:
            print(json.dumps(entries, indent=2))
        else:
            for e in entries:
                if e.get("error"):
                    print(f"{e['name']:<22} {'BROKEN':<10} {e['error']}")
                else:
                    print(f"{e['name']:<22} {e['kind']:<10} {e['origin']:<10} {e['path']}\n"
                          f"{'':<22} trained on: {trained_on(e)}")
        return 1 if any(e.get("error") for e in entries) else 0
    print(describe(args.name, args.path))
    return 0
