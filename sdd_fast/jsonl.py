"""JSON-lines files of a run (metrics.jsonl, eval.jsonl): append, read, rewrite atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .atomic import atomic_write_bytes


def _clean(value):
    """JSON has no NaN / Inf: they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append_jsonl(path, row: dict) -> None:
    """Appends one JSON object as a line and flushes it (a crash loses at most this line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        f.flush()


def read_jsonl(path) -> list:
    """Every complete JSON object of the file; a torn last line (crash mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # the last line was being written when the run stopped
            raise ValueError(f"{path}:{number} is not JSON: {error}") from error
    return rows


def write_jsonl(path, rows) -> None:
    """Replaces the file with `rows`, atomically (temp file + rename)."""
    text = "".join(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n" for row in rows)
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path, obj) -> None:
    """Writes one JSON document atomically, indented."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
