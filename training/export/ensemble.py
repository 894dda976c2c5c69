"""Export several exported pickers as one: ``python -m geosentry.training export picker-ensemble``.

    python -m geosentry.training export picker-ensemble \\
        --members stream/models/picker.pt runs/picker-network-iceland/picker.pt \\
        --thresholds P=0.5,S=0.35 --out DIR

Each member is an exported picker (a ``.pt`` with its contract). They must agree on what the
service feeds them and reads from them (sampling rate, components, window, labels,
normalisation, output step, onset refinement); the first member's stride is kept. The weights
are rebuilt as eager networks (:func:`~geosentry.training.export.reexport.picker_members`,
each checked against its file), averaged by :class:`~geosentry.training.models.ensemble.
PickerEnsemble` and exported like any picker (eager against TorchScript parity,
``forward_range``); the new file must also equal the mean of the member files' outputs. The
contract records each member (file, sha256, training command, what it was trained on) and where
the thresholds came from. Without ``--no-evaluate`` the ensemble is scored at those thresholds
on the shipped picker's held-out windows (the seed-0 station split, needs the PhaseNet data),
which become the contract's ``metrics``. Validated reduced precisions are not carried over (the
weights are new): run ``evaluate precision --models DIR --write-contracts`` on the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import ModelContract, load_contract
from geosentry.training.export.exporter import export_model, move_into_place
from geosentry.training.export.reexport import picker_members
from geosentry.training.models.ensemble import PickerEnsemble

#: what every member must agree on (contract attribute names)
SAME = ("sampling_rate_hz", "components", "window_samples", "labels", "normalisation",
        "output_step_samples", "refine", "pick_rule", "stacking")
PARITY_ATOL = 1e-5


def _member_record(pt: Path, c: ModelContract) -> dict[str, Any]:
    return {"file": str(pt), "sha256": c.sha256, "name": c.name,
            "command": c.training.get("command") or c.provenance.get("command"),
            "trained_on": c.provenance.get("trained_on"), "thresholds": c.thresholds}


def check_members(contracts: list[ModelContract], paths: list[Path]) -> None:
    """Raise ``ValueError`` (one line, naming the field and the files) unless every member is a
    picker agreeing with the first on :data:`SAME`."""
    if len(paths) < 2:
        raise ValueError("an ensemble needs at least two --members")
    for pt, c in zip(paths, contracts):
        if c.kind != "picker":
            raise ValueError(f"{pt}: kind {c.kind!r}; only pickers can be averaged")
        for key in SAME:
            if getattr(c, key) != getattr(contracts[0], key):
                raise ValueError(f"{pt}: {key} {getattr(c, key)!r} differs from {paths[0]}'s "
                                 f"{getattr(contracts[0], key)!r}; members must agree on it")


def held_out_metrics(module: torch.nn.Module, thresholds: dict[str, float],
                     seed: int = 0) -> dict[str, Any]:
    """``PickerTask.evaluate`` of ``module`` at ``thresholds`` on the shipped split's held-out
    windows (the PhaseNet data)."""
    from geosentry.training.train.common import prepare_seismic
    from geosentry.training.train.picker import PickerTask

    task = PickerTask(prepare_seismic(seed))
    task.model = module  # type: ignore[assignment]  # any picker module with forward()
    with torch.no_grad():
        return task.evaluate(thresholds=thresholds)


def export_ensemble(members: list[Path], out_dir: Path, thresholds: dict[str, float] | None,
                    command: str, thresholds_from: str, evaluate: bool = True,
                    name: str = "picker") -> tuple[Path, Path]:
    """Export the mean of ``members`` as ``out_dir/<name>.pt`` + ``.json`` (``out_dir`` may hold
    a member: everything is checked beside it first, and moved into place only when right)."""
    contracts = []
    for pt in members:
        try:
            contracts.append(load_contract(pt))  # the service's own check of each file
        except ContractError as exc:
            raise ValueError(str(exc)) from exc
    check_members(contracts, members)
    first = contracts[0]
    thr = dict(thresholds or first.thresholds)
    if set(thr) != set(first.thresholds):
        raise ValueError(f"--thresholds names {sorted(thr)}; the members' labels need "
                         f"{sorted(first.thresholds)}")
    nets: list[torch.nn.Module] = []
    for pt, c in zip(members, contracts):
        try:
            got = picker_members(pt, c)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ValueError(f"{pt}: not a picker of this project's layout (an ensemble takes "
                             f"geosentry pickers): {str(exc).splitlines()[0]}") from exc
        if len(got) > 1:
            raise ValueError(f"{pt} is an ensemble of {len(got)} already: give its members "
                             "(the mean of means would weigh them unequally)")
        nets += got
    ensemble = PickerEnsemble(nets).eval()
    metrics = held_out_metrics(ensemble, thr) if evaluate else {}
    record = [_member_record(pt, c) for pt, c in zip(members, contracts)]
    training = {"command": command, "ensemble": {"members": record, "thresholds": thr,
                                                 "thresholds_from": thresholds_from},
                "params": sum(p.numel() for p in ensemble.parameters())}
    provenance = {"source": "geosentry", "command": command,
                  "trained_on": "; ".join(f"{r['trained_on'] or 'not stated'}" for r in record)
                  + f" (an ensemble: the mean of {len(record)} pickers' probabilities)"}
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        pt, js = export_model(
            ensemble, name=name, kind="picker", sampling_rate_hz=first.sampling_rate_hz,
            components=first.components, window_samples=first.window_samples,
            stride_samples=first.stride_samples, labels=first.labels, thresholds=thr,
            out_dir=tmp, normalisation=vars(first.normalisation),
            output_step_samples=first.output_step_samples, domain=first.domain,
            training=training, metrics=metrics, provenance=provenance,
            refine=first.refine.to_dict() if first.refine else None)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, len(first.components), first.window_samples, generator=g)
        with torch.no_grad():
            mean = sum(torch.jit.load(str(m), map_location="cpu")(x)
                       for m in members) / len(members)
            diff = float((torch.jit.load(str(pt), map_location="cpu")(x) - mean).abs().max())
        if diff > PARITY_ATOL:
            raise AssertionError(f"the ensemble differs from its members' mean by {diff:.3g}; "
                                 f"{out_dir} left as it was")
        raw = json.loads(js.read_text())
        raw["training"]["ensemble"]["parity_vs_members_mean_max_abs_diff"] = diff
        return move_into_place(pt, js, raw, out_dir)


def _thresholds(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        label, _, value = part.partition("=")
        try:
            out[label.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not LABEL=VALUE") from None
        if not 0.0 < out[label.strip()] < 1.0:
            raise argparse.ArgumentTypeError(f"{part!r}: a threshold is between 0 and 1")
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geosentry export picker-ensemble",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=Path, nargs="+", required=True,
                   help="exported pickers (.pt with their contracts), two or more")
    p.add_argument("--thresholds", type=_thresholds, default=None,
                   help="P=0.5,S=0.35 (default: the first member's)")
    p.add_argument("--thresholds-from", default="the first member's",
                   help="where the thresholds were chosen (recorded in the contract)")
    p.add_argument("--out", type=Path, default=Path("runs/picker-ensemble"))
    p.add_argument("--overwrite", action="store_true",
                   help="allow writing into the shipped models' folder")
    p.add_argument("--no-evaluate", action="store_true",
                   help="no held-out metrics (they need the PhaseNet data)")
    return p


def main(argv: list[str]) -> int:
    from geosentry.training.paths import MODELS_DIR

    a = parser().parse_args(argv)
    if a.out.resolve() == MODELS_DIR.resolve() and not a.overwrite:
        print(f"geosentry export picker-ensemble: {a.out} holds the shipped models: pass "
              "--overwrite to replace them, or choose another --out", file=sys.stderr)
        return 2
    command = "python -m geosentry.training export picker-ensemble " + " ".join(argv)
    try:
        pt, js = export_ensemble(a.members, a.out, a.thresholds, command, a.thresholds_from,
                                 evaluate=not a.no_evaluate)
    except (ValueError, OSError) as exc:
        print(f"geosentry export picker-ensemble: {exc}", file=sys.stderr)
        return 2
    print(f"exported {pt} and {js}")
    return 0
