"""Script a module, save it, hash it, write and round-trip its contract, check parity.

>>> pt, js = export_tiny_picker("/tmp/models")          # doctest: +SKIP
>>> ModelContract.load(js).window_samples                # doctest: +SKIP
400
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import (CONTRACT_SCHEMA, ModelContract, contract_path_for,
                                                 load_contract, sha256_file)
from geosentry.stream.inference.rules import output_shape

if TYPE_CHECKING:
    from geosentry.training.models.gan import Generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    pt_path: Path
    json_path: Path
    parity_max_abs_diff: float


def versions() -> dict[str, str]:
    """Library versions recorded in every contract."""
    try:
        from importlib.metadata import version

        gs = version("geosentry")
    except Exception:  # not installed as a distribution
        from geosentry import __version__ as gs
    return {"torch": torch.__version__, "numpy": np.__version__, "geosentry": gs}


def example_inputs(kind: str, module: nn.Module, n_channels: int, window_samples: int,
                   batch: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
    """Deterministic inputs matching ``kind``'s call signature (generator: ``(z, label)``)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "generator":
        gen = cast("Generator", module)  # the kind says so (nn.Module's attributes are untyped)
        latent = int(gen.latent_dim)
        n_labels = len(gen.labels)
        z = torch.randn(batch, latent, generator=g)
        label = torch.arange(batch, dtype=torch.long) % n_labels
        return (z, label)
    return (torch.randn(batch, n_channels, window_samples, generator=g),)


def parity_check(eager: nn.Module, scripted: torch.jit.ScriptModule,
                 inputs: Sequence[Tensor]) -> float:
    """Max absolute difference between eager and scripted outputs (both in eval mode)."""
    eager.eval()
    scripted.eval()
    with torch.no_grad():
        a = eager(*inputs)
        b = scripted(*inputs)
    if a.shape != b.shape:
        raise AssertionError(f"parity: shapes differ eager {tuple(a.shape)} scripted {tuple(b.shape)}")
    return float((a - b).abs().max().item())


