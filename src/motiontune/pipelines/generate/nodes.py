"""Generate: apply each learned motion to its target prompts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from motiontune.executors import Job, build_executor
from motiontune.io.clip import VideoClip
from motiontune.methods.artifact import MotionArtifact
from motiontune.pipelines.backbones import backbone_from_params
from motiontune.io.references import target_prompts
from motiontune.generation.generate import GenerationConfig, generate_with_motion, video_id
from motiontune.tracking.mlflow_logging import log_videos
from motiontune.tracking.registry import generate_with_registered_motion, registry_generate_problems, registry_prompts

logger = logging.getLogger(__name__)


def generate_videos(
    motion_artifacts: dict[str, Callable[[], MotionArtifact]],
    encoded_references: dict[str, Callable[[], dict[str, torch.Tensor]]],
    clip_metadata: pd.DataFrame,
    backbone: dict[str, Any],
    video: dict[str, Any],
    generate: dict[str, Any],
    ray: dict[str, Any] | None = None,
) -> dict[str, VideoClip]:
    """Each motion's target prompts, one job per motion on ``generate.executor`` (local | ray)."""
    if generate.get("motion"):
        logger.info("generate.motion is set (%s): generating from the registry instead of data/06_models/motions", generate["motion"])
        return {}
    executor = build_executor(str(generate.get("executor", "local")), ray)  # connects before any work
    model = backbone_from_params(backbone)
    config = GenerationConfig.from_params(generate)
    handle = executor.job_backbone(model)
    jobs, prompts_of = [], {}
    for row in clip_metadata.to_dict(orient="records"):
        name = row["name"]
        if name not in motion_artifacts:
            raise ValueError(f"generate: no motion artifact for '{name}' in data/06_models/motions; run the train pipeline")
        prompts_of[name] = target_prompts(row)
        jobs.append(Job(name, generate_with_motion, {
            "backbone": handle, "artifact": motion_artifacts[name](), "prompts": prompts_of[name], "config": config,
            "reference": encoded_references[name]() if name in encoded_references else None}))
    try:
        results = executor.run(jobs)
    finally:
        executor.close()
    outputs: dict[str, VideoClip] = {}
    for job, videos in zip(jobs, results):
        for index, (prompt, frames) in enumerate(zip(prompts_of[job.key], videos)):
            outputs[video_id(job.key, index, prompt)] = VideoClip(frames=frames, fps=float(video["fps"]))
    log_videos(outputs)
    return outputs


def generate_from_registry(backbone: dict[str, Any], video: dict[str, Any], generate: dict[str, Any]) -> dict[str, VideoClip]:
    """Videos of ``generate.prompts`` with the registered motion ``generate.motion`` (an MLflow model URI such
    as ``models:/motion-<name>@champion``) on the configured backbone, as ``<name>/v<version>/<NN>_<prompt>``;
    nothing when ``generate.motion`` is null."""
    if not generate.get("motion"):
        return {}
    problems = registry_generate_problems(generate)
    if problems:
        raise ValueError("invalid parameters:\n  " + "\n  ".join(problems))
    prompts = registry_prompts(generate)
    label, videos = generate_with_registered_motion(str(generate["motion"]), prompts, backbone, generate)
    outputs = {video_id(label, index, prompt): VideoClip(frames=frames, fps=float(video["fps"])) for index, (prompt, frames) in enumerate(zip(prompts, videos))}
    log_videos(outputs, artifact_dir="videos/registry")
    return outputs
