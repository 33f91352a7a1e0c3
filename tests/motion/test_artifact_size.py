"""Artifact sizes: computed by each method's own code on meta-device UNets, and README's methods table agrees."""

import re
from pathlib import Path

import pytest

from motiontune.methods.artifact_size import (
    ANIMATEDIFF_V2,
    ANIMATEDIFF_V3,
    ZEROSCOPE,
    Architecture,
    artifact_nbytes,
    artifact_sizes,
    format_megabytes,
    meta_backbone,
    unet_parameter_count,
)

ROOT = Path(__file__).resolve().parents[2]
TINY_ANIMATEDIFF = ROOT / "data" / "06_models" / "backbones" / "tiny-animatediff"
METHOD_COLUMNS = ("motion_embeddings", "vmc", "motionmatcher", "motiondirector")


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("scripts/artifact_sizes.py")


@pytest.fixture(scope="module")
def sizes(script):
    return script.sizes(ROOT)


def tiny_animatediff_architecture(script) -> Architecture:
    tiny = script.tiny_architecture(ROOT)  # the video size of conf/base/parameters.yml
    return Architecture.from_folder(TINY_ANIMATEDIFF, tiny.num_frames, tiny.height, tiny.width, name="tiny-animatediff")


@pytest.fixture(scope="module")
def backbone_sizes(script):
    """The sizes of README's backbones table: every configured method on each architecture (meta device)."""
    architectures = [ZEROSCOPE, ANIMATEDIFF_V2, ANIMATEDIFF_V3, tiny_animatediff_architecture(script)]
    return artifact_sizes(script.configured_methods(ROOT), architectures)


def test_meta_device_sizes_equal_the_real_backbones(script, tiny_backbone):
    """prepare() on the meta-device UNet gives the same tensors as on the loaded tiny backbone (ZeroScope layout;
    the default backbone's layout is AnimateDiff's, whose twin the next test checks)."""
    video = script.tiny_architecture(ROOT)  # the video size of conf/base/parameters.yml
    tiny = Architecture.from_folder(ROOT / "data/06_models/backbones/tiny-t2v", video.num_frames, video.height, video.width, name="tiny-t2v")
    meta = meta_backbone(tiny)
    for label, (method, options) in script.configured_methods(ROOT).items():
        real = artifact_nbytes(method, options, tiny_backbone, tiny.num_frames, tiny.height, tiny.width)
        assert artifact_nbytes(method, options, meta, tiny.num_frames, tiny.height, tiny.width) == real, label


def test_zeroscope_numbers_match_a_count_by_hand(sizes):
    # deep: five 1280-channel blocks at latent / 4 (320x576 -> 40x72 latent -> 10x18), 24 frames, float32:
    # query_key (1, 24, 1280) + a value (180, 24, 1280) for each of attn1 and attn2 per block (public code).
    assert sizes["motion_embeddings (deep)"][ZEROSCOPE.name] == 5 * (1 + 2 * 10 * 18) * 24 * 1280 * 4
    # VMC: W_q, W_k, W_v (no bias) of attn1 and attn2 in 15 down/up + 1 mid temporal blocks.
    per_width = {320: 5, 640: 5, 1280: 6}
    assert sizes["vmc"][ZEROSCOPE.name] == sum(blocks * 2 * 3 * width * width * 4 for width, blocks in per_width.items())


def test_meta_device_sizes_equal_the_real_animatediff_backbone(script, tiny_animatediff):
    """The same on the tiny AnimateDiff backbone (UNetMotionModel) loaded from its folder."""
    tiny = tiny_animatediff_architecture(script)
    meta = meta_backbone(tiny)
    for label, (method, options) in script.configured_methods(ROOT).items():
        real = artifact_nbytes(method, options, tiny_animatediff, tiny.num_frames, tiny.height, tiny.width)
        assert artifact_nbytes(method, options, meta, tiny.num_frames, tiny.height, tiny.width) == real, label


