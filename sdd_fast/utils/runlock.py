"""One writer per run directory: an advisory lock held for the life of a command.

    with run_lock(out, "train"):      # OUT/.train.lock, held until the block ends
        ...

The lock is `flock(2)` on a small file that records the holder's pid and host. The kernel
drops it when the holder exits, however it exits (SIGKILL, crash, power loss of a node for
network file systems that support locks), so a lock file left behind by a dead process is
taken over by the next command without any clean-up. A second live writer gets a
RunLockedError naming the holder's pid at once; it never waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another live process holds the run directory's lock for the same job."""


def lock_path(directory, job: str) -> Path:
    """OUT/.<job>.lock."""
    return Path(directory) / f".{job}.lock"


def _holder(fd: int) -> str:
    """The pid and host recorded by the lock's holder ("unknown" when unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 256).decode("utf-8", "replace").strip()
    return text or "unknown"


@contextlib.contextmanager
def run_lock(directory, job: str):
    """Holds OUT/.<job>.lock for the block (the directory must exist).

    Args:
        directory: the run directory.
        job (str): which writer ("train", "eval"); different jobs do not exclude each other,
            since they write different files.

    Raises:
        RunLockedError: another live process holds the lock (message names its pid and host).
    """
    path = lock_path(directory, job)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise RunLockedError(f"{directory} is in use: `sdd-fast {job}` process {holder} writes to it "
                                 f"(lock {path}); wait for it to end or choose another directory") from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
