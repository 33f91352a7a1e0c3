"""The training loop shared by all methods: noise, timestep, forward, method loss, AdamW on the
method's trainable tensors only, with a progress bar and atomic periodic checkpoints that resume.

The steps run through :func:`motiontune.training.steps.run_steps` and checkpoint through
:mod:`motiontune.training.checkpoint`, as the world backbone's stages do. Memory and speed switches, each off by
default: gradient checkpointing of the UNet's blocks (:mod:`motiontune.training.memory`), mixed precision
(bf16 autocast; fp16 autocast with a GradScaler on CUDA) with float32 master weights
(:mod:`motiontune.training.precision`), and ``torch.compile`` of the UNet
(:mod:`motiontune.training.compilation`). They apply for the duration of training only: the UNet is exactly
restored afterwards, so generation and artifacts are unaffected."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motiontune.backbone.loading import Backbone
from motiontune.methods.base import MotionMethod, TrainingBatch, method_names
from motiontune.sections import build_section
from motiontune.training.checkpoint import fingerprint, load_checkpoint, parameter_weights, save_checkpoint
from motiontune.training.compilation import compiled, give_up_compile, is_compile_error
from motiontune.training.guards import TrainingDivergedError, check_finite_gradients, check_finite_loss, check_frozen_gradients
from motiontune.training.memory import gradient_checkpointing
from motiontune.training.precision import MIXED_PRECISION, autocast, check_master_weights, check_mixed_precision, grad_scaler
from motiontune.training.steps import run_steps

__all__ = ["CHECKPOINT_FILE", "TrainingConfig", "TrainingDivergedError", "TrainingResult", "train_motion", "training_target"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.safetensors"
# Settings that change how a step is computed, not what it computes: a checkpoint made with other values
# of these still resumes (e.g. turn gradient checkpointing on after running out of memory).
EXECUTION_ONLY_SETTINGS = ("progress_bar", "gradient_checkpointing", "compile")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser and loop settings (AdamW defaults from seed 004 A.3), and the memory/speed switches.

    ``gradient_checkpointing``: recompute each UNet block's activations in backward instead of keeping them
    (less memory, ~30% more time). ``mixed_precision``: ``no`` | ``bf16`` | ``fp16`` autocast of the forward
    pass; trainable tensors stay float32; fp16 needs CUDA (GradScaler). ``compile``: ``torch.compile`` the
    UNet for training; a compile failure is logged and training goes on uncompiled.
    """

    steps: int = 400
    learning_rate: float = 5e-2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = None
    # Train on the reference's appearance-invariant prompt (VMC sec. 3.2) instead of its caption; each method
    # sets it (only VMC's public code simplifies the prompt), a manifest train_prompt replaces both.
    simplified_prompt: bool = False
    seed: int = 0
    checkpoint_every: int = 50
    progress_bar: bool = True
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.mixed_precision in (False, None):  # YAML 1.1 reads a bare `no` as false
            object.__setattr__(self, "mixed_precision", "no")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"train.mixed_precision: '{self.mixed_precision}' is not one of {list(MIXED_PRECISION)}")
        for flag in ("gradient_checkpointing", "compile", "simplified_prompt"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"train.{flag}: must be true or false, got {getattr(self, flag)!r}")
        if self.steps < 1:
            raise ValueError(f"train.steps: must be at least 1, got {self.steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"train.learning_rate: must be positive, got {self.learning_rate}")
        if self.checkpoint_every < 0:
            raise ValueError(f"train.checkpoint_every: must be >= 0 (0 = never), got {self.checkpoint_every}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"train.adam_betas: two numbers in [0, 1), got {self.adam_betas}")

    @classmethod
    def from_params(cls, train: Mapping[str, Any]) -> TrainingConfig:
        """The loop settings out of the ``train`` parameters. Its other keys, ``method``, ``checkpoint_root``, ``executor`` and
        the ``train.<method>`` blocks (checked by the methods), are not its business; any other key is an error
        naming the closest known one."""
        return build_section(cls, train, "train", other_keys=("method", "checkpoint_root", "executor", *method_names()))


@dataclass
class TrainingResult:
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    resumed_from_step: int = 0
    step_seconds: list[float] = field(default_factory=list)  # wall time of each step run here (not resumed ones)
    step_cpu_seconds: list[float] = field(default_factory=list)  # process CPU time of each step (all threads)
    compiled: bool = False  # whether the UNet still ran compiled at the end (train.compile)

    @property
    def final_loss(self) -> float:
        return self.loss_history[-1] if self.loss_history else float("nan")


def training_target(scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet should predict: the noise (epsilon) or the velocity (v-prediction)."""
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"scheduler prediction_type '{prediction_type}' is not supported for training")


def train_motion(
    method: MotionMethod,
    backbone: Backbone,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    config: TrainingConfig,
    checkpoint_dir: Path | None = None,
) -> TrainingResult:
    """Fit ``method``'s tensors to one reference video.

    ``latents``: (1, C, F, h, w) scaled VAE latents; ``prompt_embeds``: (K, L, D) training-prompt embeddings;
    with K > 1 each step trains on one of the K captions, drawn uniformly from (seed, step) alone, so the noise
    and timesteps are those of a one-caption run and a resumed run draws the same captions.
    With ``checkpoint_dir`` set, a checkpoint (tensors, optimiser and RNG state, step) is written there every
    ``checkpoint_every`` steps, and an existing one made with the same settings is resumed.
    After every backward pass the loop checks that no frozen backbone weight received a gradient.
    """
    from diffusers import DDPMScheduler

    check_mixed_precision(config.mixed_precision, backbone.device)
    scheduler = DDPMScheduler.from_config(backbone.scheduler_config)
    parameters = method.trainable_parameters()
    check_master_weights(parameters, config.mixed_precision, f"train {method.name}")
    optimizer = torch.optim.AdamW(
        parameters,
        lr=config.learning_rate,
        betas=tuple(config.adam_betas),
        weight_decay=config.weight_decay,
        eps=config.adam_epsilon,
    )
    scaler = grad_scaler(backbone.device, config.mixed_precision)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    result = TrainingResult()
    label = f"train {method.name}"
    run_fingerprint = _run_fingerprint(method, config, latents, prompt_embeds)
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None
    weights = parameter_weights(parameters)
    if checkpoint_path is not None:
        resumed = load_checkpoint(checkpoint_path, run_fingerprint, weights=weights, optimizer=optimizer, generator=generator, scaler=scaler)
        if resumed is not None:
            result.resumed_from_step, result.loss_history = resumed.step, resumed.loss_history

    latents = latents.to(backbone.device, backbone.dtype)
    prompt_embeds = prompt_embeds.to(backbone.device, backbone.dtype)
    num_timesteps = scheduler.config.num_train_timesteps
    frozen = {"unet": backbone.unet, "vae": backbone.vae, "text_encoder": backbone.text_encoder}

    def step_fn(step: int) -> float:
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        timesteps = method.sample_timesteps(num_timesteps, latents.shape[0], generator).to(backbone.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        step_prompt = prompt_embeds
        if prompt_embeds.shape[0] > 1:
            pick = int(np.random.default_rng([config.seed, step]).integers(prompt_embeds.shape[0]))
            step_prompt = prompt_embeds[pick : pick + 1]
        batch = TrainingBatch(
            latents=latents,
            noise=noise,
            timesteps=timesteps,
            noisy_latents=noisy,
            target=training_target(scheduler, latents, noise, timesteps),
            prompt_embeds=step_prompt,
            scheduler=scheduler,
            generator=generator,
            step=step,
        )
        try:
            loss = _forward_backward(method, backbone, batch, config, optimizer, scaler)
        except Exception as error:
            if not (compile_state.active and is_compile_error(error)):
                raise
            give_up_compile(backbone.unet, compile_state, error)
            loss = _forward_backward(method, backbone, batch, config, optimizer, scaler)
        check_frozen_gradients(frozen, parameters, label, step, "a method trains only its own tensors")
        if scaler is not None:
            scaler.unscale_(optimizer)
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
        if scaler is None:
            check_finite_gradients(parameters, label, step, "lower train.learning_rate")
            optimizer.step()
        else:
            scaler.step(optimizer)  # skips the update when fp16 gradients overflowed
            scaler.update()
        return float(loss.item())

    def save(step: int) -> None:
        save_checkpoint(checkpoint_path, run_fingerprint, step, weights=weights, optimizer=optimizer, generator=generator,
                        loss_history=result.loss_history, scaler=scaler)

    started = time.perf_counter()
    with gradient_checkpointing(backbone.unet, config.gradient_checkpointing), compiled(backbone.unet, config.compile) as compile_state:
        run_steps(
            label, config.steps, step_fn, history=result.loss_history, start=result.resumed_from_step,
            progress_bar=config.progress_bar, checkpoint_every=config.checkpoint_every if checkpoint_path is not None else 0,
            save=save, divergence_advice=_divergence_advice(config),
            step_seconds=result.step_seconds, step_cpu_seconds=result.step_cpu_seconds,
        )
        result.compiled = compile_state.active
    result.seconds = time.perf_counter() - started
    result.steps = config.steps
    return result


def _forward_backward(
    method: MotionMethod,
    backbone: Backbone,
    batch: TrainingBatch,
    config: TrainingConfig,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
) -> torch.Tensor:
    """The method's loss under autocast (if any), checked for finiteness, then backward (scaled for fp16)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(backbone.device, config.mixed_precision):
        loss = method.training_loss(backbone, batch)
    check_finite_loss(loss, f"train {method.name}", batch.step, _divergence_advice(config))
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    return loss


def _divergence_advice(config: TrainingConfig) -> str:
    return f"lower train.learning_rate (now {config.learning_rate}) or use float32 (backbone.dtype)"


def _run_fingerprint(method: MotionMethod, config: TrainingConfig, latents: torch.Tensor, prompt_embeds: torch.Tensor) -> str:
    """Identifies a run's settings and inputs, so a checkpoint of another run is never resumed."""
    settings = {k: v for k, v in asdict(config).items() if k not in EXECUTION_ONLY_SETTINGS}
    if settings.get("mixed_precision") == "no":
        del settings["mixed_precision"]  # so checkpoints from before the setting existed still resume
    return fingerprint(method.name, method.hyperparameters(), settings, tensors=(latents, prompt_embeds))
