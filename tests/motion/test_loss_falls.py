"""Every method's training lowers its own loss: a loop that ascends the gradient, or updates nothing, fails here.

The loss is measured on fixed evaluation batches (noise and timesteps drawn once, each method's own timestep
range), before and after a few training steps on the same reference, so the comparison is not at the mercy of
the per-step noise draw.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from motiontune.methods.base import TrainingBatch, build_method
from motiontune.training.loop import train_motion, training_target

from motion_helpers import FRAMES, PIXELS, quick_config, random_reference

# Learning rates high enough that a handful of steps moves each method's loss well past the batch-to-batch noise.
CASES = {
    "motion_embeddings": ({"blocks": "all"}, 2e-1),
    "vmc": ({}, 1e-2),
    "motionmatcher": ({"rank": 4}, 3e-2),  # its feature loss is small on the random tiny backbones (1e-2: < 1% in 8 steps)
    "motiondirector": ({"rank": 4}, 1e-2),
}
STEPS = 8
EVAL_BATCHES = 4


def evaluation_loss(method, backbone, reference) -> float:
    scheduler = DDPMScheduler.from_config(backbone.scheduler_config)
    generator = torch.Generator().manual_seed(1234)
    latents, prompt = reference["latents"], reference["prompt_embeds"]
    total = 0.0
    with torch.no_grad():
        for step in range(EVAL_BATCHES):
            noise = torch.randn(latents.shape, generator=generator)
            timesteps = method.sample_timesteps(scheduler.config.num_train_timesteps, 1, generator)
            batch = TrainingBatch(
                latents=latents, noise=noise, timesteps=timesteps, noisy_latents=scheduler.add_noise(latents, noise, timesteps),
                target=training_target(scheduler, latents, noise, timesteps), prompt_embeds=prompt, scheduler=scheduler,
                generator=torch.Generator().manual_seed(step), step=step,
            )
            total += float(method.training_loss(backbone, batch))
    return total / EVAL_BATCHES


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_lowers_the_methods_loss(family_backbone, name):
    """On each backbone family (ZeroScope's UNet3D, AnimateDiff's UNetMotionModel)."""
    options, learning_rate = CASES[name]
    reference = random_reference(5)
    method = build_method(name, options, family_backbone, FRAMES, PIXELS, PIXELS)
    before = evaluation_loss(method, family_backbone, reference)
    result = train_motion(method, family_backbone, reference["latents"], reference["prompt_embeds"],
                          quick_config(steps=STEPS, learning_rate=learning_rate, weight_decay=0.0))
    after = evaluation_loss(method, family_backbone, reference)
    assert len(result.loss_history) == STEPS
    assert after < 0.99 * before, f"{name}: loss {before:.5f} -> {after:.5f} after {STEPS} steps"
