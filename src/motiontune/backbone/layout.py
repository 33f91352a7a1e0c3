"""The layout of a backbone family: every structural question the methods ask about a UNet, answered once.

A layout knows where a family's temporal and spatial transformers sit (their module paths), how wide they are
and at which latent stride, which attention layers there are of each kind (spatial self, cross, temporal),
which Linear layers LoRA can target, which layers activation checkpointing wraps, which top-level blocks run
in which order, and how the UNet is called (text embeddings per video or per frame). Nothing else in
motiontune names a module path: methods, memory switches, artifact sizes and attention-map recording ask
:func:`layout_for`.

Two families: ZeroScope / ModelScope, diffusers' ``UNet3DConditionModel`` (:class:`UNet3DLayout`), and
AnimateDiff, diffusers' ``UNetMotionModel`` (:class:`AnimateDiffLayout`); both are :class:`BlockUNetLayout`.
A new family (a DiT) is one new :class:`BackboneLayout` subclass passed to :func:`register_layout`.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

# Block presets of Motion Embeddings: ``all`` = down + up (ZeroScope: the papers' 15), ``deep`` = the widest of
# those (ZeroScope: the five 1280-channel ones; seed 004 A.1).
BLOCK_PRESETS = ("all", "deep")
UNET_SECTIONS = ("in", "down", "mid", "up")
# Attention kinds: spatial self-attention, spatial cross-attention (latent positions vs text tokens), temporal
# self-attention (frames vs frames at each position).
ATTENTION_KINDS = ("self", "cross", "temporal")
# Sub-layers of a transformer block that LoRA can target (an attention's to_q/to_k/to_v/to_out, or the
# feed-forward's Linear layers); each layout says which Linear layers they are.
LORA_SUBLAYERS = ("attn1", "attn2", "ff")


@dataclass(frozen=True)
class TemporalBlock:
    """One temporal transformer block (a ``BasicTransformerBlock`` attending over frames)."""

    path: str  # its module path, e.g. "down_blocks.2.temp_attentions.0.transformer_blocks.0" on a UNet3D
    section: str  # "down" | "up" | "mid" | "in"
    channels: int
    latent_stride: int  # latent cells per feature cell along each side at this block (1, 2, 4, ...)

    def feature_size(self, latent_height: int, latent_width: int) -> tuple[int, int]:
        """(H_i, W_i) of this block's feature map for a latent of the given size (ceil halving, as conv stride 2)."""
        height, width = latent_height, latent_width
        for _ in range(int(math.log2(self.latent_stride))):
            height, width = math.ceil(height / 2), math.ceil(width / 2)
        return height, width


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer (a diffusers ``Attention``)."""

    path: str  # e.g. "down_blocks.2.attentions.0.transformer_blocks.0.attn2" on a UNet3D
    kind: str  # one of ATTENTION_KINDS
    section: str  # "in" | "down" | "mid" | "up"
    latent_stride: int  # latent cells per feature cell along each side (1, 2, 4, ...)
    channels: int = 0  # width of the states the attention receives (its query dimension)


class BackboneLayout(ABC):
    """What a backbone family's UNet looks like, for one UNet of that family.

    A subclass names the diffusers class it handles (``unet_class_name``) and answers the abstract questions;
    the selections built on them (presets, projections, LoRA target names, the block after which a set of
    layers has run) are shared.
    """

    family: ClassVar[str] = ""
    unet_class_name: ClassVar[str] = ""
    # The attentions of a temporal transformer block that attend over frames.
    temporal_attention_names: ClassVar[tuple[str, ...]] = ()
    # Whether the caller repeats the text embeddings per frame ((B*F, L, D)) or the UNet does ((B, L, D)).
    text_embeddings_per_frame: ClassVar[bool] = False

    def __init__(self, unet: nn.Module) -> None:
        self.unet = unet

    @classmethod
    def handles(cls, unet: nn.Module) -> bool:
        return any(klass.__name__ == cls.unet_class_name for klass in type(unet).__mro__)

    @classmethod
    def build_unet(cls, config: dict[str, Any]) -> nn.Module:
        """A UNet of this family from its config (on the current default device: ``torch.device("meta")`` works)."""
        import diffusers

        return getattr(diffusers, cls.unet_class_name)(**config)

    # ---- questions each family answers ------------------------------------------------------------------

    @abstractmethod
    def temporal_blocks(self) -> list[TemporalBlock]:
        """All temporal transformer blocks in forward order."""

    @abstractmethod
    def attention_layers(self, kinds: Sequence[str] = ATTENTION_KINDS) -> list[AttentionLayer]:
        """The attention layers of the given kinds, in module order."""

    @abstractmethod
    def lora_target_pattern(self, spatial: Sequence[str], temporal: Sequence[str], include_input_temporal: bool) -> str:
        """A regex (for ``re.fullmatch``) over module names: the Linear layers of the ``spatial`` sub-layers of the
        spatial transformers and of the ``temporal`` sub-layers of the temporal ones (with the input temporal
        transformer when ``include_input_temporal``)."""

    @abstractmethod
    def transformer_block_of(self, module_path: str) -> str | None:
        """The transformer block that holds ``module_path`` (``None`` if none does)."""

    @abstractmethod
    def checkpoint_slots(self) -> list[tuple[nn.Module, str]]:
        """The slots ``(container, key)`` of the layers activation checkpointing wraps, in forward order."""

    @abstractmethod
    def block_order(self) -> list[str]:
        """Paths of the UNet's top-level blocks in forward order."""

    @abstractmethod
    def top_level_block(self, path: str) -> str:
        """The top-level block (one of :meth:`block_order`) that holds ``path``."""

    @abstractmethod
    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> Any:
        """The UNet called on ``sample`` (B, C, F, h, w) with the prompt embeddings (B, L, D): its raw output."""

    # ---- shared selections ------------------------------------------------------------------------------

    def predict_noise(self, sample: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction (B, C, F, h, w) for ``sample`` (B, C, F, h, w) and prompt embeddings (B, L, D)."""
        return self.forward(sample, timesteps, text_embeddings).sample

    def select_temporal_blocks(self, blocks: str | Sequence[str]) -> list[TemporalBlock]:
        """Resolve a block selection: preset ``all`` (down + up), ``deep`` (widest of those) or explicit prefixes.

        For ZeroScope ``all`` gives the papers' 15 blocks and ``deep`` the five 1280-channel ones (seed 004 A.1).
        An explicit list holds module-path prefixes of temporal blocks.
        """
        available = self.temporal_blocks()
        down_and_up = [b for b in available if b.section in ("down", "up")]
        if isinstance(blocks, str):
            if blocks == "all":
                return down_and_up
            if blocks == "deep":
                widest = max(b.channels for b in down_and_up)
                return [b for b in down_and_up if b.channels == widest]
            raise ValueError(f"blocks: unknown preset '{blocks}'; use one of {list(BLOCK_PRESETS)} or a list of module paths")
        if not blocks:
            raise ValueError("blocks: the explicit list is empty")
        selected: list[TemporalBlock] = []
        for prefix in blocks:
            matches = [b for b in available if b.path == prefix or b.path.startswith(f"{prefix}.")]
            if not matches:
                paths = ", ".join(b.path for b in available)
                raise ValueError(f"blocks: '{prefix}' matches no temporal transformer; available: {paths}")
            selected.extend(b for b in matches if b not in selected)
        return selected

    def temporal_attention_path(self, block_path: str, attention: str) -> str:
        """Path of the temporal attention ``attention`` (one of :attr:`temporal_attention_names`) of a block."""
        return f"{block_path}.{attention}"

    def temporal_attention_projections(self, projections: Sequence[str], include_input_temporal: bool) -> dict[str, nn.Linear]:
        """``{module path: Linear}`` for the given projections (``to_q``, ..., ``to_out.0``) of every temporal
        attention of the down, mid and up temporal blocks, plus the input temporal transformer's when
        ``include_input_temporal``."""
        modules = dict(self.unet.named_modules())
        selected: dict[str, nn.Linear] = {}
        for block in self.temporal_blocks():
            if block.section == "in" and not include_input_temporal:
                continue
            for attention in self.temporal_attention_names:
                for projection in projections:
                    path = f"{self.temporal_attention_path(block.path, attention)}.{projection}"
                    module = modules.get(path)
                    if not isinstance(module, nn.Linear):
                        raise ValueError(f"'{path}' is not a Linear layer in this UNet ({type(module).__name__})")
                    selected[path] = module
        return selected

    def lora_target_modules(self, spatial: Sequence[str], temporal: Sequence[str], include_input_temporal: bool) -> list[str]:
        """Names of the ``nn.Linear`` layers :meth:`lora_target_pattern` selects, in module order."""
        pattern = re.compile(self.lora_target_pattern(spatial, temporal, include_input_temporal))
        return [name for name, module in self.unet.named_modules() if isinstance(module, nn.Linear) and pattern.fullmatch(name)]

    def transformer_block_paths(self, module_paths: Sequence[str]) -> list[str]:
        """The transformer blocks that hold the given layers, sorted."""
        return sorted({block for path in module_paths if (block := self.transformer_block_of(path)) is not None})

    def last_block_of(self, paths: Sequence[str]) -> str:
        """The top-level block, in forward order, after which every module of ``paths`` has run."""
        order = self.block_order()
        return max({self.top_level_block(path) for path in paths}, key=order.index)


class BlockUNetLayout(BackboneLayout):
    """A diffusers UNet of down blocks, a mid block and up blocks whose blocks hold spatial transformers
    (``attentions``: attn1 self, attn2 cross) and temporal transformers (``temporal_container``) whose blocks
    attend over frames with both attn1 and attn2 (``double_self_attention=True``).

    Down block i works at latent stride 2**i, up block i at 2**(n_up - 1 - i), the mid block at the deepest
    stride. A family says what its temporal container is called, whether it has an input temporal transformer
    (``transformer_in``), which layer lists its blocks hold, and how its UNet takes the text.
    """

    temporal_attention_names = ("attn1", "attn2")
    temporal_container: ClassVar[str] = ""
    # The name of the temporal transformer applied to the input (after conv_in), if the family has one.
    input_temporal: ClassVar[str | None] = None
    # The layer lists of a block, each entry checkpointed on its own.
    BLOCK_LAYER_LISTS: ClassVar[tuple[str, ...]] = ()

    _BLOCK = r"(?:down_blocks\.\d+|mid_block|up_blocks\.\d+)"
    # The Linear layers of each LoRA sub-layer of a BasicTransformerBlock.
    _SUBLAYER_LINEARS: ClassVar[dict[str, str]] = {
        "attn1": r"attn1\.(?:to_q|to_k|to_v|to_out\.0)",
        "attn2": r"attn2\.(?:to_q|to_k|to_v|to_out\.0)",
        "ff": r"ff\.net\.(?:0\.proj|2)",
    }
    _TRANSFORMER_BLOCK_OF = re.compile(r"^(.*\.transformer_blocks\.\d+)\.")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Build the family's module-path patterns once per class (``layout_for`` runs on every training step)."""
        super().__init_subclass__(**kwargs)
        temporal = re.escape(cls.temporal_container)
        cls._spatial_transformer_block = rf"{cls._BLOCK}\.attentions\.\d+\.transformer_blocks\.\d+"
        cls._temporal_transformer_block = rf"{cls._BLOCK}\.{temporal}\.\d+\.transformer_blocks\.\d+"
        cls._input_transformer_block = (
            rf"{re.escape(cls.input_temporal)}\.transformer_blocks\.\d+" if cls.input_temporal else None
        )
        input_alternative = rf"|^({re.escape(cls.input_temporal)})$" if cls.input_temporal else ""
        cls._temporal_transformer = re.compile(
            rf"^(down_blocks|up_blocks)\.(\d+)\.{temporal}\.(\d+)$|^(mid_block)\.{temporal}\.(\d+)${input_alternative}"
        )
        input_attention = (
            rf"|^(?P<input>{re.escape(cls.input_temporal)})\.transformer_blocks\.\d+\.(?P<input_attention>attn1|attn2)$"
            if cls.input_temporal
            else ""
        )
        cls._attention = re.compile(
            r"^(?:(?P<down>down_blocks)\.(?P<down_index>\d+)|(?P<up>up_blocks)\.(?P<up_index>\d+)|(?P<mid>mid_block))"
            rf"\.(?P<container>attentions|{temporal})\.\d+\.transformer_blocks\.\d+\.(?P<attention>attn1|attn2)$"
            + input_attention
        )

    def _stride(self, section: str, index: int) -> int:
        if section == "down":
            return 2**index
        if section == "up":
            return 2 ** (len(self.unet.config.up_block_types) - 1 - index)
        if section == "mid":
            return 2 ** (len(self.unet.config.down_block_types) - 1)
        return 1

    def temporal_blocks(self) -> list[TemporalBlock]:
        blocks: list[TemporalBlock] = []
        for name, module in self.unet.named_modules():
            match = self._temporal_transformer.match(name)
            if match is None:
                continue
            if match.group(1) == "down_blocks":
                section, stride = "down", self._stride("down", int(match.group(2)))
            elif match.group(1) == "up_blocks":
                section, stride = "up", self._stride("up", int(match.group(2)))
            elif match.group(4) == "mid_block":
                section, stride = "mid", self._stride("mid", 0)
            else:
                section, stride = "in", 1
            for index, block in enumerate(module.transformer_blocks):
                blocks.append(
                    TemporalBlock(
                        path=f"{name}.transformer_blocks.{index}",
                        section=section,
                        channels=int(block.norm1.normalized_shape[0]),
                        latent_stride=stride,
                    )
                )
        # Module registration order is not forward order (UNetMotionModel registers its mid block last).
        order = self.block_order()
        return sorted(blocks, key=lambda block: order.index(self.top_level_block(block.path)))

    def attention_layers(self, kinds: Sequence[str] = ATTENTION_KINDS) -> list[AttentionLayer]:
        unknown = sorted(set(kinds) - set(ATTENTION_KINDS))
        if unknown:
            raise ValueError(f"attention kinds: {unknown} are not among {list(ATTENTION_KINDS)}")
        layers = []
        for name, module in self.unet.named_modules():
            match = self._attention.match(name)
            if match is None:
                continue
            channels = int(getattr(module, "query_dim", 0) or 0)
            if match.groupdict().get("input"):
                kind, section, stride = "temporal", "in", 1
            else:
                if match.group("down"):
                    section, stride = "down", self._stride("down", int(match.group("down_index")))
                elif match.group("up"):
                    section, stride = "up", self._stride("up", int(match.group("up_index")))
                else:
                    section, stride = "mid", self._stride("mid", 0)
                if match.group("container") != "attentions":
                    kind = "temporal"
                else:
                    kind = "cross" if match.group("attention") == "attn2" else "self"
            if kind in kinds:
                layers.append(AttentionLayer(name, kind, section, stride, channels))
        return layers

    def lora_target_pattern(self, spatial: Sequence[str], temporal: Sequence[str], include_input_temporal: bool) -> str:
        alternatives = []
        if spatial:
            alternatives.append(f"{self._spatial_transformer_block}\\.(?:{'|'.join(self._SUBLAYER_LINEARS[s] for s in spatial)})")
        if temporal:
            blocks = self._temporal_transformer_block
            if include_input_temporal and self._input_transformer_block:
                blocks = f"(?:{self._temporal_transformer_block}|{self._input_transformer_block})"
            alternatives.append(f"{blocks}\\.(?:{'|'.join(self._SUBLAYER_LINEARS[s] for s in temporal)})")
        return "|".join(f"(?:{a})" for a in alternatives)

    def transformer_block_of(self, module_path: str) -> str | None:
        match = self._TRANSFORMER_BLOCK_OF.match(module_path)
        return match.group(1) if match else None

    def _blocks(self) -> list[nn.Module]:
        unet = self.unet
        missing = [name for name in ("down_blocks", "up_blocks") if not isinstance(getattr(unet, name, None), nn.ModuleList)]
        if missing:
            raise ValueError(
                f"expected a {self.unet_class_name} with down_blocks, mid_block and up_blocks; {type(unet).__name__} lacks {missing}"
            )
        return [*unet.down_blocks, *([unet.mid_block] if unet._modules.get("mid_block") is not None else []), *unet.up_blocks]

    def checkpoint_slots(self) -> list[tuple[nn.Module, str]]:
        """Every layer (:attr:`BLOCK_LAYER_LISTS`) of the down blocks, mid block and up blocks, in block order.
        Layers rather than whole blocks: backward then recomputes one layer's activations at a time, which lowers
        the peak (mid config: whole blocks cut it by about 35-40%, see benchmarks/results)."""
        slots: list[tuple[nn.Module, str]] = []
        for block in self._blocks():
            for list_name in self.BLOCK_LAYER_LISTS:
                layers = block._modules.get(list_name)
                if isinstance(layers, nn.ModuleList):
                    slots += [(layers, key) for key in layers._modules]
        return slots

    def block_order(self) -> list[str]:
        """The input temporal transformer (if any), down blocks, mid block, up blocks."""
        unet = self.unet
        order = [self.input_temporal] if self.input_temporal else []
        order += [f"down_blocks.{index}" for index in range(len(unet.down_blocks))]
        order += ["mid_block"] if getattr(unet, "mid_block", None) is not None else []
        order += [f"up_blocks.{index}" for index in range(len(unet.up_blocks))]
        return order

    def top_level_block(self, path: str) -> str:
        parts = path.split(".")
        return ".".join(parts[:2]) if parts[0] in ("down_blocks", "up_blocks") else parts[0]


class UNet3DLayout(BlockUNetLayout):
    """ZeroScope / ModelScope: diffusers' ``UNet3DConditionModel`` (0.42).

    Temporal transformers (``TransformerTemporalModel``, no position encoding): ``transformer_in`` and the
    ``temp_attentions`` of the down, mid and up blocks. The UNet repeats the (B, L, D) text embeddings per frame
    itself.
    """

    family = "unet3d"
    unet_class_name = "UNet3DConditionModel"
    text_embeddings_per_frame = False
    temporal_container = "temp_attentions"
    input_temporal = "transformer_in"
    # diffusers' CrossAttn*Block3D, DownBlock3D, UpBlock3D, UNetMidBlock3DCrossAttn.
    BLOCK_LAYER_LISTS = ("resnets", "temp_convs", "attentions", "temp_attentions", "downsamplers", "upsamplers")

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> Any:
        # UNet3DConditionModel repeats the (B, L, D) embeddings over frames itself (repeat_interleave).
        return self.unet(sample, timesteps, encoder_hidden_states=text_embeddings)


class AnimateDiffLayout(BlockUNetLayout):
    """AnimateDiff: diffusers' ``UNetMotionModel`` (0.42), a Stable Diffusion UNet with motion modules.

    Temporal transformers: the ``motion_modules`` (``AnimateDiffTransformer3D``, sinusoidal position encoding
    over frames) of the down, up and (adapters v2 and later) mid blocks; no input temporal transformer. Spatial
    transformers: the SD UNet's ``attentions``. The caller repeats the text embeddings per frame: passing
    (B, L, D) fails in the spatial transformers, so :meth:`forward` passes (B*F, L, D), frame-major within a
    video, as ``AnimateDiffPipeline`` does (``repeat_interleave(num_frames, dim=0)``).
    """

    family = "animatediff"
    unet_class_name = "UNetMotionModel"
    text_embeddings_per_frame = True
    temporal_container = "motion_modules"
    input_temporal = None
    # diffusers' CrossAttnDownBlockMotion, DownBlockMotion, CrossAttnUpBlockMotion, UpBlockMotion,
    # UNetMidBlockCrossAttnMotion.
    BLOCK_LAYER_LISTS = ("resnets", "attentions", "motion_modules", "downsamplers", "upsamplers")

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> Any:
        num_frames = sample.shape[2]
        per_frame = text_embeddings.repeat_interleave(num_frames, dim=0)
        return self.unet(sample, timesteps, encoder_hidden_states=per_frame)


LAYOUTS: list[type[BackboneLayout]] = [UNet3DLayout, AnimateDiffLayout]


def register_layout(layout: type[BackboneLayout]) -> type[BackboneLayout]:
    """Make :func:`layout_for` answer for the UNets ``layout`` handles (checked before the earlier ones)."""
    if layout not in LAYOUTS:
        LAYOUTS.insert(0, layout)
    return layout


def layout_class(unet_class_name: str) -> type[BackboneLayout]:
    """The layout of the family whose UNet class is ``unet_class_name`` (as in a UNet config's ``_class_name``)."""
    for layout in LAYOUTS:
        if layout.unet_class_name == unet_class_name:
            return layout
    raise ValueError(f"no backbone layout for '{unet_class_name}'; known: {[layout.unet_class_name for layout in LAYOUTS]}")


def layout_for(unet: nn.Module) -> BackboneLayout:
    """The layout of ``unet``'s family, bound to it."""
    for layout in LAYOUTS:
        if layout.handles(unet):
            return layout(unet)
    raise ValueError(
        f"no backbone layout for a {type(unet).__name__}; known families: {[layout.unet_class_name for layout in LAYOUTS]}"
    )


def temporal_blocks(unet: nn.Module) -> list[TemporalBlock]:
    """All temporal transformer blocks of ``unet`` in forward order (``layout_for(unet).temporal_blocks()``)."""
    return layout_for(unet).temporal_blocks()


def select_temporal_blocks(unet: nn.Module, blocks: str | Sequence[str]) -> list[TemporalBlock]:
    """``layout_for(unet).select_temporal_blocks(blocks)``."""
    return layout_for(unet).select_temporal_blocks(blocks)
