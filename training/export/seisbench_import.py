"""Import a SeisBench ``WaveformModel`` checkpoint as TorchScript + the project's contract.

    geosentry models import seisbench --model PhaseNetLight \\
        --weights ../shared/data/reference/seisbench-phasenetlight-ethz/ethz --version 2 --out models/

SeisBench (GPL-3.0) is an optional extra (``pip install 'geosentry[seisbench]'``): it is needed
here, at import time, and never by ``geosentry run``, which loads the exported TorchScript file
like any other model. What SeisBench does to a window before and after the network is taken
over as it is, so the service's picks are SeisBench's:

* the TorchScript module is SeisBench's own ``annotate_batch_pre`` (demean, the weights'
  normalisation, EQTransformer's taper, ...) followed by the network, traced on a window of
  ``in_samples``; so the contract's ``normalisation`` is ``none`` (the raw window goes in);
* a model whose outputs are a tuple of ``(B, N)`` traces (EQTransformer) is stacked to
  ``(B, labels, N)``; the labels are SeisBench's (``P``, ``S``, ``N``, or ``Detection``...);
* thresholds are the weights' ``default_args`` (``P_threshold`` ...) or the class default;
* picks are made by SeisBench's own rule (contract ``pick_rule: seisbench``: trigger on at the
  threshold, off below half of it, one pick at each stretch's maximum) from outputs stacked over
  overlapping windows as SeisBench stacks them (``stacking``: its ``avg`` default, or ``max``);
* the stride is ``in_samples - overlap`` (SeisBench's default overlap), shortened when the
  weights blind the window edges (``blinding``) so the stretch each window owns is never blind.

Refused, with the reason: classes that are not array pickers (``output_type`` ``point``, e.g.
GPD, or ``regression``), outputs that do not cover every input sample (``pred_sample``),
pre-filters (``filter_args``: the service does not filter), grouping other than per instrument,
a traced module that does not reproduce SeisBench's outputs within 1e-4 (batch sizes 1, 2, 5).
The contract's ``provenance`` records the class, the weights file and its sha256, the SeisBench
version, the weights' docstring and what they were trained on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geosentry.stream.inference.contract import (CONTRACT_SCHEMA, ModelContract, contract_path_for,
                                                 sha256_file)
from geosentry.training.export.exporter import verify_export, versions

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'geosentry[seisbench]' (SeisBench is GPL-3.0, an optional extra)"
PARITY_ATOL = 1e-4


class ImportRefused(Exception):
    """A checkpoint that cannot be imported (one line saying why)."""


def require_seisbench() -> Any:
    """The ``seisbench.models`` module, or :class:`ImportRefused` saying how to install it."""
    try:
        import seisbench.models as sbm
    except ImportError as exc:
        raise ImportRefused(f"seisbench is not installed ({exc}); {INSTALL_HINT}") from exc
    return sbm


def weights_files(weights: Path, version: str | None) -> tuple[Path, Path]:
    """SeisBench's file names: ``PATH.json[.vV]`` and ``PATH.pt[.vV]``."""
    suffix = "" if version is None else f".v{version}"
    return (weights.with_name(weights.name + ".json" + suffix),
            weights.with_name(weights.name + ".pt" + suffix))


