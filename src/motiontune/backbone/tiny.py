"""Build a small text-to-video backbone in diffusers format (the embedded default).

The layout is ZeroScope's (UNet3DConditionModel with temporal transformers, AutoencoderKL, CLIPTextModel,
CLIPTokenizer, DDIM scheduler), so the same loading code serves both; only the sizes differ. The sizes
come from ``conf/base/parameters_backbone.yml`` (``tiny_backbone``). Weights are random from a fixed seed:
a stand-in that a later training stage replaces.
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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TinyBackboneSpec:
        values = dict(values)
        if isinstance(values.get("vocabulary"), str):
            values["vocabulary"] = values["vocabulary"].split()
        return build_section(cls, values, "tiny_backbone")


def build_tiny_backbone(out_dir: Path, spec: TinyBackboneSpec) -> Path:
    """Create the backbone with seeded random weights and save it in diffusers' folder layout.

    Returns ``out_dir``, which then holds ``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``,
    ``tokenizer/`` and ``scheduler/`` exactly like a ZeroScope checkout.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    out_dir = Path(out_dir)
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
    vae_down = ("DownEncoderBlock2D",) * len(spec.vae_block_out_channels)
    vae_up = ("UpDecoderBlock2D",) * len(spec.vae_block_out_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=vae_down,
        up_block_types=vae_up,
        block_out_channels=spec.vae_block_out_channels,
        layers_per_block=spec.vae_layers_per_block,
        latent_channels=spec.vae_latent_channels,
        norm_num_groups=spec.unet_norm_num_groups,
        sample_size=spec.sample_size,
        scaling_factor=spec.vae_scaling_factor,
    )
    vae_scale = 2 ** (len(spec.vae_block_out_channels) - 1)
    unet = UNet3DConditionModel(
        sample_size=spec.sample_size // vae_scale,
        in_channels=spec.vae_latent_channels,
        out_channels=spec.vae_latent_channels,
        down_block_types=spec.unet_down_block_types,
        up_block_types=spec.unet_up_block_types,
        block_out_channels=spec.unet_block_out_channels,
        layers_per_block=spec.unet_layers_per_block,
        norm_num_groups=spec.unet_norm_num_groups,
        cross_attention_dim=spec.text_hidden_size,
        attention_head_dim=spec.unet_attention_head_dim,
    )
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


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__
