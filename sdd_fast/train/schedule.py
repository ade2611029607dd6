"""Per-step schedules, precomputed once (as in DINO): warm-up then cosine."""

from __future__ import annotations

import math


def cosine_schedule(base: float, final: float, steps: int, warmup_steps: int = 0,
                    warmup_start: float = 0.0) -> list:
    """[steps] values: linear warmup_start -> base over `warmup_steps`, then cosine base -> final."""
    warmup_steps = min(warmup_steps, steps)
    values = [warmup_start + (base - warmup_start) * (i + 1) / warmup_steps for i in range(warmup_steps)]
    decay = steps - warmup_steps
    for i in range(decay):
        progress = i / max(1, decay - 1)
        values.append(final + 0.5 * (base - final) * (1 + math.cos(math.pi * progress)))
    return values
