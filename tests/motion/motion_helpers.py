"""Inputs shared by the method tests: a small random reference on the tiny backbone."""

from __future__ import annotations

import torch

FRAMES, PIXELS = 4, 32  # latents (1, 4, 4, 8, 8) keep a CPU training step well under a second


def random_reference(seed: int, frames: int = FRAMES, pixels: int = PIXELS) -> dict:
    """Random latents (1, 4, frames, pixels/4, pixels/4), prompt embeddings (1, 77, 32) and a metadata row."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "latents": torch.randn(1, 4, frames, pixels // 4, pixels // 4, generator=generator),
        "prompt_embeds": torch.randn(1, 77, 32, generator=generator),
        "row": {
            "num_frames": frames, "height": pixels, "width": pixels,
            "source_path": "ref.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball rolls",
        },
    }


def quick_config(**overrides):
    """A short, silent training loop (2 steps, lr 1e-3, no checkpoints) with ``overrides``."""
    from motiontune.training.loop import TrainingConfig

    return TrainingConfig(**{"steps": 2, "learning_rate": 1e-3, "checkpoint_every": 0, "progress_bar": False, **overrides})


def unet_output(backbone, reference: dict, timestep: int = 400) -> torch.Tensor:
    """The UNet's prediction (1, 4, F, h, w) for the reference's latents and prompt at ``timestep``."""
    with torch.no_grad():
        return backbone.unet(reference["latents"], torch.tensor([timestep]), encoder_hidden_states=reference["prompt_embeds"]).sample
