"""``motiontune.load_motion`` on the UNet of someone else's diffusers pipeline: the pipeline then generates what
motiontune's own generation gives with the motion (same start latents), and ``remove()`` gives the plain
pipeline back; both families, a Motion Embeddings artifact and a LoRA one (VMC too)."""

from __future__ import annotations

import pytest
import torch

import motiontune
from motiontune.backbone.loading import BackboneError

from export_helpers import motiontune_latents, pipeline_for, pipeline_latents, start_latents, trained_artifact

RELATIVE_TOLERANCE = 1e-5  # of the largest |latent| (the tiny model's reach ~70 after 5 guided steps)


def _relative(theirs: torch.Tensor, ours: torch.Tensor) -> float:
    return (theirs - ours).abs().max().item() / ours.abs().max().item()


@pytest.mark.parametrize("method", ["motion_embeddings", "motiondirector", "vmc"])
def test_a_pipeline_with_load_motion_generates_motiontunes_video(tiny_backbone_of_each_family, tmp_path, method):
    backbone = tiny_backbone_of_each_family
    if method == "vmc" and backbone.family != "animatediff":
        pytest.skip("VMC once is enough (its application is one parameter swap, family-blind)")
    folder = trained_artifact(backbone, method, tmp_path / "motion", inference={"lora_scale": 0.7} if method == "motiondirector" else None)
    pipeline = pipeline_for(backbone)
    weights = {name: tensor.clone() for name, tensor in pipeline.unet.state_dict().items()}
    processors = {name: type(processor) for name, processor in pipeline.unet.attn_processors.items()}
    start = start_latents(backbone)
    plain = pipeline_latents(pipeline, start)

    motion = motiontune.load_motion(pipeline.unet, folder)
    assert motion.active and motion.method == method
    theirs = pipeline_latents(pipeline, start)
    motion.remove()
    motion.remove()  # a second remove does nothing
    ours = motiontune_latents(backbone, folder, start)
    print(f"{backbone.family} {method}: max |pipeline with load_motion - motiontune| = {(theirs - ours).abs().max().item():.2e} "
          f"({_relative(theirs, ours):.1e} of max |latent|)")
    assert _relative(theirs, ours) <= RELATIVE_TOLERANCE
    assert _relative(plain, ours) > 100 * RELATIVE_TOLERANCE  # the motion acts: the comparison can fail

    # Removed: the same UNet as loaded (weights, processors) and the plain pipeline's output.
    assert all(torch.equal(weights[name], tensor) for name, tensor in pipeline.unet.state_dict().items())
    assert set(pipeline.unet.state_dict()) == set(weights)
    assert {name: type(processor) for name, processor in pipeline.unet.attn_processors.items()} == processors
    assert torch.equal(pipeline_latents(pipeline, start), plain)

    # As a context manager, with an inference option overriding the artifact's default, as generation takes it.
    option = {"motion_embeddings": {"value_scale": 0.5}, "motiondirector": {"lora_scale": 0.3}, "vmc": {}}[method]
    with motiontune.load_motion(pipeline.unet, folder, **option) as scoped:
        assert scoped.active and all(scoped.options[key] == value for key, value in option.items())
        theirs = pipeline_latents(pipeline, start)
    if option:
        ours = motiontune_latents(backbone, folder, start, **option)
        assert _relative(theirs, ours) <= RELATIVE_TOLERANCE and _relative(plain, ours) > 100 * RELATIVE_TOLERANCE
    assert not scoped.active and torch.equal(pipeline_latents(pipeline, start), plain)


def test_load_motion_refuses_an_artifact_learnt_on_another_unet(tiny_backbone, tiny_animatediff, tmp_path):
    folder = trained_artifact(tiny_backbone, "motiondirector", tmp_path / "motion")
    with pytest.raises(BackboneError, match=r"learnt on backbone '.*tiny-t2v' \(UNet config [0-9a-f]{12}\) does not fit this UNetMotionModel"):
        motiontune.load_motion(tiny_animatediff.unet, folder)


def test_import_motiontune_is_cheap_and_load_motion_is_public():
    import subprocess
    import sys

    code = "import sys, motiontune; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules; print(callable(motiontune.load_motion))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr
    assert "load_motion" in dir(motiontune) and "export_motion" in motiontune.__all__
