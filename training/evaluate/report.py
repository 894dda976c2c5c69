"""Write evaluation results as JSON and a short Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _flatten(prefix: str, obj: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, rows)
    else:
        rows.append((prefix, json.dumps(obj) if not isinstance(obj, str) else obj))


def write_report(results: dict[str, Any], out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """``out_dir/<name>.json`` and ``out_dir/<name>.md`` (every leaf as a table row)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / f"{name}.json"
    md = out_dir / f"{name}.md"
    js.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    rows: list[tuple[str, str]] = []
    _flatten("", results, rows)
    lines = [f"# Evaluation: {name}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    md.write_text("\n".join(lines) + "\n")
    return js, md
