"""Train: learn one motion artifact per encoded reference with the configured method."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from motiontune.methods.artifact import MotionArtifact
from motiontune.executors import Job, build_executor
from motiontune.training.customize import learn_motion, training_config_for
from motiontune.pipelines.backbones import backbone_from_params
from motiontune.tracking.mlflow_logging import log_training
from motiontune.tracking.registry import register_trained_motion

def train_motions(
    encoded_references: dict[str, Callable[[], dict[str, torch.Tensor]]],
    clip_metadata: pd.DataFrame,
    backbone: dict[str, Any],
    train: dict[str, Any],
    ray: dict[str, Any] | None = None,
) -> tuple[dict[str, MotionArtifact], dict[str, Any]]:
    """One motion per manifest entry, each a job on ``train.executor`` (local | ray); this process alone logs
    and registers them as they arrive."""
    executor = build_executor(str(train.get("executor", "local")), ray)  # connects before any work
    model = backbone_from_params(backbone)
    config = training_config_for(train)
    method = train["method"]
    handle = executor.job_backbone(model)
    rows, jobs = clip_metadata.to_dict(orient="records"), []
    for row in rows:
        name = row["name"]
        if name not in encoded_references:
            raise ValueError(f"train: no encoded features for '{name}' in data/04_feature; rerun encode")
        checkpoint_dir = Path(train["checkpoint_root"]) / name / "checkpoints"
        jobs.append(Job(name, learn_motion, {"backbone": handle, "method_name": method, "method_options": train.get(method),
                                                  "config": config, "features": encoded_references[name](), "reference": row,
                                                  "checkpoint_dir": checkpoint_dir}))
    artifacts: dict[str, MotionArtifact] = {}
    summary: dict[str, Any] = {}

    def record(index: int, learnt: tuple[MotionArtifact, Any]) -> None:
        name, (artifact, result) = jobs[index].key, learnt
        artifacts[name] = artifact
        summary[name] = {"method": method, "final_loss": result.final_loss, "seconds": result.seconds, "loss_history": result.loss_history}
        log_training(name, artifact, result.loss_history, result.seconds)
        # A new version of the registered model motion-<name> (pyfunc from code), with the reference's latents and inversion.
        register_trained_motion(name, artifact, jobs[index].kwargs["features"])

    try:
        executor.run(jobs, on_result=record)
    finally:
        executor.close()
    return {row["name"]: artifacts[row["name"]] for row in rows}, {row["name"]: summary[row["name"]] for row in rows}
