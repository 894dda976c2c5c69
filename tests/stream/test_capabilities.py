"""Optional capabilities are protocols checked with ``isinstance`` (never ``getattr``): split
inference, a loaded model, a source's lag and liveness; sources and sinks work as ``async with``;
use before ``start()`` is a typed error (not an ``assert``, which ``python -O`` drops)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geosentry.stream.detectors.base import LoadedModel, SplitDetector
from geosentry.stream.detectors.registry import StaLtaConfig
from geosentry.stream.detectors.stalta import StaLtaDetector
from geosentry.stream.errors import NotStartedError, SourceError
from geosentry.stream.inference.runner import splits_inference
from geosentry.stream.seedlink.server import SeedLinkServer
from geosentry.stream.sources import ReportsLag, is_live
from geosentry.stream.sources.files import FileSource
from geosentry.stream.sources.kafka import KafkaSource
from geosentry.stream.sources.seedlink import SeedLinkSource
from geosentry.stream.testing import MemorySink, MemorySource, synthetic_mseed


def test_detector_capabilities() -> None:
    stalta = StaLtaDetector(StaLtaConfig("s", window_s=4.0, stride_s=1.0, lta_s=2.0))
    assert not splits_inference(stalta) and not isinstance(stalta, LoadedModel)


def test_a_loaded_model_splits_inference_and_says_how_it_runs(tmp_path: Path) -> None:
    exporter = pytest.importorskip("geosentry.training.export.exporter")
    from geosentry.stream.config import DetectorConfig
    from geosentry.stream.inference.model import TorchScriptDetector

    pt, _ = exporter.export_tiny_picker(tmp_path)
    det = TorchScriptDetector(DetectorConfig(name="picker", type="model", path=str(pt)), pt,
                              torch.device("cpu"))
    assert isinstance(det, SplitDetector) and splits_inference(det)
    assert isinstance(det, LoadedModel) and det.precision in ("fp32", "bf16", "fp16")


def test_source_capabilities() -> None:
    kafka = KafkaSource("kafka://127.0.0.1:9/t")
    replay = KafkaSource("kafka://127.0.0.1:9/t?idle_exit_s=1")
    assert isinstance(kafka, ReportsLag) and is_live(kafka) and not is_live(replay)
    files = FileSource("/nonexistent")
    assert not isinstance(files, ReportsLag) and not is_live(files)
    assert is_live(MemorySource([], live=True)) and not is_live(MemorySource([]))
    assert is_live(SeedLinkSource("seedlink://127.0.0.1:1?streams=XX_A"))
    assert not is_live(SeedLinkSource("seedlink://127.0.0.1:1?streams=XX_A&dialup=true"))


async def test_sources_and_sinks_are_async_context_managers(tmp_path: Path) -> None:
    async with MemorySource([synthetic_mseed("XX.A..HHZ", 100)]) as src, MemorySink() as sink:
        assert len([r async for r in src.records()]) == 1 and sink.alerts == []
    with pytest.raises(SourceError, match="nonexistent"):
        async with FileSource(tmp_path / "nonexistent"):
            pass
    kafka = KafkaSource("kafka://127.0.0.1:9/t")
    for part in (kafka, SeedLinkSource("seedlink://127.0.0.1:1?streams=XX_A")):
        assert hasattr(part, "__aenter__") and hasattr(part, "__aexit__")


async def test_use_before_start_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "a.mseed").write_bytes(synthetic_mseed("XX.A..HHZ", 1000))
    with pytest.raises(NotStartedError):
        await SeedLinkServer(tmp_path).serve_forever()
    with pytest.raises(NotStartedError):
        async for _ in KafkaSource("kafka://127.0.0.1:9/t").records():
            pass
