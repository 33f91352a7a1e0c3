"""Where the temporal transformers of a UNet3D sit, how wide they are and at which latent resolution."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

_TEMPORAL_TRANSFORMER = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.temp_attentions\.(\d+)$|^(mid_block)\.temp_attentions\.(\d+)$|^(transformer_in)$")

BLOCK_PRESETS = ("all", "deep")


@dataclass(frozen=True)
class TemporalBlock:
    """One temporal transformer block (a ``BasicTransformerBlock`` attending over frames)."""

    path: str  # e.g. "down_blocks.2.temp_attentions.0.transformer_blocks.0"
    section: str  # "down" | "up" | "mid" | "in"
    channels: int
    latent_stride: int  # latent cells per feature cell along each side at this block (1, 2, 4, ...)

    def feature_size(self, latent_height: int, latent_width: int) -> tuple[int, int]:
        """(H_i, W_i) of this block's feature map for a latent of the given size (ceil halving, as conv stride 2)."""
        height, width = latent_height, latent_width
        for _ in range(int(math.log2(self.latent_stride))):
            height, width = math.ceil(height / 2), math.ceil(width / 2)
        return height, width


def temporal_blocks(unet: torch.nn.Module) -> list[TemporalBlock]:
    """All temporal transformer blocks of a ``UNet3DConditionModel`` in forward order."""
    num_down = len(unet.config.down_block_types)
    num_up = len(unet.config.up_block_types)
    blocks: list[TemporalBlock] = []
    for name, module in unet.named_modules():
        match = _TEMPORAL_TRANSFORMER.match(name)
        if match is None:
            continue
        if match.group(1) == "down_blocks":
            section, stride = "down", 2 ** int(match.group(2))
        elif match.group(1) == "up_blocks":
            section, stride = "up", 2 ** (num_up - 1 - int(match.group(2)))
        elif match.group(4) == "mid_block":
            section, stride = "mid", 2 ** (num_down - 1)
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
    return blocks


def select_temporal_blocks(unet: torch.nn.Module, blocks: str | Sequence[str]) -> list[TemporalBlock]:
    """Resolve a block selection: preset ``all`` (down + up), ``deep`` (widest of those) or explicit prefixes.

    For ZeroScope ``all`` gives the papers' 15 blocks and ``deep`` the five 1280-channel ones (seed 004 A.1).
    An explicit list holds module-path prefixes such as ``["down_blocks.2", "up_blocks.1.temp_attentions.0"]``.
    """
    available = temporal_blocks(unet)
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
