"""The contract every detector meets, and the owned-stretch rule that makes windows tile time.

A detector has a ``name``, a ``spec`` (``WindowSpec``: what windows it wants), a ``model``
(``ModelRef`` named in its alerts) and ``process(windows) -> [(window, alerts)]``, which runs in
the detector's own worker thread (never on the event loop), one batch at a time, in order.

Optional capabilities are protocols of their own, checked with ``isinstance`` (never probed
with ``getattr``): ``SplitDetector`` (``infer`` + ``score``: batches inferred side by side,
scored in order) and ``LoadedModel`` (a model file run at some ``precision`` on a ``device``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from geosentry.stream.buffer.spec import owned_samples
from geosentry.stream.buffer.windows import WindowSpec
from geosentry.stream.records import Alert, ModelRef, Window

__all__ = ["Detector", "LoadedModel", "SplitDetector", "owned_range", "owned_samples"]


class Detector(Protocol):
    name: str
    spec: WindowSpec
    model: ModelRef

    def process(self, windows: list[Window]) -> list[tuple[Window, list[Alert]]]: ...


@runtime_checkable
class SplitDetector(Detector, Protocol):
    """A detector whose work splits into a thread-safe ``infer`` (several batches may run at
    once, e.g. a TorchScript forward pass) and a stateful ``score`` run in stream order;
    ``process(w)`` is ``score(w, infer(w))``."""

    def infer(self, windows: list[Window]) -> Any: ...

    def score(self, windows: list[Window],
              outputs: Any) -> list[tuple[Window, list[Alert]]]: ...


@runtime_checkable
class LoadedModel(Protocol):
    """A detector that runs a loaded model file: ``model`` names it, ``device`` and
    ``precision`` (``fp32``, ``bf16`` ...) say how it runs (the ``model_info`` metric)."""

    model: ModelRef
    device: Any
    precision: str


def owned_range(w: Window, stride_s: float, tail_s: float, warmup_s: float = 0.0) -> tuple[int, int]:
    """Sample range ``[lo, hi)`` of ``w`` whose events this window reports.

    Consecutive windows of one stream own consecutive ``stride``-long stretches ending ``tail_s``
    before each window's end; a stream's first window also owns everything after ``warmup_s``.

    >>> import numpy as np
    >>> from geosentry.stream.records import Window
    >>> w = Window("XX", "A", "", ("HHZ",), 0, 100.0, np.zeros((1, 1000)), 0, "d")
    >>> owned_range(w, stride_s=2.0, tail_s=1.0)
    (700, 900)
    """
    return owned_samples(w.data.shape[-1], w.sampling_rate_hz, stride_s, tail_s, w.first,
                         warmup_s, w.owned_from_samples)
