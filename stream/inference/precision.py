"""Numeric precision of the forward pass: float32, or bfloat16 where it pays and was validated.

On hardware with native bfloat16 (CPUs with AMX or AVX-512 BF16, CUDA GPUs of compute
capability 8 and newer) a convolutional forward pass under ``torch.autocast`` to bfloat16 runs
up to about twice as fast as float32; elsewhere bfloat16 is emulated and slower. Whether a model
still gives the same answers at bfloat16 is a property of the model, so it is decided once,
offline, by ``geosentry evaluate precision`` on held-out data, and written into the model's
contract (``precisions.bf16``: the evaluation's metric differences and the largest output
difference seen). At load the service uses bfloat16 only if

* ``inference.precision`` allows it (``auto``, the default, or ``bf16``),
* the contract lists it as validated,
* the device computes it natively (``native_bf16``),
* on a (seeded) probe batch its outputs stay within the contract's tolerance of float32.

Otherwise it runs float32, and says why. Nothing is timed: the choice is a function of the
model, its contract and the device alone, so a restart on the same machine makes the same
choice (alert ids include pick times, which the precision can move by a sample). Whether
bfloat16 pays on a device is for the benchmark to show (``python -m bench``), not for a
start-up race on a busy machine to decide. ``inference.precision = "fp32"`` pins float32 (e.g. for
bit-for-bit reproducible replays: alert ids include the pick time, which a bfloat16 pass can move
by a sample).

>>> choose("fp32", {"bf16": {"tolerance": 0.05}}, native=True).precision
'fp32'
>>> choose("auto", {}, native=True).reason
'the contract does not list bf16 as validated (geosentry evaluate precision)'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geosentry.stream.config import PRECISION_SETTINGS
from geosentry.stream.errors import ContractError

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16"
    reason: str
    max_abs_diff: float | None = None  # probe batch, bf16 vs fp32 outputs


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bfloat16 in hardware (not emulated)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and any(f in cpu_flags() for f in CPU_BF16_FLAGS)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context a forward pass at ``precision`` runs in (thread-local, so per worker)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def choose(requested: str, validated: dict[str, dict[str, Any]], native: bool) -> PrecisionChoice:
    """The static part of the decision (before the probe): float32 unless everything allows
    bfloat16; ``reason`` says which condition decided. ``requested = "bf16"`` on a model whose
    contract does not validate it is a configuration error, not a silent fallback."""
    if requested not in PRECISION_SETTINGS:
        raise ContractError(f"inference.precision must be one of {PRECISION_SETTINGS}, "
                            f"got {requested!r}")
    if requested == "fp32":
        return PrecisionChoice("fp32", "inference.precision = fp32")
    if "bf16" not in validated:
        reason = "the contract does not list bf16 as validated (geosentry evaluate precision)"
        if requested == "bf16":
            raise ContractError(f"inference.precision = bf16 but {reason}")
        return PrecisionChoice("fp32", reason)
    if not native:
        return PrecisionChoice("fp32" if requested == "auto" else "bf16",
                               "no native bfloat16 on this device" if requested == "auto"
                               else "inference.precision = bf16 (emulated on this device)")
    return PrecisionChoice("bf16", "validated, native")


@contextlib.contextmanager
def _warnings_off() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def decide(module: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor,
           compare: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float],
           requested: str, validated: dict[str, dict[str, Any]], name: str) -> PrecisionChoice:
    """Full decision for ``module``: :func:`choose`, then on ``probe`` the output check
    (``compare(probe, out_fp32, out_bf16)`` must be within the contract's tolerance). A failed
    check falls back to float32 (``auto``) or raises (``bf16``). Deterministic: no timing."""
    device = probe.device
    first = choose(requested, validated, native_bf16(device))
    if first.precision == "fp32":
        return first
    tolerance = float(validated["bf16"].get("tolerance", 0.05))
    with torch.inference_mode(), _warnings_off():
        ref = module(probe).float()
        with autocast(device, "bf16"):
            low = module(probe).float()
    diff = compare(probe, ref, low)
    if not diff <= tolerance:
        msg = (f"model {name}: bf16 output differs from fp32 by {diff:.3g} on the probe batch "
               f"(contract tolerance {tolerance:g})")
        if requested == "bf16":
            raise ContractError(msg)
        return PrecisionChoice("fp32", msg, max_abs_diff=diff)
    return PrecisionChoice("bf16", f"{first.reason}, probe within tolerance ({diff:.3g} <= "
                                   f"{tolerance:g})", max_abs_diff=diff)
