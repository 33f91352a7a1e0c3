"""Evaluation metrics (design sec. 5)."""

from motiontune.metrics.motion_fidelity import (
    MotionFidelity,
    displacements,
    motion_fidelity,
    motion_fidelity_of_videos,
    resample_positions,
    track_correlation,
)
from motiontune.metrics.trackers import (
    TRACKERS,
    OpenCVLucasKanadeTracker,
    Tracker,
    Tracks,
    build_tracker,
)

__all__ = [
    "TRACKERS",
    "MotionFidelity",
    "OpenCVLucasKanadeTracker",
    "Tracker",
    "Tracks",
    "build_tracker",
    "displacements",
    "motion_fidelity",
    "motion_fidelity_of_videos",
    "resample_positions",
    "track_correlation",
]
