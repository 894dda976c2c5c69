"""Evaluation: pick and detection metrics, the tuned STA/LTA baseline, JSON + Markdown reports."""

from __future__ import annotations

from geosentry.training.evaluate.picks import PickWindow, detection_scores, extract_picks, pick_scores
from geosentry.training.evaluate.report import write_report

__all__ = ["PickWindow", "detection_scores", "extract_picks", "pick_scores", "write_report"]
