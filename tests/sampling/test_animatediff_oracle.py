"""Our sampling against diffusers' own AnimateDiffPipeline on the tiny AnimateDiff backbone (linspace spacing).

The pipeline is built from the same saved folder with ``from_pretrained``; both start from the same latents.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from motiontune.generation.generate import GenerationConfig, generate_without_motion, latent_shape
from motiontune.sampling.ddim import ddim_sample, guided_noise_prediction
from motiontune.sampling.latents import encode_prompts
from motiontune.sampling.noise import initial_noise

FRAMES, SIZE, STEPS, GUIDANCE = 8, 32, 7, 7.5
PROMPT = "a red square moving right"


@pytest.fixture(scope="module")
def animatediff_pipeline(tiny_animatediff):
    from diffusers import AnimateDiffPipeline

    pipeline = AnimateDiffPipeline.from_pretrained(tiny_animatediff.id_or_path)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _start(backbone) -> torch.Tensor:
    shape = latent_shape(backbone, FRAMES, SIZE, SIZE)
    return initial_noise("random", shape, torch.Generator().manual_seed(0))


def test_the_tiny_animatediff_scheduler_uses_linspace_spacing_where_one_ddim_stride_is_not_the_next_timestep(tiny_animatediff):
    from diffusers import DDIMScheduler

    assert tiny_animatediff.scheduler_config["timestep_spacing"] == "linspace"
    scheduler = DDIMScheduler.from_config(tiny_animatediff.scheduler_config)
    scheduler.set_timesteps(STEPS)
    listed = scheduler.timesteps.tolist()
    # What makes this comparison able to fail: stepping to the next listed timestep differs from t - T // n.
    assert any(t - 1000 // STEPS != following for t, following in itertools.pairwise(listed))


def test_our_sampling_equals_animatediff_pipeline_latents(tiny_animatediff, animatediff_pipeline):
    start = _start(tiny_animatediff)
    expected = animatediff_pipeline(
        prompt=PROMPT, negative_prompt="", num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=STEPS,
        guidance_scale=GUIDANCE, latents=start.clone(), output_type="latent",
    ).frames
    predict = guided_noise_prediction(
        tiny_animatediff.unet, encode_prompts(tiny_animatediff, [PROMPT]), encode_prompts(tiny_animatediff, [""]), GUIDANCE
    )
    ours = ddim_sample(predict, tiny_animatediff.scheduler_config, start.clone(), STEPS, progress=False)
    assert expected.shape == ours.shape == (1, 4, FRAMES, SIZE // 4, SIZE // 4)
    assert (ours - expected).abs().max().item() <= 1e-5


def test_our_generated_video_equals_animatediff_pipeline_video(tiny_animatediff, animatediff_pipeline):
    expected = animatediff_pipeline(
        prompt=PROMPT, negative_prompt="", num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=STEPS,
        guidance_scale=GUIDANCE, latents=_start(tiny_animatediff), output_type="np",
    ).frames[0]  # (F, H, W, 3) floats in [0, 1]
    config = GenerationConfig(seed=0, steps=STEPS, guidance_scale=GUIDANCE, noise_init="random", progress_bar=False)
    ours = generate_without_motion(tiny_animatediff, [PROMPT], FRAMES, SIZE, SIZE, config)[0]
    assert ours.shape == expected.shape
    # uint8 rounding of the same decoded frames: at most one level apart.
    assert np.abs(ours.astype(np.float64) - expected * 255.0).max() <= 1.0
