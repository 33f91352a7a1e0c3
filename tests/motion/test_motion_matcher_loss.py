"""MotionMatcher's loss compares the *frozen* model's attention maps of the two denoised videos (seed 001 fig. 2;
public code train.py), and its tiny value on the random-weight backbone comes from the one-step denoising."""

import pytest
import torch
from diffusers import DDPMScheduler

from motiontune.methods.attention_maps import motion_attention_features
from motiontune.methods.base import TrainingBatch
from motiontune.methods.motion_matcher import MotionMatcherMethod
from motiontune.sampling.ddim import ddim_step

from motion_helpers import FRAMES, PIXELS, random_reference

pytestmark = pytest.mark.usefixtures("restore_unet")


@pytest.fixture(scope="module")
def reference():
    return random_reference(11)


def prepared(backbone, lora_std=0.0, **options):
    method = MotionMatcherMethod(backbone, FRAMES, PIXELS, PIXELS, rank=4, **options)
    if lora_std:
        with torch.no_grad():
            for parameter in method.trainable_parameters():
                parameter.normal_(std=lora_std, generator=torch.Generator().manual_seed(3))
    return method


def batch_for(backbone, reference, timestep=750, target=None):
    scheduler = DDPMScheduler.from_config(backbone.scheduler_config)
    generator = torch.Generator().manual_seed(5)
    latents = reference["latents"]
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.tensor([timestep])
    noisy = scheduler.add_noise(latents, noise, timesteps)
    return TrainingBatch(latents, noise, timesteps, noisy, noise if target is None else target, reference["prompt_embeds"], scheduler, generator, 0)


def map_loss(predicted, target):
    mse = torch.nn.functional.mse_loss
    return 2000 * (mse(predicted.cross_attention, target.cross_attention) + mse(predicted.temporal_attention, target.temporal_attention))


def test_the_loss_compares_the_frozen_models_maps_of_the_predicted_and_the_true_denoised_video(tiny_backbone, reference):
    unet = tiny_backbone.unet
    method = prepared(tiny_backbone, lora_std=0.05)
    batch = batch_for(tiny_backbone, reference)
    loss = method.training_loss(tiny_backbone, batch)

    # The same, written out: LoRA only in the first pass, both feature passes through the plain UNet.
    alphas, previous = batch.scheduler.alphas_cumprod, batch.timesteps - 1
    with torch.no_grad():
        with method.adapter.attached():
            prediction = unet(batch.noisy_latents, batch.timesteps, encoder_hidden_states=batch.prompt_embeds).sample
        predicted_sample = ddim_step(alphas, batch.noisy_latents, prediction, batch.timesteps, previous)
        true_sample = ddim_step(alphas, batch.noisy_latents, batch.noise, batch.timesteps, previous)
        assert not method.adapter.is_attached
        frozen_predicted = motion_attention_features(unet, method.feature_layers, predicted_sample, previous, batch.prompt_embeds)
        frozen_true = motion_attention_features(unet, method.feature_layers, true_sample, previous, batch.prompt_embeds)
        # The bug this guards against: the LoRA left attached while extracting features changes the maps.
        with method.adapter.attached():
            adapted_predicted = motion_attention_features(unet, method.feature_layers, predicted_sample, previous, batch.prompt_embeds)
    expected = map_loss(frozen_predicted, frozen_true)
    assert float(expected) > 0
    assert torch.allclose(loss.detach(), expected, rtol=1e-4, atol=0)
    wrong = map_loss(adapted_predicted, frozen_true)
    assert abs(float(wrong) - float(expected)) > 0.1 * float(expected)
    # Comparing a video's maps with themselves (e.g. both branches fed the same sample) would give exactly 0.
    assert float(map_loss(frozen_true, frozen_true)) == 0.0


def test_at_initialisation_the_loss_is_positive_and_reaches_lora_b_through_the_first_pass(tiny_backbone, reference):
    method = prepared(tiny_backbone)  # lora_B = 0: the adapted model predicts what the frozen one does
    loss = method.training_loss(tiny_backbone, batch_for(tiny_backbone, reference))
    loss.backward()
    assert float(loss.detach()) > 0  # the frozen model's prediction is not the true noise
    grads = {key: parameter.grad for key, parameter in zip(method.artifact_tensors(), method.trainable_parameters())}
    lora_b = [grad for key, grad in grads.items() if key.endswith("lora_B.weight")]
    assert all(grad is not None and torch.isfinite(grad).all() for grad in lora_b)
    assert sum(float(grad.abs().sum()) for grad in lora_b) > 0
    assert all(grad is None or torch.count_nonzero(grad) == 0 for key, grad in grads.items() if key.endswith("lora_A.weight"))


def test_the_loss_is_zero_when_the_model_predicts_the_true_noise(tiny_backbone, reference):
    method = prepared(tiny_backbone, lora_std=0.05)
    batch = batch_for(tiny_backbone, reference)
    with torch.no_grad(), method.adapter.attached():
        own = tiny_backbone.unet(batch.noisy_latents, batch.timesteps, encoder_hidden_states=batch.prompt_embeds).sample
    perfect = batch_for(tiny_backbone, reference, target=own)  # the "true noise" is exactly what the model predicts
    with torch.no_grad():
        assert float(method.training_loss(tiny_backbone, perfect)) == 0.0


def test_the_loss_is_small_because_one_ddim_step_barely_separates_the_two_videos(tiny_backbone, reference):
    """x_{t-1} differs between the branches by c (eps_pred - eps) with |c| ~ 4e-3 at t = 750, so the loss ~ c^2:
    10 steps instead of 1 multiply it by ~100 (the public code's num_denoise_steps: 1 gives the same scale)."""
    alphas = DDPMScheduler.from_config(tiny_backbone.scheduler_config).alphas_cumprod
    coefficient = (1 - alphas[749]).sqrt() - (alphas[749] / alphas[750]).sqrt() * (1 - alphas[750]).sqrt()
    assert 1e-3 < abs(float(coefficient)) < 1e-2
    with torch.no_grad():
        one = float(prepared(tiny_backbone).training_loss(tiny_backbone, batch_for(tiny_backbone, reference)))
        ten = float(prepared(tiny_backbone, denoise_stride=10).training_loss(tiny_backbone, batch_for(tiny_backbone, reference)))
    assert 0 < one < 1e-4
    assert 50 < ten / one < 200
