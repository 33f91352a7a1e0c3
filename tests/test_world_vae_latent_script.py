"""benchmarks/world_vae_latent.py: its VAE variants are the architectures it names, and its readings go through them."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/world_vae_latent.py")


def test_vae_blocks_follow_the_downsampling(script):
    default = (32, 32, 64)
    assert script._vae_channels(default, 4) == default
    assert script._vae_channels(default, 2) == (32, 32)
    assert script._vae_channels(default, 8) == (32, 32, 64, 64)
    with pytest.raises(SystemExit):
        script._vae_channels(default, 3)


@pytest.mark.slow
def test_short_run_reconstructs_through_each_vae(script, tmp_path):
    script.main(["--downsampling", "4,2", "--vae-steps", "2", "--eval-clips", "4", "--timing-repeats", "1",
                 "--out", str(tmp_path)])
    rows = {row["vae"]: row for row in json.loads((tmp_path / "world_vae_latent_2_steps.json").read_text())["rows"]}
    originals, committed = rows.pop("none (original frames)"), next(r for name, r in rows.items() if "committed" in name)
    trained = {row["downsampling"]: row for name, row in rows.items() if "trained" in name}
    assert committed["latent"] == "8x8x4" and trained[4]["latent"] == "8x8x4" and trained[2]["latent"] == "16x16x4"
    assert originals["colour_accuracy"] == 1.0 and committed["colour_accuracy"] >= 0.75
    # Two steps of training reconstruct nothing: a reading that skipped the VAE would score like the originals.
    for row in trained.values():
        assert row["psnr_db"] < committed["psnr_db"] - 5 and row["shape_accuracy"] < originals["shape_accuracy"]
    assert trained[2]["unet_step_seconds"] > 1.5 * trained[4]["unet_step_seconds"]  # four times the latent cells
    assert "| trained here, 2 blocks | 2x | 16x16x4 |" in (tmp_path / "world_vae_latent_2_steps.md").read_text()


@pytest.mark.slow
def test_train_backbone_builds_the_default_recipe_on_the_larger_latent(script, tmp_path):
    from motiontune.backbone.loading import load_backbone
    from motiontune.generation.generate import GenerationConfig, generate_without_motion

    out = tmp_path / "backbone"
    script.main(["--train-backbone", "2", "--vae-steps", "1", "--stage-steps", "1,1,0", "--no-competence",
                 "--backbone-out", str(out), "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path)])
    backbone = load_backbone(str(out), device="cpu")
    assert backbone.vae_scale_factor == 2 and list(backbone.vae.config.block_out_channels) == [32, 32]
    assert type(backbone.unet).__name__ == "UNetMotionModel"  # the default architecture, not UNet3D
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["parts_from"] is None and summary["vae_steps"] == 1 and summary["diffusion_steps"] == 1
    frames = generate_without_motion(backbone, ["a red circle moving right"], 8, 32, 32,
                                     GenerationConfig.from_params({"steps": 2, "progress_bar": False}))[0]
    assert frames.shape == (8, 32, 32, 3)
