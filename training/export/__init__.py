"""Export trained modules as TorchScript + contract JSON (the only thing ``stream`` reads)."""

from __future__ import annotations

from geosentry.training.export.exporter import (
    ExportResult,
    export_model,
    export_tiny_picker,
    parity_check,
    verify_export,
)

__all__ = ["ExportResult", "export_model", "export_tiny_picker", "parity_check", "verify_export"]
