"""Learning-rate schedules shared by the project's own training loops (world backbone, world CLIP)."""

from __future__ import annotations

import math


def warmup_cosine_share(step: int, steps: int, warmup_steps: int, final_share: float = 0.0) -> float:
    """Share of the peak learning rate at ``step``: linear warmup over ``warmup_steps``, then cosine decay to
    ``final_share`` at ``steps`` (and held there after)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return final_share + (1 - final_share) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
