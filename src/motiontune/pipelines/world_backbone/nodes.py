"""World backbone: train the embedded default backbone on the motion world, then measure what it can draw."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from motiontune.backbone.loading import load_backbone
from motiontune.backbone.tiny import TinyBackboneSpec
from motiontune.world_models.backbone_training import WorldBackboneConfig, train_world_backbone
from motiontune.io.clip import VideoClip
from motiontune.generation.generate import GenerationConfig
from motiontune.world.analyser import AnalyserConfig
from motiontune.world_models.competence import base_competence, competence_prompts, competence_summary
from motiontune.world.spec import WorldSpec
from motiontune.world_models.time_symmetry import TimeSymmetryConfig, time_symmetry_report

logger = logging.getLogger(__name__)


def train_backbone(
    world: dict[str, Any], tiny_backbone: dict[str, Any], tiny_animatediff: dict[str, Any], world_backbone: dict[str, Any],
) -> dict[str, Any]:
    """Train and save the backbone to ``world_backbone.output_dir``, built from the parameters_backbone.yml section
    that ``world_backbone.training.architecture`` names; returns the training summary."""
    config = WorldBackboneConfig.from_params(world_backbone["training"])
    architectures = {"tiny_backbone": tiny_backbone, "tiny_animatediff": tiny_animatediff}
    tiny_spec = TinyBackboneSpec.from_dict(architectures[config.architecture], section=config.architecture)
    return train_world_backbone(Path(world_backbone["output_dir"]), WorldSpec.from_params(world), tiny_spec, config,
                                Path(world_backbone["work_dir"]))


def measure_competence_after_training(
    training_summary: dict[str, Any], world: dict[str, Any], world_backbone: dict[str, Any], fps: float,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, VideoClip]]:
    """:func:`measure_competence`, ordered after training by its input."""
    return measure_competence(world, world_backbone, fps)


def measure_competence(
    world: dict[str, Any], world_backbone: dict[str, Any], fps: float,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, VideoClip]]:
    """Colour, shape and direction accuracy of the backbone's own videos (read by the analyser, no ground truth),
    and its time-symmetry measurements (``motiontune.world_models.time_symmetry``)."""
    competence = world_backbone["competence"]
    spec = WorldSpec.from_params(world)
    backbone = load_backbone(str(world_backbone["output_dir"]), device=str(competence.get("device", "cpu")))
    prompts = competence_prompts(spec, competence["family"], competence.get("params") or {})
    results, videos = base_competence(
        backbone, spec, prompts, GenerationConfig.from_params(competence["generate"]),
        [int(seed) for seed in competence["seeds"]], AnalyserConfig.from_params(world.get("analyser")),
    )
    summary = competence_summary(results, spec, competence["family"])
    # Why direction is at chance or not: whether the denoiser tells a clip from the clip played backwards.
    summary["time_symmetry"] = time_symmetry_report(
        backbone, spec, TimeSymmetryConfig.from_params(competence.get("time_symmetry") or {}))
    logger.info("world backbone competence: %s", dict(summary))
    return results, summary, {key: VideoClip(frames, float(fps)) for key, frames in videos.items()}
