"""Artifact sizes: computed by each method's own code on meta-device UNets, and README's methods table agrees."""

import importlib.util
import re
from pathlib import Path

import pytest

from motiontune.methods.artifact_size import (
    ZEROSCOPE,
    Architecture,
    artifact_nbytes,
    format_megabytes,
    meta_backbone,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "artifact_sizes.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("artifact_sizes_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sizes(script):
    return script.sizes(ROOT)


def test_meta_device_sizes_equal_the_real_backbones(script, tiny_backbone):
    """prepare() on the meta-device UNet gives the same tensors as on the loaded tiny backbone."""
    tiny = script.tiny_architecture(ROOT)
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


def test_format_and_architecture_from_folder(tmp_path):
    assert [format_megabytes(n) for n in (466944, 1188864, 85032960, 775219200)] == ["0.467 MB", "1.19 MB", "85.0 MB", "775 MB"]
    tiny = Architecture.from_folder(ROOT / "data/06_models/backbones/tiny-t2v", 8, 64, 64)
    assert tiny.vae_block_out_channels == (32, 32, 64) and tiny.unet_config["block_out_channels"] == [32, 64, 64]
