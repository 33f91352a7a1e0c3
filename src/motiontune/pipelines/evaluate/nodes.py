"""Evaluate: motion fidelity of every generated video against its reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from motiontune.io.clip import VideoClip
from motiontune.metrics.evaluation import evaluate_motion
from motiontune.metrics.trackers import build_tracker
from motiontune.references import target_prompts
from motiontune.sampling.generation import video_id
from motiontune.tracking.mlflow_logging import log_evaluation


def evaluate_motions(
    reference_clips: dict[str, Callable[[], VideoClip]],
    generated_videos: dict[str, Callable[[], VideoClip]],
    clip_metadata: pd.DataFrame,
    evaluate: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    options = dict(evaluate.get("tracker_options") or {})
    tracker = build_tracker(evaluate["tracker"], **options)
    description = f"{evaluate['tracker']} {options}"
    reports: dict[str, dict[str, Any]] = {}
    for row in clip_metadata.to_dict(orient="records"):
        name = row["name"]
        generated = {}
        for index, prompt in enumerate(target_prompts(row)):
            key = video_id(name, index, prompt)
            if key not in generated_videos:
                raise ValueError(f"evaluate: generated video '{key}' is missing; run the generate pipeline")
            generated[key] = (prompt, generated_videos[key]().frames)
        reports[name] = evaluate_motion(reference_clips[name]().frames, generated, tracker, description, float(evaluate["static_threshold"]))
        log_evaluation(name, reports[name])
    return reports