def load_checkpoint(model_class: str, weights: Path, version: str | None) -> Any:
    """The SeisBench model ``model_class`` with ``weights`` loaded, in eval mode."""
    sbm = require_seisbench()
    cls: Any = getattr(sbm, model_class, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, sbm.WaveformModel):
        known = sorted(n for n in dir(sbm) if isinstance(getattr(sbm, n), type)
                       and issubclass(getattr(sbm, n), sbm.WaveformModel)
                       and getattr(sbm, n) is not sbm.WaveformModel)
        raise ImportRefused(f"--model {model_class!r} is not a SeisBench WaveformModel "
                            f"(known: {', '.join(known)})")
    js, pt = weights_files(weights, version)
    for f in (js, pt):
        if not f.exists():
            raise ImportRefused(f"weights file not found: {f} (--weights is the path without "
                                "its .json/.pt suffix; --version V adds .vV)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = cast(Any, cls).load(str(weights), version_str=version, map_location="cpu",
                             weights_only=True)
        except Exception as exc:  # wrong class for these weights, corrupt file ...
            raise ImportRefused(f"SeisBench could not load {pt} as {model_class}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    return model.eval()


def annotate_args(model: Any) -> dict[str, Any]:
    """What SeisBench's ``annotate``/``classify`` use when called without arguments:
    the class's ``_annotate_args`` defaults, overridden by the weights' ``default_args``."""
    out = {k: v[1] for k, v in type(model)._annotate_args.items()}
    out.update(dict(getattr(model, "default_args", {}) or {}))
    return out


class SeisBenchWindows(nn.Module):
    """Raw windows ``(B, C, N)`` -> SeisBench's pre-processing -> the network -> ``(B, L, N)``."""

    def __init__(self, model: nn.Module, argdict: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.argdict = argdict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.model.annotate_batch_pre(x.clone(), dict(self.argdict))  # type: ignore[operator]
        if isinstance(pre, tuple):  # (batch, piggyback): the piggyback is for post-processing
            pre = pre[0]
        out = self.model(pre)
        if isinstance(out, (tuple, list)):
            out = torch.stack(list(out), dim=1)
        return out


def describe_checkpoint(model: Any, argdict: dict[str, Any]) -> dict[str, Any]:
    """The contract fields of ``model`` (window, rate, components, labels, thresholds, stride),
    or :class:`ImportRefused` when the service cannot run it as SeisBench does."""
    name = type(model).__name__
    if model.output_type != "array":
        raise ImportRefused(f"{name}: output_type {model.output_type!r}: only array pickers "
                            "(a probability per sample, like PhaseNet, EQTransformer) run as a "
                            "geosentry picker")
    n = int(model.in_samples)
    pred = tuple(model.pred_sample) if isinstance(model.pred_sample, (tuple, list)) else None
    if pred != (0, n):
        raise ImportRefused(f"{name}: pred_sample {model.pred_sample!r}: outputs must cover the "
                            f"whole input window (0, {n})")
    if model.filter_args is not None or model.filter_kwargs is not None:
        raise ImportRefused(f"{name}: the weights pre-filter the stream (filter_args "
                            f"{model.filter_args!r}); the service feeds models unfiltered data")
    grouping = getattr(getattr(model, "_grouping", None), "grouping", "instrument")
    if grouping != "instrument":
        raise ImportRefused(f"{name}: grouping {grouping!r}: the service feeds one instrument "
                            "per window")
    if getattr(model, "norm_detrend", False):
        raise ImportRefused(f"{name}: norm_detrend (linear detrend per window) is not supported")
    if not model.sampling_rate:
        raise ImportRefused(f"{name}: the weights name no sampling rate")
    comps = list(model.component_order or "")
    labels = [str(label) for label in model.labels] if model.labels is not None else []
    if not labels or callable(model.labels):
        raise ImportRefused(f"{name}: no fixed output labels")
    overlap = argdict.get("overlap", 0)
    overlap = int(overlap * n) if 0 < overlap < 1 else int(overlap)
    stride = n - overlap
    blind = argdict.get("blinding", (0, 0)) or (0, 0)
    edge = max(int(b) for b in blind)
    if (n - stride) // 2 < edge:  # the owned middle stretch must stay out of the blind edges
        stride = n - 2 * edge
    if stride <= 0:
        raise ImportRefused(f"{name}: no stretch of the window is free of blinding {blind}")
    stacking = str(argdict.get("stacking", "avg")).lower()
    if stacking not in ("avg", "max"):
        raise ImportRefused(f"{name}: stacking {stacking!r}: the service stacks 'avg' or 'max'")
    default_thr = argdict.get("*_threshold", 0.3)
    thresholds = {ph: float(argdict.get(f"{ph}_threshold", default_thr))
                  for ph in labels if ph in ("P", "S")}
    if not thresholds:
        raise ImportRefused(f"{name}: labels {labels} name no P or S phase to pick")
    return {"window_samples": n, "stride_samples": stride, "components": comps,
            "sampling_rate_hz": float(model.sampling_rate), "labels": labels,
            "thresholds": thresholds, "stacking": stacking}


@contextlib.contextmanager
def _whole_float_pads() -> Iterator[None]:
    """TorchScript writes a float pad value that is a whole number (EQTransformer pads with
    -1e10) as an int literal, which its own loader then refuses. While tracing, such a value
    becomes the next float towards zero (-1e10 -> -9999999999.999998: no difference a pad of
    "minus infinity" before a max-pool can show)."""
    original = F.pad

    def pad(x: torch.Tensor, padding: Any, mode: str = "constant",
            value: float | None = None) -> torch.Tensor:
        if isinstance(value, float) and value.is_integer() and value != 0.0:
            value = float(np.nextafter(value, 0.0))
        return original(x, padding, mode, value)

    F.pad = pad  # type: ignore[assignment]
    try:
        yield
    finally:
        F.pad = original


def _reloaded(traced: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """``traced`` saved and loaded again: what the service will load (refused, with torch's
    first line, when torch cannot load what it wrote)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(traced, buf)
        buf.seek(0)
        try:
            return torch.jit.load(buf, map_location="cpu")
        except RuntimeError as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), "?")
            raise ImportRefused(f"torch cannot load the traced module it wrote: {first}") from exc


def trace_module(model: Any, argdict: dict[str, Any], n_channels: int,
                 window: int) -> tuple[torch.jit.ScriptModule, float]:
    """``SeisBenchWindows`` traced; checked against SeisBench (eager) at batch sizes 1, 2, 5
    on noise, on a spike train and on a zero row (missing component). Returns the module and
    the largest difference seen."""
    wrapper = SeisBenchWindows(model, argdict).eval()
    g = torch.Generator().manual_seed(0)
    example = torch.randn(2, n_channels, window, generator=g) * 1000.0
    with torch.no_grad(), warnings.catch_warnings(), _whole_float_pads():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    traced = _reloaded(traced)
    probes = [torch.randn(b, n_channels, window, generator=g) * 100.0 + 7.0 for b in (1, 2, 5)]
    spikes = torch.zeros(3, n_channels, window)
    spikes[:, :, window // 3::97] = 1.0e4
    spikes[2, 1:] = 0.0  # horizontal components missing: zero rows, as the service sends them
    probes.append(spikes + torch.randn(3, n_channels, window, generator=g))
    worst = 0.0
    with torch.no_grad():
        for x in probes:
            a, b = wrapper(x), traced(x)
            if a.shape != b.shape:
                raise ImportRefused(f"traced module gives shape {tuple(b.shape)} for a batch of "
                                    f"{x.shape[0]}, SeisBench {tuple(a.shape)}")
            worst = max(worst, float((a - b).abs().max()))
    if worst > PARITY_ATOL:
        raise ImportRefused(f"the traced module differs from SeisBench by {worst:.3g} "
                            f"(> {PARITY_ATOL}): this class does not trace faithfully")
    return traced, worst


def trained_on(weights: Path, metadata: dict[str, Any]) -> str:
    """What the weights say they were trained on: the weights' name and the docstring's first
    sentence (SeisBench names its weights after the training data set: ethz, stead, ...)."""
    doc = str(metadata.get("docstring") or "").strip()
    first = doc.split("\n")[0].split(". ")[0].strip().rstrip(".")
    return f"{weights.name} (SeisBench weights name)" + (f": {first}" if first else "")


def import_seisbench(model_class: str, weights: Path, out_dir: Path, version: str | None = None,
                     name: str | None = None, command: str = "") -> tuple[Path, Path]:
    """Write ``out_dir/NAME.pt`` (TorchScript) and ``NAME.json`` (contract); returns both."""
    weights = Path(weights).expanduser()
    model = load_checkpoint(model_class, weights, version)  # refuses without seisbench
    import seisbench
    js, pt = weights_files(weights, version)
    metadata = json.loads(js.read_text())
    argdict = annotate_args(model)
    fields = describe_checkpoint(model, argdict)
    traced, diff = trace_module(model, argdict, len(fields["components"]),
                                fields["window_samples"])
    name = name or f"{model_class.lower()}-{weights.name}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pt_out = out_dir / f"{name}.pt"
    provenance = {
        "source": "seisbench", "class": f"seisbench.models.{model_class}",
        "weights_file": pt.name, "weights_sha256": sha256_file(pt),
        "metadata_file": js.name, "metadata_sha256": sha256_file(js),
        "weights_version": str(metadata.get("version", version or "")),
        "seisbench_version": seisbench.__version__,
        "seisbench_requirement": metadata.get("seisbench_requirement"),
        "trained_on": trained_on(weights, metadata),
        "docstring": metadata.get("docstring", ""),
        "model_args": metadata.get("model_args", {}),
        "default_args": metadata.get("default_args", {}),
        "licence": "SeisBench is GPL-3.0; the weights carry their own terms (see their source)",
        "preprocessing": f"inside the TorchScript module: {model_class}.annotate_batch_pre "
                         "(contract normalisation 'none': raw windows go in)",
        "trace_parity_max_abs_diff": diff,
        "command": command,
    }
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_pt = Path(tmp) / pt_out.name
        torch.jit.save(traced, str(tmp_pt))
        raw: dict[str, Any] = {
            "contract": CONTRACT_SCHEMA, "name": name,
            "version": provenance["weights_version"] or "1", "kind": "picker",
            "format": "torchscript", "file": pt_out.name, "sha256": sha256_file(tmp_pt),
            **fields, "normalisation": {"method": "none", "demean": False, "eps": 0.0},
            "output_step_samples": 1, "domain": "seismic",
            "training": {"imported": "seisbench", "command": command},
            "metrics": {}, "versions": versions(), "forward_range": False,
            "pick_rule": "seisbench",  # SeisBench's picks_from_annotations, in the service
            "stacking": fields.pop("stacking"),  # SeisBench's stacking of overlapping windows
            "provenance": provenance,
        }
        contract = ModelContract.from_dict(json.loads(json.dumps(raw, default=str)))
        tmp_js = contract_path_for(tmp_pt)
        contract.write(tmp_js)
        verify_export(tmp_pt)  # the service's own check of a model file and its contract
        os.replace(tmp_pt, pt_out)
        os.replace(tmp_js, contract_path_for(pt_out))
    log.info("imported %s %s as %s (trace parity %.2g)", model_class, pt, pt_out, diff)
    return pt_out, contract_path_for(pt_out)


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``geosentry models import seisbench`` (``stream/models_cli.py`` parses it);
    0, or 2 with one line when refused."""
    command = (f"geosentry models import seisbench --model {args.model} --weights {args.weights}"
               + (f" --version {args.version}" if args.version else "")
               + (f" --name {args.name}" if args.name else "") + f" --out {args.out}")
    try:
        torch.set_num_threads(1)
        pt, js = import_seisbench(args.model, Path(args.weights), Path(args.out), args.version,
                                  args.name, command)
    except ImportRefused as exc:
        print(f"geosentry models import: {exc}", file=sys.stderr)
        return 2
    c = ModelContract.load(js)
    print(f"imported {args.model} as {pt} (+ {js.name}): {c.window_samples} samples at "
          f"{c.sampling_rate_hz:g} Hz, components {''.join(c.components)}, labels "
          f"{list(c.labels)}, thresholds {c.thresholds}, stride {c.stride_samples}, pick rule "
          f"{c.pick_rule.value}, stacking {c.stacking.value}")
    return 0
