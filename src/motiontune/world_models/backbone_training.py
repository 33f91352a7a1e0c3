"""Train the embedded backbone on the motion world: VAE first, then UNet and text encoder together, then refine.

    config = WorldBackboneConfig.from_params(params["world_backbone"])
    train_world_backbone(out_dir, spec, tiny_spec, config, work_dir)   # diffusers folder in out_dir

Staged, because the latents must be fixed before the diffusion model learns them:

1. **VAE** (AutoencoderKL, the tiny architecture): frame reconstruction, MSE plus a small KL term
   (latent-diffusion autoencoders use KL weights around 1e-6). Its ``scaling_factor`` is then set to
   1 / std of the training latents, as latent diffusion does, so the UNet sees unit-variance latents.
2. **UNet3D + CLIP text encoder**, epsilon prediction on the training split's latents, with
   - min-SNR-gamma loss weighting (Hang et al. 2023, gamma 5): ``min(SNR, gamma) / SNR`` for epsilon,
   - up to four captions per clip: the full one ("a red circle moving right"), the appearance-only one
     ("a red circle": what benchmark target prompts look like), the empty one (classifier-free
     guidance needs the unconditional branch) and, with ``simplified_caption_share`` > 0, the simplified one
     ("a circle moving right": the appearance-free prompt VMC trains and inverts with,
     :func:`motiontune.io.prompts.simplify_prompt`), drawn with configured shares,
   - an exponential moving average of the weights, which is what gets saved.
3. **Refine** (``refine.steps`` > 0): the same objective continued from stage 2's averaged weights with a fresh
   optimizer, a constant learning rate, a faster average and its own seed. Measured on the committed backbone,
   600 such steps after 1800 raised its colour accuracy from 0.54 to 0.88 (README, "The motion world").
4. **Continuation** (``continuation.steps`` > 0): once more the same, from stage 3's averaged weights, fresh
   optimizer and seed: what continuing a saved backbone folder does (issue 18 trained the default 4800 such steps).

Either UNet family (``architecture``: ZeroScope's UNet3D or AnimateDiff's UNetMotionModel, whose motion modules
add a position encoding over frames); ``parts_from`` reuses another trained backbone's VAE (with its scaling
factor), tokenizer and scheduler instead of stage 1, so both families share one latent space; ``split`` may
leave out one member of each reversal pair of the train families, so that the data no longer rewards a
time-symmetric denoiser (issue 18, README "The motion world").

Everything is drawn from one seeded generator, and checkpoints in ``work_dir`` (the training package's, as the
motion methods' loop writes them: :mod:`motiontune.training.checkpoint`) let a killed run resume where it
stopped with the same result.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from motiontune.backbone.layout import layout_for
from motiontune.backbone.loading import UNET_3D, UNET_MOTION, BackboneError, resolve_device
from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone
from motiontune.io.atomic import replace_folder, write_atomically
from motiontune.io.prompts import simplify_prompt
from motiontune.training.checkpoint import fingerprint, load_checkpoint, module_weights, save_checkpoint
from motiontune.training.schedules import warmup_cosine_share
from motiontune.training.steps import run_steps
from motiontune.errors import UserError
from motiontune.world.captions import appearance_caption, world_vocabulary
from motiontune.world.generator import WorldSample, sample_world
from motiontune.world.motions import MOTION_FAMILIES
from motiontune.sections import build_section
from motiontune.world.spec import WorldSpec
from motiontune.world.vocabulary import DIRECTION_NAMES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VaeStage:
    """Autoencoder stage: ``steps`` of ``batch_size`` random frames."""

    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 5e-4
    kl_weight: float = 1e-6


@dataclass(frozen=True)
class DiffusionStage:
    """UNet3D + text encoder stage: ``steps`` of ``batch_size`` clips. ``seed``: of this stage's draws (None: the
    run's seed); the refine stage has its own, so its batches differ from the first stage's."""

    steps: int = 2400
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    final_learning_rate_share: float = 0.1  # cosine decay to this share of learning_rate
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.995
    empty_caption_share: float = 0.1
    appearance_caption_share: float = 0.25
    # The caption without colour (VMC's simplified prompt); 0 draws exactly as before the share existed.
    simplified_caption_share: float = 0.0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class TrainSplit:
    """Which of the world's train clips the backbone trains on (defaults: all of them).

    ``left_out_families``: families dropped entirely (issue 18 drops shrink and zoom_out, the reverses of grow and
    zoom_in). ``kept_directions``: when not empty, a clip whose motion has a ``direction`` parameter (translate,
    pan) stays only if its direction is one of these (issue 18 keeps one of each opposite pair).
    """

    left_out_families: tuple[str, ...] = ()
    kept_directions: tuple[str, ...] = ()

    def keeps(self, sample: WorldSample) -> bool:
        """Whether ``sample`` (a train clip) is in the split."""
        if sample.truth.family in self.left_out_families:
            return False
        direction = dict(sample.truth.params).get("direction")
        return not self.kept_directions or direction is None or str(direction) in self.kept_directions

    def problems(self) -> list[str]:
        problems = [f"left_out_families: unknown family '{name}' (known: {', '.join(sorted(MOTION_FAMILIES))})"
                    for name in self.left_out_families if name not in MOTION_FAMILIES]
        return problems + [f"kept_directions: unknown direction '{name}' (known: {', '.join(DIRECTION_NAMES)})"
                           for name in self.kept_directions if name not in DIRECTION_NAMES]


# ``architecture`` values: the sections of conf/base/parameters_backbone.yml a world backbone can be built from.
ARCHITECTURES = ("tiny_backbone", "tiny_animatediff")
STAGES = ("vae", "diffusion", "refine", "continuation")


@dataclass(frozen=True)
class WorldBackboneConfig:
    """``world_backbone.training`` parameters (conf/base/parameters_world_backbone.yml).

    ``architecture``: the parameters_backbone.yml section of the fresh model (the caller passes that section's
    spec; ``tiny_backbone``: ZeroScope's UNet3D, ``tiny_animatediff``: AnimateDiff's UNetMotionModel).
    ``parts_from``: a trained backbone folder whose VAE, tokenizer and scheduler are taken instead of training
    stage 1 (``vae`` is then unused); None trains the VAE. ``device``: where the diffusion stages run (``cpu``,
    ``cuda``, ``cuda:1``; ``auto``: CUDA when present); the random draws stay on the CPU's generator, so a stage draws the same batches, noise
    and timesteps on either device.
    """

    architecture: str = "tiny_backbone"
    parts_from: str | None = None
    split: TrainSplit = TrainSplit()
    seed: int = 0
    clips: int = 4000
    vae: VaeStage = VaeStage()
    diffusion: DiffusionStage = DiffusionStage()
    refine: DiffusionStage = DiffusionStage(steps=0)
    continuation: DiffusionStage = DiffusionStage(steps=0)
    checkpoint_every: int = 100
    log_every: int = 50
    threads: int | None = None
    device: str = "cpu"
    progress_bar: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> WorldBackboneConfig:
        values = dict(params)
        for name in (*STAGES, "split"):  # a stage left out takes its stage class's defaults
            values[name] = values.get(name) or {}
        return build_section(cls, values, "world_backbone")

    def problems(self) -> list[str]:
        """Range errors, one line each (:func:`~motiontune.sections.build_section` raises them together)."""
        problems = [] if self.clips >= 1 else [f"clips: must be at least 1, got {self.clips}"]
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture: must be one of {', '.join(ARCHITECTURES)}, got '{self.architecture}'")
        try:
            resolve_device(self.device)
        except BackboneError:
            problems.append(f"device: '{self.device}' is not a torch device (cpu, cuda, cuda:1, auto)")
        if self.parts_from is not None and not (Path(self.parts_from) / "model_index.json").is_file():
            problems.append(f"parts_from: '{self.parts_from}' is not a backbone folder (no model_index.json)")
        for name in STAGES:
            stage = getattr(self, name)
            if stage.steps < 0 or stage.batch_size < 1 or stage.learning_rate <= 0:
                problems.append(f"{name}: steps >= 0, batch_size >= 1 and learning_rate > 0 are required")
        for name in STAGES[1:]:
            stage = getattr(self, name)
            shares = stage.empty_caption_share + stage.appearance_caption_share + stage.simplified_caption_share
            if min(stage.empty_caption_share, stage.appearance_caption_share, stage.simplified_caption_share) < 0:
                problems.append(f"{name}: caption shares must not be negative")
            elif shares > 1:
                problems.append(f"{name}: caption shares must add up to at most 1, got {shares:.3g}")
        return problems


# --------------------------------------------------------------------------- stages


def _frames_to_unit(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _run_stage(name: str, total: int, start: int, step_fn: Callable[[int], float], save: Callable[[int], None],
               config: WorldBackboneConfig, history: list[float]) -> None:
    """A stage's steps: the shared step loop with this trainer's reporting (every ``log_every`` steps, logged) and
    checkpoints (every ``checkpoint_every`` steps, none after the last: the stage's result follows at once)."""
    run_steps(name, total, step_fn, history=history, start=start, progress_bar=config.progress_bar,
              checkpoint_every=config.checkpoint_every, save=save, save_last=False, report_every=config.log_every,
              log_progress=True, bar_interval=5)


def train_vae(vae: Any, frames: np.ndarray, config: WorldBackboneConfig, work_dir: Path, fingerprint: str) -> list[float]:
    """Reconstruction training of the AutoencoderKL on random frames; returns the loss history.

    ``frames``: (N, H, W, 3) uint8, every frame of the training clips.
    """
    stage = config.vae
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=stage.learning_rate)
    checkpoint = work_dir / "vae_checkpoint.safetensors"
    weights = module_weights({"vae": vae})
    resumed = load_checkpoint(checkpoint, fingerprint, weights=weights, optimizer=optimizer, generator=generator)
    start, history = (resumed.step, resumed.loss_history) if resumed else (0, [])
    vae.train()

    def step_fn(step: int) -> float:
        index = torch.randint(len(frames), (stage.batch_size,), generator=generator)
        images = _frames_to_unit(frames[index.numpy()])
        posterior = vae.encode(images).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        loss = F.mse_loss(reconstruction, images) + stage.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    def save(step: int) -> None:
        save_checkpoint(checkpoint, fingerprint, step, weights=weights, optimizer=optimizer, generator=generator, loss_history=history)

    _run_stage("vae", stage.steps, start, step_fn, save, config, history)
    vae.eval()
    return history


