"""Build detectors from validated config (the one place detector types are dispatched)."""

from __future__ import annotations

import torch

from stream.config import Config, DetectorConfig
from stream.detectors.base import Detector
from stream.detectors.geomag import ArtefactDetector, DbDtDetector, SscDetector
from stream.detectors.stalta import StaLtaDetector
from stream.models import resolve


GEOMAG: dict[str, type[DbDtDetector] | type[SscDetector] | type[ArtefactDetector]] = {
    "dbdt": DbDtDetector, "ssc": SscDetector, "artefacts": ArtefactDetector}


def build_detector(cfg: DetectorConfig, device: torch.device) -> Detector:
    if cfg.type == "stalta":
        return StaLtaDetector(cfg)
    if cfg.type in GEOMAG:
        return GEOMAG[cfg.type](cfg)
    from stream.inference.model import TorchScriptDetector

    return TorchScriptDetector(cfg, resolve(cfg.path), device)


def build_detectors(cfg: Config) -> list[Detector]:
    from stream.inference.model import pick_device

    device = pick_device(cfg.inference.device)
    if cfg.inference.threads:
        torch.set_num_threads(cfg.inference.threads)
    return [build_detector(d, device) for d in cfg.detectors]
