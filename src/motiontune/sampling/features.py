"""Per-reference features computed once and cached: VAE latents, prompt embeddings, DDIM inversion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from motiontune.backbone.loading import Backbone
from motiontune.sampling.ddim import ddim_invert, guided_noise_prediction
from motiontune.sampling.latents import encode_frames, encode_prompts
from motiontune.sections import build_section

LATENTS = "latents"
# Embeddings of the two training prompts a method may choose (``simplified_prompt`` training setting): the
# caption as given, and its appearance-invariant simplification (VMC sec. 3.2). A manifest ``train_prompt``
# replaces both.
PROMPT_EMBEDS = "prompt_embeds"
SIMPLIFIED_PROMPT_EMBEDS = "simplified_prompt_embeds"
INVERTED_LATENTS = "inverted_latents"
# The DDIM step count of ``inverted_latents`` (a 1-element int64 tensor), so generation knows whether the
# cached inversion fits its sampling steps.
INVERSION_STEPS = "inversion_steps"
# All four public codes invert the reference under the empty prompt, without guidance (MotionInversion
# utils/ddim_utils.py; MotionDirector_train.py; MotionMatcher inference.py; VMC common/util.py).
INVERSION_PROMPT = ""


@dataclass(frozen=True)
class EncodeSettings:
    """The ``encode`` parameters (conf/base/parameters_encode.yml); defaults are its values."""

    # DDIM steps of the base model's inversion of the reference under "" (all four public codes), cached for
    # noise_init; used when it equals a motion's inversion steps (its inversion_steps, null = its sampling steps),
    # else generation inverts again
    inversion_steps: int = 50
    progress_bar: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> EncodeSettings:
        """Build from the ``encode`` parameters (None = defaults; unknown keys and range errors raise)."""
        return build_section(cls, params, "encode")

    def problems(self) -> list[str]:
        steps = self.inversion_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            return [f"inversion_steps: must be a positive integer, got {steps!r}"]
        return []


def invert_reference(backbone: Backbone, latents: torch.Tensor, prompt: str, steps: int, progress: bool = True) -> torch.Tensor:
    """DDIM inversion (1, C, F, h, w) of clean reference latents under ``prompt`` (no guidance), with the
    backbone's UNet as it is now (base, or with a motion applied)."""
    predict = guided_noise_prediction(backbone.unet, encode_prompts(backbone, [prompt]), None, 1.0)
    return ddim_invert(predict, backbone.scheduler_config, latents.to(backbone.device, backbone.dtype), steps, progress=progress)


def encode_reference(
    backbone: Backbone,
    frames: np.ndarray,
    caption_prompt: str,
    simplified_prompt: str,
    inversion_steps: int,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """``latents`` (1, C, F, h, w); ``prompt_embeds`` / ``simplified_prompt_embeds`` (1, L, D) of the two
    candidate training prompts; ``inverted_latents`` (1, C, F, h, w): the base model's DDIM inversion of the
    latents under the empty prompt (no guidance) with ``inversion_steps`` steps, recorded as ``inversion_steps``."""
    latents = encode_frames(backbone, frames)
    inverted = invert_reference(backbone, latents, INVERSION_PROMPT, inversion_steps, progress=progress)
    return {
        LATENTS: latents.float().cpu(),
        PROMPT_EMBEDS: encode_prompts(backbone, [caption_prompt]).float().cpu(),
        SIMPLIFIED_PROMPT_EMBEDS: encode_prompts(backbone, [simplified_prompt]).float().cpu(),
        INVERTED_LATENTS: inverted.float().cpu(),
        INVERSION_STEPS: torch.tensor([int(inversion_steps)], dtype=torch.int64),
    }
