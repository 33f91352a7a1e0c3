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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from motiontune.backbone.attention_processor import HookedAttnProcessor
from motiontune.backbone.layout import UNET_SECTIONS, AttentionLayer, layout_for
from motiontune.backbone.patching import forward_stopped_after, processors_installed

# The kinds of attention whose maps are motion features (spatial self-attention is not one).
ATTENTION_KINDS = ("cross", "temporal")
def attention_layers(unet: nn.Module) -> list[AttentionLayer]:
    """The UNet's spatial cross-attention and temporal self-attention layers, in forward order.

    Spatial self-attention (spatial attn1) is not a motion feature and is not listed.
    """
    return layout_for(unet).attention_layers(ATTENTION_KINDS)


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


class AttentionMapProcessor(HookedAttnProcessor):
    """Attention with an explicit ``softmax(Q K^T / sqrt(d))`` whose head-averaged map goes to a store.

    Same inputs and output as diffusers' ``AttnProcessor``; the stored map is (rows, L_query, L_key). The
    explicit attention is the attend hook of :class:`HookedAttnProcessor`.
    """

    def __init__(self, store: AttentionMapStore, path: str) -> None:
        self.store = store
        self.path = path

    def attend(
        self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        # 1/sqrt(d), as AttnProcessor2_0's scaled_dot_product_attention uses, so outputs match the default.
        scores = (query @ key.transpose(-1, -2)).float() / math.sqrt(query.shape[-1])  # (rows, heads, L_q, L_k)
        if attention_mask is not None:
            scores = scores + attention_mask.float()
        probabilities = scores.softmax(dim=-1)
        self.store.add(self.path, probabilities.mean(dim=1))
        return probabilities.to(value.dtype) @ value


@contextmanager
def attention_maps_recorded(unet: nn.Module, layers: Sequence[AttentionLayer]) -> Iterator[AttentionMapStore]:
    """Install :class:`AttentionMapProcessor` on ``layers`` for the context; the original processors come back."""
    store = AttentionMapStore()
    with processors_installed(unet, {layer.path: AttentionMapProcessor(store, layer.path) for layer in layers}, "attention maps"):
        yield store


def last_block_of(unet: nn.Module, layers: Sequence[AttentionLayer]) -> str:
    """The top-level block, in forward order, after which every layer of ``layers`` has run."""
    return layout_for(unet).last_block_of([layer.path for layer in layers])


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
    layout = layout_for(unet)
    with attention_maps_recorded(unet, layers) as store, forward_stopped_after(unet, last_block_of(unet, layers), AttentionMapsComplete):
        try:
            layout.forward(sample, timesteps, prompt_embeds)
        except AttentionMapsComplete:
            pass
    cross_maps = store.mean(cross)  # (B*F, h*w, L), rows (b f)-major
    temporal_maps = store.mean(temporal)  # (B*h*w, F, F), rows (b h w)-major
    return MotionAttentionFeatures(
        cross_attention=cross_maps.reshape(batch, num_frames, *cross_maps.shape[1:]),
        temporal_attention=temporal_maps.reshape(batch, -1, num_frames, num_frames),
    )
