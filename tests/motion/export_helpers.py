"""Inputs shared by the export and load_motion tests: "trained" artifacts made fast, and the two generations
compared (motiontune's own sampling with the motion applied, and a diffusers pipeline's)."""

from __future__ import annotations

from pathlib import Path

import torch

from motiontune.methods.artifact import MotionArtifact, save_motion_artifact
from motiontune.methods.base import build_method, recommended_inference

FRAMES, SIZE, STEPS, GUIDANCE = 8, 32, 5, 7.5
PROMPT = "a red square moving right"


def trained_artifact(backbone, method: str, directory: Path, inference: dict | None = None, seed: int = 0, options: dict | None = None) -> Path:
    """A saved artifact of ``method`` on ``backbone`` (8 frames, 32x32) whose learned tensors are small random
    values (an untrained LoRA or zero embeddings would let a comparison pass whatever the code does), with
    ``train.<method>.inference`` updates ``inference``."""
    instance = build_method(method, options or {}, backbone, FRAMES, SIZE, SIZE)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, tensor in instance.artifact_tensors().items():
        tensor = tensor.detach().clone()
        noise = torch.randn(tensor.shape, generator=generator)
        if key.endswith("lora_B.weight"):
            tensor = 0.2 * noise  # lora_A is already random: its N(0, (1/r)^2) init
        elif method == "vmc":
            tensor = tensor + 0.05 * noise  # a full-rank change of every projection
        elif method == "motion_embeddings":
            tensor = 0.5 * noise
        tensors[key] = tensor
    hyperparameters = instance.hyperparameters()
    manifest = {
        "method": method,
        "method_version": instance.version,
        "backbone": backbone.fingerprint(),
        "num_frames": FRAMES,
        "height": SIZE,
        "width": SIZE,
        "blocks": hyperparameters.get("block_paths", []),
        "hyperparameters": hyperparameters,
        "inference_defaults": recommended_inference(method, {"inference": inference or {}}),
        "train": {"steps": 0, "final_loss": 0.0, "seconds": 0.0},
        "source_video": {"path": "ref.mp4", "sha256": "0" * 64},
        "train_prompt": PROMPT,
        "created_at": "2026-12-01T00:00:00+00:00",
    }
    return save_motion_artifact(directory, MotionArtifact(tensors=tensors, manifest=manifest))


def start_latents(backbone, seed: int = 0) -> torch.Tensor:
    from motiontune.generation.generate import latent_shape
    from motiontune.sampling.noise import initial_noise

    return initial_noise("random", latent_shape(backbone, FRAMES, SIZE, SIZE), torch.Generator().manual_seed(seed))


def motiontune_latents(backbone, artifact_dir: Path | None, start: torch.Tensor, **options) -> torch.Tensor:
    """motiontune's own sampling (guided DDIM over the backbone's UNet) from ``start``, with the motion at
    ``artifact_dir`` applied as generation applies it (``applied_motion``), or without a motion."""
    from contextlib import nullcontext

    from motiontune.methods.artifact import load_motion_artifact
    from motiontune.sampling.ddim import ddim_sample, guided_noise_prediction
    from motiontune.sampling.latents import encode_prompts
    from motiontune.training.customize import applied_motion

    context = nullcontext() if artifact_dir is None else applied_motion(backbone, load_motion_artifact(artifact_dir), options)
    with context, torch.no_grad():
        predict = guided_noise_prediction(backbone.unet, encode_prompts(backbone, [PROMPT]), encode_prompts(backbone, [""]), GUIDANCE)
        return ddim_sample(predict, backbone.scheduler_config, start.clone(), STEPS, progress=False)


def pipeline_for(backbone):
    """The family's diffusers pipeline from the backbone's saved folder (``from_pretrained``): AnimateDiffPipeline,
    or the deprecated TextToVideoSDPipeline for ZeroScope's layout (it still runs in diffusers 0.42.1)."""
    import warnings

    from diffusers import AnimateDiffPipeline, TextToVideoSDPipeline

    cls = AnimateDiffPipeline if backbone.family == "animatediff" else TextToVideoSDPipeline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = cls.from_pretrained(backbone.id_or_path)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def pipeline_latents(pipeline, start: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return pipeline(
            prompt=PROMPT, negative_prompt="", num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=STEPS,
            guidance_scale=GUIDANCE, latents=start.clone(), output_type="latent",
        ).frames
