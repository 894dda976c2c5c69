"""Training: a generic resumable loop (:mod:`.loop`) and one task per shipped model."""

from __future__ import annotations

from geosentry.training.train.loop import FitConfig, Task, fit

__all__ = ["FitConfig", "Task", "fit"]
