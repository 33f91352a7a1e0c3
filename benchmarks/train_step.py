"""Benchmark one training step and one denoising step per backbone size and motion method.

For each architecture config (random weights, nothing downloaded) and each registered method it measures, in
one process and side by side:

- seconds per training step (median of ``--steps`` after ``--warmup``) and peak memory of the training run,
  for the baseline and each memory/speed switch of ``TrainingConfig`` (gradient checkpointing, mixed
  precision, torch.compile), with ratios against the baseline;
- seconds per denoising step (classifier-free guidance, batch 2) of the plain backbone and of the backbone
  with the trained motion applied, interleaved on the same inputs;
- the temporal attention processor alone: diffusers' ``AttnProcessor2_0`` vs ``MotionEmbeddingAttnProcessor``
  (and the pre-optimisation version, which copied the value embedding once per video of the batch).

Writes ``<out>/<device>.json`` and ``<out>/<device>.md``.

    python benchmarks/train_step.py                        # CPU: tiny + mid (a few minutes on 2 cores)
    python benchmarks/train_step.py --configs tiny --steps 2 --out /tmp/bench
    python benchmarks/train_step.py --device cuda --configs tiny,mid,zeroscope,animatediff
    python benchmarks/train_step.py --configs animatediff  # CPU: the tiny AnimateDiff backbone

``animatediff`` is AnimateDiff at its real size on CUDA (Stable Diffusion 1.5's UNet + motion adapter v1-5-3,
random weights, 512x512, 16 frames) and the tiny AnimateDiff backbone (``tiny_animatediff``) on CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / "src") not in sys.path:  # run from a fresh clone without installing
    sys.path.insert(0, str(REPO_ROOT / "src"))
if str(REPO_ROOT / "benchmarks") not in sys.path:  # memory_probe beside this script, also when loaded by path
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import torch  # noqa: E402
import yaml  # noqa: E402

from motiontune.backbone.loading import Backbone, load_backbone  # noqa: E402
from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone  # noqa: E402
from motiontune.methods.artifact_size import (  # noqa: E402
    ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG,
    SD15_UNET_CONFIG,
    motion_unet_config,
)
from motiontune.training.loop import TrainingConfig, train_motion  # noqa: E402
from memory_probe import peak_memory  # noqa: E402

logger = logging.getLogger("benchmark")

# ZeroScope's UNet (cerspense/zeroscope_v2_576w unet/config.json = UNet3DConditionModel's defaults).
ZEROSCOPE_UNET = {
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "cross_attention_dim": 1024,
    "attention_head_dim": 64,
    "sample_size": 32,
}
# A mid-size UNet3D with ZeroScope's block layout, 32x32 latents, 8 frames: ~1.5 s per training step on 2 CPU cores.
MID_UNET = {
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    "block_out_channels": [32, 64, 128, 128],
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "cross_attention_dim": 128,
    "attention_head_dim": 8,
    "sample_size": 32,
}
# AnimateDiff: SD 1.5's UNet2DConditionModel (runwayml/stable-diffusion-v1-5 unet/config.json) + the v1-5-3 motion
# adapter (AnimateDiff v3), combined by UNetMotionModel.from_unet2d; the configs are written out, with their
# sources, in motiontune.methods.artifact_size. Its CPU variant is the tiny AnimateDiff backbone.
ANIMATEDIFF_TINY = {"source": "conf/base/parameters_backbone.yml: tiny_animatediff", "num_frames": 8, "height": 64, "width": 64, "gen_steps": 16}
CONFIGS = {
    # video size in pixels; latent size = video / vae_scale
    "tiny": {"source": "conf/base/parameters_backbone.yml: tiny_backbone", "num_frames": 8, "height": 64, "width": 64, "gen_steps": 16},
    "mid": {"unet": MID_UNET, "vae_scale": 4, "num_frames": 8, "height": 128, "width": 128, "gen_steps": 8},
    "zeroscope": {"unet": ZEROSCOPE_UNET, "vae_scale": 8, "num_frames": 24, "height": 320, "width": 576, "gen_steps": 10, "cuda_only": True},
    "animatediff": {
        "unet2d": SD15_UNET_CONFIG, "motion_adapter": ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG, "vae_scale": 8,
        "num_frames": 16, "height": 512, "width": 512, "gen_steps": 10, "scheduler_section": "tiny_animatediff",
        "cpu_variant": ANIMATEDIFF_TINY,
    },
}


def resolve_config(name: str, device: torch.device) -> dict[str, Any]:
    """The config ``name`` runs on ``device``: a config with a ``cpu_variant`` runs that one on CPU."""
    config = CONFIGS[name]
    if device.type != "cuda" and "cpu_variant" in config:
        return {**config["cpu_variant"], "variant": "tiny (CPU; the real size runs with --device cuda)"}
    return {key: value for key, value in config.items() if key != "cpu_variant"}
PROMPT_LENGTH = 77
GUIDANCE_SCALE = 10.0


# ------------------------------------------------------------------------------------------------------------
# backbones


def _scheduler_config(section: str = "tiny_backbone") -> dict[str, Any]:
    """The DDIM scheduler of a conf section: ZeroScope's (``tiny_backbone``) or AnimateDiff's (``tiny_animatediff``)."""
    spec = yaml.safe_load((REPO_ROOT / "conf/base/parameters_backbone.yml").read_text(encoding="utf-8"))[section]
    from diffusers import DDIMScheduler

    return dict(DDIMScheduler(**spec["scheduler"]).config)


def build_backbone(name: str, device: torch.device, dtype: torch.dtype, workdir: Path) -> Backbone:
    """The config's backbone with seeded random weights, frozen and in eval mode like ``load_backbone``'s."""
    config = resolve_config(name, device)
    if "source" in config:  # an embedded tiny backbone, built from its conf section as `build-tiny-backbone` does
        section = config["source"].rsplit(": ", 1)[1]
        values = yaml.safe_load((REPO_ROOT / "conf/base/parameters_backbone.yml").read_text(encoding="utf-8"))[section]
        folder = build_tiny_backbone(workdir / section, TinyBackboneSpec.from_dict(values, section=section))
        return load_backbone(folder, device=str(device), dtype=str(dtype).removeprefix("torch."))
    import diffusers

    torch.manual_seed(0)
    if "motion_adapter" in config:
        # The UNetMotionModel that SD 1.5 + the adapter make (its config derived on the meta device), random weights.
        unet = diffusers.UNetMotionModel(**motion_unet_config(config["unet2d"], config["motion_adapter"]))
    else:
        unet = diffusers.UNet3DConditionModel(**config["unet"])
    unet.requires_grad_(False).eval().to(device=device, dtype=dtype)
    # Training and denoising use cached latents and prompt embeddings: only the VAE's downsampling factor matters.
    vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=[0] * (config["vae_scale"].bit_length())))
    return Backbone(
        unet=unet, vae=vae, text_encoder=None, tokenizer=None, scheduler_config=_scheduler_config(config.get("scheduler_section", "tiny_backbone")),
        id_or_path=f"benchmark:{name}", revision=None, device=device, dtype=dtype,
    )


def _inputs(backbone: Backbone, config: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    scale = backbone.vae_scale_factor
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, backbone.latent_channels, config["num_frames"], config["height"] // scale, config["width"] // scale, generator=generator)
    prompt_embeds = torch.randn(1, PROMPT_LENGTH, int(backbone.unet.config.cross_attention_dim), generator=generator)
    return latents, prompt_embeds


# ------------------------------------------------------------------------------------------------------------
# measurements


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _collect(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


PRIMARY_METHOD = "motion_embeddings"


def variants(device: torch.device, compile_mode: str, method_name: str, all_variants: bool) -> dict[str, dict[str, Any]]:
    """The TrainingConfig switches measured against the baseline for one method on this device.

    On CPU (default) only the primary method gets the mixed-precision and compile variants: CPU bf16 is slow
    without AVX512-BF16/AMX, and the whole run has to stay within minutes. ``--all-variants`` measures all.
    """
    out: dict[str, dict[str, Any]] = {"baseline": {}, "gradient_checkpointing": {"gradient_checkpointing": True}}
    if device.type == "cpu" and not all_variants and method_name != PRIMARY_METHOD:
        return out
    out["bf16"] = {"mixed_precision": "bf16"}
    if device.type == "cuda":
        out["fp16"] = {"mixed_precision": "fp16"}
        out["checkpointing+bf16"] = {"gradient_checkpointing": True, "mixed_precision": "bf16"}
    if compile_mode == "on" or (compile_mode == "auto" and device.type == "cuda"):
        out["compile"] = {"compile": True}
    return out


def _build_method(name: str, backbone: Backbone, config: dict[str, Any]) -> Any:
    from motiontune.methods.base import build_method

    return build_method(name, {}, backbone, config["num_frames"], config["height"], config["width"])


def _training_settings(name: str) -> dict[str, Any]:
    try:
        from motiontune.methods.base import recommended_training

        recommended = recommended_training(name)
    except (ImportError, ValueError):
        recommended = {}
    return {k: recommended[k] for k in ("learning_rate", "weight_decay", "max_grad_norm") if k in recommended and recommended[k] is not None}


def measure_training(method_name: str, backbone: Backbone, config: dict[str, Any], switches: dict[str, Any], steps: int, warmup: int) -> tuple[dict[str, Any], Any]:
    latents, prompt_embeds = _inputs(backbone, config)
    method = _build_method(method_name, backbone, config)
    settings = {**_training_settings(method_name), **switches}
    training = TrainingConfig(steps=warmup + steps, checkpoint_every=0, progress_bar=False, **settings)
    _collect(backbone.device)
    with peak_memory(backbone.device) as memory:
        result = train_motion(method, backbone, latents, prompt_embeds, training)
    timed = result.step_seconds[warmup:] or result.step_seconds
    timed_cpu = result.step_cpu_seconds[warmup:] or result.step_cpu_seconds
    row = {
        "seconds_per_step": statistics.median(timed),
        "cpu_seconds_per_step": statistics.median(timed_cpu),
        "step_seconds": [round(s, 4) for s in result.step_seconds],
        "step_cpu_seconds": [round(s, 4) for s in result.step_cpu_seconds],
        "peak_memory_bytes": memory.peak_delta_bytes,
        "memory_baseline_bytes": memory.baseline_bytes,
        "memory_measure": memory.kind,
        "final_loss": result.final_loss,
        "loss_history": result.loss_history,
    }
    if switches.get("compile"):
        row["compiled"] = result.compiled
    return row, method


def merge_rounds(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """One variant's rounds as one row: median over all timed steps, the highest peak, round 1's losses."""
    def timed(key: str) -> list[float]:
        return [seconds for row in rows for seconds in (row[key][warmup:] or row[key])]

    merged = dict(rows[0])
    merged["seconds_per_step"] = statistics.median(timed("step_seconds"))
    merged["cpu_seconds_per_step"] = statistics.median(timed("step_cpu_seconds"))
    merged["step_seconds"] = [row["step_seconds"] for row in rows]
    merged["step_cpu_seconds"] = [row["step_cpu_seconds"] for row in rows]
    merged["peak_memory_bytes"] = max(row["peak_memory_bytes"] for row in rows)
    merged["timed_steps"] = len(timed("step_seconds"))
    return merged


def measure_generation(method: Any, backbone: Backbone, config: dict[str, Any], repeats: int, warmup: int) -> dict[str, Any]:
    """Seconds per guided denoising step, plain backbone vs motion applied, interleaved (same inputs)."""
    from motiontune.sampling.ddim import guided_noise_prediction

    latents, prompt_embeds = _inputs(backbone, config)
    sample = latents.to(backbone.device, backbone.dtype)
    prompt = prompt_embeds.to(backbone.device, backbone.dtype)
    negative = torch.zeros_like(prompt)
    predict = guided_noise_prediction(backbone.unet, prompt, negative, GUIDANCE_SCALE)
    timestep = torch.tensor(500, device=backbone.device)
    tensors = method.artifact_tensors()
    options = dict(type(method).inference_defaults)
    plain: list[tuple[float, float]] = []  # (wall, process CPU) seconds
    applied: list[tuple[float, float]] = []

    def timed(run: Callable[[], Any]) -> tuple[float, float]:
        _synchronize(backbone.device)
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        _synchronize(backbone.device)
        return time.perf_counter() - started, time.process_time() - cpu_started

    # One step per side per round, the side that goes first alternating (ABBA...): on a shared CPU whose speed
    # drifts over seconds, only neighbouring steps see the same machine (chunks of several steps per side gave
    # +-20% on identical work). Applying the motion happens outside the timed call (it is not a step's cost).
    with torch.no_grad():
        for round_index in range(warmup + repeats):
            for side in (("plain", "applied") if round_index % 2 == 0 else ("applied", "plain")):
                context = type(method).applied(backbone.unet, tensors, options) if side == "applied" else contextlib.nullcontext()
                with context:
                    seconds = timed(lambda: predict(sample, timestep))
                if round_index >= warmup:
                    (plain if side == "plain" else applied).append(seconds)
    wall_plain, wall_applied = [w for w, _ in plain], [w for w, _ in applied]
    cpu_plain, cpu_applied = [c for _, c in plain], [c for _, c in applied]
    return {
        "plain_seconds_per_step": statistics.median(wall_plain),
        "applied_seconds_per_step": statistics.median(wall_applied),
        "ratio": statistics.median(wall_applied) / statistics.median(wall_plain),
        "ratio_of_minimums": min(wall_applied) / min(wall_plain),
        "plain_cpu_seconds_per_step": statistics.median(cpu_plain),
        "applied_cpu_seconds_per_step": statistics.median(cpu_applied),
        "cpu_ratio": statistics.median(cpu_applied) / statistics.median(cpu_plain),
        # Each round's applied step over its neighbouring plain step: drift of the machine's speed cancels pairwise.
        "paired_ratio": statistics.median(a / p for a, p in zip(wall_applied, wall_plain)),
        "paired_cpu_ratio": statistics.median(a / p for a, p in zip(cpu_applied, cpu_plain)),
        "repeats": len(plain),
        "batch": 2,
    }


def measure_processor(backbone: Backbone, config: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Per-call time of the temporal attention at the highest resolution, CFG batch 2."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from motiontune.backbone.layout import temporal_blocks
    from motiontune.methods.attention import MotionEmbeddingAttnProcessor

    block = max((b for b in temporal_blocks(backbone.unet) if b.section in ("down", "up")), key=lambda b: (-b.latent_stride, b.channels))
    attention = dict(backbone.unet.named_modules())[f"{block.path}.attn1"]
    height, width = block.feature_size(config["height"] // backbone.vae_scale_factor, config["width"] // backbone.vae_scale_factor)
    frames, channels = config["num_frames"], block.channels
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(2 * height * width, frames, channels, generator=generator).to(backbone.device, backbone.dtype)
    query_key = (0.1 * torch.randn(1, frames, channels, generator=generator)).to(backbone.device, backbone.dtype)
    value = (0.1 * torch.randn(height * width, frames, channels, generator=generator)).to(backbone.device, backbone.dtype)
    ours = MotionEmbeddingAttnProcessor(query_key, value, 1.0, block.path)
    processors = {"AttnProcessor2_0": AttnProcessor2_0(), "MotionEmbeddingAttnProcessor": ours, "MotionEmbeddingAttnProcessor (before)": _LegacyProcessor(query_key, value, 1.0, block.path)}
    times: dict[str, list[float]] = {name: [] for name in processors}
    cpu_times: dict[str, list[float]] = {name: [] for name in processors}
    with torch.no_grad():
        for index in range(repeats + 3):
            for name, processor in processors.items():
                _synchronize(backbone.device)
                started, cpu_started = time.perf_counter(), time.process_time()
                processor(attention, hidden)
                _synchronize(backbone.device)
                if index >= 3:
                    times[name].append(time.perf_counter() - started)
                    cpu_times[name].append(time.process_time() - cpu_started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    return {
        "layer": f"{block.path}.attn1",
        "rows_frames_channels": [2 * height * width, frames, channels],
        "seconds_per_call": medians,
        "cpu_seconds_per_call": cpu_medians,
        "ratio_vs_AttnProcessor2_0": {name: value / medians["AttnProcessor2_0"] for name, value in medians.items()},
        "cpu_ratio_vs_AttnProcessor2_0": {name: value / cpu_medians["AttnProcessor2_0"] for name, value in cpu_medians.items()},
        "repeats": repeats,
    }


class _LegacyProcessor:
    """``MotionEmbeddingAttnProcessor.__call__`` before the optimisation (verbatim), for the comparison only:
    the embeddings were copied once per video of the batch (``repeat``) and gamma multiplied the copy.
    tests/motion/test_memory.py checks the current processor bitwise against this one copy."""

    def __init__(self, query_key: torch.Tensor | None, value: torch.Tensor | None, value_scale: float, name: str) -> None:
        self.query_key, self.value, self.value_scale, self.name = query_key, value, value_scale, name

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, attention_mask: Any = None, temb: Any = None, **kwargs: Any) -> torch.Tensor:
        import torch.nn.functional as F

        from motiontune.methods.attention import broadcast_over_batch

        residual = hidden_states
        rows, frames, _ = hidden_states.shape
        query_key_states = hidden_states
        if self.query_key is not None:
            query_key_states = hidden_states + broadcast_over_batch(self.query_key, rows, self.name).to(hidden_states.dtype)
        value_states = hidden_states
        if self.value is not None and self.value_scale != 0.0:
            value_embedding = broadcast_over_batch(self.value, rows, self.name).to(hidden_states.dtype)
            value_states = hidden_states + self.value_scale * value_embedding
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, frames, rows)
            attention_mask = attention_mask.view(rows, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            query_key_states = attn.group_norm(query_key_states.transpose(1, 2)).transpose(1, 2)
            value_states = attn.group_norm(value_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(query_key_states)
        key = attn.to_k(query_key_states)
        value = attn.to_v(value_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0)
        hidden_states = hidden_states.transpose(1, 2).reshape(rows, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


# ------------------------------------------------------------------------------------------------------------
# the run


def _method_names(selected: Sequence[str] | None) -> list[str]:
    from motiontune.methods import base as methods

    try:
        names = methods.method_names()
    except Exception as error:  # noqa: BLE001 - a half-written method module must not stop the benchmark
        logger.warning("could not import every method module (%s); using the registered ones", error)
        names = sorted(methods.METHODS)
    return [n for n in names if not selected or n in selected]


def run_config(name: str, device: torch.device, dtype: torch.dtype, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    config = resolve_config(name, device)
    entry: dict[str, Any] = {"video": {k: config[k] for k in ("num_frames", "height", "width")}}
    if "variant" in config:
        entry["variant"] = config["variant"]
    if config.get("cuda_only") and device.type != "cuda":
        entry["skipped"] = f"{name} runs only with --device cuda (a training step at 576x320x24 is far too slow on CPU)"
        return entry
    started = time.perf_counter()
    backbone = build_backbone(name, device, dtype, workdir)
    unet = backbone.unet
    entry["unet"] = {
        "class": type(unet).__name__,
        "parameters": sum(p.numel() for p in unet.parameters()),
        "block_out_channels": list(unet.config.block_out_channels),
        "layers_per_block": unet.config.layers_per_block,
        "cross_attention_dim": unet.config.cross_attention_dim,
        # UNet3DConditionModel's heads; UNetMotionModel calls the same number num_attention_heads
        "attention_head_dim": unet.config.get("attention_head_dim", unet.config.get("num_attention_heads")),
        "latent": [config["num_frames"], config["height"] // backbone.vae_scale_factor, config["width"] // backbone.vae_scale_factor],
        "dtype": str(dtype).removeprefix("torch."),
        "attention_processors": sorted({type(p).__name__ for p in unet.attn_processors.values()}),
    }
    entry["processor"] = measure_processor(backbone, config, repeats=max(10, args.gen_steps or config["gen_steps"]))
    # One unmeasured step first: one-time allocations of the process (thread pools, kernels) are not charged to a variant.
    try:
        measure_training("motion_embeddings", backbone, config, {}, steps=1, warmup=0)
    except Exception:  # noqa: BLE001
        logger.warning("warm-up step failed:\n%s", traceback.format_exc())
    entry["methods"] = {}
    for method_name in _method_names(args.methods):
        logger.info("[%s] %s", name, method_name)
        record: dict[str, Any] = {"train": {}, "ratios": {}}
        trained = None
        # Two rounds, the variants in opposite order, so a change of machine load hits every variant alike.
        chosen = variants(device, args.compile, method_name, args.all_variants)
        per_round = [args.steps - args.steps // 2, args.steps // 2] if args.steps > 1 else [1]
        rounds: dict[str, list[dict[str, Any]]] = {variant: [] for variant in chosen}
        for round_index, steps in enumerate(per_round):
            order = list(chosen) if round_index % 2 == 0 else list(reversed(chosen))
            for variant in order:
                if rounds[variant] and "error" in rounds[variant][0]:
                    continue
                try:
                    row, method = measure_training(method_name, backbone, config, chosen[variant], steps, args.warmup)
                    rounds[variant].append(row)
                    if variant == "baseline" and round_index == 0:
                        trained = method
                except Exception as error:  # noqa: BLE001 - a method or a switch that fails is reported, not fatal
                    rounds[variant] = [{"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:400]}]
                    logger.warning("[%s] %s %s failed:\n%s", name, method_name, variant, traceback.format_exc())
        for variant, rows in rounds.items():
            record["train"][variant] = row = rows[0] if "error" in rows[0] else merge_rounds(rows, args.warmup)
            if "error" not in row:
                logger.info("[%s] %s %s: %.3f s/step, peak %.1f MiB", name, method_name, variant, row["seconds_per_step"], row["peak_memory_bytes"] / 2**20)
        base = record["train"].get("baseline", {})
        for variant, row in record["train"].items():
            if variant != "baseline" and "seconds_per_step" in row and "seconds_per_step" in base:
                record["ratios"][variant] = {
                    "time": row["seconds_per_step"] / base["seconds_per_step"],
                    "cpu_time": row["cpu_seconds_per_step"] / base["cpu_seconds_per_step"],
                    "peak_memory": row["peak_memory_bytes"] / base["peak_memory_bytes"] if base["peak_memory_bytes"] else None,
                    # same seed and inputs: a switch that does not change the computation gives the same losses
                    "loss_max_abs_diff": max(abs(a - b) for a, b in zip(row["loss_history"], base["loss_history"])),
                }
        if trained is not None:
            try:
                record["generation"] = measure_generation(trained, backbone, config, args.gen_steps or config["gen_steps"], warmup=2)
            except Exception as error:  # noqa: BLE001
                record["generation"] = {"error": f"{type(error).__name__}: {error}"[:400]}
                logger.warning("[%s] %s generation failed:\n%s", name, method_name, traceback.format_exc())
        else:
            record["generation"] = {"error": "no trained baseline to apply"}
        entry["methods"][method_name] = record
        del trained
        _collect(device)
    entry["seconds"] = round(time.perf_counter() - started, 1)
    del backbone, unet
    _collect(device)
    return entry


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores visible, torch threads {torch.get_num_threads()})"
    except OSError:
        pass
    return platform.processor() or "cpu"


NOTES = [
    "Attention: every spatial and temporal attention runs diffusers' AttnProcessor2_0 (torch.nn.functional."
    "scaled_dot_product_attention); MotionEmbeddingAttnProcessor calls the same SDPA kernel. Nothing else is needed.",
    "Cached inputs: the encode pipeline stores VAE latents, training-prompt embeddings and the DDIM inversion "
    "(data/04_feature), so the training loop never runs the VAE or the text encoder; this benchmark feeds random "
    "latents and prompt embeddings of the cached shapes.",
    "Optimiser: AdamW over the method's trainable tensors only; the backbone is frozen (requires_grad=False) and "
    "the loop checks after every backward that no frozen weight holds a gradient.",
    "Training switches (conf/base/parameters_train.yml): train.gradient_checkpointing, train.mixed_precision "
    "(no | bf16 | fp16; fp16 only on CUDA), train.compile. Off by default.",
]


def memory_note(device: torch.device) -> str:
    if device.type == "cuda":
        return "peak memory = torch.cuda.max_memory_allocated during the training run minus memory_allocated before it (model weights excluded)"
    return (
        "peak memory = peak resident set size during the training run (Linux VmHWM, reset through /proc/self/clear_refs "
        "after malloc_trim) minus the RSS before it; includes allocator slack, excludes the model weights"
    )


def run_notes(report: dict[str, Any]) -> list[str]:
    """Notes that depend on what was measured."""
    notes = []
    for name, entry in report["configs"].items():
        generation = entry.get("methods", {}).get("vmc", {}).get("generation", {})
        if "ratio" in generation:
            notes.append(
                f"Timing noise ({name}): a VMC artifact only swaps in projection weights of the same shapes (identical compute), "
                f"so its applied/plain ratio, {generation['ratio']:.3f} wall / {generation['cpu_ratio']:.3f} CPU, shows this run's noise."
            )
    meta = report["meta"]
    if meta["device"] == "cpu" and not meta.get("compile_measured"):
        notes.append(
            "train.compile is not measured on CPU by default (--compile on measures it): on this 2-core machine torch.compile "
            "works (same losses within 1e-7) but the first step compiles for ~7 minutes (inductor C++); later tiny steps were "
            "not measurably faster under load. On CUDA (--device cuda) it is measured."
        )
    return notes


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's targets: for every method, generation with its motion applied within 3% of the plain backbone
    (tiny, mid); for the primary method, gradient checkpointing cutting the mid config's training peak memory
    by >= 35%."""
    out = []
    cpu = report["meta"]["device"] == "cpu"  # process CPU time: robust to other processes on a shared machine
    for name, entry in report["configs"].items():
        for method, record in entry.get("methods", {}).items():
            generation = record.get("generation", {})
            if "ratio" in generation:
                ratio = generation["paired_cpu_ratio"] if cpu else generation["paired_ratio"]
                out.append({
                    "config": name, "method": method, "target": "denoising step with motion applied <= 1.03 x plain",
                    "measured": round(ratio, 4),
                    "measure": "process CPU time, median of paired ratios" if cpu else "wall time, median of paired ratios",
                    "met": ratio <= 1.03,
                })
        memory = entry.get("methods", {}).get(PRIMARY_METHOD, {}).get("ratios", {}).get("gradient_checkpointing", {})
        if name == "mid" and memory.get("peak_memory") is not None:
            cut = 1 - memory["peak_memory"]
            out.append({
                "config": name, "method": PRIMARY_METHOD, "target": "gradient checkpointing cuts training peak memory by >= 35%",
                "measured": round(cut, 4), "measure": "peak memory", "met": cut >= 0.35,
            })
    return out


