"""Load a text-to-video backbone from a diffusers-format folder or hub id (ZeroScope, ModelScope, tiny)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from motiontune.errors import UserError
from motiontune.sections import build_section

logger = logging.getLogger(__name__)

SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class BackboneError(ValueError, UserError):
    """A backbone cannot be loaded, or an artifact does not fit it."""


@dataclass
class Backbone:
    """The components of a UNet3D text-to-video model plus what identifies them."""

    unet: Any  # diffusers.UNet3DConditionModel
    vae: Any  # diffusers.AutoencoderKL
    text_encoder: Any  # transformers.CLIPTextModel
    tokenizer: Any  # transformers.CLIPTokenizer
    scheduler_config: dict[str, Any]
    id_or_path: str
    revision: str | None
    device: torch.device
    dtype: torch.dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side (8 for ZeroScope)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the backbone stored in every artifact: id or path, revision, UNet config hash."""
        return {
            "id_or_path": self.id_or_path,
            "revision": self.revision,
            "unet_config_sha256": unet_config_hash(self.unet.config),
            "cross_attention_dim": int(self.unet.config.cross_attention_dim),
        }


def unet_config_hash(config: Any) -> str:
    """sha256 of the UNet's architecture config (private/bookkeeping keys excluded)."""
    items = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    blob = json.dumps(items, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise BackboneError(f"backbone.device: '{device}' is not a torch device ({error})") from None


def resolve_dtype(dtype: str) -> torch.dtype:
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in names:
        raise BackboneError(f"backbone.dtype: '{dtype}' is not one of {sorted(names)}")
    return names[dtype]


@dataclass(frozen=True)
class BackboneSettings:
    """The ``backbone`` parameters (conf/base/parameters_backbone.yml): what :func:`load_backbone` loads."""

    pretrained_model: str
    revision: str | None = None  # hub revision (branch, tag or commit); None = the default branch
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | float16 | bfloat16
    local_files_only: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> BackboneSettings:
        return build_section(cls, params, "backbone")

    def problems(self) -> list[str]:
        """Range errors, one line each (what :func:`resolve_device` and :func:`resolve_dtype` would refuse)."""
        problems = []
        for check in (lambda: resolve_device(self.device), lambda: resolve_dtype(self.dtype)):
            try:
                check()
            except BackboneError as error:
                problems.append(str(error).removeprefix("backbone."))
        return problems

    def load(self) -> Backbone:
        return load_backbone(self.pretrained_model, self.revision, self.device, self.dtype, self.local_files_only)


def load_backbone(
    id_or_path: str | Path,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    local_files_only: bool = False,
) -> Backbone:
    """Load the five components with ``from_pretrained``: the one path for tiny and real models alike.

    ``id_or_path`` is a local diffusers folder or a hub id such as ``cerspense/zeroscope_v2_576w``.
    All weights are frozen (``requires_grad=False``) and in eval mode; methods re-enable what they train.
    """
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source = str(id_or_path)
    local = Path(source)
    if local.exists():
        missing = [name for name in SUBFOLDERS if not (local / name).is_dir()]
        if missing:
            raise BackboneError(
                f"backbone '{source}': not a diffusers text-to-video folder, missing subfolders {missing}"
            )
    elif source.startswith((".", "/", "data")) or source.count("/") != 1:
        raise BackboneError(f"backbone '{source}': no such folder, and not a hub id of the form owner/name")

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    common = {"revision": revision, "local_files_only": local_files_only}
    try:
        unet = UNet3DConditionModel.from_pretrained(source, subfolder="unet", **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **common)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **common)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common)
        scheduler_config = _load_scheduler_config(source, revision, local_files_only)
    except (OSError, ValueError) as error:
        raise BackboneError(f"backbone '{source}': could not be loaded ({str(error).splitlines()[0]})") from None

    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.eval()
        module.to(device=torch_device, dtype=torch_dtype)
    logger.info("Loaded backbone %s (%s, %s)", source, torch_device, torch_dtype)
    return Backbone(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config=scheduler_config,
        id_or_path=source,
        revision=revision,
        device=torch_device,
        dtype=torch_dtype,
    )


def _load_scheduler_config(source: str, revision: str | None, local_files_only: bool) -> dict[str, Any]:
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(
        source, subfolder="scheduler", revision=revision, local_files_only=local_files_only
    )
    return dict(config)


@dataclass(frozen=True)
class BackboneSource:
    """What a worker process needs to load the same backbone as the driver (a path or hub id, not the weights)."""

    id_or_path: str
    revision: str | None
    device: str
    dtype: str

    @classmethod
    def of(cls, backbone: Backbone) -> BackboneSource:
        return cls(backbone.id_or_path, backbone.revision, str(backbone.device), str(backbone.dtype).removeprefix("torch."))


# One loaded backbone per source and process: the jobs a worker runs share it (each leaves it unchanged).
_LOADED: dict[BackboneSource, Backbone] = {}


def backbone_in_process(source: Backbone | BackboneSource) -> Backbone:
    """``source`` itself when it is loaded, else this process's copy of it (loaded on first use)."""
    if isinstance(source, Backbone):
        return source
    if source not in _LOADED:
        _LOADED[source] = load_backbone(source.id_or_path, revision=source.revision, device=source.device, dtype=source.dtype)
    return _LOADED[source]
