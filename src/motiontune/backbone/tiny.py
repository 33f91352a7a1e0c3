"""Build a small text-to-video backbone in diffusers format with random weights (fast tests; the world backbones are
trained from it, world_models.backbone_training).

Two families, each saved exactly as its real checkpoints are, so the same loading code serves the tiny and the
real ones; only the sizes differ:

- ZeroScope's (``tiny_backbone``): UNet3DConditionModel with temporal transformers, AutoencoderKL,
  CLIPTextModel, CLIPTokenizer, DDIM scheduler, as a ``TextToVideoSDPipeline`` folder;
- AnimateDiff's (``tiny_animatediff``): a Stable Diffusion UNet2DConditionModel plus a MotionAdapter, combined
  by ``AnimateDiffPipeline`` and saved as its folder (``unet/`` a UNetMotionModel, ``motion_adapter/``), or
  saved apart as a Stable Diffusion folder and an adapter folder (:func:`save_stable_diffusion_and_adapter`),
  as ``runwayml/stable-diffusion-v1-5`` and ``guoyww/animatediff-motion-adapter-v1-5-3`` are published.

The sizes come from ``conf/base/parameters_backbone.yml``. Weights are random from a fixed seed: a stand-in
that a later training stage replaces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from motiontune.backbone.tokenizer import write_clip_tokenizer
from motiontune.sections import build_section


@dataclass(frozen=True)
class MotionAdapterSpec:
    """The motion modules of a tiny AnimateDiff backbone (diffusers ``MotionAdapter`` config keys)."""

    motion_num_attention_heads: int = 4
    motion_max_seq_length: int = 32  # frames the sinusoidal position encoding covers (AnimateDiff: 32)
    use_motion_mid_block: bool = True  # adapter v2 and later have a mid-block motion module


@dataclass(frozen=True)
class TinyBackboneSpec:
    """Architecture of the embedded backbone; every field maps to a diffusers/transformers config key."""

    unet_block_out_channels: tuple[int, ...] = (32, 64, 64)
    unet_down_block_types: tuple[str, ...] = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D")
    unet_up_block_types: tuple[str, ...] = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D")
    unet_layers_per_block: int = 1
    unet_attention_head_dim: int = 4
    unet_norm_num_groups: int = 32
    vae_block_out_channels: tuple[int, ...] = (32, 32, 64)
    vae_layers_per_block: int = 1
    vae_latent_channels: int = 4
    vae_scaling_factor: float = 0.18215
    text_hidden_size: int = 32
    text_intermediate_size: int = 64
    text_num_layers: int = 2
    text_num_heads: int = 2
    text_projection_dim: int = 32
    text_max_length: int = 77
    sample_size: int = 64
    scheduler: dict[str, Any] = field(default_factory=dict)
    vocabulary: tuple[str, ...] = ()
    seed: int = 0
    # Set: an AnimateDiff backbone (the unet_* fields describe its Stable Diffusion UNet2DConditionModel).
    motion_adapter: MotionAdapterSpec | None = None

    @property
    def family(self) -> str:
        return "unet3d" if self.motion_adapter is None else "animatediff"

    @classmethod
    def from_dict(cls, values: dict[str, Any], section: str = "tiny_backbone") -> TinyBackboneSpec:
        values = dict(values)
        if isinstance(values.get("vocabulary"), str):
            values["vocabulary"] = values["vocabulary"].split()
        if "motion_adapter" in values and values["motion_adapter"] is None:
            del values["motion_adapter"]  # no adapter: the ZeroScope family (a null section elsewhere means defaults)
        return build_section(cls, values, section)


def build_tiny_backbone(out_dir: Path, spec: TinyBackboneSpec) -> Path:
    """Create the backbone with seeded random weights and save it in diffusers' folder layout.

    Returns ``out_dir``, which then holds ``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``,
    ``tokenizer/`` and ``scheduler/`` exactly like a ZeroScope checkout (an AnimateDiff spec: like a saved
    ``AnimateDiffPipeline``, ``motion_adapter/`` included).
    """
    if spec.motion_adapter is not None:
        pipeline = tiny_animatediff_pipeline(Path(out_dir), spec)
        pipeline.save_pretrained(out_dir)
        return Path(out_dir)
    from diffusers import DDIMScheduler, UNet3DConditionModel

    out_dir = Path(out_dir)
    text_encoder, vae = _tokenizer_text_encoder_and_vae(out_dir, spec)  # seeds the RNG first
    unet = UNet3DConditionModel(**_unet_arguments(spec))
    scheduler = DDIMScheduler(**spec.scheduler)

    text_encoder.save_pretrained(out_dir / "text_encoder")
    vae.save_pretrained(out_dir / "vae")
    unet.save_pretrained(out_dir / "unet")
    scheduler.save_pretrained(out_dir / "scheduler")
    model_index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": _diffusers_version(),
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out_dir / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n", encoding="utf-8")
    return out_dir


def tiny_animatediff_pipeline(work_dir: Path, spec: TinyBackboneSpec) -> Any:
    """A seeded random ``AnimateDiffPipeline`` of the spec's sizes (its tokenizer is written to
    ``work_dir/tokenizer``): a Stable Diffusion ``UNet2DConditionModel`` and a ``MotionAdapter`` combined by the
    pipeline (``UNetMotionModel.from_unet2d``), with the VAE, text encoder and tokenizer of the ZeroScope twin."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTokenizer

    if spec.motion_adapter is None:
        raise ValueError("tiny_animatediff_pipeline: the spec has no motion_adapter section")
    work_dir = Path(work_dir)
    text_encoder, vae = _tokenizer_text_encoder_and_vae(work_dir, spec)
    unet = UNet2DConditionModel(**_unet_arguments(spec))
    adapter = MotionAdapter(
        block_out_channels=spec.unet_block_out_channels,
        motion_layers_per_block=spec.unet_layers_per_block,
        motion_num_attention_heads=spec.motion_adapter.motion_num_attention_heads,
        motion_norm_num_groups=spec.unet_norm_num_groups,
        motion_max_seq_length=spec.motion_adapter.motion_max_seq_length,
        use_motion_mid_block=spec.motion_adapter.use_motion_mid_block,
    )
    tokenizer = CLIPTokenizer.from_pretrained(work_dir / "tokenizer")
    scheduler = DDIMScheduler(**spec.scheduler)
    return AnimateDiffPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=adapter, scheduler=scheduler)


