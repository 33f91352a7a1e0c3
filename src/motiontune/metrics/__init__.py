"""Evaluation metrics (design sec. 5)."""

from motiontune.metrics.motion_fidelity import (
    MODES,
    MotionFidelity,
    displacements,
    dmt_score,
    dmt_similarity,
    motion_fidelity,
    motion_fidelity_of_videos,
    resample_positions,
    static_tracks,
    track_correlation,
)
from motiontune.metrics.trackers import (
    TRACKERS,
    CoTrackerTracker,
    OpenCVLucasKanadeTracker,
    Tracker,
    Tracks,
    build_tracker,
    foreground_box,
    load_foreground_mask,
)

__all__ = [
    "MODES",
    "TRACKERS",
    "CoTrackerTracker",
    "MotionFidelity",
    "OpenCVLucasKanadeTracker",
    "Tracker",
    "Tracks",
    "build_tracker",
    "displacements",
    "dmt_score",
    "dmt_similarity",
    "foreground_box",
    "load_foreground_mask",
    "motion_fidelity",
    "motion_fidelity_of_videos",
    "resample_positions",
    "static_tracks",
    "track_correlation",
]