def range_parity(scripted: torch.jit.ScriptModule, x: Tensor) -> float:
    """Max absolute difference between ``forward_range(x, a, b)`` and ``forward(x)[..., a:b]``
    over ranges at the start, in the middle, at the end and across the whole window."""
    n = x.size(2)
    ranges = [(0, min(n, 7)), (n // 4, n - n // 4), (n - n // 3, n), (n // 2, n // 2 + 1), (0, n)]
    diffs = []
    with torch.no_grad():
        full = scripted(x)
        for a, b in ranges:
            part = scripted.forward_range(x, a, b)
            same_shape = part.shape == full[:, :, a:b].shape
            diffs.append(float((part - full[:, :, a:b]).abs().max()) if same_shape else math.inf)
    return max(diffs)


#: what the service expects back from a model of a kind: the service's rule, not a copy
expected_output_shape = output_shape


def move_into_place(pt: Path, js: Path, raw: dict[str, Any], out_dir: Path
                    ) -> tuple[Path, Path]:
    """Validate the contract ``raw`` of an export checked beside ``out_dir`` (``pt``, ``js``),
    write it to ``js`` and move both files into ``out_dir`` (each by one rename)."""
    ModelContract.from_dict(raw)
    js.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    final_pt, final_js = out_dir / pt.name, out_dir / js.name
    os.replace(pt, final_pt)
    os.replace(js, final_js)
    return final_pt, final_js


def export_model(module: nn.Module, *, name: str, kind: str, sampling_rate_hz: float,
                 components: Sequence[str], window_samples: int, stride_samples: int,
                 labels: Sequence[str], thresholds: dict[str, float], out_dir: str | Path,
                 version: str = "1", normalisation: dict[str, Any] | None = None,
                 output_step_samples: int = 1, domain: str = "seismic",
                 training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 file_stem: str | None = None, parity_atol: float = 1e-4,
                 provenance: dict[str, Any] | None = None,
                 refine: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Export ``module`` to ``out_dir/<file_stem or name>.pt`` + ``.json``; returns both paths.

    Steps: eval mode -> ``torch.jit.script`` -> save -> reload the saved file -> parity check
    (eager vs reloaded, max abs diff <= ``parity_atol`` else ``AssertionError``) -> output-shape
    check against the contract -> a picker's ``forward_range`` against ``forward`` (then
    ``forward_range: true`` in the contract) -> sha256 -> contract validated by
    ``ModelContract.from_dict``,
    written, re-loaded and compared. ``refine``: a picker's onset refinement
    (``stream/inference/refine.py``; a picker trained here gets ``DEFAULT_REFINEMENT``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem or name
    pt_path = out_dir / f"{stem}.pt"
    json_path = contract_path_for(pt_path)
    module = module.cpu().eval()
    scripted = torch.jit.script(module)
    tmp = pt_path.with_suffix(".pt.tmp")
    torch.jit.save(scripted, str(tmp))
    reloaded = torch.jit.load(str(tmp), map_location="cpu")
    inputs = example_inputs(kind, module, len(components), window_samples)
    diff = parity_check(module, reloaded, inputs)
    if diff > parity_atol:
        tmp.unlink(missing_ok=True)
        raise AssertionError(f"{name}: eager vs TorchScript max abs diff {diff:.3g} > {parity_atol}")
    if kind != "generator":
        with torch.no_grad():
            shape = tuple(reloaded(*inputs).shape)
        want = output_shape(kind, inputs[0].shape[0], len(components), len(labels),
                            window_samples, output_step_samples)
        if shape != want:
            tmp.unlink(missing_ok=True)
            raise AssertionError(f"{name}: output shape {shape}, contract expects {want}")
    forward_range = kind == "picker" and hasattr(reloaded, "forward_range")
    if forward_range:
        range_diff = range_parity(reloaded, inputs[0])
        if range_diff > parity_atol:
            tmp.unlink(missing_ok=True)
            raise AssertionError(f"{name}: forward_range differs from forward by {range_diff:.3g}")
    tmp.replace(pt_path)
    train_info = dict(training or {})
    train_info["export_parity_max_abs_diff"] = diff
    raw: dict[str, Any] = {
        "contract": CONTRACT_SCHEMA, "name": name, "version": str(version), "kind": kind,
        "format": "torchscript", "file": pt_path.name, "sha256": sha256_file(pt_path),
        "sampling_rate_hz": float(sampling_rate_hz), "components": list(components),
        "window_samples": int(window_samples), "stride_samples": int(stride_samples),
        "labels": list(labels), "thresholds": {k: float(v) for k, v in thresholds.items()},
        "normalisation": dict(normalisation or {"method": "std", "demean": True, "eps": 1e-8}),
        "output_step_samples": int(output_step_samples), "domain": domain,
        "training": train_info, "metrics": dict(metrics or {}), "versions": versions(),
        "forward_range": forward_range,
        # where the weights come from (``geosentry models list/show``): trained here, on what
        "provenance": dict(provenance) if provenance is not None else {
            "source": "geosentry", "trained_on": str(train_info.get("data_source", "?")) + (
                f" + {train_info['data_source_extra']}" if train_info.get("data_source_extra")
                else "")},
    }
    if refine is not None:
        raw["refine"] = dict(refine)
    raw = json.loads(json.dumps(raw, default=str))  # tuples -> lists etc.: what a reader sees
    contract = ModelContract.from_dict(raw)
    contract.write(json_path)
    if ModelContract.load(json_path) != contract:
        raise AssertionError(f"{json_path}: contract did not round-trip")
    log.info("exported %s (%s, %d bytes, parity %.2g)", pt_path, kind, pt_path.stat().st_size, diff)
    return pt_path, json_path


def verify_export(pt_path: str | Path) -> ModelContract:
    """The contract beside ``pt_path``, checked exactly as the service checks it at load
    (``geosentry.stream.inference.contract.load_contract``: a valid contract naming this file,
    with its sha256). A failure raises ``AssertionError`` with the service's message, like
    every other export check."""
    try:
        return load_contract(pt_path)
    except ContractError as exc:
        raise AssertionError(str(exc)) from exc


def export_tiny_picker(out_dir: str | Path, window_samples: int = 400, stride_samples: int = 200,
                       name: str = "tiny-picker", seed: int = 0,
                       sampling_rate_hz: float = 100.0) -> tuple[Path, Path]:
    """Untrained but deterministic (seeded) tiny U-Net picker, exported in well under 2 s.

    Output ``(B, 3, N)`` softmax over ``P, S, N``; thresholds P = S = 0.5. For service
    integration tests: same ``seed`` -> same weights -> same outputs.
    """
    from geosentry.training.models.cnn import PhasePicker

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = PhasePicker(components=("Z", "N", "E"), labels=("P", "S", "N"),
                        sampling_rate_hz=sampling_rate_hz, window_samples=window_samples,
                        channels=(4, 8, 8), kernel=5)
    paths = export_model(
        model, name=name, kind="picker", sampling_rate_hz=sampling_rate_hz,
        components=("Z", "N", "E"), window_samples=window_samples, stride_samples=stride_samples,
        labels=("P", "S", "N"), thresholds={"P": 0.5, "S": 0.5}, out_dir=out_dir,
        training={"note": "untrained, deterministic (seeded) test model", "seed": seed},
    )
    log.debug("tiny picker exported in %.2f s", time.perf_counter() - t0)
    return paths
