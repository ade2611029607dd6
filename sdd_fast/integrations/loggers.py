"""Where metric rows go: JSON lines (always), CSV, TensorBoard.

A row is a flat dict of Python numbers with at least `step`. Every logger appends and flushes
per row, and `truncate_after(step)` drops rows past a resumed checkpoint, so a resumed run
never holds a step twice.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..utils.atomic import atomic_write_bytes
from ..utils.jsonl import append_jsonl, read_jsonl, write_jsonl


class JsonlLogger:
    """Rows as JSON objects, one per line (`metrics.jsonl`)."""

    def __init__(self, path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        """Rewrites the file without rows whose step is > `step` (atomic)."""
        rows = read_jsonl(self.path)
        kept = [row for row in rows if row.get("step", 0) <= step]
        if len(kept) != len(rows) or self.path.exists():
            write_jsonl(self.path, kept)

    def log(self, row: dict) -> None:
        append_jsonl(self.path, row)

    def close(self) -> None:
        pass


class CsvLogger:
    """Rows as CSV with a fixed header (`metrics.csv`); keys outside it are not written."""

    def __init__(self, path, fields):
        self.path, self.fields = Path(path), list(fields)

    def truncate_after(self, step: int) -> None:
        kept = []
        if self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as f:
                kept = [row for row in csv.DictReader(f) if row.get("step") and int(row["step"]) <= step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(self.path, lambda f: f.write(buffer.getvalue().encode("utf-8")))

    def log(self, row: dict) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Every numeric key of a row as a scalar `train/<key>` at the row's step."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.writer = None

    def truncate_after(self, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events past `step` that an interrupted run wrote.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1)

    def log(self, row: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def make_loggers(out_dir, names, csv_fields) -> list:
    """[JsonlLogger(OUT/metrics.jsonl)] plus the named extra loggers ("csv", "tensorboard")."""
    out_dir = Path(out_dir)
    loggers = [JsonlLogger(out_dir / "metrics.jsonl")]
    for name in names:
        if name == "csv":
            loggers.append(CsvLogger(out_dir / "metrics.csv", csv_fields))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(out_dir / "tensorboard"))
        elif name != "jsonl":
            raise ValueError(f"unknown logger {name!r}; known: jsonl, csv, tensorboard")
    return loggers
