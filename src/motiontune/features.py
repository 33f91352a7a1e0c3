"""Per-reference features computed once and cached: VAE latents, prompt embeddings, DDIM inversion."""

from __future__ import annotations

import numpy as np
import torch

from motiontune.backbone.loading import Backbone
from motiontune.sampling.ddim import ddim_invert, guided_noise_prediction
from motiontune.sampling.latents import encode_frames, encode_prompts

LATENTS = "latents"
PROMPT_EMBEDS = "prompt_embeds"
INVERTED_LATENTS = "inverted_latents"


def encode_reference(
    backbone: Backbone, frames: np.ndarray, train_prompt: str, inversion_steps: int, progress: bool = True
) -> dict[str, torch.Tensor]:
    """``latents`` (1, C, F, h, w), ``prompt_embeds`` (1, L, D) of the training prompt, and
    ``inverted_latents`` (1, C, F, h, w): the DDIM inversion of the latents under that prompt (no guidance)."""
    latents = encode_frames(backbone, frames)
    prompt_embeds = encode_prompts(backbone, [train_prompt])
    predict = guided_noise_prediction(backbone.unet, prompt_embeds, None, 1.0)
    inverted = ddim_invert(predict, backbone.scheduler_config, latents, inversion_steps, progress=progress)
    return {
        LATENTS: latents.float().cpu(),
        PROMPT_EMBEDS: prompt_embeds.float().cpu(),
        INVERTED_LATENTS: inverted.float().cpu(),
    }
