"""PREP_DIR/manifest.jsonl: one JSON object per strip, keyed by its "name", appended as each strip is
written; the last row for a name wins, and a line cut short by a killed run is skipped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.errors import DatasetError

MANIFEST = "manifest.jsonl"


def read_manifest(path: Path) -> dict[str, dict]:
    """Rows by name, last one winning; a line cut short by a killed run is ignored (gcgan writes
    ASCII, so bytes that are not UTF-8 mean another file is in its place)."""
    rows: dict[str, dict] = {}
    if not path.exists():
        return rows
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                message = f"{path}: not a text manifest (line {number}); move it away and re-run segment"
                raise DatasetError(message) from None
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                rows.pop(row["name"], None)
                rows[row["name"]] = row
    return rows


def rewrite_manifest(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode())
