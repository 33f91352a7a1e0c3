"""Load a text-to-video backbone from a diffusers-format folder or hub id.

Two families, told apart by the ``_class_name`` of the folder's ``unet/config.json``:

- ZeroScope / ModelScope (``UNet3DConditionModel``), e.g. ``cerspense/zeroscope_v2_576w``;
- AnimateDiff (``UNetMotionModel``): a saved ``AnimateDiffPipeline`` folder, or a Stable Diffusion 1.5
  checkpoint (``UNet2DConditionModel``) plus a motion adapter (``backbone.motion_adapter``, e.g.
  ``guoyww/animatediff-motion-adapter-v1-5-3``), combined with ``UNetMotionModel.from_unet2d``.
"""

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
# What the UNet may predict (the scheduler config's prediction_type): ZeroScope, ModelScope and AnimateDiff predict
# epsilon; v_prediction is the other one diffusers' text-to-video UNets are trained with.
PREDICTION_TYPES = ("epsilon", "v_prediction")


class BackboneError(ValueError, UserError):
    """A backbone cannot be loaded, or an artifact does not fit it."""


@dataclass
class Backbone:
    """The components of a text-to-video model (ZeroScope UNet3D or AnimateDiff UNetMotionModel) plus what
    identifies them."""

    unet: Any  # diffusers.UNet3DConditionModel or UNetMotionModel
    vae: Any  # diffusers.AutoencoderKL
    text_encoder: Any  # transformers.CLIPTextModel
    tokenizer: Any  # transformers.CLIPTokenizer
    scheduler_config: dict[str, Any]
    id_or_path: str
    revision: str | None
    device: torch.device
    dtype: torch.dtype
    motion_adapter: str | None = None  # the adapter folder or hub id combined with a Stable Diffusion UNet
    motion_adapter_revision: str | None = None

    @property
    def family(self) -> str:
        """``unet3d`` (ZeroScope / ModelScope) or ``animatediff``: the backbone layout's family."""
        from motiontune.backbone.layout import layout_for

        return layout_for(self.unet).family

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
            "family": self.family,
            "motion_adapter": self.motion_adapter,
            "motion_adapter_revision": self.motion_adapter_revision,
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
    # AnimateDiff from a Stable Diffusion checkpoint: the motion adapter (local folder or hub id) and its revision.
    motion_adapter: str | None = None
    motion_adapter_revision: str | None = None

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
        return load_backbone(
            self.pretrained_model, self.revision, self.device, self.dtype, self.local_files_only,
            motion_adapter=self.motion_adapter, motion_adapter_revision=self.motion_adapter_revision,
        )


