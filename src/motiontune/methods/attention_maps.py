"""Record attention maps of a UNet3D with an attention processor (MotionMatcher's motion features, seed 001).

:class:`AttentionMapProcessor` computes ``softmax(Q K^T / sqrt(d))`` explicitly (instead of a fused kernel),
keeps the map averaged over heads in an :class:`AttentionMapStore`, and returns the usual attention output.
:func:`motion_attention_features` runs the UNet with that processor on the chosen layers and returns the
maps averaged over those layers:

- cross-attention maps (spatial transformers' attn2, latent positions vs text tokens): a layer's map is
  (B*F, heads, h*w, L); averaged over heads and layers and returned as (B, F, h*w, L);
- temporal self-attention maps (temporal transformers' attn1 and attn2, frames vs frames at each
  position): a layer's map is (B*h*w, heads, F, F); averaged over heads and layers and returned as
  (B, h*w, F, F).

Every row sums to 1 over the attended axis (L, or the last F).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

ATTENTION_KINDS = ("cross", "temporal")
UNET_SECTIONS = ("in", "down", "mid", "up")
_ATTENTION_LAYER = re.compile(
    r"^(?:(?P<down>down_blocks)\.(?P<down_index>\d+)|(?P<up>up_blocks)\.(?P<up_index>\d+)|(?P<mid>mid_block))"
    r"\.(?P<container>attentions|temp_attentions)\.\d+\.transformer_blocks\.\d+\.(?P<attention>attn1|attn2)$"
    r"|^(?P<input>transformer_in)\.transformer_blocks\.\d+\.(?P<input_attention>attn1|attn2)$"
)


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer whose map can be recorded."""

    path: str  # e.g. "down_blocks.2.attentions.0.transformer_blocks.0.attn2"
    kind: str  # "cross" (spatial attn2) | "temporal" (temporal attn1/attn2)
    section: str  # "in" | "down" | "mid" | "up"
    latent_stride: int  # latent cells per feature cell along each side (1, 2, 4, ...)


def attention_layers(unet: nn.Module) -> list[AttentionLayer]:
    """The UNet's spatial cross-attention and temporal self-attention layers, in forward order.

    Spatial self-attention (spatial attn1) is not a motion feature and is not listed.
    """
    num_down = len(unet.config.down_block_types)
    num_up = len(unet.config.up_block_types)
    layers = []
    for name, _ in unet.named_modules():
        match = _ATTENTION_LAYER.match(name)
        if match is None:
            continue
        if match.group("input"):
            layers.append(AttentionLayer(name, "temporal", "in", 1))
            continue
        if match.group("down"):
            section, stride = "down", 2 ** int(match.group("down_index"))
        elif match.group("up"):
            section, stride = "up", 2 ** (num_up - 1 - int(match.group("up_index")))
        else:
            section, stride = "mid", 2 ** (num_down - 1)
        if match.group("container") == "temp_attentions":
            layers.append(AttentionLayer(name, "temporal", section, stride))
        elif match.group("attention") == "attn2":
            layers.append(AttentionLayer(name, "cross", section, stride))
    return layers


def select_feature_layers(
    unet: nn.Module, sections: Sequence[str] = ("down",), latent_stride: int | None = None
) -> list[AttentionLayer]:
    """The cross- and temporal-attention layers of ``sections`` at one feature resolution.

    ``latent_stride=None`` picks the coarsest resolution (largest stride) at which ``sections`` hold both
    kinds of layer: on ZeroScope that is the third down block (latent / 4), what the MotionMatcher public code
    uses (``spatial_scale_factor: 4``, ``temporal_scale_factor: 4``, ``from_where: ("down",)``).
    """
    unknown = sorted(set(sections) - set(UNET_SECTIONS))
    if unknown or not sections:
        raise ValueError(f"feature_sections: {list(sections)} must be a non-empty subset of {list(UNET_SECTIONS)}")
    candidates = [layer for layer in attention_layers(unet) if layer.section in sections]
    strides_with_both = sorted(
        stride
        for stride in {layer.latent_stride for layer in candidates}
        if {layer.kind for layer in candidates if layer.latent_stride == stride} == set(ATTENTION_KINDS)
    )
    if not strides_with_both:
        raise ValueError(f"feature_sections {list(sections)}: no resolution has both cross- and temporal-attention layers")
    if latent_stride is None:
        latent_stride = strides_with_both[-1]
    if latent_stride not in strides_with_both:
        raise ValueError(
            f"feature_stride: {latent_stride} is not a resolution with both kinds of attention in {list(sections)}; "
            f"choose one of {strides_with_both}"
        )
    return [layer for layer in candidates if layer.latent_stride == latent_stride]


class AttentionMapsComplete(Exception):
    """Raised after the last UNet block holding a requested layer, to skip the rest of the forward pass."""


@dataclass
class AttentionMapStore:
    """Head-averaged maps per layer path, filled by :class:`AttentionMapProcessor` during a forward pass."""

    maps: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, path: str, attention_map: torch.Tensor) -> None:
        self.maps[path] = attention_map

    def mean(self, paths: Sequence[str]) -> torch.Tensor:
        """Average of the recorded maps of ``paths`` (all the same shape)."""
        missing = [path for path in paths if path not in self.maps]
        if missing:
            raise RuntimeError(f"attention maps were not recorded for {missing}")
        return torch.stack([self.maps[path] for path in paths]).mean(dim=0)


