import pytest
import torch

from motiontune.backbone.layout import select_temporal_blocks
from motiontune.methods.attention import MotionShapeError, broadcast_over_batch
from motiontune.methods.embeddings import (
    EmbeddingLayout,
    MotionEmbeddings,
    debias_value,
    motion_embeddings_attached,
)


def by_block(embeddings):
    return embeddings.by_block()


def unet_output(backbone, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 4, 8, 16, 16, generator=generator)
    text = torch.randn(1, 77, 32, generator=generator)
    with torch.no_grad():
        return backbone.unet(sample, torch.tensor([400]), encoder_hidden_states=text).sample


def test_shapes_per_block_follow_the_design(tiny_backbone):
    blocks = select_temporal_blocks(tiny_backbone.unet, "all")
    embeddings = MotionEmbeddings(blocks, num_frames=8, latent_size=(16, 16))
    shapes = {k: tuple(v.shape) for k, v in embeddings.named_tensors().items()}
    # m_qk (1, N, C) per block; m_v (H_i * W_i, N, C) for each of attn1 and attn2 (public code: one vSpatial
    # per temporal attention), with H_i = 16 / stride.
    assert shapes["down_blocks.0.temp_attentions.0.transformer_blocks.0.query_key"] == (1, 8, 32)
    assert shapes["down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.value"] == (256, 8, 32)
    assert shapes["down_blocks.0.temp_attentions.0.transformer_blocks.0.attn2.value"] == (256, 8, 32)
    assert shapes["down_blocks.1.temp_attentions.0.transformer_blocks.0.attn2.value"] == (64, 8, 64)
    assert shapes["up_blocks.1.temp_attentions.1.transformer_blocks.0.attn1.value"] == (64, 8, 64)
    assert shapes["up_blocks.2.temp_attentions.0.transformer_blocks.0.attn1.value"] == (256, 8, 32)
    assert len(shapes) == 3 * 6
    assert all(torch.count_nonzero(t) == 0 for t in embeddings.named_tensors().values())


def test_ablation_layouts_change_only_the_spatial_axis(tiny_backbone):
    blocks = select_temporal_blocks(tiny_backbone.unet, "deep")
    embeddings = MotionEmbeddings(blocks, 8, (16, 16), EmbeddingLayout(query_key="2d", value="1d"))
    first = embeddings.block_paths[0]
    tensors = embeddings.named_tensors()
    assert tuple(tensors[f"{first}.query_key"].shape) == (64, 8, 64)
    assert tuple(tensors[f"{first}.attn1.value"].shape) == (1, 8, 64)
    with pytest.raises(ValueError, match="'3d' is not one of"):
        EmbeddingLayout(value="3d")


def test_zero_embeddings_leave_the_unet_output_unchanged(tiny_backbone):
    plain = unet_output(tiny_backbone)
    embeddings = MotionEmbeddings(select_temporal_blocks(tiny_backbone.unet, "all"), 8, (16, 16))
    with motion_embeddings_attached(tiny_backbone.unet, by_block(embeddings)):
        patched = unet_output(tiny_backbone)
    assert torch.equal(plain, patched)


def test_nonzero_embeddings_change_the_output_and_detach_restores_it(tiny_backbone):
    plain = unet_output(tiny_backbone)
    embeddings = MotionEmbeddings(select_temporal_blocks(tiny_backbone.unet, "deep"), 8, (16, 16))
    with torch.no_grad():
        for parameter in embeddings.parameters():
            parameter.normal_()
    with motion_embeddings_attached(tiny_backbone.unet, by_block(embeddings)):
        patched = unet_output(tiny_backbone)
    assert (plain - patched).abs().max() > 1e-3
    assert torch.equal(unet_output(tiny_backbone), plain)


