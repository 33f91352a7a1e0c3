"""Motion Embeddings (Motion Inversion, seed 002 sec. 3.2; seed 004 A.1): the learnable tensors and
how they are placed in, and removed from, a UNet3D's temporal transformers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from motiontune.backbone.layout import TemporalBlock, layout_for
from motiontune.backbone.patching import processors_installed
from motiontune.methods.attention import MotionEmbeddingAttnProcessor

EMBEDDING_LAYOUTS = ("1d", "2d")
DEBIAS_MODES = ("frame_diff", "normalize", "vanilla")
QUERY_KEY_SUFFIX = "query_key"
VALUE_SUFFIX = "value"
# Both self-attentions of a temporal BasicTransformerBlock (double_self_attention=True) attend over frames.
TEMPORAL_ATTENTIONS = ("attn1", "attn2")
# How a block's two temporal attentions get their value embedding. ``per_attention``: one each, keyed
# ``<block>.attn1.value`` / ``<block>.attn2.value``, as the public code does (``models/unet/motion_embeddings.py``
# injects a ``vSpatial`` into attn1 and into attn2 of every selected block); ``shared``: one ``<block>.value``
# used by both (what motiontune did before method version 2).
VALUE_SHARING = ("per_attention", "shared")


@dataclass(frozen=True)
class EmbeddingLayout:
    """Spatial layout of each embedding: ``1d`` = one vector per frame (1, N, C), ``2d`` = (H*W, N, C).

    The paper's design is query/key ``1d`` and value ``2d``; the other combinations are its ablation (sec. 4.3).
    ``value_sharing``: one of :data:`VALUE_SHARING` (the query/key embedding is always shared by the block's
    two temporal attentions, as in the public code's ``pos_embed``).
    """

    query_key: str = "1d"
    value: str = "2d"
    value_sharing: str = "per_attention"

    def __post_init__(self) -> None:
        for name in ("query_key", "value"):
            if getattr(self, name) not in EMBEDDING_LAYOUTS:
                raise ValueError(f"embedding layout {name}: '{getattr(self, name)}' is not one of {list(EMBEDDING_LAYOUTS)}")
        if self.value_sharing not in VALUE_SHARING:
            raise ValueError(f"value_sharing: '{self.value_sharing}' is not one of {list(VALUE_SHARING)}")

    @property
    def value_owners(self) -> tuple[str | None, ...]:
        """The attentions that own a value embedding (``None``: one shared by both)."""
        return TEMPORAL_ATTENTIONS if self.value_sharing == "per_attention" else (None,)


# {block path: (query_key (S, N, C), {attention name: value (S, N, C)})}: what one block's processors receive.
BlockEmbeddings = tuple[torch.Tensor, Mapping[str, torch.Tensor]]


def value_key(path: str, owner: str | None) -> str:
    """Artifact key of a value embedding: ``<block>.<attn>.value``, or ``<block>.value`` when shared."""
    return f"{path}.{owner}.{VALUE_SUFFIX}" if owner else f"{path}.{VALUE_SUFFIX}"


class MotionEmbeddings(nn.Module):
    """Zero-initialised query/key and value embeddings for a set of temporal blocks.

    For block i with C_i channels and an (H_i, W_i) feature map: ``query_key`` (1 or H_i*W_i, N, C_i), and a
    ``value`` (H_i*W_i or 1, N, C_i) per temporal attention (or one shared, see :class:`EmbeddingLayout`).
    ``self.value`` lists them block-major, attentions in :attr:`EmbeddingLayout.value_owners` order. Zero init
    means an untrained set changes nothing.
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
            for _ in layout.value_owners:
                self.value.append(nn.Parameter(torch.zeros(value_rows, num_frames, block.channels)))

    def by_block(self) -> dict[str, BlockEmbeddings]:
        """The parameters themselves (so gradients flow), grouped as :func:`motion_embeddings_attached` takes them."""
        owners = self.layout.value_owners
        out: dict[str, BlockEmbeddings] = {}
        for index, (path, query_key) in enumerate(zip(self.block_paths, self.query_key)):
            values = [self.value[index * len(owners) + j] for j in range(len(owners))]
            out[path] = (query_key, _values_by_attention(dict(zip(owners, values))))
        return out

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Artifact tensors keyed ``<block module path>.query_key`` and ``.attn1.value`` / ``.attn2.value``
        (``.value`` when shared)."""
        return {key: parameter.detach() for key, parameter in self._parameters_by_key().items()}

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
        owners = self.layout.value_owners
        out: dict[str, nn.Parameter] = {}
        for index, (path, query_key) in enumerate(zip(self.block_paths, self.query_key)):
            out[f"{path}.{QUERY_KEY_SUFFIX}"] = query_key
            for j, owner in enumerate(owners):
                out[value_key(path, owner)] = self.value[index * len(owners) + j]
        return out


def _values_by_attention(values: Mapping[str | None, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{None: v}`` (shared) -> ``{"attn1": v, "attn2": v}``; per-attention values pass through."""
    if set(values) == {None}:
        return {name: values[None] for name in TEMPORAL_ATTENTIONS}
    return {str(name): tensor for name, tensor in values.items()}


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


def split_by_block(tensors: Mapping[str, torch.Tensor]) -> dict[str, BlockEmbeddings]:
    """Group artifact tensors into ``{block path: (query_key, {attention: value})}``; a shared ``<block>.value``
    serves both temporal attention layers."""
    query_keys: dict[str, torch.Tensor] = {}
    values: dict[str, dict[str | None, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        path, _, suffix = key.rpartition(".")
        if suffix == QUERY_KEY_SUFFIX and path:
            query_keys[path] = tensor
            continue
        if suffix != VALUE_SUFFIX or not path:
            raise ValueError(f"motion embeddings: unexpected tensor '{key}'")
        block, _, owner = path.rpartition(".")
        if owner in TEMPORAL_ATTENTIONS and block:
            values.setdefault(block, {})[owner] = tensor
        else:
            values.setdefault(path, {})[None] = tensor
    out: dict[str, BlockEmbeddings] = {}
    for path in sorted(set(query_keys) | set(values)):
        owners = set(values.get(path, {}))
        if path not in query_keys or owners not in ({None}, set(TEMPORAL_ATTENTIONS)):
            raise ValueError(
                f"motion embeddings: block '{path}' needs a query_key tensor and either one shared value or "
                f"one value per attention ({', '.join(TEMPORAL_ATTENTIONS)})"
            )
        out[path] = (query_keys[path], _values_by_attention(values[path]))
    return out


@contextmanager
def motion_embeddings_attached(
    unet: nn.Module,
    embeddings_by_block: Mapping[str, BlockEmbeddings],
    value_scale: float = 1.0,
) -> Iterator[None]:
    """Install :class:`MotionEmbeddingAttnProcessor` on both temporal attentions of each block, then restore.

    Each attention gets the block's query/key embedding and its own value embedding. The tensors are used by
    reference, so during training gradients flow into the parameters.
    """
    layout = layout_for(unet)
    modules = dict(unet.named_modules())
    processors: dict[str, MotionEmbeddingAttnProcessor] = {}
    for path, (query_key, values) in embeddings_by_block.items():
        if path not in modules:
            raise ValueError(f"motion embeddings: the backbone has no module '{path}'")
        for attention_name in TEMPORAL_ATTENTIONS:
            name = layout.temporal_attention_path(path, attention_name)
            processors[name] = MotionEmbeddingAttnProcessor(query_key, values[attention_name], value_scale, name)
    with processors_installed(unet, processors, "motion embeddings"):
        yield
