"""A video in memory: frames plus the rate they play at."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VideoClip:
    """``frames``: uint8 (F, H, W, 3) RGB; ``fps``: playback rate."""

    frames: np.ndarray
    fps: float

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"VideoClip: frames must be uint8 (F, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
