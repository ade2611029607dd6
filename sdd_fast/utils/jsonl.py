"""JSON-lines files of a run (metrics.jsonl, eval.jsonl): append, read, rewrite atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .atomic import atomic_write_bytes


class JsonLinesError(ValueError):
    """A JSON-lines file holds a line that is not a JSON object (other than a torn last line)."""


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
        f.write(json_text(row) + "\n")
        f.flush()


def read_jsonl(path) -> list:
    """Every complete JSON object of the file; a torn last line (crash mid-write) is skipped.

    Raises JsonLinesError naming the file and line when any other line is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # the last line was being written when the run stopped
            raise JsonLinesError(f"{path}:{number} is not JSON ({error}); fix or delete that line") from None
        if not isinstance(row, dict):
            raise JsonLinesError(f"{path}:{number} is a JSON {type(row).__name__}, not an object; fix or delete "
                                 "that line")
        rows.append(row)
    return rows


def write_jsonl(path, rows) -> None:
    """Replaces the file with `rows`, atomically (temp file + rename)."""
    text = "".join(json_text(row) + "\n" for row in rows)
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def json_text(obj, **kwargs) -> str:
    """`json.dumps` of `obj` with every non-finite float (at any depth) written as null:
    strict JSON, which Python's default NaN / Infinity tokens are not."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return _clean(value)

    return json.dumps(clean(obj), allow_nan=False, **kwargs)


def write_json(path, obj) -> None:
    """Writes one JSON document atomically, indented (non-finite floats as null)."""
    text = json_text(obj, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
