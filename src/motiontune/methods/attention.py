"""Attention processors that add motion embeddings inside temporal self-attention (seed 002 eq. 3).

``TA(F) = softmax(Wq(F + m_qk) (Wk(F + m_qk))^T / sqrt(d_k)) Wv(F + gamma * m_v)``: the query/key
embedding shifts the frame-to-frame attention map, the value embedding what each frame receives. As in
the public code, V is computed from the states without ``m_qk``.
"""

from __future__ import annotations

from typing import Any

import torch

from motiontune.backbone.attention_processor import HookedAttnProcessor


class MotionShapeError(ValueError):
    """A motion embedding does not fit the activations it is applied to."""


def broadcast_over_batch(embedding: torch.Tensor, rows: int, where: str) -> torch.Tensor:
    """Expand an embedding (S, N, C) to the temporal attention's rows (B*H*W, N, C).

    Rows are (b h w)-major as diffusers' ``TransformerTemporalModel`` lays them out, so a spatial
    embedding (S = H*W) is repeated once per video of the batch; S = 1 broadcasts everywhere.
    (The processor itself adds through :func:`add_over_batch`, which does not materialise the copy.)
    """
    spatial = _check_rows(embedding, rows, where)
    if spatial == 1:
        return embedding
    return embedding.repeat(rows // spatial, 1, 1)


def add_over_batch(states: torch.Tensor, embedding: torch.Tensor, where: str) -> torch.Tensor:
    """``states + broadcast_over_batch(embedding)`` for states (B*S, N, C), without copying the embedding.

    The states are viewed as (B, S, N, C) and the embedding (S, N, C) broadcast over B: each element is the
    same single addition as with the repeated embedding, so the result is bitwise identical.
    """
    rows = states.shape[0]
    spatial = _check_rows(embedding, rows, where)
    if spatial == 1:
        return states + embedding
    return (states.reshape(rows // spatial, spatial, *states.shape[1:]) + embedding).view(states.shape)


def _check_rows(embedding: torch.Tensor, rows: int, where: str) -> int:
    spatial = embedding.shape[0]
    if spatial != 1 and rows % spatial != 0:
        raise MotionShapeError(
            f"{where}: embedding has {spatial} spatial positions but the attention sees {rows} rows "
            f"(not a multiple); was it learnt at another resolution?"
        )
    return spatial


class MotionEmbeddingAttnProcessor(HookedAttnProcessor):
    """Scaled-dot-product temporal self-attention with additive query/key and value embeddings.

    ``query_key``: (S_qk, N, C) with S_qk = 1 (the paper's 1D design) or H*W; ``value``: (S_v, N, C)
    with S_v = H*W (the paper's 2D design) or 1. With both zero the result equals ``AttnProcessor2_0``.
    The embeddings enter through the query-key and value input hooks of :class:`HookedAttnProcessor`.
    """

    def __init__(self, query_key: torch.Tensor | None, value: torch.Tensor | None, value_scale: float, name: str):
        self.query_key = query_key
        self.value = value
        self.value_scale = value_scale
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise MotionShapeError(f"{self.name}: motion embeddings apply to temporal self-attention only")
        frames = hidden_states.shape[1]
        for label, tensor in (("query/key", self.query_key), ("value", self.value)):
            if tensor is not None and tensor.shape[1] != frames:
                raise MotionShapeError(
                    f"{self.name}: {label} embedding was learnt for {tensor.shape[1]} frames, "
                    f"the video has {frames}; generate with num_frames={tensor.shape[1]}"
                )
        return super().__call__(attn, hidden_states, None, attention_mask, temb, **kwargs)

    # The embeddings are broadcast over the batch (no per-call copy) and gamma scales the small (S, N, C)
    # embedding, not the (B*S, N, C) expansion; gamma = 1 skips the multiplication (x * 1.0 == x exactly).
    def query_key_input(self, attn: Any, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.query_key is None:
            return hidden_states
        return add_over_batch(hidden_states, self.query_key.to(hidden_states.dtype), self.name)

    def value_input(self, attn: Any, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.value is None or self.value_scale == 0.0:
            return hidden_states
        value_embedding = self.value.to(hidden_states.dtype)
        if self.value_scale != 1.0:
            value_embedding = self.value_scale * value_embedding
        return add_over_batch(hidden_states, value_embedding, self.name)