def test_animatediff_numbers_match_a_count_by_hand(backbone_sizes):
    """SD 1.5 (channels 320, 640, 1280, 1280; 2 layers per block) + a motion adapter (one motion module per resnet:
    2 per down block, 3 per up block; v1-5-2 also one in the mid block), 512x512 -> 64x64 latent, 16 frames,
    float32 (4 bytes)."""
    v2, v3 = ANIMATEDIFF_V2.name, ANIMATEDIFF_V3.name
    # Motion Embeddings `all` (down + up: 20 modules), per module query_key (1, 16, C) + attn1 and attn2 values
    # (H_i*W_i, 16, C). (modules, C, H_i*W_i): 320 at 64x64 (down 0: 2, up 3: 3), 640 at 32x32 (down 1, up 2),
    # 1280 at 16x16 (down 2, up 1), 1280 at 8x8 (down 3, up 0).
    groups = [(5, 320, 64 * 64), (5, 640, 32 * 32), (5, 1280, 16 * 16), (5, 1280, 8 * 8)]
    embeddings = sum(n * (1 + 2 * hw) * 16 * c * 4 for n, c, hw in groups)
    assert backbone_sizes["motion_embeddings"][v2] == backbone_sizes["motion_embeddings"][v3] == embeddings == 1_521_561_600
    # deep: the ten 1280-channel ones.
    deep = sum(n * (1 + 2 * hw) * 16 * c * 4 for n, c, hw in groups[2:])
    assert backbone_sizes["motion_embeddings (deep)"][v2] == backbone_sizes["motion_embeddings (deep)"][v3] == deep == 262_963_200
    # VMC: W_q, W_k, W_v (C x C, no bias: motion_attention_bias false) of attn1 and attn2 of every motion module,
    # the mid one included. Modules per width: 320: 5, 640: 5, 1280: 10 (+ 1 mid with v1-5-2).
    for name, per_width in ((v2, {320: 5, 640: 5, 1280: 11}), (v3, {320: 5, 640: 5, 1280: 10})):
        assert backbone_sizes["vmc"][name] == sum(n * 2 * 3 * c * c * 4 for c, n in per_width.items())
    assert (backbone_sizes["vmc"][v2], backbone_sizes["vmc"][v3]) == (493_977_600, 454_656_000)
    # LoRA r = 32 on a C_in -> C_out Linear: 32 * (C_in + C_out) parameters. A temporal block's attn1 and attn2
    # (to_q, to_k, to_v, to_out.0: C -> C) = 2 * 4 * 64 C, its GEGLU feed-forward (C -> 8C, 4C -> C) = 32 * 14 C:
    # 960 C per block. Sum of C over the 20 down/up motion modules: 17600 (+ 1280 mid with v1-5-2).
    temporal_channels = {v2: 17600 + 1280, v3: 17600}
    for name, channels in temporal_channels.items():
        assert backbone_sizes["motiondirector"][name] == 960 * channels * 4  # the temporal LoRA only
    # MotionMatcher adds the spatial LoRA on attn1 + ff of the 16 spatial transformers: 4 * 64 C + 32 * 14 C = 704 C;
    # their C: down 2 x (320, 640, 1280), mid 1280, up 3 x (1280, 640, 320) = 12480.
    for name, channels in temporal_channels.items():
        assert backbone_sizes["motionmatcher"][name] == (960 * channels + 704 * 12480) * 4
    # The tiny AnimateDiff (channels 32, 64, 64, one layer per block) at 32x32 -> 8x8 latent (VAE 4x), 8 frames:
    # `all` = down (32 @ 8x8, 64 @ 4x4, 64 @ 2x2) + up (2 x 64 @ 2x2, 2 x 64 @ 4x4, 2 x 32 @ 8x8).
    tiny_groups = [(3, 32, 64), (3, 64, 16), (3, 64, 4)]
    assert backbone_sizes["motion_embeddings"]["tiny-animatediff"] == sum(n * (1 + 2 * hw) * 8 * c * 4 for n, c, hw in tiny_groups)


