"""Build detectors from validated config (each type's builder: ``detectors.registry``)."""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from geosentry.stream.config import Config, DetectorConfig
from geosentry.stream.detectors.base import Detector
from geosentry.stream.detectors.registry import build


def build_detector(cfg: DetectorConfig, device: torch.device, precision: str = "auto") -> Detector:
    """The detector ``cfg`` describes, built by its type's entry in
    ``geosentry.stream.detectors.registry.DETECTOR_TYPES``."""
    det = build(cfg, device, precision)
    if det.spec.channels != cfg.channels:  # routing: which instruments feed it (config)
        det.spec = replace(det.spec, channels=cfg.channels)
    return det


def build_detectors(cfg: Config) -> list[Detector]:
    from geosentry.stream.inference.model import pick_device

    from geosentry.stream.inference.runner import inference_workers

    device = pick_device(cfg.inference.device)
    inf = cfg.inference
    # workers run batches side by side, each on its own core: keep torch from oversubscribing
    threads = inf.threads or max(1, len(os.sched_getaffinity(0)) // inference_workers(inf.workers))
    torch.set_num_threads(threads)
    return [build_detector(d, device, inf.precision) for d in cfg.detectors]
