"""CSV text as the events readers take it (picks, station files): UTF-8 with or without a
byte-order mark (spreadsheets write one), comma, semicolon or tab separated (by the header
line), one error line for a file that is not UTF-8 text.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "picks.csv"
>>> _ = p.write_bytes(b"\\xef\\xbb\\xbfnetwork;station\\nNZ;WEL\\n")
>>> rows(p)
[['network', 'station'], ['NZ', 'WEL']]
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


class CsvTextError(ValueError):
    """Not UTF-8 text (the message names the file and the byte)."""


def delimiter(header: str) -> str:
    """Tab, semicolon or comma: tab where the header has one, semicolon where it has no
    comma."""
    return "\t" if "\t" in header else ";" if ";" in header and "," not in header else ","


def rows(path: Path) -> list[list[str]]:
    """The file's rows (header first), empty lines kept as empty rows."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvTextError(f"{path}: not UTF-8 text (byte {exc.start}: "
                           f"{exc.object[exc.start:exc.start + 1]!r})") from exc
    first = text.split("\n", 1)[0]
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(first)))