def test_unet_parameter_counts():
    # SD 1.5's UNet (its model card: 860M) plus the motion modules; ZeroScope's UNet3D ~1.4B.
    assert round(unet_parameter_count(ANIMATEDIFF_V2) / 1e6, 1) == 1312.7
    assert round(unet_parameter_count(ANIMATEDIFF_V3) / 1e6, 1) == 1276.7
    assert round(unet_parameter_count(ZEROSCOPE) / 1e6, 1) == 1411.2


def methods_table_rows() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `(\w+)` \|(.*)\|$", line)
        if match and "artifact: tiny / ZeroScope" not in line:
            rows.setdefault(match.group(1), [cell.strip() for cell in match.group(2).split(" | ")])
    return rows


def test_readme_methods_table_has_the_computed_sizes(sizes):
    header = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if "artifact: tiny / ZeroScope" in line)
    column = [cell.strip() for cell in header.strip("|").split("|")].index("artifact: tiny / ZeroScope") - 1
    rows = methods_table_rows()
    for method in ("motion_embeddings", "vmc", "motionmatcher", "motiondirector"):
        cell = rows[method][column]
        expected = f"{format_megabytes(sizes[method]['tiny'])} / {format_megabytes(sizes[method][ZEROSCOPE.name])}"
        assert expected in cell, f"README {method}: '{cell}' lacks '{expected}' (python scripts/artifact_sizes.py)"
    deep = sizes["motion_embeddings (deep)"]
    assert f"`deep`: {format_megabytes(deep['tiny'])} / {format_megabytes(deep[ZEROSCOPE.name])}" in rows["motion_embeddings"][column]


def backbone_size_rows() -> dict[str, list[str]]:
    """README's "Artifact size per backbone" table: ``{first cell: the other cells}``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Artifact size per backbone", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| backbone"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_readme_backbone_sizes_table_has_the_computed_sizes(backbone_sizes):
    rows = backbone_size_rows()
    for name in (ZEROSCOPE.name, ANIMATEDIFF_V2.name, ANIMATEDIFF_V3.name, "tiny-animatediff"):
        row = next((cells for first, cells in rows.items() if first.startswith(f"**{name}**")), None)
        assert row is not None, f"README backbones table: no row for {name}"
        every, deep = backbone_sizes["motion_embeddings"][name], backbone_sizes["motion_embeddings (deep)"][name]
        expected = [f"{format_megabytes(every)} / {format_megabytes(deep)}"]
        expected += [format_megabytes(backbone_sizes[method][name]) for method in METHOD_COLUMNS[1:]]
        assert row[: len(expected)] == expected, f"README backbones table, {name}: {row} != {expected}"


def test_readme_backbones_table_has_the_parameter_counts():
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("## Backbones", 1)[1].split("\n## ", 1)[0]
    for architecture in (ZEROSCOPE, ANIMATEDIFF_V2, ANIMATEDIFF_V3):
        millions = f"{unet_parameter_count(architecture) / 1e6:,.0f} M"
        assert millions in text, f"README Backbones: {architecture.name}'s UNet parameters ({millions}) are missing"


def test_format_and_architecture_from_folder(tmp_path):
    assert [format_megabytes(n) for n in (466944, 1188864, 85032960, 775219200)] == ["0.467 MB", "1.19 MB", "85.0 MB", "775 MB"]
    tiny = Architecture.from_folder(ROOT / "data/06_models/backbones/tiny-t2v", 8, 64, 64)
    assert tiny.vae_block_out_channels == (32, 32, 64) and tiny.unet_config["block_out_channels"] == [32, 64, 64]
    animatediff = Architecture.from_folder(TINY_ANIMATEDIFF, 8, 32, 32)
    assert animatediff.unet_class == "UNetMotionModel" and animatediff.motion_adapter_config is None
    assert ANIMATEDIFF_V3.unet_class == "UNetMotionModel" and ANIMATEDIFF_V3.motion_adapter_config["use_motion_mid_block"] is False
