"""Inputs shared by the method tests: a small random reference on the tiny backbone."""

from __future__ import annotations

import numpy as np
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


def quick_method_options(name: str) -> dict:
    """Options for a method trained a few steps and sampled in 3: LoRA rank 4 for MotionDirector and MotionMatcher,
    and MotionMatcher's LoRA on every sampling timestep (its default gate would leave it off most of 3 steps)."""
    options: dict = {"rank": 4} if name in ("motiondirector", "motionmatcher") else {}
    if name == "motionmatcher":
        options["inference"] = {"lora_min_timestep": 0}
    return options


def assert_motion_changes_the_video_and_not_the_unet(backbone, artifact, prompt: str, unet_before: dict) -> None:
    """A 3-step video (FRAMES, PIXELS, PIXELS, 3) with ``artifact`` differs from the backbone alone from the same
    noise, and afterwards the UNet's weights still equal ``unet_before`` (a state-dict copy taken before training)."""
    from motiontune.generation.generate import GenerationConfig, generate_with_motion, generate_without_motion

    config = GenerationConfig(seed=0, steps=3, guidance_scale=5.0, noise_init="random", progress_bar=False)
    with_motion = generate_with_motion(backbone, artifact, [prompt], config)[0]
    plain = generate_without_motion(backbone, [prompt], FRAMES, PIXELS, PIXELS, config)[0]
    assert with_motion.shape == plain.shape == (FRAMES, PIXELS, PIXELS, 3)
    assert np.abs(with_motion.astype(int) - plain.astype(int)).max() > 0
    after = backbone.unet.state_dict()
    assert unet_before.keys() == after.keys() and all(torch.equal(unet_before[key], after[key]) for key in unet_before)
