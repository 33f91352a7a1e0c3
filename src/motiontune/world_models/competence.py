"""Base competence of a backbone on the world: does it draw the colour, shape and direction it is asked for?

    prompts = competence_prompts(spec, family="translate", params={"speed": "fast"})
    results = base_competence(backbone, spec, prompts, generation, seeds, analyser)
    competence_summary(results)   # accuracy per attribute, with chance level

Every prompt is a caption of the world's grammar; each generated clip is read by the ground-truth-free
analyser and compared with the caption's meaning (``Intent.from_caption``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from motiontune.backbone.loading import Backbone
from motiontune.generation.generate import GenerationConfig, generate_without_motion, video_id
from motiontune.world.analyser import AnalyserConfig, analyse_video
from motiontune.world.generator import caption_for
from motiontune.world.motions import MOTION_FAMILIES, matching_param_options
from motiontune.world.scoring import Intent, score_video
from motiontune.world.spec import WorldSpec

ATTRIBUTES = ("colour_correct", "shape_correct", "direction_correct")


def competence_prompts(spec: WorldSpec, family: str, params: Mapping[str, Any]) -> list[str]:
    """One caption per colour x shape; the family's other parameter (direction) cycles through its options,
    so every colour, shape and direction appears."""
    options = matching_param_options(spec, family, params)
    if not options:
        raise ValueError(f"world_backbone competence: no {family} parameters match {dict(params)}")
    prompts = []
    for index, (colour, shape) in enumerate((c, s) for c in spec.colours for s in spec.shapes):
        prompts.append(caption_for(family, options[index % len(options)], colour, shape))
    return prompts


def base_competence(
    backbone: Backbone,
    spec: WorldSpec,
    prompts: Sequence[str],
    generation: GenerationConfig,
    seeds: Sequence[int],
    analyser: AnalyserConfig,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Generate every prompt with every seed and check it; one row per video, and the videos by name."""
    rows: list[dict[str, Any]] = []
    videos: dict[str, np.ndarray] = {}
    for seed in seeds:
        outputs = generate_without_motion(backbone, prompts, spec.num_frames, spec.height, spec.width, replace(generation, seed=seed))
        for index, (prompt, frames) in enumerate(zip(prompts, outputs)):
            analysis = analyse_video(frames, spec, analyser)
            intent = Intent.from_caption(prompt, spec)
            score = score_video(analysis, intent)
            rows.append({
                "seed": seed, "prompt": prompt, "found": float(score.found),
                "colour_correct": float(score.colour_correct), "shape_correct": float(score.shape_correct),
                "direction_correct": float(bool(score.direction_correct)),
                "generated_colour": analysis.colour, "generated_shape": analysis.shape,
                "generated_direction": analysis.direction,
            })
            videos[video_id(str(seed), index, prompt)] = frames
    return pd.DataFrame(rows), videos


def competence_summary(results: pd.DataFrame, spec: WorldSpec, family: str) -> dict[str, Any]:
    """Accuracy of each attribute over all videos, its spread over seeds, and chance level."""
    directions = {str(option.get("direction")) for option in MOTION_FAMILIES[family].param_options(spec)}
    chance = {"colour_correct": 1 / len(spec.colours), "shape_correct": 1 / len(spec.shapes),
              "direction_correct": 1 / (len(directions) + 1)}  # + 1: "static" is a possible reading
    summary: dict[str, Any] = {"videos": int(len(results)), "found": float(results["found"].mean())}
    for attribute in ATTRIBUTES:
        per_seed = results.groupby("seed")[attribute].mean()
        summary[attribute] = {"accuracy": float(results[attribute].mean()),
                              "seed_spread": float(per_seed.std(ddof=0)), "chance": chance[attribute]}
    return summary
