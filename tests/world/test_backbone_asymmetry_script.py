"""benchmarks/world_backbone_asymmetry.py: the split it trains on and the initialisation lever it tries."""

from __future__ import annotations

import pytest
import torch

from motiontune.backbone.loading import load_backbone
from motiontune.world_models.time_symmetry import reversal_error


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/world_backbone_asymmetry.py")


def test_the_scripts_split_is_the_one_its_reports_were_measured_on(script):
    """The experiment reads the default backbone's split from conf/base; its reports name this one."""
    assert script.DROPPED_FAMILIES == ("shrink", "zoom_out")
    assert script.SPLIT["kept_directions"] == ["right", "down_right", "down", "up_right"]


def test_default_temporal_conv_init_makes_a_fresh_unet3d_time_asymmetric(script, project_root):
    unet = load_backbone(project_root / "data/06_models/backbones/tiny-t2v", device="cpu").unet
    generator = torch.Generator().manual_seed(0)
    size = int(unet.config.sample_size)
    latents = torch.randn((2, int(unet.config.in_channels), 8, size // 4, size // 4), generator=generator)
    text = torch.randn((2, 7, int(unet.config.cross_attention_dim)), generator=generator)
    assert reversal_error(unet, latents, 500, text) < 1e-4  # diffusers' zero init: exactly symmetric
    # One per resnet of the tiny UNet: 1 per down block (3), 2 in the mid block, 2 per up block (3 blocks).
    assert script.reinitialise_temporal_conv_outputs(unet, seed=0) == 3 + 2 + 3 * 2
    assert reversal_error(unet, latents, 500, text) > 0.05


def test_a_fresh_animatediff_folder_gets_the_committed_vae_tokenizer_and_scheduler(script, project_root, tmp_path):
    backbones = project_root / "data/06_models/backbones"
    out = tmp_path / "combined"
    # tiny-animatediff shares tiny-t2v's tokenizer; its scheduler (linear betas) is replaced by tiny-t2v's.
    script.copy_committed_parts(backbones / "tiny-t2v", backbones / "tiny-animatediff", out)
    assert sorted(p.name for p in out.iterdir()) == ["model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae"]
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (backbones / "tiny-t2v" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    backbone = load_backbone(out, device="cpu")
    assert type(backbone.unet).__name__ == "UNetMotionModel"
    assert backbone.scheduler_config["beta_schedule"] == "scaled_linear"
    with pytest.raises(ValueError, match=r"tokenizer \(vocab\.json\) is not the world's vocabulary"):
        script.copy_committed_parts(backbones / "world-t2v", backbones / "tiny-animatediff", tmp_path / "refused")


def test_a_simplified_caption_share_that_overfills_the_continued_stage_is_a_one_line_error(script, capsys, tmp_path):
    """Checked before any training: the share joins the refine stage's empty (0.1) and appearance (0.25) ones."""
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--simplified-caption-share", "0.9", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "caption shares must add up to at most 1, got 1.25" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--from-scratch", "--simplified-caption-share", "0.1"])
    assert "about the continued stage" in capsys.readouterr().err


def test_the_sanity_check_selects_benchmark_cases_by_family_and_refuses_unknown_ones(load_script, capsys, tmp_path):
    from motiontune.errors import exit_status_of

    sanity = load_script("benchmarks/world_sanity_check.py")
    # The benchmark's own check (world_benchmark.families), before anything loads: its line alone, status 2.
    status = exit_status_of(lambda: sanity.main(["--benchmark-cases", "--families", "zigzag,spiral", "--out", str(tmp_path)]))
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "world_benchmark.families: spiral not among the cases' families (translate, circle_clockwise, "
        "circle_counterclockwise, zigzag, grow, shrink, pan, zoom_in)"]
    assert not (tmp_path / "world_sanity_check_runs").exists()
    with pytest.raises(SystemExit):
        sanity.main(["--families", "zigzag"])
    assert "use it with --benchmark-cases" in capsys.readouterr().err


