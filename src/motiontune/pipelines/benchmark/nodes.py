"""Benchmark: every configured method on every reference of the benchmark manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from motiontune.benchmark import BenchmarkReference, BenchmarkSettings, methods_from_params, metric_bar_plots, run_benchmark, summary_markdown, summary_table
from motiontune.executors import build_executor
from motiontune.sampling.features import EncodeSettings, encode_reference
from motiontune.io.clip import VideoClip
from motiontune.io.manifest import load_manifest
from motiontune.metrics.configured import metric_models, motion_tracker
from motiontune.pipelines.backbones import backbone_from_params
from motiontune.io.references import IngestSettings, prepare_references, target_prompts, training_prompts
from motiontune.generation.generate import GenerationConfig
from motiontune.tracking.mlflow_logging import log_benchmark


def benchmark_methods(
    benchmark_manifest: dict[str, Any],
    backbone: dict[str, Any],
    video: dict[str, Any],
    ingest: dict[str, Any],
    encode: dict[str, Any],
    train: dict[str, Any],
    generate: dict[str, Any],
    evaluate: dict[str, Any],
    benchmark: dict[str, Any],
    ray: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, str, dict[str, np.ndarray], dict[str, VideoClip]]:
    settings = BenchmarkSettings.from_params(benchmark)
    ingest_settings, encode_settings = IngestSettings.from_params(ingest), EncodeSettings.from_params(encode)
    executor = build_executor(str(settings.executor), ray)  # connects before any work
    model = backbone_from_params(backbone)
    entries = load_manifest(benchmark_manifest, base_dir=settings.manifest_dir, select=settings.entries)
    clips, rows = prepare_references(
        entries, num_frames=int(video["num_frames"]), height=int(video["height"]), width=int(video["width"]),
        fps=float(video["fps"]), frames_fps=float(ingest_settings.frames_fps), resample_to_fps=bool(ingest_settings.resample_to_fps),
        rules=ingest_settings.video_rules(int(video["num_frames"])),
    )
    references = [
        BenchmarkReference(
            name=row["name"], frames=clips[row["name"]].frames, row=row, prompts=target_prompts(row),
            features=encode_reference(model, clips[row["name"]].frames, *training_prompts(row), int(encode_settings.inversion_steps), progress=False),
        )
        for row in rows
    ]
    methods = methods_from_params(settings.method_params(), train)
    tracker, tracker_description = motion_tracker(evaluate)
    try:
        results, videos = run_benchmark(
            model, references, methods,
            train_params={**train, **settings.train},
            generation=GenerationConfig.from_params({**generate, **settings.generate}),
            seeds=[int(seed) for seed in settings.seeds],
            tracker=tracker, tracker_description=tracker_description,
            static_threshold=float(evaluate["static_threshold"]), models=metric_models(evaluate),
            executor=executor, work_dir=Path(settings.work_dir) if settings.work_dir else None,
        )
    finally:
        executor.close()
    summary = summary_table(results)
    markdown = summary_markdown(summary)
    log_benchmark(summary, markdown)
    fps = float(video["fps"])
    return results, summary, markdown, metric_bar_plots(results), {key: VideoClip(frames, fps) for key, frames in videos.items()}
