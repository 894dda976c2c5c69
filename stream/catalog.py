"""``geosentry models``: what the service can load, read from the shipped contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geosentry.stream.errors import GeosentryError
from geosentry.stream.models import shipped


def list_models() -> list[dict[str, Any]]:
    out = []
    for raw in shipped():
        path = raw.pop("_path")
        if "_error" in raw:  # a contract that fails the service's check: listed, with why
            out.append({"name": raw["name"], "kind": None, "format": None, "path": path,
                        "builtin": f"builtin:{Path(path).stem}", "sha256": None,
                        "contract": None, "metrics": {}, "error": raw["_error"]})
            continue
        out.append({"name": raw.get("name"), "kind": raw.get("kind"), "format": raw.get("format"),
                    "path": path, "builtin": f"builtin:{Path(path).stem}",
                    "sha256": raw.get("sha256"), "contract": raw,
                    "metrics": raw.get("metrics", {}).get("headline", raw.get("metrics", {}))})
    return out


def describe(name: str) -> str:
    for m in list_models():
        if name in (m["name"], Path(m["path"]).stem):
            if m.get("error"):
                raise GeosentryError(f"shipped model {name!r} is broken: {m['error']}")
            c = m["contract"]
            lines = [
                f"{m['name']} ({m['kind']}, {m['format']}, version {c.get('version')})",
                f"  file:       {m['path']}  sha256 {str(m['sha256'])[:16]}…",
                f"  input:      {len(c.get('components', []))} components "
                f"{''.join(c.get('components', []))} at {c.get('sampling_rate_hz')} Hz, "
                f"{c.get('window_samples')} samples per window, stride {c.get('stride_samples')}",
                f"  output:     labels {c.get('labels')}, thresholds {c.get('thresholds')}",
                f"  normalise:  {c.get('normalisation')}",
                f"  domain:     {c.get('domain', 'seismic')}",
                "  precisions: fp32" + "".join(
                    f", {k} (validated: {v.get('command', '?')}; load tolerance {v.get('tolerance')})"
                    for k, v in c.get("precisions", {}).items()),
            ]
            if c.get("forward_range"):
                lines.append("  decoding:   forward_range (only the stretch of each window that "
                             "is scored)")
            if c.get("training"):
                lines.append(f"  training:   {c['training']}")
            if c.get("metrics"):
                lines.append(f"  metrics:    {c['metrics']}")
            return "\n".join(lines)
    raise GeosentryError(f"no shipped model named {name!r} (see `geosentry models list`)")
