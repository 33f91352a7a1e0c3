import pytest
import torch

from motiontune.methods.artifact import ArtifactError, load_motion_artifact, save_motion_artifact
from motiontune.training.customize import check_artifact_fits, learn_motion
from motiontune.methods.base import build_method
from motiontune.methods.motion_embeddings import MotionEmbeddingsMethod
from motiontune.training.loop import TrainingConfig, TrainingDivergedError, train_motion
from motiontune.backbone.loading import BackboneError

from motion_helpers import FRAMES, PIXELS


@pytest.fixture(scope="module")
def reference(tiny_backbone):
    from motiontune.sampling.latents import encode_frames, encode_prompts

    generator = torch.Generator().manual_seed(1)
    frames = (torch.rand(8, 64, 64, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return {
        "latents": encode_frames(tiny_backbone, frames),
        "prompt_embeds": encode_prompts(tiny_backbone, ["a ball rolling to the right"]),
        "row": {
            "num_frames": 8, "height": 64, "width": 64, "source_path": "ref.mp4",
            "source_sha256": "0" * 64, "train_prompt": "a ball rolling to the right",
        },
    }


def quick(**overrides):
    values = {"steps": 4, "learning_rate": 0.05, "checkpoint_every": 0, "progress_bar": False}
    values.update(overrides)
    return TrainingConfig(**values)


def test_only_the_embeddings_train(tiny_backbone, reference):
    before = {k: v.clone() for k, v in tiny_backbone.unet.state_dict().items()}
    method = MotionEmbeddingsMethod(tiny_backbone, 8, 64, 64, blocks="deep")
    trainable = method.trainable_parameters()
    assert {tuple(p.shape) for p in trainable} == {(1, 8, 64), (64, 8, 64)}
    assert not any(p.requires_grad for p in tiny_backbone.unet.parameters())
    result = train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick())
    after = tiny_backbone.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.count_nonzero(t) > 0 for t in method.artifact_tensors().values())
    assert len(result.loss_history) == 4 and all(torch.isfinite(torch.tensor(result.loss_history)))


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tiny_backbone, reference, tmp_path):
    def run(steps, checkpoint_dir):
        method = MotionEmbeddingsMethod(tiny_backbone, 8, 64, 64, blocks="deep")
        train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick(steps=steps, checkpoint_every=2), checkpoint_dir)
        return method.artifact_tensors()

    uninterrupted = run(4, None)
    run(2, tmp_path)  # "dies" after its step-2 checkpoint
    resumed = run(4, tmp_path)
    assert uninterrupted.keys() == resumed.keys()
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


def test_divergence_stops_with_a_clear_message(tiny_backbone, reference):
    method = MotionEmbeddingsMethod(tiny_backbone, 8, 64, 64, blocks="deep")
    latents = reference["latents"].clone()
    latents[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="lower train.learning_rate"):
        train_motion(method, tiny_backbone, latents, reference["prompt_embeds"], quick())


def test_bad_training_settings_are_rejected(tiny_backbone):
    with pytest.raises(ValueError, match="train.steps: must be at least 1"):
        TrainingConfig(steps=0)
    with pytest.raises(ValueError, match="train.learning_rate: must be positive"):
        TrainingConfig(learning_rate=-1)
    with pytest.raises(ValueError, match="train.method: 'dreambooth' is not one of"):
        build_method("dreambooth", {}, tiny_backbone, FRAMES, PIXELS, PIXELS)
    with pytest.raises(ValueError, match="train.motion_embeddings.rank: unknown key"):
        build_method("motion_embeddings", {"rank": 4}, tiny_backbone, FRAMES, PIXELS, PIXELS)


