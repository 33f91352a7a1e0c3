"""How many bytes a method's artifact stores on a backbone architecture, computed by the method's own code.

The method is built from its options (``train.<method>``) and :meth:`~motiontune.methods.base.MotionMethod.build`
runs on a UNet built from the architecture's config on the ``meta`` device: nothing is allocated, loaded or
downloaded, yet the tensors :meth:`~motiontune.methods.base.MotionMethod.artifact_tensors` returns have their
real shapes and dtypes. Their bytes are what ``motion.safetensors`` holds (its small JSON header aside).

ZeroScope's architecture is written out below (``cerspense/zeroscope_v2_576w``: ``unet/config.json`` and the
VAE's four blocks, i.e. 8x spatial downsampling), so its sizes need no download either. So is AnimateDiff's:
Stable Diffusion 1.5's ``unet/config.json`` and the published motion adapters' ``config.json``
(``guoyww/animatediff-motion-adapter-v1-5-2`` = AnimateDiff v2, ``-v1-5-3`` = v3), combined on the meta device by
``UNetMotionModel.from_unet2d`` as loading an SD checkpoint with ``backbone.motion_adapter`` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from motiontune.backbone.layout import layout_class
from motiontune.backbone.loading import Backbone
from motiontune.methods.base import build_method

# cerspense/zeroscope_v2_576w unet/config.json (the architecture keys; the same UNet as ModelScope 1.7b).
ZEROSCOPE_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "downsample_padding": 1,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
}
# vae/config.json block_out_channels: four blocks, so 2**3 = 8 pixels per latent cell.
ZEROSCOPE_VAE_BLOCK_OUT_CHANNELS = (128, 256, 512, 512)

# runwayml/stable-diffusion-v1-5 unet/config.json (UNet2DConditionModel; the architecture keys, as in its copies
# stable-diffusion-v1-5/stable-diffusion-v1-5 and sd-legacy/stable-diffusion-v1-5). sample_size 64 = 512 px / 8.
SD15_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
# runwayml/stable-diffusion-v1-5 vae/config.json block_out_channels: four blocks, 8 pixels per latent cell.
SD15_VAE_BLOCK_OUT_CHANNELS = (128, 256, 512, 512)
# guoyww/animatediff-motion-adapter-v1-5-2/config.json (MotionAdapter, AnimateDiff v2: a mid-block motion
# module). Its 0.22-era keys motion_activation_fn "geglu", motion_attention_bias false and
# motion_cross_attention_dim null are no MotionAdapter arguments in diffusers 0.42, whose motion modules are
# built that way anyway (GEGLU feed-forward, no attention bias, self-attention only).
ANIMATEDIFF_V1_5_2_ADAPTER_CONFIG: dict[str, Any] = {
    "block_out_channels": [320, 640, 1280, 1280],
    "motion_layers_per_block": 2,
    "motion_max_seq_length": 32,
    "motion_mid_block_layers_per_block": 1,
    "motion_norm_num_groups": 32,
    "motion_num_attention_heads": 8,
    "use_motion_mid_block": True,
}
# guoyww/animatediff-motion-adapter-v1-5-3/config.json: AnimateDiff v3 (diffusers' single-file loader maps its
# "animatediff_v3" checkpoints, v3_sd15_mm.ckpt, to this repository, and tells v2 from v3 by v2's mid-block motion
# module). The same keys as v1-5-2 but no mid-block motion module (use_motion_mid_block false).
ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG: dict[str, Any] = {**ANIMATEDIFF_V1_5_2_ADAPTER_CONFIG, "use_motion_mid_block": False}


@dataclass(frozen=True)
class Architecture:
    """A UNet3D architecture and the video size its artifacts are learnt at."""

    name: str
    unet_config: Mapping[str, Any] = field(hash=False)
    vae_block_out_channels: tuple[int, ...]
    num_frames: int
    height: int
    width: int
    unet_class: str = "UNet3DConditionModel"  # the UNet config's _class_name: which backbone layout builds it
    # Set: ``unet_config`` is a Stable Diffusion UNet2DConditionModel's and this MotionAdapter's config is combined
    # with it by ``UNetMotionModel.from_unet2d`` (AnimateDiff from an SD checkpoint + ``backbone.motion_adapter``).
    motion_adapter_config: Mapping[str, Any] | None = field(default=None, hash=False)

    @classmethod
    def from_folder(cls, folder: Path, num_frames: int, height: int, width: int, name: str | None = None) -> Architecture:
        """The architecture of a diffusers-format backbone folder (reads only ``unet/`` and ``vae/config.json``)."""
        folder = Path(folder)
        unet_config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        vae_config = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
        return cls(
            name=name or folder.name,
            unet_config={k: v for k, v in unet_config.items() if not k.startswith("_")},
            vae_block_out_channels=tuple(vae_config["block_out_channels"]),
            num_frames=int(num_frames),
            height=int(height),
            width=int(width),
            unet_class=str(unet_config.get("_class_name", "UNet3DConditionModel")),
        )


ZEROSCOPE = Architecture("ZeroScope v2 576w", ZEROSCOPE_UNET_CONFIG, ZEROSCOPE_VAE_BLOCK_OUT_CHANNELS, 24, 320, 576)
# AnimateDiff on SD 1.5 at its published size: 512x512, 16 frames (the AnimateDiff pipeline's default num_frames).
ANIMATEDIFF_V2 = Architecture(
    "AnimateDiff SD 1.5 + v1-5-2", SD15_UNET_CONFIG, SD15_VAE_BLOCK_OUT_CHANNELS, 16, 512, 512,
    unet_class="UNetMotionModel", motion_adapter_config=ANIMATEDIFF_V1_5_2_ADAPTER_CONFIG,
)
ANIMATEDIFF_V3 = Architecture(
    "AnimateDiff SD 1.5 + v1-5-3", SD15_UNET_CONFIG, SD15_VAE_BLOCK_OUT_CHANNELS, 16, 512, 512,
    unet_class="UNetMotionModel", motion_adapter_config=ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG,
)
REAL_ARCHITECTURES = (ZEROSCOPE, ANIMATEDIFF_V2, ANIMATEDIFF_V3)


def motion_unet_config(unet2d_config: Mapping[str, Any], adapter_config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``UNetMotionModel`` config diffusers makes of a Stable Diffusion UNet and a motion adapter
    (``UNetMotionModel.from_unet2d``, run on the meta device: nothing allocated), without its ``_`` keys."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):
        unet = UNetMotionModel.from_unet2d(
            UNet2DConditionModel(**unet2d_config), MotionAdapter(**adapter_config), load_weights=False
        )
    return {key: value for key, value in dict(unet.config).items() if not key.startswith("_")}


def meta_unet(architecture: Architecture) -> torch.nn.Module:
    """The architecture's UNet on the meta device (frozen)."""
    config = dict(architecture.unet_config)
    if architecture.motion_adapter_config is not None:
        config = motion_unet_config(config, architecture.motion_adapter_config)
    with torch.device("meta"):
        unet = layout_class(architecture.unet_class).build_unet(config)
    return unet.requires_grad_(False)