@torch.no_grad()
def encode_clips(vae: Any, clips: np.ndarray, batch_frames: int = 256) -> torch.Tensor:
    """(N, F, H, W, 3) uint8 -> unscaled posterior means (N, C, F, h, w)."""
    count, num_frames = clips.shape[:2]
    flat = clips.reshape(count * num_frames, *clips.shape[2:])
    parts = [vae.encode(_frames_to_unit(flat[i:i + batch_frames])).latent_dist.mean for i in range(0, len(flat), batch_frames)]
    latents = torch.cat(parts)
    return latents.reshape(count, num_frames, *latents.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


class _Ema:
    """Exponential moving average of parameters (the weights that are saved)."""

    def __init__(self, parameters: list[torch.nn.Parameter], decay: float) -> None:
        self.parameters = parameters
        self.decay = decay
        self.shadow = [p.detach().clone() for p in parameters]

    @torch.no_grad()
    def update(self) -> None:
        for shadow, parameter in zip(self.shadow, self.parameters):
            shadow.lerp_(parameter.detach(), 1 - self.decay)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for shadow, parameter in zip(self.shadow, self.parameters):
            parameter.copy_(shadow)


def train_diffusion(
    unet: Any,
    text_encoder: Any,
    tokenizer: Any,
    latents: torch.Tensor,
    captions: list[tuple[str, str]],
    scheduler_config: Mapping[str, Any],
    config: WorldBackboneConfig,
    work_dir: Path,
    fingerprint: str,
    stage: DiffusionStage | None = None,
    name: str = "diffusion",
) -> list[float]:
    """Epsilon-prediction training of UNet and text encoder; leaves the EMA weights in the models.

    ``unet``: a UNet3DConditionModel or (either family goes through its layout) a UNetMotionModel.

    ``latents``: (N, C, F, h, w) scaled latents; ``captions``: (full, appearance-only) per clip. ``stage``:
    ``config.diffusion`` when None; ``name`` names its checkpoint file and progress bar.
    """
    from diffusers import DDPMScheduler

    stage = stage or config.diffusion
    seed = config.seed if stage.seed is None else stage.seed
    noise_scheduler = DDPMScheduler.from_config(dict(scheduler_config))
    alphas = noise_scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    num_timesteps = len(alphas)

    device = resolve_device(config.device)
    snr = snr.to(device)

    def tokens(texts: list[str]) -> torch.Tensor:
        return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(device)

    full_ids = tokens([full for full, _ in captions])
    appearance_ids = tokens([appearance for _, appearance in captions])
    simplified_ids = tokens([simplify_prompt(full) for full, _ in captions]) if stage.simplified_caption_share else None
    empty_ids = tokens([""])[0]
    latents = latents.to(device)
    unet.to(device)
    text_encoder.to(device)

    parameters = [p for p in unet.parameters()] + [p for p in text_encoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=stage.learning_rate, weight_decay=stage.weight_decay)
    ema = _Ema(parameters, stage.ema_decay)
    generator = torch.Generator().manual_seed(seed + 1)
    checkpoint = work_dir / f"{name}_checkpoint.safetensors"
    weights = module_weights({"unet": unet, "text_encoder": text_encoder})
    resumed = load_checkpoint(checkpoint, fingerprint, weights=weights, optimizer=optimizer, generator=generator)
    start, history = (resumed.step, resumed.loss_history) if resumed else (0, [])
    if resumed:
        for index, shadow in enumerate(ema.shadow):
            shadow.copy_(resumed.extra[f"ema.{index}"])
    layout = layout_for(unet)  # either family: an AnimateDiff UNet takes the text per frame
    unet.train()
    text_encoder.train()

    def step_fn(step: int) -> float:
        # The temporal convolutions' dropout (0.1, as ModelScope trains) draws from torch's global generator:
        # seeding it per step keeps a resumed run bitwise equal to an unbroken one.
        torch.manual_seed(seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = stage.learning_rate * warmup_cosine_share(step, stage.steps, stage.warmup_steps,
                                                                   stage.final_learning_rate_share)
        index = torch.randint(len(latents), (stage.batch_size,), generator=generator).to(device)
        draw = torch.rand(stage.batch_size, generator=generator).to(device)
        # One uniform draw per clip picks its caption: [0, empty) empty, then appearance-only, then simplified,
        # the rest full; each narrower interval overrides the wider one.
        appearance_end = stage.empty_caption_share + stage.appearance_caption_share
        ids = full_ids[index]
        if simplified_ids is not None:
            ids = torch.where((draw < appearance_end + stage.simplified_caption_share)[:, None], simplified_ids[index], ids)
        ids = torch.where((draw < appearance_end)[:, None], appearance_ids[index], ids)
        ids = torch.where((draw < stage.empty_caption_share)[:, None], empty_ids[None, :], ids)
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator).to(device)
        timesteps = torch.randint(num_timesteps, (stage.batch_size,), generator=generator).to(device)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        text = text_encoder(ids)[0]
        prediction = layout.predict_noise(noisy, timesteps, text)
        weight = torch.clamp(snr[timesteps], max=stage.min_snr_gamma) / snr[timesteps]
        per_sample = (prediction - noise).pow(2).mean(dim=(1, 2, 3, 4))
        loss = (weight * per_sample).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, stage.grad_clip)
        optimizer.step()
        ema.update()
        return loss.item()

    def save(step: int) -> None:
        save_checkpoint(checkpoint, fingerprint, step, weights=weights, optimizer=optimizer, generator=generator,
                        loss_history=history, extra={f"ema.{i}": shadow for i, shadow in enumerate(ema.shadow)})

    _run_stage(name, stage.steps, start, step_fn, save, config, history)
    ema.copy_to_model()
    unet.to("cpu").eval()  # callers save and measure on the CPU, whichever device trained
    text_encoder.to("cpu").eval()
    return history


