"""What a model of each kind is: the rules training and the service share, written once.

``geosentry.training`` exports models by these rules and the service (``inference.model``)
runs them by the same ones, so the two cannot drift apart:

- which model kinds a contract may name (``KINDS``) and which of them the service runs
  (``RUNNABLE_KINDS``);
- how a window is normalised before the model sees it (``normalise``), after an optional
  zero-phase high-pass a deployment may configure (``highpass``);
- the output shape a model of each kind must give (``output_shape``);
- the anomaly score of an autoencoder: the reconstruction's mean squared error
  (``anomaly_scores``).

This module needs numpy (and scipy for ``highpass``) only, never torch or ``training``; ``anomaly_scores`` works on
numpy arrays and torch tensors alike.

>>> x = np.array([[[1.0, 2.0, 3.0]]])
>>> normalise(x, "peak")
array([[[-1.,  0.,  1.]]], dtype=float32)
>>> output_shape("detector", batch=2, n_channels=3, n_labels=2, window=500, step=10)
(2, 2, 50)
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

#: every kind a contract may name
KINDS = ("picker", "detector", "anomaly", "generator")
#: the kinds the service runs (a generator is training's, for data augmentation)
RUNNABLE_KINDS = ("picker", "detector", "anomaly")
#: ``normalisation.method`` values
NORMALISATIONS = ("none", "std", "peak")

_A = TypeVar("_A")


def normalise(x: Any, method: str = "std", demean: bool = True, eps: float = 1e-8) -> np.ndarray:
    """Per-channel normalisation of windows ``(..., C, N)`` as float32: demeaned (``demean``),
    then divided by the standard deviation (``std``) or the largest absolute value (``peak``),
    plus ``eps``; ``none`` leaves the amplitudes as they are. ``x`` is not modified."""
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r} (not in {NORMALISATIONS})")
    out = np.array(x, dtype=np.float32, copy=True)
    if demean:
        out -= out.mean(axis=-1, keepdims=True)
    if method == "std":
        out /= out.std(axis=-1, keepdims=True) + eps
    elif method == "peak":
        out /= np.abs(out).max(axis=-1, keepdims=True) + eps
    return out


def highpass(x: Any, corner_hz: float, rate_hz: float) -> np.ndarray:
    """Windows ``(..., C, N)`` high-passed at ``corner_hz``, zero phase (a 2-pole Butterworth
    run forwards and backwards: 4 poles, no delay, so picks keep their times), as float64.

    >>> t = np.arange(3000) / 100.0
    >>> y = highpass(np.sin(2 * np.pi * 0.2 * t) + np.sin(2 * np.pi * 10 * t), 2.0, 100.0)
    >>> bool(np.abs(y[500:2500] - np.sin(2 * np.pi * 10 * t[500:2500])).max() < 0.02)
    True
    """
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, corner_hz, btype="highpass", fs=rate_hz, output="sos")
    data = np.asarray(x, dtype=np.float64)
    return np.asarray(sosfiltfilt(sos, data - data.mean(axis=-1, keepdims=True), axis=-1))


def output_shape(kind: str, batch: int, n_channels: int, n_labels: int, window: int,
                 step: int = 1) -> tuple[int, ...] | None:
    """The output shape of a batch of ``batch`` windows ``(batch, n_channels, window)``:

    - picker: one probability trace per label, ``(batch, n_labels, window)``;
    - detector: one probability trace per label every ``step`` samples,
      ``(batch, n_labels, window // step)`` (the service scores the first, the event);
    - anomaly: the reconstruction, ``(batch, n_channels, window)``;
    - generator: no rule (it takes a latent vector and a label, not a window): ``None``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} not in {KINDS}")
    if kind == "picker":
        return (batch, n_labels, window)
    if kind == "detector":
        return (batch, n_labels, window // step)
    if kind == "anomaly":
        return (batch, n_channels, window)
    return None


def anomaly_scores(reconstruction: _A, x: _A) -> _A:
    """Per-window anomaly score of an autoencoder: the mean squared difference between its
    reconstruction and the (normalised) input, over channels and samples (``(B, C, N)`` ->
    ``(B,)``). numpy arrays or torch tensors."""
    return ((reconstruction - x) ** 2).mean(axis=(1, 2))  # type: ignore[operator, no-any-return]
