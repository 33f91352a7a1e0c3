"""Our own DDIM sampling and inversion loops over a video UNet (diffusers' TextToVideoSDPipeline is deprecated).

DDIM (Song et al. 2021), eta = 0: x_{t'} = sqrt(a_{t'}) * x0_hat + sqrt(1 - a_{t'}) * eps_hat, with
x0_hat = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t). Inversion runs the same update from t' to t.

The step from timestep t goes to t' = t - T // n (T training timesteps, n sampling steps; t' < 0 is the clean
end), exactly as diffusers' ``DDIMScheduler.step``, whatever the ``timestep_spacing``. With ``leading`` spacing
(ZeroScope) t' is the next listed timestep; with ``linspace`` (AnimateDiff) or ``trailing`` it may not be, and
the next step still starts from the next listed timestep, as diffusers' pipelines do. Inversion mirrors each
sampling step (from t - T // n up to t, eps predicted at t), as diffusers' ``DDIMInverseScheduler.step``
does for the spacings it supports (``leading``, ``trailing``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from motiontune.backbone.layout import layout_for


def ddim_timesteps(scheduler_config: dict[str, Any], num_steps: int) -> torch.Tensor:
    """The descending timesteps diffusers' DDIMScheduler uses for ``num_steps`` (spacing from the config)."""
    from diffusers import DDIMScheduler

    if num_steps < 1:
        raise ValueError(f"steps: must be at least 1, got {num_steps}")
    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(num_steps)
    return scheduler.timesteps.clone()


def alphas_cumprod(scheduler_config: dict[str, Any]) -> torch.Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(scheduler_config).alphas_cumprod.clone()