def render_markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        f"# Training and denoising step benchmark ({meta['device']})",
        "",
        f"- device: {meta['device_name']}",
        f"- torch {meta['torch']}, diffusers {meta['diffusers']}, python {meta['python']}; {meta['date']}",
        f"- load average (1 min) at start / end: {meta['load_average_start']} / {meta.get('load_average_end')}",
        f"- command: `{meta['command']}`",
        f"- timed training steps per variant: {meta['steps']} in two rounds (variants in opposite orders), each after {meta['warmup']} warm-up step(s); torch threads {meta['torch_threads']}",
        "- wall time and process CPU time (all threads) are both reported; on a shared CPU the CPU time is the steadier measure",
        f"- {meta['memory_measure']}",
        "",
    ]
    for name, entry in report["configs"].items():
        lines.append(f"## {name}")
        lines.append("")
        if "skipped" in entry:
            lines += [f"Skipped: {entry['skipped']}", ""]
            continue
        unet = entry["unet"]
        if entry.get("variant"):
            lines += [f"Variant: {entry['variant']}.", ""]
        lines += [
            f"{unet.get('class', 'UNet3DConditionModel')} {unet['parameters'] / 1e6:.1f} M parameters, channels {unet['block_out_channels']}, "
            f"{unet['layers_per_block']} layer(s) per block, latent (frames, h, w) {unet['latent']}, {unet['dtype']}; "
            f"video {entry['video']['num_frames']}x{entry['video']['height']}x{entry['video']['width']}; "
            f"attention processors {unet['attention_processors']}; {entry.get('seconds', '?')} s for this config.",
            "",
            "| method | variant | s / training step (wall) | x baseline | CPU s / step | x baseline | peak memory (MiB) | x baseline | final loss | max loss diff vs baseline |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method_name, record in entry["methods"].items():
            for variant, row in record["train"].items():
                if "error" in row:
                    lines.append(f"| {method_name} | {variant} | failed: {row['error'][:120]} | | | | | | | |")
                    continue
                ratio = record["ratios"].get(variant)
                time_ratio = f"{ratio['time']:.2f}" if ratio else "1.00"
                cpu_ratio = f"{ratio['cpu_time']:.2f}" if ratio else "1.00"
                memory_ratio = ("n/a" if ratio["peak_memory"] is None else f"{ratio['peak_memory']:.2f}") if ratio else "1.00"
                loss_diff = f"{ratio['loss_max_abs_diff']:.1e}" if ratio else ""
                note = "" if row.get("compiled", True) else " (compile failed: ran uncompiled)"
                lines.append(
                    f"| {method_name} | {variant}{note} | {row['seconds_per_step']:.3f} | {time_ratio} | "
                    f"{row['cpu_seconds_per_step']:.3f} | {cpu_ratio} | {row['peak_memory_bytes'] / 2**20:.1f} | {memory_ratio} | {row['final_loss']:.4g} | {loss_diff} |"
                )
        lines += ["", "Denoising step (classifier-free guidance, batch 2), plain backbone vs motion applied, interleaved:", ""]
        lines += [
            "| method | plain s / step (wall) | applied s / step (wall) | applied / plain (wall medians) | ratio of wall minimums | plain CPU s / step | applied CPU s / step | applied / plain (CPU medians) | paired ratio (wall) | paired ratio (CPU) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method_name, record in entry["methods"].items():
            generation = record.get("generation", {})
            if "error" in generation:
                lines.append(f"| {method_name} | failed: {generation['error'][:120]} | | | | | | | | |")
                continue
            lines.append(
                f"| {method_name} | {generation['plain_seconds_per_step']:.4f} | {generation['applied_seconds_per_step']:.4f} | "
                f"{generation['ratio']:.3f} | {generation['ratio_of_minimums']:.3f} | {generation['plain_cpu_seconds_per_step']:.4f} | "
                f"{generation['applied_cpu_seconds_per_step']:.4f} | {generation['cpu_ratio']:.3f} | "
                f"{generation['paired_ratio']:.3f} | {generation['paired_cpu_ratio']:.3f} |"
            )
        processor = entry["processor"]
        lines += ["", f"Temporal attention processor alone ({processor['layer']}, rows x frames x channels {processor['rows_frames_channels']}):", ""]
        lines += ["| processor | ms / call (wall) | x AttnProcessor2_0 | CPU ms / call | x AttnProcessor2_0 |", "|---|---:|---:|---:|---:|"]
        for pname, seconds in processor["seconds_per_call"].items():
            lines.append(
                f"| {pname} | {seconds * 1e3:.3f} | {processor['ratio_vs_AttnProcessor2_0'][pname]:.3f} | "
                f"{processor['cpu_seconds_per_call'][pname] * 1e3:.3f} | {processor['cpu_ratio_vs_AttnProcessor2_0'][pname]:.3f} |"
            )
        lines.append("")
    if report.get("targets"):
        lines += ["## Targets", "", "| config | method | target | measured | on | met |", "|---|---|---|---:|---|---|"]
        for target in report["targets"]:
            lines.append(
                f"| {target['config']} | {target['method']} | {target['target']} | {target['measured']} | {target['measure']} "
                f"| {'yes' if target['met'] else 'no'} |"
            )
        lines.append("")
    lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs", default="tiny,mid",
        help="comma-separated: tiny, mid, zeroscope (needs --device cuda), animatediff (real size on cuda, tiny on cpu)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps before them")
    parser.add_argument("--gen-steps", type=int, default=None, help="timed denoising steps per side (default: per config)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the registered methods (default: all)")
    parser.add_argument("--all-variants", action="store_true", help="on CPU, measure bf16 (and compile) for every method, not only motion_embeddings")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="measure train.compile (auto: on CUDA only)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy machine")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="backbone weights")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default=None, help="file name stem of the results (default: the device, e.g. cpu)")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {unknown}; choose from {sorted(CONFIGS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.steps < 1:
        parser.error("--steps: at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads: at least 1")
    args.methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("diffusers", "transformers", "motiontune.backbone"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    import diffusers

    report: dict[str, Any] = {
        "meta": {
            "device": args.device,
            "device_name": device_name(device),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python benchmarks/train_step.py", *(argv if argv is not None else sys.argv[1:])]),
            "configs": args.configs,
            "steps": args.steps,
            "warmup": args.warmup,
            "torch_threads": torch.get_num_threads(),
            "load_average_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "memory_measure": memory_note(device),
            "compile_measured": args.compile == "on" or (args.compile == "auto" and device.type == "cuda"),
        },
        "notes": list(NOTES),
        "configs": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="motiontune-bench-") as workdir:
        for name in args.configs:
            logger.info("config %s", name)
            report["configs"][name] = run_config(name, device, dtype, args, Path(workdir))
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report["targets"] = targets(report)
    report["notes"] += run_notes(report)
    report["meta"]["load_average_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or args.device
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(render_markdown(report), encoding="utf-8")
    logger.info("wrote %s and %s (%.0f s)", out / f"{stem}.json", out / f"{stem}.md", report["meta"]["seconds"])
    return report


if __name__ == "__main__":
    main()
