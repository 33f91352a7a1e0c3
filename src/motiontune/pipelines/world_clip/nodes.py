"""World CLIP: train the tiny CLIP that CLIP metrics use on the motion world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motiontune.world_models.clip_training import WorldClipConfig, train_world_clip
from motiontune.world.spec import WorldSpec


def train_clip(world: dict[str, Any], world_clip: dict[str, Any]) -> dict[str, Any]:
    """Train and save the CLIP to ``world_clip.output_dir``; returns the training summary (with zero-shot accuracy)."""
    return train_world_clip(Path(world_clip["output_dir"]), WorldSpec.from_params(world),
                            WorldClipConfig.from_params(world_clip["training"]))
