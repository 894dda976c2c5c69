"""Models shipped with the package (``stream/models/NAME.pt`` + ``NAME.json``).

``builtin:NAME`` in a detector's ``path`` resolves here. The default detector set is the STA/LTA
baseline plus every shipped runnable model whose contract records that it beat STA/LTA on the
station-held-out evaluation (``metrics.beats_stalta``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from geosentry.stream.errors import ContractError
from geosentry.stream.inference.contract import load_contract
from geosentry.stream.inference.rules import RUNNABLE_KINDS

log = logging.getLogger(__name__)
MODELS_DIR = Path(__file__).resolve().parent
RUNNABLE = RUNNABLE_KINDS  # the kinds the service runs (one list: ``inference.rules``)

#: the default STA/LTA detector; its other settings are ``StaLtaConfig``'s defaults
#: (``stream/detectors/registry.py``: Z, 10 s windows every 1 s, STA 0.5 s, LTA 10 s, 3.5 / 1.0)
STALTA_DEFAULT: dict[str, Any] = {"name": "stalta", "type": "stalta", "bandpass_hz": [1.0, 20.0]}


def resolve(path: str) -> Path:
    """``builtin:picker`` -> the shipped file; anything else is a filesystem path."""
    if path.startswith("builtin:"):
        return MODELS_DIR / f"{path[len('builtin:'):]}.pt"
    return Path(path).expanduser()


def shipped() -> list[dict[str, Any]]:
    """Contracts of the shipped models, sorted by file name: each the contract JSON with
    ``_path`` (the model file), checked as the service checks a model at load
    (``inference.contract.load_contract``: a valid contract naming its file, with its sha256).

    A contract that fails the check is not left out silently: it is logged as a warning and
    listed as ``{"name": <file stem>, "_path": ..., "_error": <the problem>}`` (nothing else),
    which ``default_detector_tables`` skips and ``geosentry models list`` reports."""
    out: list[dict[str, Any]] = []
    for js in sorted(MODELS_DIR.glob("*.json")):
        pt = js.with_suffix(".pt")
        try:
            load_contract(pt)
            raw = json.loads(js.read_text())
        except ContractError as exc:
            log.warning("shipped model %s is broken: %s", js.stem, exc)
            out.append({"name": js.stem, "_path": str(pt), "_error": str(exc)})
            continue
        raw["_path"] = str(pt)
        out.append(raw)
    return out


def default_detector_tables() -> list[dict[str, Any]]:
    tables: list[dict[str, Any]] = [dict(STALTA_DEFAULT)]
    for raw in shipped():
        if "_error" not in raw and raw.get("kind") in RUNNABLE and raw.get("metrics", {}).get("beats_stalta") is True \
                and raw.get("domain", "seismic") == "seismic":
            tables.append({"name": raw["name"], "type": "model",
                           "path": f"builtin:{Path(raw['_path']).stem}",
                           "missing_components": "zeros"})
    return tables
