"""The metrics file of one learned motion (design section 2): per generated video and mean."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from motiontune.metrics.motion_fidelity import motion_fidelity
from motiontune.metrics.trackers import Tracker


def evaluate_motion(
    reference_frames: np.ndarray,
    generated: Mapping[str, tuple[str, np.ndarray]],
    tracker: Tracker,
    tracker_description: str,
    static_threshold: float,
) -> dict[str, Any]:
    """Motion fidelity of each generated video against the reference.

    ``reference_frames``: uint8 (F, H, W, 3); ``generated``: ``{video id: (prompt, frames)}``.
    """
    reference_tracks = tracker.track(reference_frames)
    videos = []
    for video_id, (prompt, frames) in sorted(generated.items()):
        fidelity = motion_fidelity(reference_tracks, tracker.track(frames), static_threshold=static_threshold)
        videos.append(
            {
                "video": video_id,
                "prompt": prompt,
                "motion_fidelity": fidelity.score,
                "motion_fidelity_output_to_source": fidelity.output_to_source,
                "motion_fidelity_source_to_output": fidelity.source_to_output,
                "num_reference_tracks": fidelity.num_source_tracks,
                "num_output_tracks": fidelity.num_output_tracks,
                "warning": fidelity.warning,
            }
        )
    metric_names = ("motion_fidelity", "motion_fidelity_output_to_source", "motion_fidelity_source_to_output")
    mean = {name: float(np.mean([v[name] for v in videos])) if videos else None for name in metric_names}
    return {
        "videos": videos,
        "mean": mean,
        "models": {"motion_fidelity": tracker_description},
        "not_computed": {
            "clip_text_similarity": "no CLIP model in this pipeline yet",
            "temporal_consistency": "no CLIP model in this pipeline yet",
            "fid": "no reference image set configured",
        },
    }
