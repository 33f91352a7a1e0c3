"""Between pixels, text and the backbone's latent space: VAE encode/decode and prompt embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from motiontune.backbone.loading import Backbone
from motiontune.errors import UserError


class PromptError(ValueError, UserError):
    """A prompt the text encoder cannot take."""


def check_prompts(backbone: Backbone, prompts: Sequence[str]) -> int:
    """Raise :class:`PromptError` for a prompt longer than the text encoder's window; returns the window.

    Called on every prompt of a run before any work starts, so a too-long target prompt fails in a second,
    not after training.
    """
    tokenizer = backbone.tokenizer
    max_length = min(int(tokenizer.model_max_length), int(backbone.text_encoder.config.max_position_embeddings))
    for prompt in prompts:
        count = len(tokenizer(prompt).input_ids)
        if count > max_length:
            raise PromptError(
                f"prompt '{prompt[:60]}...': {count} tokens, more than the text encoder takes ({max_length})"
            )
    return max_length


@torch.no_grad()
def encode_prompts(backbone: Backbone, prompts: Sequence[str]) -> torch.Tensor:
    """CLIP text embeddings (len(prompts), L, D), padded to the tokenizer's max length (77 for CLIP).

    A prompt longer than the text encoder's window is rejected rather than silently cut.
    """
    max_length = check_prompts(backbone, prompts)
    tokens = backbone.tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    output = backbone.text_encoder(tokens.input_ids.to(backbone.device))
    return output.last_hidden_state.to(backbone.dtype)


@torch.no_grad()
def encode_frames(backbone: Backbone, frames: np.ndarray) -> torch.Tensor:
    """VAE latents (1, C, F, h, w), scaled by the VAE's scaling factor, of uint8 frames (F, H, W, 3).

    Uses the posterior mean, so cached latents are deterministic.
    """
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(backbone.device)
    pixels = pixels.permute(0, 3, 1, 2).to(backbone.dtype) / 127.5 - 1.0
    latents = backbone.vae.encode(pixels).latent_dist.mean * backbone.vae.config.scaling_factor
    num_frames = frames.shape[0]
    return latents.reshape(1, num_frames, *latents.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def decode_latents(backbone: Backbone, latents: torch.Tensor) -> np.ndarray:
    """uint8 frames (B, F, H, W, 3) from latents (B, C, F, h, w); non-finite values become an error."""
    if not torch.isfinite(latents).all():
        raise FloatingPointError("decode: latents contain NaN or inf; lower the learning rate or guidance")
    batch, channels, num_frames, height, width = latents.shape
    flat = latents.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, channels, height, width)
    pixels = backbone.vae.decode(flat / backbone.vae.config.scaling_factor).sample
    pixels = ((pixels.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).reshape(batch, num_frames, *pixels.shape[2:4], 3)
    return pixels.cpu().numpy()