class AttentionMapProcessor:
    """Attention with an explicit ``softmax(Q K^T / sqrt(d))`` whose head-averaged map goes to a store.

    Same inputs and output as diffusers' ``AttnProcessor``; the stored map is (rows, L_query, L_key).
    """

    def __init__(self, store: AttentionMapStore, path: str) -> None:
        self.store = store
        self.path = path

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        rows, query_length, _ = hidden_states.shape
        key_length = query_length if encoder_hidden_states is None else encoder_hidden_states.shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, key_length, rows)
            attention_mask = attention_mask.view(rows, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        # 1/sqrt(d), as AttnProcessor2_0's scaled_dot_product_attention uses, so outputs match the default.
        scores = (query @ key.transpose(-1, -2)).float() / math.sqrt(head_dim)  # (rows, heads, L_q, L_k)
        if attention_mask is not None:
            scores = scores + attention_mask.float()
        probabilities = scores.softmax(dim=-1)
        self.store.add(self.path, probabilities.mean(dim=1))

        hidden_states = (probabilities.to(value.dtype) @ value).transpose(1, 2).reshape(rows, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextmanager
def attention_maps_recorded(unet: nn.Module, layers: Sequence[AttentionLayer]) -> Iterator[AttentionMapStore]:
    """Install :class:`AttentionMapProcessor` on ``layers`` for the context; the original processors come back."""
    store = AttentionMapStore()
    modules = dict(unet.named_modules())
    originals: dict[str, Any] = {}
    try:
        for layer in layers:
            attention = modules[layer.path]
            originals[layer.path] = attention.processor
            attention.set_processor(AttentionMapProcessor(store, layer.path))
        yield store
    finally:
        for path, processor in originals.items():
            modules[path].set_processor(processor)


def unet_block_order(unet: nn.Module) -> list[str]:
    """Paths of the UNet3D's top-level blocks in forward order: transformer_in, down blocks, mid block, up blocks."""
    order = ["transformer_in"]
    order += [f"down_blocks.{index}" for index in range(len(unet.down_blocks))]
    order += ["mid_block"] if getattr(unet, "mid_block", None) is not None else []
    order += [f"up_blocks.{index}" for index in range(len(unet.up_blocks))]
    return order


def top_level_block(path: str) -> str:
    """``down_blocks.2.attentions.0...`` -> ``down_blocks.2``; ``mid_block...`` -> ``mid_block``."""
    parts = path.split(".")
    return ".".join(parts[:2]) if parts[0] in ("down_blocks", "up_blocks") else parts[0]


def last_block_of(unet: nn.Module, layers: Sequence[AttentionLayer]) -> str:
    """The top-level block, in forward order, after which every layer of ``layers`` has run."""
    order = unet_block_order(unet)
    return max({top_level_block(layer.path) for layer in layers}, key=order.index)


@contextmanager
def forward_stopped_after(unet: nn.Module, block_path: str) -> Iterator[None]:
    """Raise :class:`AttentionMapsComplete` when the top-level block ``block_path`` has returned.

    The hook sits on the module in that slot when the context is entered (a gradient-checkpointing wrapper
    included), outside anything recomputed in backward, so the block itself always runs to its end.
    """

    def stop(module: nn.Module, args: Any, output: Any) -> None:
        raise AttentionMapsComplete

    handle = unet.get_submodule(block_path).register_forward_hook(stop)
    try:
        yield
    finally:
        handle.remove()


@dataclass
class MotionAttentionFeatures:
    """MotionMatcher's motion features of one noisy video (averaged over heads and the chosen layers)."""

    cross_attention: torch.Tensor  # (B, F, h*w, L): where each text token sits in each frame (camera framing)
    temporal_attention: torch.Tensor  # (B, h*w, F, F): how each position's frames attend to each other (dynamics)


def motion_attention_features(
    unet: nn.Module,
    layers: Sequence[AttentionLayer],
    sample: torch.Tensor,
    timesteps: torch.Tensor,
    prompt_embeds: torch.Tensor,
) -> MotionAttentionFeatures:
    """Run the UNet on ``sample`` (B, C, F, h, w) and return the averaged cross- and temporal-attention maps.

    The pass stops after the UNet block that holds the last requested layer (the public code likewise returns
    after the down blocks), so nothing after it is computed. Gradients flow through the maps to ``sample``.
    """
    cross = [layer.path for layer in layers if layer.kind == "cross"]
    temporal = [layer.path for layer in layers if layer.kind == "temporal"]
    if not cross or not temporal:
        raise ValueError("motion features need at least one cross-attention and one temporal-attention layer")
    batch, _, num_frames = sample.shape[:3]
    with attention_maps_recorded(unet, layers) as store, forward_stopped_after(unet, last_block_of(unet, layers)):
        try:
            unet(sample, timesteps, encoder_hidden_states=prompt_embeds)
        except AttentionMapsComplete:
            pass
    cross_maps = store.mean(cross)  # (B*F, h*w, L), rows (b f)-major
    temporal_maps = store.mean(temporal)  # (B*h*w, F, F), rows (b h w)-major
    return MotionAttentionFeatures(
        cross_attention=cross_maps.reshape(batch, num_frames, *cross_maps.shape[1:]),
        temporal_attention=temporal_maps.reshape(batch, -1, num_frames, num_frames),
    )
