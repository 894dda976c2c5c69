"""``geosentry models``: what the service can load, read from the contracts: the shipped models
and the imported, trained and fine-tuned ones in the folders of ``$GEOSENTRY_MODEL_PATH``
(``os.pathsep``-separated) and ``--path``: every ``NAME.json`` beside a ``NAME.pt`` there and
one folder level below."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geosentry.stream.errors import ContractError, GeosentryError
from geosentry.stream.inference.contract import load_contract
from geosentry.stream.models import shipped

MODEL_PATH_ENV = "GEOSENTRY_MODEL_PATH"


def model_dirs(extra: Sequence[str | Path] = ()) -> list[Path]:
    """``$GEOSENTRY_MODEL_PATH``'s folders, then ``extra`` (``--path``), each once."""
    env = [p for p in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep) if p]
    out: list[Path] = []
    for p in [*env, *extra]:
        path = Path(p).expanduser()
        if path not in out:
            out.append(path)
    return out


def _contracts_in(folder: Path) -> list[dict[str, Any]]:
    """Contracts of the models in ``folder`` (and one level below), checked as the service
    checks them at load; a broken one carries ``_error``."""
    if not folder.is_dir():
        raise GeosentryError(f"model folder {folder} does not exist (--path or "
                             f"${MODEL_PATH_ENV})")
    out: list[dict[str, Any]] = []
    for js in sorted([*folder.glob("*.json"), *folder.glob("*/*.json")]):
        pt = js.with_suffix(".pt")
        if not pt.exists():
            continue  # reports, histories: not a model's contract
        try:
            load_contract(pt)
            raw: dict[str, Any] = json.loads(js.read_text())
        except ContractError as exc:
            out.append({"name": js.stem, "_path": str(pt), "_error": str(exc)})
            continue
        raw["_path"] = str(pt)
        out.append(raw)
    return out


def _origin(raw: dict[str, Any], shipped_model: bool) -> str:
    """``shipped``, else the provenance's source (``seisbench``, ``fine-tuned``; ``geosentry``
    and contracts without provenance: ``trained``)."""
    if shipped_model:
        return "shipped"
    source = str(raw.get("provenance", {}).get("source", ""))
    return source if source and source != "geosentry" else "trained"


def list_models(dirs: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """Shipped models, then those of ``model_dirs(dirs)``: each with ``origin`` (``shipped``,
    ``trained``, ``seisbench``, ``fine-tuned``) and ``provenance`` (the contract's)."""
    out = []
    found = [(raw, True) for raw in shipped()]
    for folder in model_dirs(dirs):
        found += [(raw, False) for raw in _contracts_in(folder)]
    for raw, is_shipped in found:
        path = raw.pop("_path")
        ref = f"builtin:{Path(path).stem}" if is_shipped else path
        if "_error" in raw:  # a contract that fails the service's check: listed, with why
            out.append({"name": raw["name"], "kind": None, "format": None, "path": path,
                        "builtin": ref, "sha256": None, "origin": None, "provenance": {},
                        "contract": None, "metrics": {}, "error": raw["_error"]})
            continue
        out.append({"name": raw.get("name"), "kind": raw.get("kind"), "format": raw.get("format"),
                    "path": path, "builtin": ref, "origin": _origin(raw, is_shipped),
                    "provenance": raw.get("provenance", {}),
                    "sha256": raw.get("sha256"), "contract": raw,
                    "metrics": raw.get("metrics", {}).get("headline", raw.get("metrics", {}))})
    return out


def trained_on(m: dict[str, Any]) -> str:
    """What a listed model was trained on, in a few words."""
    prov = m.get("provenance") or {}
    if prov.get("trained_on"):
        return str(prov["trained_on"])
    training = (m.get("contract") or {}).get("training", {})
    source = training.get("data_source") or training.get("data")
    if not source:
        return "?"
    events = training.get("train_events")
    n = len(events) if isinstance(events, list) else events
    return f"{source}" + (f" ({n} training events)" if n else "")


def _refine(r: Any) -> str:
    """A contract's ``refine`` in words (``stream/inference/refine.py``)."""
    if not r:
        return "none (the model's picks)"
    band = r.get("band_hz", [])
    return (f"{r.get('method')} on {r.get('component')} for {'/'.join(r.get('phases', []))}, "
            f"within ±{r.get('half_window_s')} s, {band[0]:g}-{band[1]:g} Hz")


def describe(name: str, dirs: Sequence[str | Path] = ()) -> str:
    for m in list_models(dirs):
        if name in (m["name"], Path(m["path"]).stem, m["path"]):
            if m.get("error"):
                raise GeosentryError(f"model {name!r} is broken: {m['error']}")
            c = m["contract"]
            lines = [
                f"{m['name']} ({m['kind']}, {m['format']}, version {c.get('version')})",
                f"  file:       {m['path']}  sha256 {str(m['sha256'])[:16]}…",
                f"  input:      {len(c.get('components', []))} components "
                f"{''.join(c.get('components', []))} at {c.get('sampling_rate_hz')} Hz, "
                f"{c.get('window_samples')} samples per window, stride {c.get('stride_samples')}",
                f"  output:     labels {c.get('labels')}, thresholds {c.get('thresholds')}",
                *([f"  pick rule:  {c.get('pick_rule', 'peaks')}, stacking "
                   f"{c.get('stacking', 'none')}, onset refinement " + _refine(c.get("refine"))]
                  if m['kind'] == "picker" else []),
                f"  normalise:  {c.get('normalisation')}",
                f"  domain:     {c.get('domain', 'seismic')}",
                "  precisions: fp32" + "".join(
                    f", {k} (validated: {v.get('command', '?')}; load tolerance {v.get('tolerance')})"
                    for k, v in c.get("precisions", {}).items()),
            ]
            lines.insert(2, f"  origin:     {m['origin']}; trained on: {trained_on(m)}")
            lines.insert(3, f"  detector:   path = \"{m['builtin']}\"")
            for k, v in (m.get("provenance") or {}).items():
                if k not in ("trained_on", "docstring", "default_args", "model_args"):
                    lines.append(f"  provenance.{k}: {v}")
            if c.get("forward_range"):
                lines.append("  decoding:   forward_range (only the stretch of each window that "
                             "is scored)")
            if c.get("training"):
                lines.append(f"  training:   {c['training']}")
            if c.get("metrics"):
                lines.append(f"  metrics:    {c['metrics']}")
            return "\n".join(lines)
    raise GeosentryError(f"no model named {name!r} among the shipped ones and "
                         f"{[str(d) for d in model_dirs(dirs)] or 'no --path folders'} "
                         "(see `geosentry models list`)")