def unet_parameter_count(architecture: Architecture) -> int:
    """Parameters of the architecture's UNet (counted on the meta device; AnimateDiff: SD UNet + motion modules)."""
    return sum(parameter.numel() for parameter in meta_unet(architecture).parameters())


def meta_backbone(architecture: Architecture) -> Backbone:
    """A :class:`Backbone` whose UNet is built on the meta device (no memory); only the UNet and the VAE's
    ``block_out_channels`` (its scale factor) are real, which is all ``build`` reads."""
    unet = meta_unet(architecture)
    vae = SimpleNamespace(config=SimpleNamespace(block_out_channels=list(architecture.vae_block_out_channels)))
    return Backbone(
        unet=unet, vae=vae, text_encoder=None, tokenizer=None, scheduler_config={}, id_or_path=architecture.name,
        revision=None, device=torch.device("meta"), dtype=torch.float32,
    )


def meta_twin(backbone: Backbone) -> Backbone:
    """:func:`meta_backbone` of a loaded backbone's architecture: what its methods would make, at no memory cost."""
    unet_config = {key: value for key, value in dict(backbone.unet.config).items() if not key.startswith("_")}
    architecture = Architecture(
        name=backbone.id_or_path, unet_config=unet_config,
        vae_block_out_channels=tuple(backbone.vae.config.block_out_channels), num_frames=0, height=0, width=0,
        unet_class=type(backbone.unet).__name__,
    )
    return meta_backbone(architecture)


def tensors_nbytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes of the tensors' data (what safetensors stores for them)."""
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())


def artifact_nbytes(method_name: str, options: Mapping[str, Any] | None, backbone: Backbone, num_frames: int, height: int, width: int) -> int:
    """Bytes of the tensors ``method_name`` (built with ``options``) stores in its artifact for videos of
    ``num_frames`` x ``height`` x ``width`` on ``backbone`` (a real one, or :func:`meta_backbone`)."""
    method = build_method(method_name, options, backbone, num_frames, height, width)
    return tensors_nbytes(method.artifact_tensors())


def artifact_sizes(
    methods: Mapping[str, tuple[str, Mapping[str, Any] | None]], architectures: Sequence[Architecture]
) -> dict[str, dict[str, int]]:
    """``{label: {architecture name: bytes}}`` for ``methods`` = ``{label: (method name, its options)}``."""
    sizes: dict[str, dict[str, int]] = {label: {} for label in methods}
    for architecture in architectures:
        backbone = meta_backbone(architecture)
        for label, (method, options) in methods.items():
            sizes[label][architecture.name] = artifact_nbytes(
                method, options, backbone, architecture.num_frames, architecture.height, architecture.width
            )
    return sizes


def format_megabytes(nbytes: int) -> str:
    """Decimal megabytes with three significant digits: ``1.19 MB``, ``85.0 MB``, ``775 MB``."""
    megabytes = nbytes / 1e6
    if megabytes >= 100:
        return f"{megabytes:.0f} MB"
    if megabytes >= 10:
        return f"{megabytes:.1f} MB"
    if megabytes >= 1:
        return f"{megabytes:.2f} MB"
    return f"{megabytes:.3f} MB"
