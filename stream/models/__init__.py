"""Models shipped with the package (``stream/models/NAME.pt`` + ``NAME.json``).

``builtin:NAME`` in a detector's ``path`` resolves here. The default detector set is the STA/LTA
baseline plus every shipped runnable model whose contract records that it beat STA/LTA on the
station-held-out evaluation (``metrics.beats_stalta``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent
RUNNABLE = ("picker", "detector", "anomaly")

STALTA_DEFAULT: dict[str, Any] = {
    "name": "stalta", "type": "stalta", "components": ["Z"], "window_s": 10.0, "stride_s": 1.0,
    "sta_s": 0.5, "lta_s": 10.0, "trigger_on": 3.5, "trigger_off": 1.0,
    "bandpass_hz": [1.0, 20.0],
}


def resolve(path: str) -> Path:
    """``builtin:picker`` -> the shipped file; anything else is a filesystem path."""
    if path.startswith("builtin:"):
        return MODELS_DIR / f"{path[len('builtin:'):]}.pt"
    return Path(path).expanduser()


def shipped() -> list[dict[str, Any]]:
    """Raw contracts of the shipped models, sorted by name (unvalidated)."""
    out = []
    for js in sorted(MODELS_DIR.glob("*.json")):
        try:
            raw = json.loads(js.read_text())
        except json.JSONDecodeError:
            continue
        raw["_path"] = str(js.with_suffix(".pt"))
        out.append(raw)
    return out


def default_detector_tables() -> list[dict[str, Any]]:
    tables: list[dict[str, Any]] = [dict(STALTA_DEFAULT)]
    for raw in shipped():
        if raw.get("kind") in RUNNABLE and raw.get("metrics", {}).get("beats_stalta") is True \
                and raw.get("domain", "seismic") == "seismic":
            tables.append({"name": raw["name"], "type": "model",
                           "path": f"builtin:{Path(raw['_path']).stem}",
                           "missing_components": "zeros"})
    return tables
