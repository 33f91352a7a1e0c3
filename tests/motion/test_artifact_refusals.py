"""A motion artifact that does not match what its method makes is refused with one clear line, before any
UNet call: wrong shapes or dtypes, NaN/inf, missing manifest keys, unexpected or missing tensors. The files
are re-saved through the normal writer, so the sha256 check passes and these rules must catch them."""

from __future__ import annotations

import json

import pytest
import torch

from motiontune.methods.artifact import ArtifactError, MotionArtifact, load_motion_artifact, save_motion_artifact
from motiontune.training.customize import applied_motion, learn_motion
from motiontune.training.loop import TrainingConfig

from motion_helpers import random_reference

pytestmark = pytest.mark.usefixtures("restore_unet")

METHODS = {
    "motion_embeddings": {"blocks": "deep"},
    "vmc": {},
    "motionmatcher": {},
    "motiondirector": {},
}


@pytest.fixture(scope="module")
def artifacts(tiny_backbone):
    reference = random_reference(21)
    config = TrainingConfig(steps=1, learning_rate=1e-3, checkpoint_every=0, progress_bar=False)
    out = {}
    for method, options in METHODS.items():
        artifact, _ = learn_motion(tiny_backbone, method, options, config, reference, reference["row"])
        out[method] = artifact
    return out


def tampered(artifact: MotionArtifact, change) -> MotionArtifact:
    tensors = {key: value.clone() for key, value in artifact.tensors.items()}
    manifest = json.loads(json.dumps(artifact.manifest, default=str))
    change(tensors, manifest)
    return MotionArtifact(tensors=tensors, manifest=manifest)


def first_key(tensors):
    return min(tensors)


CASES = {
    "unexpected-tensor": (lambda t, m: t.__setitem__("down_blocks.9.extra.weight", torch.zeros(2)), "unexpected tensors: ['down_blocks.9.extra.weight']"),
    "missing-tensor": (lambda t, m: t.pop(first_key(t)), "tensors missing: ["),
    "wrong-shape": (lambda t, m: t.__setitem__(first_key(t), t[first_key(t)][..., :1].clone()), "; the method makes ("),
    "wrong-dtype": (lambda t, m: t.__setitem__(first_key(t), t[first_key(t)].to(torch.int32)), "has dtype torch.int32; motion tensors are floating point"),
}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_mismatched_tensors_are_refused_before_generation(tiny_backbone, artifacts, tmp_path, method, case):
    change, words = CASES[case]
    bad = tampered(artifacts[method], change)
    save_motion_artifact(tmp_path / "motion", bad)
    loaded = load_motion_artifact(tmp_path / "motion")
    with pytest.raises(ArtifactError) as error:
        with applied_motion(tiny_backbone, loaded, {}):
            pass
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"motion artifact ({method}): ") and words in message, message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_refused_at_load(artifacts, tmp_path, value):
    def poison(tensors, manifest):
        tensors[first_key(tensors)].view(-1)[0] = value

    save_motion_artifact(tmp_path / "motion", tampered(artifacts["vmc"], poison))
    with pytest.raises(ArtifactError, match="holds NaN or inf"):
        load_motion_artifact(tmp_path / "motion")


def test_missing_manifest_key_is_refused_at_load(artifacts, tmp_path):
    save_motion_artifact(tmp_path / "motion", artifacts["motion_embeddings"])
    manifest_path = tmp_path / "motion" / "motion.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["num_frames"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"manifest lacks \['num_frames'\]"):
        load_motion_artifact(tmp_path / "motion")


def test_the_loader_never_unpickles(artifacts, tmp_path):
    """A pickle under the tensors' name is not a safetensors file: refused by the sha256, and by the format."""
    import pickle

    save_motion_artifact(tmp_path / "motion", artifacts["motion_embeddings"])
    (tmp_path / "motion" / "motion.safetensors").write_bytes(pickle.dumps({"x": torch.zeros(1)}))
    with pytest.raises(ArtifactError):
        load_motion_artifact(tmp_path / "motion")
