"""Does a backbone know which way time runs? The two measurements behind its direction competence.

    report = time_symmetry_report(backbone, spec, TimeSymmetryConfig.from_params(params))

A ``UNet3DConditionModel`` has no temporal position encoding: its temporal attention is permutation-equivariant
and its temporal convolutions start at zero (ModelScope's initialisation), so a freshly built one denoises a clip
played backwards exactly as it denoises the clip, played backwards. Until training breaks that symmetry,
"moving right" and "moving left" name the same set of videos (each is the other reversed), and no sampler can
follow the direction word. Two numbers tell whether training has broken it:

* ``reversal_error``: ``|eps(x) - R eps(R x)| / |eps(x) - mean over frames|`` on random latents, R reversing the
  frames; 0 for an exactly time-symmetric UNet, of order 1 for one whose frames know their place.
* denoising losses of world clips of one family (``translate``) under their own caption, the caption with the
  opposite direction word, the frames reversed and the frames shuffled: a backbone that reads the direction word
  does worse with the opposite one; one that uses frame order at all does worse on shuffled frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from motiontune.backbone.layout import layout_for
from motiontune.backbone.loading import Backbone
from motiontune.sampling.latents import encode_frames, encode_prompts
from motiontune.world.generator import caption_for, render_sample
from motiontune.world.motions import MOTION_FAMILIES, matching_param_options
from motiontune.sections import build_section
from motiontune.world.spec import WorldSpec
from motiontune.world.vocabulary import opposite_direction

CONDITIONS = ("own_caption", "opposite_direction_word", "reversed_frames", "shuffled_frames")


@dataclass(frozen=True)
class TimeSymmetryConfig:
    """``world_backbone.competence.time_symmetry`` parameters (conf/base/parameters_world_backbone.yml)."""

    family: str = "translate"
    params: dict[str, Any] = field(default_factory=lambda: {"speed": "fast"})
    clips: int = 48
    timesteps: tuple[int, ...] = (900, 700, 500, 300)
    random_latents: int = 4
    seed: int = 1000

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TimeSymmetryConfig:
        values = dict(params)
        if "timesteps" in values:
            values["timesteps"] = [int(t) for t in values["timesteps"]]
        return build_section(cls, values, "world_backbone.competence.time_symmetry")

    def problems(self) -> list[str]:
        """Range errors, one line each (:func:`~motiontune.sections.build_section` raises them together)."""
        problems = []
        if self.family not in MOTION_FAMILIES:
            problems.append(f"family: unknown family {self.family!r}; known: {sorted(MOTION_FAMILIES)}")
        if not 1 <= self.random_latents <= self.clips or not self.timesteps:
            problems.append("random_latents, clips, timesteps: needs 1 <= random_latents <= clips and a timestep")
        return problems


@torch.no_grad()
def reversal_error(unet: Any, latents: torch.Tensor, timestep: int, text: torch.Tensor) -> float:
    """How far ``unet`` is from commuting with time reversal on ``latents`` (B, C, F, h, w) under ``text``
    (B, L, D): the reversal residual relative to the frame-varying part of its output (0 = time-symmetric)."""
    layout = layout_for(unet)  # either family (an AnimateDiff UNet takes the text per frame)
    timesteps = torch.full((latents.shape[0],), timestep, device=latents.device)
    forward = layout.predict_noise(latents, timesteps, text)
    backward = layout.predict_noise(latents.flip(2), timesteps, text).flip(2)
    varying = forward - forward.mean(dim=2, keepdim=True)
    return float((forward - backward).norm() / varying.norm().clamp_min(1e-12))


@torch.no_grad()
def time_symmetry_report(backbone: Backbone, spec: WorldSpec, config: TimeSymmetryConfig) -> dict[str, Any]:
    """Reversal error per timestep, and per timestep the mean denoising loss of each condition (see the module
    docstring) with its ratio to ``own_caption``; one draw of noise per timestep, shared by the conditions."""
    from diffusers import DDPMScheduler

    unet, device, dtype = backbone.unet, backbone.device, backbone.dtype
    options = [option for option in matching_param_options(spec, config.family, config.params) if "direction" in option]
    if not options:
        raise ValueError(f"world_backbone.competence.time_symmetry: no {config.family} parameters with a direction "
                         f"match {dict(config.params)}")
    samples = [render_sample(spec, config.family, params=options[i % len(options)], seed=config.seed + i)
               for i in range(config.clips)]
    latents = torch.cat([encode_frames(backbone, sample.frames) for sample in samples]).to(dtype)
    own = encode_prompts(backbone, [sample.caption for sample in samples])
    opposite = encode_prompts(backbone, [
        caption_for(config.family, {**sample.truth.params, "direction": opposite_direction(str(sample.truth.params["direction"]))},
                    sample.colour, sample.shape) for sample in samples])
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(latents.shape[2], generator=generator)
    scheduler = DDPMScheduler.from_config(dict(backbone.scheduler_config))
    losses: dict[str, dict[str, float]] = {}
    ratios: dict[str, dict[str, float]] = {}
    errors: dict[str, float] = {}
    for timestep in config.timesteps:
        noise = torch.randn(latents.shape, generator=generator).to(device, dtype)
        steps = torch.full((latents.shape[0],), timestep, device=device)
        inputs = {"own_caption": (latents, own), "opposite_direction_word": (latents, opposite),
                  "reversed_frames": (latents.flip(2), own), "shuffled_frames": (latents[:, :, order], own)}
        row = {}
        for name in CONDITIONS:
            clean, text = inputs[name]
            prediction = layout_for(unet).predict_noise(scheduler.add_noise(clean, noise, steps), steps, text)
            row[name] = float((prediction.float() - noise.float()).pow(2).mean())
        losses[str(timestep)] = row
        ratios[str(timestep)] = {name: row[name] / row["own_caption"] for name in CONDITIONS[1:]}
        random = torch.randn((config.random_latents, *latents.shape[1:]), generator=generator).to(device, dtype)
        errors[str(timestep)] = reversal_error(unet, random, timestep, own[:config.random_latents])
    return {"reversal_error": errors, "losses": losses, "loss_ratios": ratios,
            "mean_reversal_error": float(np.mean(list(errors.values()))),
            "mean_loss_ratios": {name: float(np.mean([ratios[t][name] for t in ratios])) for name in CONDITIONS[1:]}}