def save_stable_diffusion_and_adapter(pipeline: Any, out_dir: Path) -> tuple[Path, Path]:
    """Save an ``AnimateDiffPipeline``'s parts as they are published apart: ``out_dir/stable-diffusion`` (a
    ``StableDiffusionPipeline``-style folder whose ``unet/`` is the UNet2DConditionModel without the motion
    modules) and ``out_dir/motion-adapter`` (the ``MotionAdapter``). Returns both folders."""
    from diffusers import UNet2DConditionModel

    out_dir = Path(out_dir)
    sd_dir, adapter_dir = out_dir / "stable-diffusion", out_dir / "motion-adapter"
    pipeline.motion_adapter.save_pretrained(adapter_dir)
    motion = pipeline.unet
    unet2d = UNet2DConditionModel.from_config(_unet2d_config(motion.config))
    # The motion UNet's spatial weights are the 2D UNet's (from_unet2d copied them); its motion modules are not.
    spatial = {key: value for key, value in motion.state_dict().items() if ".motion_modules." not in key}
    unet2d.load_state_dict(spatial)
    unet2d.save_pretrained(sd_dir / "unet")
    pipeline.vae.save_pretrained(sd_dir / "vae")
    pipeline.text_encoder.save_pretrained(sd_dir / "text_encoder")
    pipeline.tokenizer.save_pretrained(sd_dir / "tokenizer")
    pipeline.scheduler.save_pretrained(sd_dir / "scheduler")
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": _diffusers_version(),
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (sd_dir / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n", encoding="utf-8")
    return sd_dir, adapter_dir


def _unet2d_config(motion_config: Any) -> dict[str, Any]:
    """The UNet2DConditionModel config a UNetMotionModel was made from: its keys that a UNet2D takes, block types
    back to 2D ones, and the head count under the legacy ``attention_head_dim`` only (as SD 1.5 writes it)."""
    import inspect

    from diffusers import UNet2DConditionModel

    accepted = set(inspect.signature(UNet2DConditionModel.__init__).parameters) - {"self", "num_attention_heads"}
    config = {key: value for key, value in dict(motion_config).items() if key in accepted}
    config["down_block_types"] = ["CrossAttnDownBlock2D" if "CrossAttn" in t else "DownBlock2D" for t in motion_config.down_block_types]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if "CrossAttn" in t else "UpBlock2D" for t in motion_config.up_block_types]
    if motion_config.get("num_attention_heads"):
        config["attention_head_dim"] = motion_config["num_attention_heads"]
    return config


def _unet_arguments(spec: TinyBackboneSpec) -> dict[str, Any]:
    """The spec's UNet sizes as the arguments UNet3DConditionModel and UNet2DConditionModel share."""
    return {
        "sample_size": spec.sample_size // _vae_scale(spec),
        "in_channels": spec.vae_latent_channels,
        "out_channels": spec.vae_latent_channels,
        "down_block_types": spec.unet_down_block_types,
        "up_block_types": spec.unet_up_block_types,
        "block_out_channels": spec.unet_block_out_channels,
        "layers_per_block": spec.unet_layers_per_block,
        "norm_num_groups": spec.unet_norm_num_groups,
        "cross_attention_dim": spec.text_hidden_size,
        "attention_head_dim": spec.unet_attention_head_dim,
    }


def _vae_scale(spec: TinyBackboneSpec) -> int:
    return 2 ** (len(spec.vae_block_out_channels) - 1)


def _tokenizer_text_encoder_and_vae(out_dir: Path, spec: TinyBackboneSpec) -> tuple[Any, Any]:
    """Write the tokenizer to ``out_dir/tokenizer``, seed torch with ``spec.seed`` and build the text encoder and
    VAE (in that order: what follows draws from the same seeded stream)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    out_dir.mkdir(parents=True, exist_ok=True)
    write_clip_tokenizer(out_dir / "tokenizer", spec.vocabulary, spec.text_max_length)
    vocab_size = len(json.loads((out_dir / "tokenizer" / "vocab.json").read_text(encoding="utf-8")))
    torch.manual_seed(spec.seed)
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=spec.text_hidden_size,
        intermediate_size=spec.text_intermediate_size,
        num_hidden_layers=spec.text_num_layers,
        num_attention_heads=spec.text_num_heads,
        max_position_embeddings=spec.text_max_length,
        projection_dim=spec.text_projection_dim,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    text_encoder = CLIPTextModel(text_config)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_block_out_channels),
        block_out_channels=spec.vae_block_out_channels,
        layers_per_block=spec.vae_layers_per_block,
        latent_channels=spec.vae_latent_channels,
        norm_num_groups=spec.unet_norm_num_groups,
        sample_size=spec.sample_size,
        scaling_factor=spec.vae_scaling_factor,
    )
    return text_encoder, vae


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__