def world_sized_spec(spec: WorldSpec, tiny_spec: TinyBackboneSpec, seed: int) -> TinyBackboneSpec:
    """The tiny architecture as the world backbone has it: the world's vocabulary (every world word one token),
    its frame side as ``sample_size``, and the training run's seed for the random initial weights."""
    vocabulary = world_vocabulary(spec, tiny_spec.vocabulary)
    return TinyBackboneSpec.from_dict({**asdict(tiny_spec), "vocabulary": list(vocabulary),
                                       "sample_size": spec.side, "seed": seed})


class WorldBackboneError(UserError, ValueError):
    """The world backbone cannot be trained as configured (e.g. ``parts_from`` does not fit the fresh model)."""


def adopt_parts(source: Path, folder: Path) -> None:
    """Replace the fresh backbone ``folder``'s VAE, tokenizer and scheduler by those of the trained ``source``.

    The fresh text encoder's vocabulary is the world's, so ``source``'s tokenizer files must be the fresh ones
    (:class:`WorldBackboneError` otherwise).
    """
    for name in ("vocab.json", "merges.txt"):
        if (folder / "tokenizer" / name).read_bytes() != (source / "tokenizer" / name).read_bytes():
            raise WorldBackboneError(f"world_backbone.training.parts_from: {source}'s tokenizer ({name}) is not the "
                                     "world's vocabulary of this architecture; take the parts of a world backbone")
    for part in ("vae", "tokenizer", "scheduler"):
        shutil.rmtree(folder / part)
        shutil.copytree(source / part, folder / part)


