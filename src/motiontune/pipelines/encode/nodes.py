"""Encode: cache each clip's VAE latents, both training prompts' embeddings and the base model's DDIM inversion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from motiontune.sampling.features import EncodeSettings, encode_reference
from motiontune.io.clip import VideoClip
from motiontune.pipelines.backbones import backbone_from_params
from motiontune.io.references import target_prompts, training_prompts
from motiontune.sampling.latents import check_prompts


def encode_references(
    reference_clips: dict[str, Callable[[], VideoClip]], clip_metadata: pd.DataFrame, backbone: dict[str, Any], encode: dict[str, Any]
) -> dict[str, dict[str, torch.Tensor]]:
    settings = EncodeSettings.from_params(encode)
    model = backbone_from_params(backbone)
    rows = clip_metadata.to_dict(orient="records")
    check_prompts(model, [prompt for row in rows for prompt in (*training_prompts(row), *target_prompts(row))])
    features = {}
    for row in rows:
        name = row["name"]
        if name not in reference_clips:
            raise ValueError(f"encode: no clip for '{name}' in data/02_intermediate/clips; rerun ingest")
        clip = reference_clips[name]()
        features[name] = encode_reference(model, clip.frames, *training_prompts(row), int(settings.inversion_steps), bool(settings.progress_bar))
    return features
