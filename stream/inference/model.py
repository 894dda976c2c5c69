"""TorchScript models behind their JSON contract: load, validate, normalise, run, score.

Loading refuses, with a message naming the problem, a model whose file hash differs from the
contract, whose kind the service cannot run, or whose output shape on a probe batch disagrees
with the contract's labels, window and output step.
"""

from __future__ import annotations

import copy
import logging
import warnings
from functools import partial
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import torch

from geosentry.stream.buffer.windows import WindowSpec
from geosentry.stream.detectors.registry import ModelConfig
from geosentry.stream.detectors.base import owned_range, owned_samples
from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import load_contract
from geosentry.stream.inference.pickrule import (PickRule, Stacking, StackState, StretchState,
                                                 score_stretches, stack)
from geosentry.stream.inference.precision import PrecisionChoice, autocast, decide
from geosentry.stream.inference.refine import refine_picks
from geosentry.stream.inference.rules import (RUNNABLE_KINDS, anomaly_scores, highpass,
                                               normalise, output_shape)
from geosentry.stream.inference.scoring import (PEAK_CONTEXT_S, cut_near_peak,
                                                drop_phase_conflicts, flat_edges, PHASE_STATE_S,
                                                score_anomaly, score_detector, score_picker)
from geosentry.stream.records import Alert, InstrumentId, ModelRef, Window, seconds_to_samples

log = logging.getLogger(__name__)
PRECISION_PROBE_SAMPLES = 64_000  # per channel, in the batch that checks and times a precision
RANGE_ATOL = 1e-4  # forward_range vs forward on the load probe (float32)


class ModelOutputs(NamedTuple):
    """One batch's model outputs, per window: ``values[i][..., k]`` is window ``i``'s output at
    its sample ``starts[i] + k`` (0 unless only a range of the window was decoded)."""

    values: Sequence[np.ndarray] | np.ndarray  # one array per window, or one with the batch first
    starts: tuple[int, ...]

    @classmethod
    def whole(cls, values: np.ndarray) -> ModelOutputs:
        """Outputs of whole windows, ``(B, ...)``."""
        return cls(values, (0,) * len(values))


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ContractError(f"inference.device = {requested!r} but no CUDA device is available")
    return torch.device(requested)


def load_torchscript(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch marks TorchScript deprecated
        warnings.simplefilter("ignore", FutureWarning)
        # torch.jit.load is unannotated in torch
        module: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]
            str(path), map_location=device)
    module.eval()
    return module