def test_value_scale_zero_ignores_the_value_embedding(tiny_backbone):
    embeddings = MotionEmbeddings(select_temporal_blocks(tiny_backbone.unet, "deep"), 8, (16, 16))
    with torch.no_grad():
        for value in embeddings.value:
            value.normal_()
    plain = unet_output(tiny_backbone)
    with motion_embeddings_attached(tiny_backbone.unet, by_block(embeddings), value_scale=0.0):
        assert torch.equal(unet_output(tiny_backbone), plain)


def test_debias_matches_the_formulas_on_a_known_tensor():
    value = torch.tensor([[[1.0], [3.0], [6.0], [10.0]]])  # (S=1, N=4, C=1)
    # eq. 5: keep frame 0, then m[j] - m[j-1]
    assert debias_value(value, "frame_diff").flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert debias_value(value, "normalize").flatten().tolist() == [-4.0, -2.0, 1.0, 5.0]
    assert torch.equal(debias_value(value, "vanilla"), value)
    with pytest.raises(ValueError, match="'median' is not one of"):
        debias_value(value, "median")


def test_value_embedding_is_repeated_per_video_in_b_h_w_order():
    embedding = torch.arange(3.0).reshape(3, 1, 1)  # H*W = 3 positions
    rows = broadcast_over_batch(embedding, rows=6, where="test")
    assert rows.flatten().tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    with pytest.raises(MotionShapeError, match="3 spatial positions but the attention sees 7 rows"):
        broadcast_over_batch(embedding, rows=7, where="test")


def test_wrong_frame_count_is_a_clear_error(tiny_backbone):
    embeddings = MotionEmbeddings(select_temporal_blocks(tiny_backbone.unet, "deep"), 4, (16, 16))
    with motion_embeddings_attached(tiny_backbone.unet, by_block(embeddings)):
        with pytest.raises(MotionShapeError, match="learnt for 4 frames, the video has 8"):
            unet_output(tiny_backbone)


def test_each_temporal_attention_gets_its_own_value_embedding_and_shared_stays_an_option(tiny_backbone):
    from motiontune.methods.embeddings import split_by_block

    blocks = select_temporal_blocks(tiny_backbone.unet, "deep")
    path = blocks[0].path
    own = MotionEmbeddings(blocks, 8, (16, 16))
    with torch.no_grad():
        for parameter in own.parameters():
            parameter.normal_()
    grouped = split_by_block(own.named_tensors())
    assert not torch.equal(grouped[path][1]["attn1"], grouped[path][1]["attn2"])
    # attn1 and attn2 of one block receive different tensors: the processors hold what the artifact says.
    with motion_embeddings_attached(tiny_backbone.unet, grouped):
        block = dict(tiny_backbone.unet.named_modules())[path]
        assert block.attn1.processor.value is grouped[path][1]["attn1"]
        assert block.attn2.processor.value is grouped[path][1]["attn2"]
        assert block.attn1.processor.query_key is block.attn2.processor.query_key
        with_two = unet_output(tiny_backbone)
    # Giving attn2 attn1's value changes the output, so the second embedding is used.
    same = {p: (qk, {"attn1": v["attn1"], "attn2": v["attn1"]}) for p, (qk, v) in grouped.items()}
    with motion_embeddings_attached(tiny_backbone.unet, same):
        assert (unet_output(tiny_backbone) - with_two).abs().max() > 1e-4
    shared = MotionEmbeddings(blocks, 8, (16, 16), EmbeddingLayout(value_sharing="shared"))
    keys = set(shared.named_tensors())
    assert f"{path}.value" in keys and f"{path}.attn1.value" not in keys and len(keys) == 2 * len(blocks)
    values = split_by_block(shared.named_tensors())[path][1]
    assert values["attn1"] is values["attn2"]
    with pytest.raises(ValueError, match="'per_block' is not one of"):
        EmbeddingLayout(value_sharing="per_block")
    half = {k: v for k, v in own.named_tensors().items() if not k.endswith("attn2.value")}
    with pytest.raises(ValueError, match="one value per attention"):
        split_by_block(half)
