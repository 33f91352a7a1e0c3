"""Evaluate: metrics of every generated video against its reference, previews and a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from motiontune.io.clip import VideoClip
from motiontune.metrics.configured import MotionFidelitySettings, metric_models, motion_tracker
from motiontune.metrics.evaluation import evaluate_motion
from motiontune.world_models.object_track import ObjectTrackScorer
from motiontune.metrics.previews import contact_sheet, side_by_side
from motiontune.metrics.report import markdown_table, metrics_table
from motiontune.io.references import target_prompts
from motiontune.generation.generate import video_id
from motiontune.tracking.mlflow_logging import log_evaluation, log_videos


def evaluate_motions(
    reference_clips: dict[str, Callable[[], VideoClip]],
    generated_videos: dict[str, Callable[[], VideoClip]],
    clip_metadata: pd.DataFrame,
    evaluate: dict[str, Any],
    world: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, VideoClip], dict[str, np.ndarray], pd.DataFrame, str]:
    tracker, description = motion_tracker(evaluate)
    object_track = ObjectTrackScorer.from_params(world) if evaluate.get("object_track") and world is not None else None
    fidelity = MotionFidelitySettings.from_params(evaluate)
    models = metric_models(evaluate)
    reports: dict[str, dict[str, Any]] = {}
    previews: dict[str, VideoClip] = {}
    sheets: dict[str, np.ndarray] = {}
    for row in clip_metadata.to_dict(orient="records"):
        name = row["name"]
        reference = reference_clips[name]()
        generated = {}
        for index, prompt in enumerate(target_prompts(row)):
            key = video_id(name, index, prompt)
            if key not in generated_videos:
                raise ValueError(f"evaluate: generated video '{key}' is missing; run the generate pipeline")
            generated[key] = (prompt, generated_videos[key]().frames)
        reports[name] = evaluate_motion(
            reference.frames, generated, tracker, description, fidelity.static_threshold,
            clip_scorer=models.clip_scorer, temporal_pairs=models.temporal_pairs,
            fid_features=models.fid_features, fid_reference_images=models.fid_reference_images, skipped=models.skipped,
            motion_fidelity_mode=fidelity.mode, foreground_mask=fidelity.mask_for(name), object_track=object_track,
        )
        labelled = [(prompt, frames) for prompt, frames in generated.values()]
        previews[f"{name}"] = VideoClip(frames=side_by_side(reference.frames, labelled), fps=reference.fps)
        sheet = evaluate["previews"]
        sheets[f"{name}"] = contact_sheet([("reference", reference.frames), *labelled], frames_per_video=int(sheet["frames_per_video"]),
                                          cell_height=sheet.get("cell_height"))
        log_evaluation(name, reports[name])
    log_videos(previews, artifact_dir="previews")
    table = metrics_table(reports)
    return reports, previews, sheets, table, markdown_table(table) + "\n"