def drop_motion_adapter(folder: Path) -> None:
    """A fresh AnimateDiff folder holds ``motion_adapter/`` beside the combined UNetMotionModel in ``unet/``: the
    adapter would go stale once the UNet trains, so the saved backbone has none (the loader needs none)."""
    shutil.rmtree(folder / "motion_adapter", ignore_errors=True)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if "motion_adapter" in index:
        index["motion_adapter"] = [None, None]
        index_path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def train_world_backbone(
    out_dir: Path,
    spec: WorldSpec,
    tiny_spec: TinyBackboneSpec,
    config: WorldBackboneConfig,
    work_dir: Path,
) -> dict[str, Any]:
    """Build the tiny architecture ``tiny_spec`` (either family; ``config.architecture``'s section) with the
    world's vocabulary, train it, save it to ``out_dir``.

    The model is assembled in ``work_dir/backbone`` and replaces ``out_dir`` only once complete, so a run that
    dies leaves the previous backbone in place (and its checkpoints to resume from). Returns a summary (losses,
    scaling factor, timings) that is also written as ``out_dir/training_summary.json``.
    """
    import diffusers
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    staging = work_dir / "backbone"
    shutil.rmtree(staging, ignore_errors=True)
    sized = world_sized_spec(spec, tiny_spec, config.seed)
    vocabulary = sized.vocabulary
    build_tiny_backbone(staging, sized)
    drop_motion_adapter(staging)
    parts_from = Path(config.parts_from) if config.parts_from else None
    if parts_from is not None:
        adopt_parts(parts_from, staging)
    vae = AutoencoderKL.from_pretrained(staging / "vae")
    unet_class = json.loads((staging / "unet" / "config.json").read_text(encoding="utf-8"))["_class_name"]
    if unet_class not in (UNET_3D, UNET_MOTION):
        raise WorldBackboneError(f"world_backbone: the fresh model's unet is a {unet_class}, not a video UNet")
    unet = getattr(diffusers, unet_class).from_pretrained(staging / "unet")
    text_encoder = CLIPTextModel.from_pretrained(staging / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(str(staging / "tokenizer"))
    scheduler_config = json.loads((staging / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))

    started = time.monotonic()
    drawn = sample_world(spec, config.clips, split="train", seed=config.seed)
    samples = [sample for sample in drawn if config.split.keeps(sample)]
    if not samples:
        raise WorldBackboneError("world_backbone.training.split: leaves none of the train clips")
    clips = np.stack([s.frames for s in samples])
    captions = [(s.caption, appearance_caption(s)) for s in samples]
    families = dict(Counter(sample.truth.family for sample in samples))
    logger.info("world: %d training clips of %s (%d drawn)", len(samples), clips.shape[1:], len(drawn))

    # A resumed run must share the clips and, with parts_from, the very VAE weights it encodes them with.
    base = fingerprint(spec, sized, config.seed, config.clips, config.split,
                       tensors=list(vae.state_dict().values()) if parts_from else [])
    vae_history: list[float] = []
    if parts_from is None:
        vae_history = train_vae(vae, clips.reshape(-1, *clips.shape[2:]), config, work_dir, fingerprint(base, config.vae))
    vae_seconds = time.monotonic() - started

    raw = encode_clips(vae, clips)
    # Latent diffusion's unit-variance latents: 1 / std of the training latents, or the adopted VAE's own factor
    # (the latent space it was trained and measured in).
    scaling_factor = float(vae.config.scaling_factor) if parts_from else float(1.0 / raw.std())
    vae.register_to_config(scaling_factor=scaling_factor)
    latents = raw * scaling_factor
    with torch.no_grad():
        check = _frames_to_unit(clips[:64, 0])
        reconstruction = vae.decode(vae.encode(check).latent_dist.mean).sample.clamp(-1, 1)
        reconstruction_psnr = float(10 * torch.log10(4.0 / F.mse_loss(reconstruction, check)))

    stage_fingerprint = fingerprint(base, None if parts_from else config.vae)
    histories: dict[str, list[float]] = {"vae": vae_history}
    seconds: dict[str, float] = {"vae": vae_seconds}
    for name in STAGES[1:]:
        stage = getattr(config, name)
        stage_fingerprint = fingerprint(stage_fingerprint, stage)
        stage_started = time.monotonic()
        histories[name] = train_diffusion(unet, text_encoder, tokenizer, latents, captions, scheduler_config, config,
                                          work_dir, stage_fingerprint, stage, name) if stage.steps else []
        seconds[name] = time.monotonic() - stage_started

    vae.save_pretrained(staging / "vae")
    unet.save_pretrained(staging / "unet")
    text_encoder.save_pretrained(staging / "text_encoder")

    def tail_mean(history: list[float]) -> float | None:
        return float(np.mean(history[-config.log_every:])) if history else None

    def head_mean(history: list[float]) -> float | None:
        return float(np.mean(history[:config.log_every])) if history else None

    summary: dict[str, Any] = {
        "architecture": config.architecture,
        "layout": layout_for(unet).family,
        "parts_from": config.parts_from,
        "clips": config.clips,
        "clips_kept": len(samples),
        "families_kept": families,
        "split": {key: list(value) for key, value in asdict(config.split).items()},
        "frame_size": [spec.height, spec.width],
        "num_frames": spec.num_frames,
        "held_out_families": list(spec.held_out_families),
        "vocabulary_words": len(vocabulary),
        "vae_steps": 0 if parts_from else config.vae.steps,
        "vae_final_loss": tail_mean(vae_history),
        "vae_reconstruction_psnr_db": reconstruction_psnr,
        "vae_scaling_factor": scaling_factor,
    }
    for name in STAGES[1:]:
        summary |= {f"{name}_steps": getattr(config, name).steps, f"{name}_first_loss": head_mean(histories[name]),
                    f"{name}_final_loss": tail_mean(histories[name])}
    summary |= {f"{name}_seconds": round(value, 1) for name, value in seconds.items()}
    summary["threads"] = torch.get_num_threads()
    (staging / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    replace_folder(staging, out_dir)
    write_atomically(work_dir / "loss_history.json", lambda p: p.write_text(json.dumps(histories) + "\n", encoding="utf-8"))
    for stage_name in STAGES:
        (work_dir / f"{stage_name}_checkpoint.safetensors").unlink(missing_ok=True)
    return summary
