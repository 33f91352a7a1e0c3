"""Pipelines, registered explicitly: Kedro >= 1.5's find_pipelines() imports only the one asked for,
so a composed pipeline like ``customize`` must be built here."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from motiontune.pipelines.benchmark import pipeline as benchmark
from motiontune.pipelines.encode import pipeline as encode
from motiontune.pipelines.evaluate import pipeline as evaluate
from motiontune.pipelines.generate import pipeline as generate
from motiontune.pipelines.ingest import pipeline as ingest
from motiontune.pipelines.train import pipeline as train
from motiontune.pipelines.world_backbone import pipeline as world_backbone
from motiontune.pipelines.world_benchmark import pipeline as world_benchmark
from motiontune.pipelines.world_clip import pipeline as world_clip

STAGES = ("ingest", "encode", "train", "generate", "evaluate")


def register_pipelines() -> dict[str, Pipeline]:
    stages = {
        "ingest": ingest.create_pipeline(),
        "encode": encode.create_pipeline(),
        "train": train.create_pipeline(),
        "generate": generate.create_pipeline(),
        "evaluate": evaluate.create_pipeline(),
    }
    customize = sum((stages[name] for name in STAGES), Pipeline([]))
    # generate.motion=models:/motion-<name>@champion: generate from the MLflow registry (not part of customize).
    registry = generate.create_registry_pipeline()
    extra = {"generate": stages["generate"] + registry, "generate_registry": registry}
    world = {
        "world_backbone": world_backbone.create_pipeline(),
        "world_competence": world_backbone.create_competence_pipeline(),
        "world_benchmark": world_benchmark.create_pipeline(),
        "world_clip": world_clip.create_pipeline(),
    }
    return {
        **stages, **extra, **world, "customize": customize, "benchmark": benchmark.create_pipeline(), "__default__": customize,
    }
