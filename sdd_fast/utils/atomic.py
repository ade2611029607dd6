"""Atomic file writes: a crash leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path, write) -> None:
    """Calls `write(file)` on a temp file beside `path`, fsyncs it, then renames it over `path`.

    A crash leaves either the old file or the new one, never a partial file. The file gets the
    permissions of a plain `open(path, "w")` (0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temps(directory, names=("*",)) -> list:
    """Deletes the temp files `atomic_write_bytes` leaves in `directory` when its process is
    killed mid-write (`.NAME.XXXXXXXX.tmp`), for the file names matching the glob patterns
    `names`; returns their paths.

    Only call it while holding the writer lock of those files (`runlock.run_lock`): a live
    writer's temp file looks the same.
    """
    folder = Path(directory)
    removed = []
    if folder.is_dir():
        for pattern in names:
            for path in folder.glob(f".{pattern}.*.tmp"):
                if path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def _umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
