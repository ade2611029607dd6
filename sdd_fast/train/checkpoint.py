"""Checkpoints: atomic writes, the latest one of a run, and loads that fail with the file's name.

A checkpoint (`OUT/checkpoints/step_XXXXXX.pt`) is a dict:
    format     CHECKPOINT_FORMAT
    step       optimisation steps done
    config     the run's options (as in OUT/config.json)
    backbone   state_dict of the backbone to evaluate (the teacher's where the method has one)
    method     state_dict of the whole method module (student, teacher, heads, buffers)
    optimizer, scaler    their state_dicts
    rng        torch / CUDA / Python / NumPy generator states
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..utils.atomic import atomic_write_bytes

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")
REQUIRED_KEYS = ("format", "step", "config", "backbone")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not an sdd-fast checkpoint."""


def checkpoint_dir(run_dir) -> Path:
    """OUT/checkpoints."""
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir, step: int) -> Path:
    """OUT/checkpoints/step_XXXXXX.pt for `step`."""
    return checkpoint_dir(run_dir) / f"step_{step:06d}.pt"


def list_checkpoints(run_dir) -> list:
    """[(step, path)] of every checkpoint of the run, by step (temp files are ignored)."""
    found = []
    folder = checkpoint_dir(run_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir):
    """Path of the run's checkpoint with the highest step, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(state: dict, path) -> None:
    """Writes `state` (see module docstring) atomically to `path`."""
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    """Loads and checks a checkpoint; raises CheckpointError naming the file when it is bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: the file holds RNG states and the config, written by us.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # truncated zip, pickle garbage, ...
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(error).__name__}: {error})") \
            from error
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint {path} is not an sdd-fast checkpoint (keys {REQUIRED_KEYS} expected)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}; this sdd-fast reads "
                              f"format {CHECKPOINT_FORMAT}")
    return state