def test_artifact_round_trip_and_refusals(tiny_backbone, reference, tmp_path):
    artifact, _ = learn_motion(
        tiny_backbone, "motion_embeddings", {"blocks": "deep"}, quick(),
        {"latents": reference["latents"], "prompt_embeds": reference["prompt_embeds"]}, reference["row"],
    )
    for key in ("method", "backbone", "num_frames", "blocks", "hyperparameters", "inference_defaults", "train", "source_video", "train_prompt"):
        assert key in artifact.manifest
    assert artifact.manifest["train"]["steps"] == 4
    save_motion_artifact(tmp_path / "motion", artifact)
    loaded = load_motion_artifact(tmp_path / "motion")
    assert loaded.tensors.keys() == artifact.tensors.keys()
    assert all(torch.equal(loaded.tensors[k], artifact.tensors[k]) for k in loaded.tensors)
    assert not list((tmp_path / "motion").glob("*.tmp"))
    check_artifact_fits(loaded, tiny_backbone, num_frames=8)
    with pytest.raises(BackboneError, match="learnt for 8 frames cannot generate 16"):
        check_artifact_fits(loaded, tiny_backbone, num_frames=16)
    loaded.manifest["backbone"] = {**loaded.manifest["backbone"], "unet_config_sha256": "f" * 64, "id_or_path": "cerspense/zeroscope_v2_576w"}
    with pytest.raises(BackboneError, match="learnt on backbone 'cerspense/zeroscope_v2_576w'.*does not fit backbone"):
        check_artifact_fits(loaded, tiny_backbone)
    # tampering with the tensors file is detected
    data = bytearray((tmp_path / "motion" / "motion.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "motion" / "motion.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        load_motion_artifact(tmp_path / "motion")


def test_same_seed_same_artifact_other_seed_other_artifact(tiny_backbone, reference):
    def run(seed):
        method = MotionEmbeddingsMethod(tiny_backbone, 8, 64, 64, blocks="deep")
        train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick(seed=seed))
        return method.artifact_tensors()

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_nan_mid_run_stops_naming_the_step_and_cause_and_keeps_the_last_good_checkpoint(tiny_backbone, reference, tmp_path):
    from safetensors import safe_open

    from motiontune.training.loop import CHECKPOINT_FILE

    method = MotionEmbeddingsMethod(tiny_backbone, 8, 64, 64, blocks="deep")
    real_loss = method.training_loss

    def loss_turning_nan(backbone, batch):
        loss = real_loss(backbone, batch)
        return loss * float("nan") if batch.step == 3 else loss

    method.training_loss = loss_turning_nan
    with pytest.raises(TrainingDivergedError) as error:
        train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick(steps=6, checkpoint_every=2), tmp_path)
    message = str(error.value)
    assert "\n" not in message and "loss became nan at step 3" in message
    assert "lower train.learning_rate (now 0.05)" in message and "float32" in message
    with safe_open(str(tmp_path / CHECKPOINT_FILE), framework="pt") as handle:
        assert handle.metadata()["step"] == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]


def test_several_captions_train_one_per_step_drawn_after_the_noise(tiny_backbone, reference):
    """K > 1 prompt embeddings: each step's batch holds exactly one of them, all are used over the run, and the
    noise and timesteps of every step are those of a one-caption run (the caption draw uses its own seed)."""
    from motiontune.sampling.latents import encode_prompts

    captions = encode_prompts(tiny_backbone, ["a ball rolling to the right", "a blue star rolling to the right",
                                              "a green square rolling to the right"])
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
    for count in (1, 3):
        method = MotionEmbeddingsMethod(tiny_backbone, 8, 64, 64, blocks="deep")
        loss = method.training_loss
        record = seen.setdefault(count, [])

        def recording_loss(backbone, batch, loss=loss, record=record):
            record.append((batch.noise.clone(), batch.timesteps.clone(), batch.prompt_embeds.clone()))
            return loss(backbone, batch)

        method.training_loss = recording_loss
        train_motion(method, tiny_backbone, reference["latents"], captions[:count], quick(steps=12))
    for (noise_one, steps_one, _), (noise_many, steps_many, _) in zip(seen[1], seen[3]):
        assert torch.equal(noise_one, noise_many) and torch.equal(steps_one, steps_many)
    picked = []
    for _, _, prompt in seen[3]:
        assert prompt.shape == (1, *captions.shape[1:])
        matches = [index for index in range(3) if torch.equal(prompt[0], captions[index])]
        assert len(matches) == 1
        picked.append(matches[0])
    assert set(picked) == {0, 1, 2}
    assert all(torch.equal(prompt[0], captions[0]) for _, _, prompt in seen[1])
