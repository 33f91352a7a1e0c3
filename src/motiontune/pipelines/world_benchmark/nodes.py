"""World benchmark: every method on world references with ground-truth motion, the plain backbone as control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from motiontune.benchmark import methods_from_params
from motiontune.io.clip import VideoClip
from motiontune.executors import build_executor
from motiontune.metrics.configured import clip_scorer, motion_tracker
from motiontune.pipelines.backbones import backbone_from_params
from motiontune.generation.generate import GenerationConfig
from motiontune.tracking.mlflow_logging import log_benchmark
from motiontune.world.analyser import AnalyserConfig
from motiontune.world_models.benchmark import (
    Control,
    WorldBenchmarkConfig,
    benchmark_cases,
    control_leads,
    control_leads_markdown,
    family_markdown,
    run_world_benchmark,
    same_init_controls,
    world_plots,
    world_summary,
    world_summary_markdown,
)
from motiontune.world.scoring import ScoringConfig
from motiontune.world.spec import WorldSpec


def _controls(world_benchmark: dict[str, Any]) -> list[Control]:
    return [Control(label=item["label"], generate=dict(item.get("generate") or {})) for item in world_benchmark["controls"]]


def _generation(generate: dict[str, Any], world_benchmark: dict[str, Any]) -> GenerationConfig:
    """Sampling of every run: ``generate`` with the benchmark's overrides."""
    return GenerationConfig.from_params({**generate, **world_benchmark.get("generate", {})})


def same_noise_controls(world_benchmark: dict[str, Any], train: dict[str, Any], generate: dict[str, Any]) -> dict[str, str | None]:
    """Each method row's control that starts from the same noise (``same_init_controls``), from the parameters the
    benchmark node reads: for reports of its results outside a run."""
    config = WorldBenchmarkConfig.from_params(world_benchmark)
    return same_init_controls(methods_from_params(world_benchmark["methods"], train), _controls(world_benchmark),
                              _generation(generate, world_benchmark), config.method_variants)


def benchmark_on_world(
    backbone: dict[str, Any],
    world: dict[str, Any],
    train: dict[str, Any],
    generate: dict[str, Any],
    evaluate: dict[str, Any],
    world_benchmark: dict[str, Any],
    fps: float,
    ray: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, str, dict[str, np.ndarray], dict[str, VideoClip]]:
    spec = WorldSpec.from_params(world)
    config = WorldBenchmarkConfig.from_params(world_benchmark)
    tracker, _ = motion_tracker(evaluate)
    methods = methods_from_params(world_benchmark["methods"], train)
    controls = _controls(world_benchmark)
    generation = _generation(generate, world_benchmark)
    cases = benchmark_cases(spec, config)  # before the backbone loads: a parameter that does not fit fails at once
    executor = build_executor(str(world_benchmark.get("executor", "local")), ray)  # connects before any work
    try:
        results, videos = run_world_benchmark(
            backbone_from_params(backbone), spec, cases, methods, controls,
            train_params={**train, **world_benchmark.get("train", {})}, generation=generation, config=config, analyser=AnalyserConfig.from_params(world.get("analyser")),
            scoring=ScoringConfig.from_params(world.get("scoring")),
            tracker=tracker, static_threshold=float(evaluate["static_threshold"]),
            clip=clip_scorer(evaluate), temporal_pairs=(evaluate.get("clip") or {}).get("temporal_pairs", "all"),
            progress=bool(world_benchmark.get("progress_bar", True)),
            work_dir=Path(world_benchmark["work_dir"]) if world_benchmark.get("work_dir") else None,
            executor=executor,
        )
    finally:
        executor.close()
    summary = world_summary(results)
    leads = control_leads(results, same_init_controls(methods, controls, generation, config.method_variants))
    markdown = "\n".join([world_summary_markdown(summary), control_leads_markdown(leads), family_markdown(results),
                          family_markdown(results, "scale_similarity")])
    log_benchmark(summary, markdown)
    return results, summary, markdown, world_plots(results), {key: VideoClip(frames, float(fps)) for key, frames in videos.items()}
