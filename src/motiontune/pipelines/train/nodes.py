"""Train: learn one motion artifact per encoded reference with the configured method."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from motiontune.motion.artifact import MotionArtifact
from motiontune.motion.customize import learn_motion, training_config_for
from motiontune.pipelines.backbones import backbone_from_params
from motiontune.tracking.mlflow_logging import log_training
from motiontune.tracking.registry import register_trained_motion

def train_motions(
    encoded_references: dict[str, Callable[[], dict[str, torch.Tensor]]],
    clip_metadata: pd.DataFrame,
    backbone: dict[str, Any],
    train: dict[str, Any],
) -> tuple[dict[str, MotionArtifact], dict[str, Any]]:
    model = backbone_from_params(backbone)
    config = training_config_for(train)
    method = train["method"]
    artifacts: dict[str, MotionArtifact] = {}
    summary: dict[str, Any] = {}
    for row in clip_metadata.to_dict(orient="records"):
        name = row["name"]
        if name not in encoded_references:
            raise ValueError(f"train: no encoded features for '{name}' in data/04_feature; rerun encode")
        checkpoint_dir = Path(train["checkpoint_root"]) / name / "checkpoints"
        features = encoded_references[name]()
        artifact, result = learn_motion(model, method, train.get(method), config, features, row, checkpoint_dir)
        artifacts[name] = artifact
        summary[name] = {"method": method, "final_loss": result.final_loss, "seconds": result.seconds, "loss_history": result.loss_history}
        log_training(name, artifact, result.loss_history, result.seconds)
        # A new version of the registered model motion-<name> (pyfunc from code), with the reference's latents and inversion.
        register_trained_motion(name, artifact, features)
    return artifacts, summary
