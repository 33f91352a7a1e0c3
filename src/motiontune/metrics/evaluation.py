"""The metrics file of one learned motion (design section 2): per generated video and mean.

Motion fidelity is always computed (weight-free tracker by default). CLIP text similarity and temporal
consistency need a CLIP model, FID an Inception network and a reference image set: without them those
metrics are listed under ``not_computed`` with the reason, never reported as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from motiontune.metrics.clip_scores import ClipScorer
from motiontune.metrics.fid import InceptionFeatures, fid_score
from motiontune.metrics.motion_fidelity import motion_fidelity
from motiontune.metrics.trackers import Tracker

if TYPE_CHECKING:  # the scorer lives above metrics (it reads clips with the world's analyser); the caller builds it
    from motiontune.world_models.object_track import ObjectTrackScorer

MOTION_FIDELITY_KEYS = ("motion_fidelity", "motion_fidelity_output_to_source", "motion_fidelity_source_to_output")
CLIP_KEYS = ("clip_text_similarity", "temporal_consistency")


def evaluate_motion(
    reference_frames: np.ndarray,
    generated: Mapping[str, tuple[str, np.ndarray]],
    tracker: Tracker,
    tracker_description: str,
    static_threshold: float,
    clip_scorer: ClipScorer | None = None,
    temporal_pairs: str = "all",
    fid_features: InceptionFeatures | None = None,
    fid_reference_images: Sequence[np.ndarray] | None = None,
    skipped: Mapping[str, str] | None = None,
    motion_fidelity_mode: str = "moving",
    foreground_mask: np.ndarray | None = None,
    object_track: ObjectTrackScorer | None = None,
) -> dict[str, Any]:
    """Metrics of each generated video against the reference, and their means.

    ``reference_frames``: uint8 (F, H, W, 3); ``generated``: ``{video id: (prompt, frames)}``;
    ``skipped``: metric -> reason, for the metrics the caller could not configure;
    ``motion_fidelity_mode``: ``moving`` or ``dmt`` (see ``motion_fidelity``); ``foreground_mask``: (h, w) bool
    region of frame 0 where both clips' tracks are seeded (DMT's box of the reference's foreground), None: all.
    ``object_track``: also compare the one object the analyser reads in each clip (``object_*`` keys; the
    similarity's mean leaves out videos without a reference object).
    """
    reference_tracks = tracker.track(reference_frames, mask=foreground_mask)
    reference_object = object_track.read_reference(reference_frames) if object_track is not None else None
    videos = []
    for video_id, (prompt, frames) in sorted(generated.items()):
        fidelity = motion_fidelity(reference_tracks, tracker.track(frames, mask=foreground_mask),
                                   static_threshold=static_threshold, mode=motion_fidelity_mode)
        entry: dict[str, Any] = {
            "video": video_id,
            "prompt": prompt,
            "motion_fidelity": fidelity.score,
            "motion_fidelity_output_to_source": fidelity.output_to_source,
            "motion_fidelity_source_to_output": fidelity.source_to_output,
            "num_reference_tracks": fidelity.num_source_tracks,
            "num_output_tracks": fidelity.num_output_tracks,
            "num_reference_static_tracks": fidelity.num_source_static,
            "num_output_static_tracks": fidelity.num_output_static,
            "warning": fidelity.warning,
        }
        if object_track is not None:
            entry.update(object_track.score(reference_object, frames))
        if clip_scorer is not None:
            entry["clip_text_similarity"] = clip_scorer.text_similarity(frames, prompt)
            entry["temporal_consistency"] = clip_scorer.temporal_consistency(frames, pairs=temporal_pairs)
        videos.append(entry)

    computed = MOTION_FIDELITY_KEYS + (CLIP_KEYS if clip_scorer is not None else ())
    mean: dict[str, float | None] = {name: float(np.mean([v[name] for v in videos])) if videos else None for name in computed}
    if object_track is not None and videos:
        for key in object_track.mean_keys:
            known = [v[key] for v in videos if v[key] is not None]  # None: no reference object, or not applicable
            mean[key] = float(np.mean(known)) if known else None
    models = {"motion_fidelity": f"{motion_fidelity_mode} mode; {tracker_description}"
                                 + ("; seeded in the foreground box" if foreground_mask is not None else "")}
    not_computed = dict(skipped or {})
    if clip_scorer is not None:
        models["clip"] = clip_scorer.description
        for key in CLIP_KEYS:
            not_computed.pop(key, None)
    if fid_features is not None and fid_reference_images is not None and videos:
        pooled = np.concatenate([frames for _, frames in generated.values()])
        mean["fid"] = fid_score(pooled, fid_reference_images, fid_features)
        models["fid"] = fid_features.description
        not_computed.pop("fid", None)
    return {"videos": videos, "mean": mean, "models": models, "not_computed": not_computed}
