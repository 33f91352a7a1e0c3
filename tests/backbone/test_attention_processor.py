"""Parity of the processor base with diffusers' AttnProcessor2_0 (the version it is adapted from)."""

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from motiontune.backbone.attention_processor import HookedAttnProcessor
from motiontune.methods.attention import MotionEmbeddingAttnProcessor
from motiontune.methods.attention_maps import AttentionMapProcessor, AttentionMapStore

QUERY_DIM, CONTEXT_DIM, HEADS, HEAD_DIM = 32, 24, 2, 16

CASES = {
    "self": {},
    "self, group norm, residual, rescale": {"norm_num_groups": 8, "residual_connection": True, "rescale_output_factor": 2.0},
    "self, qk norm": {"qk_norm": "layer_norm"},
    "cross": {"cross_attention_dim": CONTEXT_DIM},
    "cross, layer-norm context, residual": {"cross_attention_dim": CONTEXT_DIM, "cross_attention_norm": "layer_norm", "residual_connection": True},
    "cross, group-norm context": {"cross_attention_dim": CONTEXT_DIM, "cross_attention_norm": "group_norm", "cross_attention_norm_num_groups": 8},
}


def attention(options):
    torch.manual_seed(0)
    module = Attention(QUERY_DIM, heads=HEADS, dim_head=HEAD_DIM, **options).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return module


def inputs(options, masked, four_d=False):
    generator = torch.Generator().manual_seed(1)
    rows, length = 3, 6
    states = torch.randn(rows, length, QUERY_DIM, generator=generator)
    if four_d:
        states = torch.randn(rows, QUERY_DIM, 2, 3, generator=generator)
    context = torch.randn(rows, 5, CONTEXT_DIM, generator=generator) if "cross_attention_dim" in options else None
    key_length = length if context is None else context.shape[1]
    mask = -3.0 * torch.rand(rows, 1, key_length, generator=generator) if masked else None
    return states, context, mask


@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "mask"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_base_without_hooks_is_attn_processor_2_0(case, masked):
    module = attention(CASES[case])
    states, context, mask = inputs(CASES[case], masked)
    with torch.no_grad():
        expected = AttnProcessor2_0()(module, states, context, mask)
        got = HookedAttnProcessor()(module, states, context, mask)
        recorded = AttentionMapProcessor(AttentionMapStore(), "layer")(module, states, context, mask)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(recorded, expected, atol=1e-5, rtol=1e-5)
    if context is None:  # zero motion embeddings change nothing
        zeros = torch.zeros(1, states.shape[1], QUERY_DIM)
        with torch.no_grad():
            embedded = MotionEmbeddingAttnProcessor(zeros, zeros, 1.0, "layer")(module, states, None, mask)
        torch.testing.assert_close(embedded, expected, atol=1e-6, rtol=1e-6)


def test_four_d_input_with_residual_matches_too():
    options = {"norm_num_groups": 8, "residual_connection": True, "rescale_output_factor": 1.5}
    module = attention(options)
    states, _, _ = inputs(options, masked=False, four_d=True)
    with torch.no_grad():
        expected = AttnProcessor2_0()(module, states)
        got = HookedAttnProcessor()(module, states)
    assert got.shape == states.shape
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_the_value_hook_feeds_to_v_only():
    module = attention({})
    states, _, _ = inputs({}, masked=False)

    class ValueDoubled(HookedAttnProcessor):
        def value_input(self, attn, hidden_states):
            return 2 * hidden_states

    with torch.no_grad():
        doubled = ValueDoubled()(module, states)
        module.to_v.weight.mul_(2)  # to_v(2x) = (2W) x + b
        expected = AttnProcessor2_0()(module, states)
    torch.testing.assert_close(doubled, expected, atol=1e-6, rtol=1e-6)
