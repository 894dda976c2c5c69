"""Re-export a shipped TorchScript picker under the current model code, with the same weights.

When the picker's code gains something the service can use (``forward_range``) its weights need
not be trained again: the network is rebuilt from the exported file (the architecture read from
the weights' shapes), the weights are loaded into it, and it goes through ``export_model`` like
any export (eager vs TorchScript parity, output shape, ``forward_range`` parity). The new file
must also give the old file's outputs; everything the old contract says about the weights
(thresholds, metrics, training record, validated precisions) is carried over, and
``geosentry.training.reexported`` records the old hash and the command.

    python -m geosentry.training export picker --from-model stream/models/picker.pt --out stream/models --overwrite
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import ModelContract, load_contract
from geosentry.training.export.exporter import export_model, move_into_place, parity_check
from geosentry.training.models.cnn import PhasePicker


def picker_members(pt_path: Path, contract: ModelContract) -> list[PhasePicker]:
    """The eager ``PhasePicker`` networks in ``pt_path``: one for a single picker, each member's
    for an ensemble (:class:`~geosentry.training.models.ensemble.PickerEnsemble`, whose weights
    are ``members.K.*``), in member order."""
    state = torch.jit.load(str(pt_path), map_location="cpu").state_dict()
    keys = sorted({int(k.split(".")[1]) for k in state if k.startswith("members.")})
    if not keys:
        return [picker_from_state(state, contract.components, contract.labels,
                                  contract.sampling_rate_hz, contract.window_samples)]
    return [picker_from_state({k[len(f"members.{i}."):]: v for k, v in state.items()
                               if k.startswith(f"members.{i}.")}, contract.components,
                              contract.labels, contract.sampling_rate_hz, contract.window_samples)
            for i in keys]


def picker_from_state(state: dict[str, torch.Tensor], components: tuple[str, ...],
                      labels: tuple[str, ...], sampling_rate_hz: float,
                      window_samples: int) -> PhasePicker:
    """The eager ``PhasePicker`` holding the weights ``state`` (a ``state_dict``: a training
    checkpoint's or a TorchScript file's), its architecture read from their shapes."""
    downs = sorted({int(k.split(".")[1]) for k in state if k.startswith("downs.")})
    channels = [int(state["stem.conv.weight"].shape[0])]
    channels += [int(state[f"downs.{i}.down.conv.weight"].shape[0]) for i in downs]
    kernel = int(state["stem.conv.weight"].shape[2])
    down_stride = int(state["ups.0.up.weight"].shape[2])  # transposed conv: kernel = stride
    widen_first = int(state["downs.0.conv.conv.weight"].shape[0]) == channels[1]
    net = PhasePicker(components, labels, sampling_rate_hz, window_samples, channels, kernel,
                      down_stride, widen_first)
    net.load_state_dict(state)  # strict: any other layout fails here, naming the keys
    return net.eval()


def reexport_picker(pt_path: str | Path, out_dir: str | Path, command: str) -> tuple[Path, Path]:
    """Re-export the picker at ``pt_path`` into ``out_dir`` (may be the same directory)."""
    pt_path = Path(pt_path)
    try:
        old = load_contract(pt_path)  # the service's check: valid, names this file, same sha256
    except ContractError as exc:
        raise SystemExit(str(exc)) from exc
    if old.kind != "picker":
        raise SystemExit(f"{pt_path}: kind {old.kind!r}; only a picker can be re-exported")
    old_sha = old.sha256
    nets = picker_members(pt_path, old)  # an ensemble's members, each rebuilt
    net: torch.nn.Module = nets[0]
    if len(nets) > 1:
        from geosentry.training.models.ensemble import PickerEnsemble

        net = PickerEnsemble(list(nets)).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # exported and checked beside, moved into place only when it is right (out_dir may hold
    # the old file: a failure leaves it as it was)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        training: dict[str, Any] = {**old.training, "reexported": {
            "from_sha256": old_sha, "command": command}}
        new_pt, new_js = export_model(
            net, name=old.name, kind=old.kind, sampling_rate_hz=old.sampling_rate_hz,
            components=old.components, window_samples=old.window_samples,
            stride_samples=old.stride_samples, labels=old.labels, thresholds=old.thresholds,
            out_dir=tmp, version=old.version, normalisation=vars(old.normalisation),
            output_step_samples=old.output_step_samples, domain=old.domain, training=training,
            metrics=old.metrics, file_stem=pt_path.stem, provenance=old.provenance or None,
            refine=old.refine.to_dict() if old.refine else None)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, len(old.components), old.window_samples, generator=g)
        diff = parity_check(torch.jit.load(str(pt_path)), torch.jit.load(str(new_pt)), (x,))
        if diff > 1e-5:
            raise AssertionError(f"re-exported {pt_path.name} differs from the old file by "
                                 f"{diff:.3g}; {out_dir} left as it was")
        raw = json.loads(new_js.read_text())
        raw["precisions"] = old.precisions  # validated for these weights, which did not change
        raw["training"]["reexported"]["parity_vs_old_max_abs_diff"] = diff
        return move_into_place(new_pt, new_js, raw, out_dir)
