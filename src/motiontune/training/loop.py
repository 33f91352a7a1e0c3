"""The training loop shared by all methods: noise, timestep, forward, method loss, AdamW on the
method's trainable tensors only, with a progress bar and atomic periodic checkpoints that resume.

Memory and speed switches (:mod:`motiontune.training.memory`), each off by default: gradient checkpointing
of the UNet's blocks, mixed precision (bf16 autocast; fp16 autocast with a GradScaler on CUDA) with float32
master weights, and ``torch.compile`` of the UNet. They apply for the duration of training only: the UNet
is exactly restored afterwards, so generation and artifacts are unaffected."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from motiontune.backbone.loading import Backbone
from motiontune.io.atomic import write_atomically
from motiontune.training.memory import (
    MIXED_PRECISION,
    autocast,
    check_master_weights,
    check_mixed_precision,
    compiled,
    frozen_parameters_with_grad,
    give_up_compile,
    grad_scaler,
    gradient_checkpointing,
    is_compile_error,
)
from motiontune.methods.base import MotionMethod, TrainingBatch

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.safetensors"
# Settings that change how a step is computed, not what it computes: a checkpoint made with other values
# of these still resumes (e.g. turn gradient checkpointing on after running out of memory).
EXECUTION_ONLY_SETTINGS = ("progress_bar", "gradient_checkpointing", "compile")
# fp16 GradScaler state in a checkpoint: scale and growth tracker as tensors, the rest as metadata.
GRAD_SCALER_SCALE = "grad_scaler.scale"
GRAD_SCALER_GROWTH_TRACKER = "grad_scaler.growth_tracker"
GRAD_SCALER_SETTINGS = "grad_scaler"


class TrainingDivergedError(FloatingPointError):
    """The loss or a gradient became NaN/inf."""


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
        from motiontune.known_keys import check_known_keys
        from motiontune.methods.base import method_names

        check_known_keys("train", train, (*cls.__dataclass_fields__, "method", "checkpoint_root", "executor", *method_names()))
        values = {key: train[key] for key in cls.__dataclass_fields__ if key in train}
        if "adam_betas" in values:
            values["adam_betas"] = tuple(values["adam_betas"])
        return cls(**values)


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

    ``latents``: (1, C, F, h, w) scaled VAE latents; ``prompt_embeds``: (1, L, D) training-prompt embeddings.
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
    fingerprint = _run_fingerprint(method, config, latents, prompt_embeds)
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None
    if checkpoint_path is not None and checkpoint_path.is_file():
        result.resumed_from_step = _load_checkpoint(checkpoint_path, fingerprint, parameters, optimizer, generator, result, scaler)

    latents = latents.to(backbone.device, backbone.dtype)
    prompt_embeds = prompt_embeds.to(backbone.device, backbone.dtype)
    num_timesteps = scheduler.config.num_train_timesteps
    frozen = {"unet": backbone.unet, "vae": backbone.vae, "text_encoder": backbone.text_encoder}
    started = time.perf_counter()
    bar = tqdm(range(result.resumed_from_step, config.steps), desc=f"train {method.name}", disable=not config.progress_bar, initial=result.resumed_from_step, total=config.steps)
    with gradient_checkpointing(backbone.unet, config.gradient_checkpointing), compiled(backbone.unet, config.compile) as compile_state:
        for step in bar:
            step_started, step_cpu_started = time.perf_counter(), time.process_time()
            noise = torch.randn(latents.shape, generator=generator).to(latents)
            timesteps = method.sample_timesteps(num_timesteps, latents.shape[0], generator).to(backbone.device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            batch = TrainingBatch(
                latents=latents,
                noise=noise,
                timesteps=timesteps,
                noisy_latents=noisy,
                target=training_target(scheduler, latents, noise, timesteps),
                prompt_embeds=prompt_embeds,
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
            leaked = frozen_parameters_with_grad(frozen, parameters)
            if leaked:
                raise RuntimeError(
                    f"train {method.name}: frozen backbone weights received gradients at step {step} "
                    f"({', '.join(leaked[:5])}{', ...' if len(leaked) > 5 else ''}); a method trains only its own tensors"
                )
            if scaler is not None:
                scaler.unscale_(optimizer)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            if scaler is None and not all(p.grad is None or torch.isfinite(p.grad).all() for p in parameters):
                raise TrainingDivergedError(f"train {method.name}: a gradient became NaN/inf at step {step}; lower train.learning_rate")
            if scaler is not None:
                scaler.step(optimizer)  # skips the update when fp16 gradients overflowed
                scaler.update()
            else:
                optimizer.step()
            result.loss_history.append(float(loss.item()))
            result.step_seconds.append(time.perf_counter() - step_started)
            result.step_cpu_seconds.append(time.process_time() - step_cpu_started)
            bar.set_postfix(loss=f"{result.loss_history[-1]:.4f}")
            if checkpoint_path is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
                _save_checkpoint(checkpoint_path, fingerprint, step + 1, parameters, optimizer, generator, result, scaler)
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
    if not torch.isfinite(loss):
        raise TrainingDivergedError(
            f"train {method.name}: loss became {loss.item()} at step {batch.step}; lower train.learning_rate "
            f"(now {config.learning_rate}) or use float32 (backbone.dtype)"
        )
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    return loss


def _run_fingerprint(method: MotionMethod, config: TrainingConfig, latents: torch.Tensor, prompt_embeds: torch.Tensor) -> str:
    """Identifies a run's settings and inputs, so a checkpoint of another run is never resumed."""
    settings = {k: v for k, v in asdict(config).items() if k not in EXECUTION_ONLY_SETTINGS}
    if settings.get("mixed_precision") == "no":
        del settings["mixed_precision"]  # so checkpoints from before the setting existed still resume
    digest = hashlib.sha256(json.dumps([method.name, method.hyperparameters(), settings], default=str, sort_keys=True).encode())
    digest.update(latents.detach().float().cpu().numpy().tobytes())
    digest.update(prompt_embeds.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def grad_scaler_state(scaler: torch.amp.GradScaler | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A GradScaler's state for a safetensors checkpoint: ``(tensors, metadata)``, both empty without one.

    Tensors: the current scale (float64) and growth tracker (int64); metadata: growth factor, backoff factor
    and growth interval (JSON). Call after ``scaler.update()``.
    """
    if scaler is None or not scaler.is_enabled():
        return {}, {}
    state = scaler.state_dict()
    tensors = {
        GRAD_SCALER_SCALE: torch.tensor(float(state["scale"]), dtype=torch.float64),
        GRAD_SCALER_GROWTH_TRACKER: torch.tensor(int(state["_growth_tracker"]), dtype=torch.int64),
    }
    settings = {key: state[key] for key in ("growth_factor", "backoff_factor", "growth_interval")}
    return tensors, {GRAD_SCALER_SETTINGS: json.dumps(settings, sort_keys=True)}


def restore_grad_scaler(scaler: torch.amp.GradScaler | None, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bool:
    """Load what :func:`grad_scaler_state` saved into ``scaler``; False (scaler untouched) when there is no
    scaler or the checkpoint holds no scaler state (one made without fp16, or before this was saved)."""
    if scaler is None or not scaler.is_enabled() or GRAD_SCALER_SCALE not in tensors or GRAD_SCALER_SETTINGS not in metadata:
        return False
    settings = json.loads(metadata[GRAD_SCALER_SETTINGS])
    scaler.load_state_dict({
        "scale": float(tensors[GRAD_SCALER_SCALE]),
        "growth_factor": float(settings["growth_factor"]),
        "backoff_factor": float(settings["backoff_factor"]),
        "growth_interval": int(settings["growth_interval"]),
        "_growth_tracker": int(tensors[GRAD_SCALER_GROWTH_TRACKER]),
    })
    return True


def _save_checkpoint(path: Path, fingerprint: str, step: int, parameters: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, generator: torch.Generator, result: TrainingResult, scaler: torch.amp.GradScaler | None = None) -> None:
    tensors: dict[str, torch.Tensor] = {"rng_state": generator.get_state()}
    tensors["loss_history"] = torch.tensor(result.loss_history, dtype=torch.float64)
    for index, parameter in enumerate(parameters):
        tensors[f"parameter.{index}"] = parameter.detach().cpu().contiguous()
        state = optimizer.state.get(parameter, {})
        for key, value in state.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    scaler_tensors, scaler_metadata = grad_scaler_state(scaler)
    tensors.update(scaler_tensors)
    metadata = {"step": str(step), "fingerprint": fingerprint, **scaler_metadata}
    write_atomically(path, lambda p: save_file(tensors, str(p), metadata=metadata))
    logger.debug("checkpoint at step %d -> %s", step, path)


def _load_checkpoint(path: Path, fingerprint: str, parameters: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, generator: torch.Generator, result: TrainingResult, scaler: torch.amp.GradScaler | None = None) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("fingerprint") != fingerprint:
        logger.warning("Ignoring checkpoint %s: it was made with other settings or inputs", path)
        return 0
    tensors = load_file(str(path))
    with torch.no_grad():
        for index, parameter in enumerate(parameters):
            parameter.copy_(tensors[f"parameter.{index}"])
            state = {key.split(".", 2)[2]: value for key, value in tensors.items() if key.startswith(f"optimizer.{index}.")}
            if state:
                optimizer.state[parameter] = {k: v.to(parameter.device) for k, v in state.items()}
    generator.set_state(tensors["rng_state"])
    if scaler is not None and not restore_grad_scaler(scaler, tensors, metadata):
        logger.warning("Checkpoint %s holds no GradScaler state: the fp16 loss scale starts afresh", path)
    result.loss_history = tensors["loss_history"].tolist()
    step = int(metadata["step"])
    logger.info("Resuming from %s at step %d", path, step)
    return step
