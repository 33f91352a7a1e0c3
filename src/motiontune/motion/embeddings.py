"""Motion Embeddings (Motion Inversion, seed 002 sec. 3.2; seed 004 A.1): the learnable tensors and
how they are placed in, and removed from, a UNet3D's temporal transformers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from motiontune.backbone.structure import TemporalBlock
from motiontune.motion.attention import MotionEmbeddingAttnProcessor

EMBEDDING_LAYOUTS = ("1d", "2d")
DEBIAS_MODES = ("frame_diff", "normalize", "vanilla")
QUERY_KEY_SUFFIX = "query_key"
VALUE_SUFFIX = "value"
# Both self-attentions of a temporal BasicTransformerBlock (double_self_attention=True) attend over frames.
TEMPORAL_ATTENTIONS = ("attn1", "attn2")


@dataclass(frozen=True)
class EmbeddingLayout:
    """Spatial layout of each embedding: ``1d`` = one vector per frame (1, N, C), ``2d`` = (H*W, N, C).

    The paper's design is query/key ``1d`` and value ``2d``; the other combinations are its ablation (sec. 4.3).
    """

    query_key: str = "1d"
    value: str = "2d"

    def __post_init__(self) -> None:
        for name in ("query_key", "value"):
            if getattr(self, name) not in EMBEDDING_LAYOUTS:
                raise ValueError(f"embedding layout {name}: '{getattr(self, name)}' is not one of {list(EMBEDDING_LAYOUTS)}")


class MotionEmbeddings(nn.Module):
    """Zero-initialised query/key and value embeddings for a set of temporal blocks.

    For block i with C_i channels and an (H_i, W_i) feature map: ``query_key`` (1 or H_i*W_i, N, C_i) and
    ``value`` (H_i*W_i or 1, N, C_i). Zero init means an untrained set changes nothing.
    """

    def __init__(
        self,
        blocks: list[TemporalBlock],
        num_frames: int,
        latent_size: tuple[int, int],
        layout: EmbeddingLayout = EmbeddingLayout(),
    ) -> None:
        super().__init__()
        self.block_paths = [block.path for block in blocks]
        self.layout = layout
        self.query_key = nn.ParameterList()
        self.value = nn.ParameterList()
        for block in blocks:
            height, width = block.feature_size(*latent_size)
            qk_rows = 1 if layout.query_key == "1d" else height * width
            value_rows = 1 if layout.value == "1d" else height * width
            self.query_key.append(nn.Parameter(torch.zeros(qk_rows, num_frames, block.channels)))
            self.value.append(nn.Parameter(torch.zeros(value_rows, num_frames, block.channels)))

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Artifact tensors keyed ``<block module path>.query_key`` / ``.value``."""
        tensors: dict[str, torch.Tensor] = {}
        for path, query_key, value in zip(self.block_paths, self.query_key, self.value):
            tensors[f"{path}.{QUERY_KEY_SUFFIX}"] = query_key.detach()
            tensors[f"{path}.{VALUE_SUFFIX}"] = value.detach()
        return tensors

    def load_named_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Copy artifact tensors in (shapes must match exactly)."""
        with torch.no_grad():
            for key, parameter in self._parameters_by_key().items():
                if key not in tensors:
                    raise KeyError(f"motion embeddings: tensor '{key}' missing")
                if tuple(tensors[key].shape) != tuple(parameter.shape):
                    raise ValueError(
                        f"motion embeddings: '{key}' has shape {tuple(tensors[key].shape)}, expected {tuple(parameter.shape)}"
                    )
                parameter.copy_(tensors[key])

    def _parameters_by_key(self) -> dict[str, nn.Parameter]:
        out: dict[str, nn.Parameter] = {}
        for path, query_key, value in zip(self.block_paths, self.query_key, self.value):
            out[f"{path}.{QUERY_KEY_SUFFIX}"] = query_key
            out[f"{path}.{VALUE_SUFFIX}"] = value
        return out


def debias_value(value: torch.Tensor, mode: str) -> torch.Tensor:
    """Inference-time debias of a value embedding (S, N, C) along frames (seed 002 eq. 5).

    ``frame_diff``: frame 0 kept, frame j replaced by ``m[:, j] - m[:, j-1]``; ``normalize``: subtract the
    mean over frames; ``vanilla``: unchanged.
    """
    if mode == "vanilla":
        return value
    if mode == "normalize":
        return value - value.mean(dim=1, keepdim=True)
    if mode == "frame_diff":
        debiased = value.clone()
        debiased[:, 1:] = value[:, 1:] - value[:, :-1]
        return debiased
    raise ValueError(f"debias: '{mode}' is not one of {list(DEBIAS_MODES)}")


def split_by_block(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Group artifact tensors into ``{block path: (query_key, value)}``."""
    blocks: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        path, _, suffix = key.rpartition(".")
        if suffix not in (QUERY_KEY_SUFFIX, VALUE_SUFFIX) or not path:
            raise ValueError(f"motion embeddings: unexpected tensor '{key}'")
        blocks.setdefault(path, {})[suffix] = tensor
    out = {}
    for path, parts in blocks.items():
        if set(parts) != {QUERY_KEY_SUFFIX, VALUE_SUFFIX}:
            raise ValueError(f"motion embeddings: block '{path}' needs both query_key and value tensors")
        out[path] = (parts[QUERY_KEY_SUFFIX], parts[VALUE_SUFFIX])
    return out


@contextmanager
def motion_embeddings_attached(
    unet: nn.Module,
    embeddings_by_block: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    value_scale: float = 1.0,
) -> Iterator[None]:
    """Install :class:`MotionEmbeddingAttnProcessor` on both temporal attentions of each block, then restore.

    The tensors are used by reference, so during training gradients flow into the parameters.
    """
    modules = dict(unet.named_modules())
    originals: dict[str, object] = {}
    try:
        for path, (query_key, value) in embeddings_by_block.items():
            if path not in modules:
                raise ValueError(f"motion embeddings: the backbone has no module '{path}'")
            for attention_name in TEMPORAL_ATTENTIONS:
                attention = getattr(modules[path], attention_name)
                name = f"{path}.{attention_name}"
                originals[name] = attention.processor
                attention.set_processor(MotionEmbeddingAttnProcessor(query_key, value, value_scale, name))
        yield
    finally:
        for name, processor in originals.items():
            modules[name].set_processor(processor)
