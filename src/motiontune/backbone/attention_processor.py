"""The base of motiontune's attention processors: diffusers' attention with three hooks.

Adapted from diffusers' ``AttnProcessor2_0`` (``diffusers/models/attention_processor.py``, diffusers 0.42.1, the
pinned version): the same preparation of the states (spatial norm, 4D input, attention mask, group norm, cross
norm, per-head views, q/k norms), projection and output (to_out, residual, rescale). With no hook overridden the
output equals ``AttnProcessor2_0``'s (``tests/backbone/test_attention_processor.py``). The hooks:

- :meth:`HookedAttnProcessor.query_key_input`: the states that feed ``to_q`` (and, in self-attention, ``to_k``);
- :meth:`HookedAttnProcessor.value_input`: the states that feed ``to_v`` in self-attention;
- :meth:`HookedAttnProcessor.attend`: the attention step on per-head (rows, heads, L, d) query, key and value.

Both input hooks see the states after the spatial norm and the 4D -> 3D view and before the group norm; in
cross-attention key and value come from the encoder states and only :meth:`query_key_input` applies (to the
query's states).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class HookedAttnProcessor:
    """``AttnProcessor2_0`` with overridable query-key input, value input and attend steps."""

    def query_key_input(self, attn: Any, hidden_states: torch.Tensor) -> torch.Tensor:
        """The states from which query (and, in self-attention, key) are projected."""
        return hidden_states

    def value_input(self, attn: Any, hidden_states: torch.Tensor) -> torch.Tensor:
        """The states from which value is projected in self-attention."""
        return hidden_states

    def attend(
        self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """(rows, heads, L_q, d) attention output from per-head query, key and value (mask: (rows, heads, *, L_k))."""
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)

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
        rows, key_length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, key_length, rows)
            attention_mask = attention_mask.view(rows, attn.heads, -1, attention_mask.shape[-1])

        query_key_states = self.query_key_input(attn, hidden_states)
        value_states = self.value_input(attn, hidden_states) if encoder_hidden_states is None else None
        same_input = value_states is query_key_states
        if attn.group_norm is not None:
            query_key_states = attn.group_norm(query_key_states.transpose(1, 2)).transpose(1, 2)
            if value_states is not None:
                value_states = query_key_states if same_input else attn.group_norm(value_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(query_key_states)
        if encoder_hidden_states is None:
            key = attn.to_k(query_key_states)
            value = attn.to_v(value_states)
        else:
            if attn.norm_cross:
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

        hidden_states = self.attend(attn, query, key, value, attention_mask)
        hidden_states = hidden_states.transpose(1, 2).reshape(rows, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        if attn.rescale_output_factor == 1.0:  # x / 1.0 == x exactly: skip a pass over the output
            return hidden_states
        return hidden_states / attn.rescale_output_factor