def _prediction_to_epsilon(
    prediction: torch.Tensor, sample: torch.Tensor, alpha: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "v_prediction":
        return alpha.sqrt() * prediction + (1 - alpha).sqrt() * sample
    raise ValueError(f"scheduler prediction_type '{prediction_type}' is not supported")


def _ddim_move(
    sample: torch.Tensor, epsilon: torch.Tensor, alpha_from: torch.Tensor, alpha_to: torch.Tensor, clip_range: float | None = None
) -> torch.Tensor:
    predicted_x0 = (sample - (1 - alpha_from).sqrt() * epsilon) / alpha_from.sqrt()
    if clip_range is not None:  # the scheduler's clip_sample: diffusers clamps x0_hat only, eps_hat stays as predicted
        predicted_x0 = predicted_x0.clamp(-clip_range, clip_range)
    return alpha_to.sqrt() * predicted_x0 + (1 - alpha_to).sqrt() * epsilon


def ddim_step(
    alphas_cumprod: torch.Tensor,
    sample: torch.Tensor,
    prediction: torch.Tensor,
    timesteps: torch.Tensor,
    previous_timesteps: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """One deterministic DDIM step (eta = 0) from x_t to x_{t'} for each video of the batch, in float32.

    ``sample``, ``prediction``: (B, C, F, h, w); ``timesteps``, ``previous_timesteps``: (B,), t' < t (t' < 0
    means the clean end, alpha = 1). ``prediction`` is the noise, or the velocity for ``v_prediction``.
    """
    alphas = alphas_cumprod.to(device=sample.device, dtype=torch.float32)
    alpha = alphas[timesteps].view(-1, 1, 1, 1, 1)
    alpha_previous = torch.where(
        previous_timesteps >= 0, alphas[previous_timesteps.clamp(min=0)], torch.ones_like(alphas[timesteps])
    ).view(-1, 1, 1, 1, 1)
    sample_float = sample.float()
    epsilon = _prediction_to_epsilon(prediction.float(), sample_float, alpha, prediction_type)
    return _ddim_move(sample_float, epsilon, alpha, alpha_previous).to(sample.dtype)


DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _schedule(
    scheduler_config: dict[str, Any], num_steps: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, str, torch.Tensor, float | None]:
    """What both DDIM walks read from the scheduler: the descending timesteps, ``alphas_cumprod`` on ``device``,
    the prediction type, the alpha of the clean end (1 with ``set_alpha_to_one``, as diffusers' DDIM) and the range
    x0_hat is clamped to (``clip_sample``; None = not clamped). Read through ``DDIMScheduler.from_config``, so a key
    the folder's scheduler lacks (a PNDM or Euler config) takes DDIM's default, as diffusers' scheduler swap does."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(scheduler_config)
    config = scheduler.config
    alphas = scheduler.alphas_cumprod.clone().to(device)
    clean_alpha = torch.tensor(1.0) if config.set_alpha_to_one else alphas[0]
    clip_range = float(config.clip_sample_range) if config.clip_sample else None
    return ddim_timesteps(scheduler_config, num_steps), alphas, config.prediction_type, clean_alpha.to(alphas), clip_range


def _step_stride(scheduler_config: dict[str, Any], num_steps: int) -> int:
    """T // n: how far one DDIM step moves in training timesteps (diffusers' ``DDIMScheduler.step``)."""
    return int(scheduler_config.get("num_train_timesteps", 1000)) // num_steps


def guided_noise_prediction(
    unet: torch.nn.Module,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
    guidance_scale: float,
) -> DenoiseFn:
    """eps(x_t, t) with classifier-free guidance: eps_u + s * (eps_c - eps_u); s <= 1 or no negative = plain.

    ``prompt_embeds``, ``negative_embeds``: (1, L, D); the UNet is called as its family's layout says (an
    AnimateDiff UNet gets them per frame)."""
    layout = layout_for(unet)

    def predict(sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if negative_embeds is None or guidance_scale <= 1.0:
            return layout.predict_noise(sample, timestep, prompt_embeds)
        both = torch.cat([negative_embeds, prompt_embeds])
        prediction = layout.predict_noise(torch.cat([sample, sample]), timestep, both)
        unconditional, conditional = prediction.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    return predict


@torch.no_grad()
def ddim_sample(
    predict: DenoiseFn,
    scheduler_config: dict[str, Any],
    initial_latents: torch.Tensor,
    num_steps: int,
    progress: bool = True,
    description: str = "sampling",
) -> torch.Tensor:
    """Denoise (B, C, F, h, w) latents from the noisiest DDIM timestep to a clean latent video."""
    timesteps, alphas, prediction_type, final_alpha, clip_range = _schedule(scheduler_config, num_steps, initial_latents.device)
    stride = _step_stride(scheduler_config, num_steps)
    sample = initial_latents
    for timestep in tqdm(timesteps, desc=description, disable=not progress, leave=False):
        alpha = alphas[timestep]
        previous = int(timestep) - stride
        alpha_next = alphas[previous] if previous >= 0 else final_alpha
        prediction = predict(sample, timestep.to(sample.device))
        epsilon = _prediction_to_epsilon(prediction, sample, alpha, prediction_type)
        sample = _ddim_move(sample, epsilon, alpha, alpha_next, clip_range)
    return sample


@torch.no_grad()
def ddim_invert(
    predict: DenoiseFn,
    scheduler_config: dict[str, Any],
    latents: torch.Tensor,
    num_steps: int,
    progress: bool = True,
) -> torch.Tensor:
    """DDIM inversion: walk clean latents (B, C, F, h, w) up to the noisiest timestep of ``num_steps``.

    The result, fed to :func:`ddim_sample` with the same prompt and steps, reconstructs the input.
    """
    descending, alphas, prediction_type, initial_alpha, clip_range = _schedule(scheduler_config, num_steps, latents.device)
    stride = _step_stride(scheduler_config, num_steps)
    sample = latents
    for timestep in tqdm(descending.flip(0), desc="DDIM inversion", disable=not progress, leave=False):
        alpha = alphas[timestep]
        previous = int(timestep) - stride
        previous_alpha = alphas[previous] if previous >= 0 else initial_alpha
        # As in Tune-A-Video/VMC inversion: eps is predicted at the target timestep from the current sample.
        prediction = predict(sample, timestep.to(sample.device))
        epsilon = _prediction_to_epsilon(prediction, sample, previous_alpha, prediction_type)
        sample = _ddim_move(sample, epsilon, previous_alpha, alpha, clip_range)
    return sample
