"""Attention processors that add motion embeddings inside temporal self-attention (seed 002 eq. 3).

``TA(F) = softmax(Wq(F + m_qk) (Wk(F + m_qk))^T / sqrt(d_k)) Wv(F + gamma * m_v)``: the query/key
embedding shifts the frame-to-frame attention map, the value embedding what each frame receives. As in
the public code, V is computed from the states without ``m_qk``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


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


class MotionEmbeddingAttnProcessor:
    """Scaled-dot-product temporal self-attention with additive query/key and value embeddings.

    ``query_key``: (S_qk, N, C) with S_qk = 1 (the paper's 1D design) or H*W; ``value``: (S_v, N, C)
    with S_v = H*W (the paper's 2D design) or 1. With both zero the result equals ``AttnProcessor2_0``.
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
        residual = hidden_states
        rows, frames, _ = hidden_states.shape
        for label, tensor in (("query/key", self.query_key), ("value", self.value)):
            if tensor is not None and tensor.shape[1] != frames:
                raise MotionShapeError(
                    f"{self.name}: {label} embedding was learnt for {tensor.shape[1]} frames, "
                    f"the video has {frames}; generate with num_frames={tensor.shape[1]}"
                )

        # The embeddings are broadcast over the batch (no per-call copy) and gamma scales the small (S, N, C)
        # embedding, not the (B*S, N, C) expansion; gamma = 1 skips the multiplication (x * 1.0 == x exactly).
        query_key_states = hidden_states
        if self.query_key is not None:
            query_key_states = add_over_batch(hidden_states, self.query_key.to(hidden_states.dtype), self.name)
        value_states = hidden_states
        if self.value is not None and self.value_scale != 0.0:
            value_embedding = self.value.to(hidden_states.dtype)
            if self.value_scale != 1.0:
                value_embedding = self.value_scale * value_embedding
            value_states = add_over_batch(hidden_states, value_embedding, self.name)

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, frames, rows)
            attention_mask = attention_mask.view(rows, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            query_key_states = attn.group_norm(query_key_states.transpose(1, 2)).transpose(1, 2)
            value_states = attn.group_norm(value_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(query_key_states)
        key = attn.to_k(query_key_states)
        value = attn.to_v(value_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(rows, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0)
        hidden_states = hidden_states.transpose(1, 2).reshape(rows, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        if attn.rescale_output_factor == 1.0:  # x / 1.0 == x exactly: skip a pass over the output
            return hidden_states
        return hidden_states / attn.rescale_output_factor