def freeze_checked(module: torch.jit.ScriptModule, probe: torch.Tensor, name: str,
                   methods: tuple[str, ...] = ()) -> torch.jit.ScriptModule:
    """``torch.jit.freeze`` (weights inlined, conv + batch-norm folded: ~10-25 % faster on CPU)
    when the frozen module gives the same output on ``probe``; otherwise the module as loaded.
    ``methods`` (e.g. ``forward_range``) are kept and frozen beside ``forward``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen: torch.jit.ScriptModule = torch.jit.freeze(module,
                                                              preserved_attrs=list(methods))
        with torch.inference_mode():
            a, b = module(probe), frozen(probe)
        if a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            return frozen
        log.warning("model %s: frozen TorchScript differs from the original (max |diff| %.3g); "
                    "running it unfrozen", name, float((a - b).abs().max()))
    except Exception as exc:  # some scripted modules cannot be frozen; they still run
        log.warning("model %s: cannot freeze (%s); running it unfrozen", name, exc)
    return module


class TorchScriptDetector:
    """A picker, event detector or anomaly scorer exported by ``geosentry export``."""

    def __init__(self, cfg: ModelConfig, model_path: Path, device: torch.device,
                 precision: str = "auto") -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.contract = c = load_contract(model_path)
        if c.kind not in RUNNABLE_KINDS:
            raise ContractError(f"{model_path}: kind {c.kind!r} is not run by the service "
                                f"(runs {RUNNABLE_KINDS})")
        self.device = device
        self.module = load_torchscript(model_path, device)
        self.thresholds = {**c.thresholds, **cfg.thresholds}
        self.highpass_hz = cfg.highpass_hz
        if self.highpass_hz is not None and self.highpass_hz >= c.sampling_rate_hz / 2:
            raise ContractError(f"detector {cfg.name}: highpass_hz {self.highpass_hz} is not "
                                f"below the model's Nyquist ({c.sampling_rate_hz / 2} Hz)")
        stride_s = c.stride_s if cfg.stride_s is None else cfg.stride_s
        if stride_s > c.window_s:
            raise ContractError(f"detector {cfg.name}: stride_s {stride_s} exceeds the model's "
                                f"window of {c.window_s} s")
        self.stride_s = stride_s
        comps = c.components if cfg.components is None else cfg.components  # as given
        if len(comps) != len(c.components):
            raise ContractError(f"detector {cfg.name}: components {list(comps)} are not "
                                f"{len(c.components)} like the model's {list(c.components)}")
        lookahead_s = (c.window_s - stride_s) / 2 if cfg.lookahead_s is None else cfg.lookahead_s
        if c.stacking != Stacking.NONE:  # a window owns its first stride: no later one adds to it
            if cfg.lookahead_s is not None:
                raise ContractError(f"detector {cfg.name}: lookahead_s does not apply to a model "
                                    f"whose contract stacks windows (stacking {c.stacking.value!r})")
            lookahead_s = c.window_s - stride_s
        if lookahead_s + stride_s > c.window_s:
            raise ContractError(f"detector {cfg.name}: lookahead_s {lookahead_s} + stride_s "
                                f"{stride_s} exceed the model's window of {c.window_s} s")
        self._peaks_rule = (c.kind == "picker" and c.stacking == Stacking.NONE
                            and c.pick_rule == PickRule.PEAKS)
        self.spec = WindowSpec(cfg.name, comps, c.window_s, stride_s, c.sampling_rate_hz,
                               cfg.missing_components, report_lag_s=lookahead_s,
                               tail=c.kind == "picker",
                               state_s=PHASE_STATE_S if self._peaks_rule else 0.0)
        self.model = ModelRef(c.name, c.version, c.sha256)
        self._state: dict[InstrumentId, dict[str, float]] = {}
        self._stretches: dict[InstrumentId, StretchState] = {}  # pick_rule seisbench
        self._stacks: dict[InstrumentId, StackState] = {}  # stacking avg
        self._probe()
        g = torch.Generator().manual_seed(0)
        probe = torch.randn((4, len(c.components), c.window_samples), generator=g).to(device)
        methods = ("forward_range",) if c.forward_range else ()
        self.module = freeze_checked(self.module, probe, c.name, methods)
        self._tail_s = self.spec.report_lag_s  # each window owns a stride before its tail
        # outputs read beyond the owned stretch: peak finding compares neighbouring peaks; the
        # seisbench rule reads owned samples only (it carries open stretches across windows)
        self._context_samples = (seconds_to_samples(PEAK_CONTEXT_S, c.sampling_rate_hz)
                                 if c.pick_rule == PickRule.PEAKS else 0)
        if c.forward_range and not hasattr(self.module, "forward_range"):
            raise ContractError(f"model {c.name}: the contract says forward_range but the "
                                "TorchScript module does not export it")
        batch = max(4, min(64, PRECISION_PROBE_SAMPLES // c.window_samples))
        big = torch.randn((batch, len(c.components), c.window_samples), generator=g)
        self.precision_choice: PrecisionChoice = decide(
            self.module, big.to(device), self._output_difference, precision, c.precisions,
            c.name)
        self.precision = self.precision_choice.precision
        #: decode only the scored stretch of each window (``forward_range``, checked here)
        self.decodes_range = (c.forward_range and c.stacking == Stacking.NONE
                              and self._range_agrees(probe))
        log.info("model %s on %s at %s: %s", c.name, device, self.precision,
                 self.precision_choice.reason)

    def _range_agrees(self, probe: torch.Tensor) -> bool:
        """Whether ``forward_range`` gives ``forward``'s outputs on ``probe`` over the range this
        detector decodes, in float32 and at the chosen precision (within its tolerance). When
        not (another device's kernels, a faulty export), it says so and whole windows are
        decoded instead: slower, never wrong."""
        c = self.contract
        start, stop = self.decode_range(c.window_samples, first=False)
        checks = [("fp32", RANGE_ATOL if self.device.type == "cpu" else 10 * RANGE_ATOL)]
        if self.precision != "fp32":
            checks.append((self.precision, float(c.precisions[self.precision]["tolerance"])))
        for precision, tolerance in checks:
            with torch.inference_mode(), autocast(self.device, precision):
                want = self.module(probe)[:, :, start:stop].float()
                got = self.module.forward_range(probe, start, stop).float()
            diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
            if diff > tolerance:
                log.warning("model %s: forward_range(%d, %d) differs from forward by %.3g at %s "
                            "on a probe batch (shape %s, tolerance %.3g); decoding whole windows",
                            c.name, start, stop, diff, precision, tuple(got.shape), tolerance)
                return False
        return True

    def decode_range(self, n_samples: int, first: bool,
                     owned_from: int | None = None) -> tuple[int, int]:
        """Samples ``[start, stop)`` of a window of ``n_samples`` whose outputs scoring reads: the
        stretch the window owns plus ``PEAK_CONTEXT_S`` either side (peak finding looks that far;
        none for the ``seisbench`` pick rule). ``first``, ``owned_from``: the window's
        ``first`` and ``owned_from_samples``.
        """
        lo, hi = owned_samples(n_samples, self.contract.sampling_rate_hz, self.stride_s,
                               self._tail_s, first, owned_from=owned_from)
        return max(0, lo - self._context_samples), min(n_samples, hi + self._context_samples)

    def _output_difference(self, x: torch.Tensor, ref: torch.Tensor, low: torch.Tensor) -> float:
        """What a precision's tolerance bounds: the largest probability difference (picker,
        detector) or relative anomaly-score difference (autoencoder) over a batch."""
        if self.contract.kind == "anomaly":
            s_ref, s_low = anomaly_scores(ref, x), anomaly_scores(low, x)
            return float(((s_low - s_ref).abs() / s_ref.clamp_min(1e-12)).max())
        return float((low - ref).abs().max())

    def _probe(self) -> None:
        c = self.contract
        x = torch.zeros((2, len(c.components), c.window_samples), device=self.device)
        with torch.inference_mode():
            out = self.module(x)
        expected = output_shape(c.kind, 2, len(c.components), len(c.labels), c.window_samples,
                                c.output_step_samples)
        if tuple(out.shape) != expected:
            raise ContractError(f"model {c.name}: output shape {tuple(out.shape)} on a probe batch "
                                f"does not match the contract's {expected}")

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` as the model sees it: high-passed where the detector's ``highpass_hz``
        says (``rules.highpass``), then the contract's normalisation (``rules.normalise``)."""
        norm = self.contract.normalisation
        if self.highpass_hz is not None:
            batch = highpass(batch, self.highpass_hz, self.contract.sampling_rate_hz)
        return normalise(batch, norm.method, norm.demean, norm.eps)

    def infer(self, windows: list[Window]) -> ModelOutputs:
        """Model outputs for a batch (thread-safe: several batches may run at once). A picker
        whose contract has ``forward_range`` decodes only the samples scoring reads (each
        window's ``decode_range``; windows with the same range share a forward pass, so a
        window's outputs never depend on which others share its batch)."""
        raw = np.stack([w.data for w in windows])
        if not self.decodes_range:
            return ModelOutputs.whole(self.infer_array(raw))
        n = raw.shape[-1]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, w in enumerate(windows):
            groups.setdefault(self.decode_range(n, w.first, w.owned_from_samples), []).append(i)
        values: list[np.ndarray] = [np.empty(0)] * len(windows)
        starts = [0] * len(windows)
        for (start, stop), rows in groups.items():
            x = self.normalise(raw[rows])
            with torch.inference_mode(), autocast(self.device, self.precision):
                out = self.module.forward_range(torch.from_numpy(x).to(self.device), start, stop)
            for i, v in zip(rows, out.float().cpu().numpy()):
                values[i], starts[i] = v, start
        return ModelOutputs(values, tuple(starts))

    def infer_array(self, raw: np.ndarray, precision: str | None = None) -> np.ndarray:
        """Outputs for raw windows ``(B, C, N)`` as the service computes them: normalised, at
        the chosen precision (or ``precision``), anomaly scores for an autoencoder."""
        x = self.normalise(raw)
        with torch.inference_mode(), autocast(self.device, precision or self.precision):
            out = self.module(torch.from_numpy(x).to(self.device))
        out_np: np.ndarray = out.float().cpu().numpy()
        if self.contract.kind == "anomaly":
            return anomaly_scores(out_np, x)
        return out_np

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]:
        return self.score(windows, self.infer(windows))

    def score(self, windows: list[Window],
              outputs: ModelOutputs) -> list[tuple[Window, list[Alert]]]:
        """Alerts from model outputs; keeps per-station state, so batches go in stream order.
        A batch that raises leaves the state as it found it: the runner then scores its windows
        one by one (``runner._isolate``), and a window scored before the failing one must not
        find its own picks already remembered (they would be skipped as seen)."""
        ids = {w.instrument for w in windows}
        saved = (_take(self._state, ids, copy.copy), _take(self._stretches, ids),
                 _take(self._stacks, ids))
        try:
            return self._score(windows, outputs)
        except Exception:
            _put_back(self._state, saved[0])
            _put_back(self._stretches, saved[1])
            _put_back(self._stacks, saved[2])
            raise

    def _score(self, windows: list[Window],
               outputs: ModelOutputs) -> list[tuple[Window, list[Alert]]]:
        c = self.contract
        tail_s = self._tail_s
        results: list[tuple[Window, list[Alert]]] = []
        for w, out, start in zip(windows, outputs.values, outputs.starts):
            state = self._state.setdefault(w.instrument, {})
            if w.first:
                state.clear()
            lo, hi = owned_range(w, self.stride_s, tail_s)
            if c.kind == "picker" and c.stacking != Stacking.NONE:  # whole windows are decoded
                n_stride = seconds_to_samples(self.stride_s, w.sampling_rate_hz)
                mean = stack(w, out, n_stride, self._stacks.setdefault(w.instrument, StackState()),
                             c.stacking)
                alerts = score_stretches(w, mean, c.labels, self.thresholds, lo, hi,
                                         self._stretches.setdefault(w.instrument, StretchState()),
                                         self.model, self.name)
            elif c.kind == "picker" and c.pick_rule == PickRule.SEISBENCH:
                alerts = score_stretches(w, out, c.labels, self.thresholds, lo, hi,
                                         self._stretches.setdefault(w.instrument, StretchState()),
                                         self.model, self.name, start)
            elif c.kind == "picker":
                if w.first and w.pad_samples:
                    # where a stream starts (after the padding before its first sample: once
                    # flat, whose step read as an onset; now mirrored) nothing is picked within
                    # PEAK_CONTEXT_S: the model sees no data before the join
                    lo = min(hi, max(lo, w.pad_samples + self._context_samples))
                offset = start
                if cut_near_peak(out, start, w.data.shape[-1], lo, hi, c.labels, self.thresholds,
                                 w.sampling_rate_hz):
                    out, offset = self.infer_array(w.data[None])[0], 0  # exact: whole window
                alerts = score_picker(w, out, c.labels, self.thresholds, lo, hi, state, self.model,
                                      self.name, offset,
                                      partial(flat_edges, w.data, w.sampling_rate_hz))
            elif c.kind == "detector":
                alerts = score_detector(w, out[0], c.output_step_samples, self.thresholds,
                                        lo, hi, state, self.model, self.name)
            else:
                alerts = score_anomaly(w, float(out), self.thresholds, state, self.model, self.name)
            if c.refine is not None and alerts:
                row = c.components.index(c.refine.component)
                alerts = refine_picks(w, alerts, c.refine, row, state, separate=self._peaks_rule)
            if self._peaks_rule and alerts:
                alerts = drop_phase_conflicts(alerts, state)
            results.append((w, alerts))
        return results


_S = TypeVar("_S")


def _take(store: dict[InstrumentId, _S], ids: set[InstrumentId],
          copier: Callable[[_S], _S] = copy.deepcopy) -> dict[InstrumentId, _S | None]:
    """Copies of ``store``'s entries for ``ids`` (None: no entry; ``copy.copy`` is enough for
    the per-instrument dicts of floats)."""
    return {i: copier(store[i]) if i in store else None for i in ids}


def _put_back(store: dict[InstrumentId, _S], saved: dict[InstrumentId, _S | None]) -> None:
    for i, value in saved.items():
        if value is None:
            store.pop(i, None)
        else:
            store[i] = value