def test_the_sanity_check_ends_too_many_caption_variants_with_one_line_before_loading_anything(project_root, tmp_path):
    """A count the world's vocabulary cannot fill is a user's mistake: its message alone, status 2, no traceback."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(project_root / "benchmarks/world_sanity_check.py"), "--benchmark-cases", "--families",
         "translate", "--targets", "others", "--methods", "motion_embeddings", "--train-caption-variants", "14",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    # 6 colours x 4 shapes: 5 x 3 differ from the reference in both, 2 of them are the case's targets.
    assert done.stderr.strip().splitlines() == [
        "world_benchmark.train_caption_variants: only 13 colour/shape pairs differ from the reference's and the "
        "targets' (both colour and shape)"]
    assert not (tmp_path / "world_sanity_check_runs").exists()


def test_the_sanity_checks_contact_sheets_put_each_cases_reference_first_then_its_videos(load_script, tmp_path):
    import numpy as np
    from PIL import Image

    from motiontune.io.clip import VideoClip

    sanity = load_script("benchmarks/world_sanity_check.py")
    rng = np.random.default_rng(0)

    def clip() -> VideoClip:
        return VideoClip(rng.integers(0, 256, (5, 8, 10, 3), dtype=np.uint8), 8.0)

    videos = {"reference/translate_right": clip(), "reference/zigzag_down": clip(),
              "motion-embeddings/0/translate_right/00_a-blue-star": clip(),
              "motion-embeddings/1/translate_right/00_a-blue-star": clip(),
              "backbone/0/zigzag_down/01_a-red-circle": clip()}
    paths = sanity.write_contact_sheets(videos, tmp_path / "sheets", frames_per_video=2, cell_height=None)
    assert sorted(p.name for p in paths) == ["translate_right.png", "zigzag_down.png"]
    header, gap = 16, 2  # contact_sheet's defaults: a label strip above each row, 2 px between rows and cells
    right = np.asarray(Image.open(tmp_path / "sheets" / "translate_right.png"))
    assert right.shape[0] == 3 * (header + 8) + 2 * gap  # the reference and the two seeds' videos of that case
    reference = videos["reference/translate_right"].frames
    assert np.array_equal(right[header:header + 8, :10], reference[0])  # first row: the reference, first frame
    assert np.array_equal(right[header:header + 8, 10 + gap:20 + gap], reference[-1])  # ... and its last
    second = header + 8 + gap + header
    assert np.array_equal(right[second:second + 8, :10], videos["motion-embeddings/0/translate_right/00_a-blue-star"].frames[0])
    zigzag = np.asarray(Image.open(tmp_path / "sheets" / "zigzag_down.png"))
    assert zigzag.shape[0] == 2 * (header + 8) + gap


def test_the_sanity_check_draws_other_references_with_reference_seed(load_script, tmp_path, monkeypatch):
    import pandas as pd

    from motiontune.pipelines.world_benchmark import nodes

    sanity = load_script("benchmarks/world_sanity_check.py")
    given = []

    def benchmark(backbone, world, train, generate, evaluate, world_benchmark, fps, ray):
        given.append(world_benchmark)
        rows = pd.DataFrame([{"method": "Backbone", "reference_seed": world_benchmark["reference_seed"],
                              **dict.fromkeys(sanity.METRICS, 0.0)}])
        return rows, None, "", None, {}

    monkeypatch.setattr(nodes, "benchmark_on_world", benchmark)
    assert sanity.main(["--benchmark-cases", "--families", "zigzag", "--targets", "others", "--reference-seed", "8",
                        "--out", str(tmp_path)]) == 0
    assert given[0]["reference_seed"] == 8 and given[0]["families"] == ["zigzag"]
    assert "reference seed 8, seeds 0," in (tmp_path / "world_transfer_check.md").read_text(encoding="utf-8")
    assert sanity.main(["--benchmark-cases", "--out", str(tmp_path)]) == 0  # the configured draw by default
    assert given[1]["reference_seed"] == 7