def load_backbone(
    id_or_path: str | Path,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    local_files_only: bool = False,
    motion_adapter: str | Path | None = None,
    motion_adapter_revision: str | None = None,
) -> Backbone:
    """Load the five components with ``from_pretrained``: the one path for tiny and real models alike.

    ``id_or_path`` is a local diffusers folder or a hub id such as ``cerspense/zeroscope_v2_576w`` (ZeroScope), a
    saved ``AnimateDiffPipeline``, or a Stable Diffusion checkpoint with ``motion_adapter`` (a MotionAdapter
    folder or hub id). All weights are frozen (``requires_grad=False``) and in eval mode; methods re-enable what
    they train.
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    source = str(id_or_path)
    _check_source(source, "backbone", SUBFOLDERS)
    adapter = str(motion_adapter) if motion_adapter not in (None, "") else None
    if adapter is not None:
        _check_source(adapter, "backbone.motion_adapter", ())
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    common = {"revision": revision, "local_files_only": local_files_only}
    try:
        unet = _load_unet(source, common, adapter, {"revision": motion_adapter_revision, "local_files_only": local_files_only})
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **common)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **common)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common)
        scheduler_config = _load_scheduler_config(source, revision, local_files_only)
    except (OSError, ValueError) as error:
        if isinstance(error, BackboneError):
            raise
        raise BackboneError(f"backbone '{source}': could not be loaded ({str(error).splitlines()[0]})") from None

    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.eval()
        # Cast only when needed: diffusers warns on any `.to(dtype=...)` of a model that lists float32 modules, even
        # an empty list and a no-op cast (AnimateDiff's UNetMotionModel, AutoencoderKL), which users cannot act on.
        if module.dtype != torch_dtype:
            module.to(dtype=torch_dtype)
        module.to(device=torch_device)
    logger.info("Loaded backbone %s%s (%s, %s)", source, f" + {adapter}" if adapter else "", torch_device, torch_dtype)
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
        motion_adapter=adapter,
        motion_adapter_revision=motion_adapter_revision if adapter else None,
    )


def _check_source(source: str, what: str, subfolders: tuple[str, ...]) -> None:
    """A local folder with the given subfolders, or something shaped like a hub id (owner/name)."""
    local = Path(source)
    if local.exists():
        missing = [name for name in subfolders if not (local / name).is_dir()]
        if missing:
            raise BackboneError(f"{what} '{source}': not a diffusers text-to-video folder, missing subfolders {missing}")
    elif source.startswith((".", "/", "data")) or source.count("/") != 1:
        raise BackboneError(f"{what} '{source}': no such folder, and not a hub id of the form owner/name")


# The UNet classes a backbone folder may hold (its unet/config.json ``_class_name``).
UNET_3D, UNET_MOTION, UNET_2D = "UNet3DConditionModel", "UNetMotionModel", "UNet2DConditionModel"


def _load_unet(source: str, common: dict[str, Any], adapter: str | None, adapter_common: dict[str, Any]) -> Any:
    """The backbone's video UNet: a UNet3D or UNetMotionModel as saved, or a Stable Diffusion UNet2D combined
    with the motion adapter. A missing, superfluous or mismatched adapter is a :class:`BackboneError` naming
    both."""
    import diffusers

    class_name = diffusers.UNet2DConditionModel.load_config(source, subfolder="unet", **common).get("_class_name")
    if class_name in (UNET_3D, UNET_MOTION):
        if adapter is not None:
            family = "ZeroScope/ModelScope" if class_name == UNET_3D else "AnimateDiff"
            raise BackboneError(
                f"backbone.motion_adapter '{adapter}': backbone '{source}' is already a {family} video model "
                f"(its unet is a {class_name}); leave motion_adapter empty"
            )
        return getattr(diffusers, class_name).from_pretrained(source, subfolder="unet", **common)
    if class_name != UNET_2D:
        raise BackboneError(
            f"backbone '{source}': its unet is a {class_name}; supported: {UNET_3D} (ZeroScope/ModelScope), "
            f"{UNET_MOTION} (a saved AnimateDiffPipeline), {UNET_2D} (Stable Diffusion, with backbone.motion_adapter)"
        )
    if adapter is None:
        raise BackboneError(
            f"backbone '{source}' is a Stable Diffusion image model ({UNET_2D}): set backbone.motion_adapter to an "
            "AnimateDiff motion adapter, e.g. guoyww/animatediff-motion-adapter-v1-5-3"
        )
    unet2d = diffusers.UNet2DConditionModel.from_pretrained(source, subfolder="unet", **common)
    try:
        motion_adapter = diffusers.MotionAdapter.from_pretrained(adapter, **adapter_common)
    except (OSError, ValueError) as error:
        raise BackboneError(f"backbone.motion_adapter '{adapter}': could not be loaded ({str(error).splitlines()[0]})") from None
    mismatch = _adapter_mismatch(unet2d.config, motion_adapter.config)
    if mismatch:
        raise BackboneError(f"backbone.motion_adapter '{adapter}' does not fit backbone '{source}': {mismatch}")
    return diffusers.UNetMotionModel.from_unet2d(unet2d, motion_adapter)


def _adapter_mismatch(unet_config: Any, adapter_config: Any) -> str | None:
    """Why a motion adapter cannot be combined with a UNet2D (block widths, motion layers per block), if it cannot."""
    unet_channels, adapter_channels = list(unet_config["block_out_channels"]), list(adapter_config["block_out_channels"])
    if unet_channels != adapter_channels:
        return f"the UNet's blocks have {unet_channels} channels, the adapter's motion modules {adapter_channels}"
    blocks = len(unet_channels)

    def expanded(value: Any) -> list[int]:
        return [int(value)] * blocks if isinstance(value, int) else [int(v) for v in value]

    unet_layers, adapter_layers = expanded(unet_config["layers_per_block"]), expanded(adapter_config["motion_layers_per_block"])
    if unet_layers != adapter_layers:
        return f"the UNet has {unet_layers} layers per block, the adapter {adapter_layers} motion layers per block"
    return None


def _load_scheduler_config(source: str, revision: str | None, local_files_only: bool) -> dict[str, Any]:
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(
        source, subfolder="scheduler", revision=revision, local_files_only=local_files_only
    )
    # Refused here, not at the first DDIM step of the encode stage (a traceback from inside the inversion):
    # sampling, inversion and every training target convert the prediction to epsilon, which these two allow.
    prediction_type = config.get("prediction_type", "epsilon")
    if prediction_type not in PREDICTION_TYPES:
        raise BackboneError(
            f"backbone '{source}': its scheduler's prediction_type '{prediction_type}' is not supported "
            f"(supported: {', '.join(PREDICTION_TYPES)})"
        )
    if config.get("thresholding"):
        raise BackboneError(
            f"backbone '{source}': its scheduler's thresholding (dynamic thresholding of pixel-space models) is not "
            "supported; a latent video model samples with thresholding false"
        )
    return dict(config)


@dataclass(frozen=True)
class BackboneSource:
    """What a worker process needs to load the same backbone as the driver (a path or hub id, not the weights)."""

    id_or_path: str
    revision: str | None
    device: str
    dtype: str
    motion_adapter: str | None = None
    motion_adapter_revision: str | None = None

    @classmethod
    def of(cls, backbone: Backbone) -> BackboneSource:
        return cls(
            backbone.id_or_path, backbone.revision, str(backbone.device), str(backbone.dtype).removeprefix("torch."),
            backbone.motion_adapter, backbone.motion_adapter_revision,
        )


# One loaded backbone per source and process: the jobs a worker runs share it (each leaves it unchanged).
_LOADED: dict[BackboneSource, Backbone] = {}


def backbone_in_process(source: Backbone | BackboneSource) -> Backbone:
    """``source`` itself when it is loaded, else this process's copy of it (loaded on first use)."""
    if isinstance(source, Backbone):
        return source
    if source not in _LOADED:
        _LOADED[source] = load_backbone(
            source.id_or_path, revision=source.revision, device=source.device, dtype=source.dtype,
            motion_adapter=source.motion_adapter, motion_adapter_revision=source.motion_adapter_revision,
        )
    return _LOADED[source]
