"""VMC: only the temporal attention projections train; the artifact holds exactly those weights."""

import pytest
import torch

from motiontune.methods.artifact import load_motion_artifact, save_motion_artifact
from motiontune.training.customize import applied_motion, learn_motion
from motiontune.methods.losses import vmc_loss
from motiontune.methods.base import build_method, recommended_training
from motiontune.training.loop import train_motion
from motiontune.methods.vmc import VMCMethod

from motion_helpers import FRAMES, PIXELS, quick_config as quick, random_reference, unet_output

pytestmark = pytest.mark.usefixtures("restore_unet")


@pytest.fixture(scope="module")
def reference():
    return random_reference(3)


def snapshot(unet):
    return {name: (parameter, parameter.detach().clone()) for name, parameter in unet.named_parameters()}


def assert_restored(unet, before):
    after = dict(unet.named_parameters())
    assert after.keys() == before.keys()
    for name, (parameter, value) in before.items():
        assert after[name] is parameter, name
        assert torch.equal(after[name], value), name


def expected_keys(unet, include_transformer_in=False):
    keys = set()
    for name, _ in unet.named_modules():
        in_temporal = ".temp_attentions." in name or (include_transformer_in and name.startswith("transformer_in."))
        if in_temporal and name.endswith(("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q", "attn2.to_k", "attn2.to_v")):
            keys.add(f"{name}.weight")
    return keys


def test_only_temporal_qkv_projections_train_and_nothing_else_changes(tiny_backbone, reference):
    unet = tiny_backbone.unet
    method = VMCMethod(tiny_backbone, FRAMES, PIXELS, PIXELS)
    keys = set(method.artifact_tensors())
    assert keys == expected_keys(unet)
    assert len(keys) == 7 * 2 * 3  # 7 temporal transformers besides transformer_in, attn1 + attn2, q/k/v
    assert not any(key.startswith("transformer_in") or ".attentions." in key for key in keys)

    trainable = {id(p) for p in method.trainable_parameters()}
    assert not any(p.requires_grad for p in unet.parameters())
    with method.training_context(tiny_backbone):
        assert {id(p) for p in unet.parameters() if p.requires_grad} == trainable
    assert not any(p.requires_grad for p in unet.parameters())

    before = snapshot(unet)
    originals = {key: value.clone() for key, value in method.artifact_tensors().items()}
    result = train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick())
    assert len(result.loss_history) == 2 and all(torch.isfinite(torch.tensor(result.loss_history)))
    assert_restored(unet, before)
    trained = method.artifact_tensors()
    assert all(not torch.equal(trained[key], originals[key]) for key in keys)


def test_options_choose_the_projections_and_transformer_in(tiny_backbone):
    method = VMCMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, projections=["to_v"], include_transformer_in=True)
    keys = set(method.artifact_tensors())
    assert {key for key in keys if key.startswith("transformer_in.")} == {
        "transformer_in.transformer_blocks.0.attn1.to_v.weight", "transformer_in.transformer_blocks.0.attn2.to_v.weight"
    }
    assert all(key.endswith("to_v.weight") for key in keys) and len(keys) == 8 * 2
    with pytest.raises(ValueError, match="must be a non-empty subset"):
        VMCMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, projections=["to_x"])


def test_loss_is_the_configured_vmc_form(tiny_backbone):
    prediction, target = torch.randn(1, 4, FRAMES, 8, 8), torch.randn(1, 4, FRAMES, 8, 8)
    for form in ("paper", "public_code", "l2"):
        assert torch.equal(VMCMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, vmc_form=form).loss(prediction, target), vmc_loss(prediction, target, form=form))
    with pytest.raises(ValueError, match="vmc_form: 'cos' is not one of"):
        VMCMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, vmc_form="cos")


def test_untrained_artifact_is_the_original_weights_and_changes_nothing(tiny_backbone, reference):
    unet = tiny_backbone.unet
    method = VMCMethod(tiny_backbone, FRAMES, PIXELS, PIXELS)
    parameters = dict(unet.named_parameters())
    assert all(torch.equal(tensor, parameters[key]) for key, tensor in method.artifact_tensors().items())
    plain = unet_output(tiny_backbone, reference)
    before = snapshot(unet)
    with VMCMethod.applied(tiny_backbone.unet, method.artifact_tensors(), {}):
        assert torch.equal(unet_output(tiny_backbone, reference), plain)
    assert_restored(unet, before)


def test_artifact_round_trip_applies_identically_and_restores_the_backbone(tiny_backbone, reference, tmp_path):
    unet = tiny_backbone.unet
    artifact, _ = learn_motion(
        tiny_backbone, "vmc", {"vmc_form": "paper"}, quick(learning_rate=1e-2),
        {"latents": reference["latents"], "prompt_embeds": reference["prompt_embeds"]}, reference["row"],
    )
    assert artifact.manifest["inference_defaults"] == {
        "noise_init": "inversion", "guidance_scale": 10.0, "steps": 50,
        # public train_inference.py: the fine-tuned UNet inverts the reference, under "", with the sampling steps
        "inversion_model": "customised", "inversion_prompt": "empty", "inversion_steps": None,
    }
    assert artifact.manifest["hyperparameters"]["vmc_form"] == "paper"
    assert len(artifact.manifest["blocks"]) == 7
    loaded = load_motion_artifact(save_motion_artifact(tmp_path / "motion", artifact))
    assert loaded.tensors.keys() == artifact.tensors.keys()

    plain = unet_output(tiny_backbone, reference)
    before = snapshot(unet)
    with VMCMethod.applied(tiny_backbone.unet, artifact.tensors, {}):
        in_memory = unet_output(tiny_backbone, reference)
    with applied_motion(tiny_backbone, loaded, {}):
        from_disk = unet_output(tiny_backbone, reference)
    assert torch.equal(in_memory, from_disk)
    assert (in_memory - plain).abs().max() > 1e-4
    assert_restored(unet, before)
    assert torch.equal(unet_output(tiny_backbone, reference), plain)


def test_an_artifact_that_does_not_fit_is_refused_before_anything_changes(tiny_backbone):
    unet = tiny_backbone.unet
    before = snapshot(unet)
    key = "down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.to_q.weight"
    with pytest.raises(ValueError, match=r"vmc artifact: '.*to_q.weight' has shape \(3, 3\)"):
        with VMCMethod.applied(tiny_backbone.unet, {key: torch.zeros(3, 3)}, {}):
            pass
    with pytest.raises(ValueError, match="vmc artifact: the backbone has no parameter 'down_blocks.9.x.weight'"):
        with VMCMethod.applied(tiny_backbone.unet, {key: unet.get_parameter(key).detach(), "down_blocks.9.x.weight": torch.zeros(1)}, {}):
            pass
    assert_restored(unet, before)


def test_build_method_and_recommended_training(tiny_backbone):
    assert isinstance(build_method("vmc", {"vmc_form": "l2", "training": {"steps": 10}}, tiny_backbone, FRAMES, PIXELS, PIXELS), VMCMethod)
    with pytest.raises(ValueError, match="train.vmc.rank: unknown key"):
        build_method("vmc", {"rank": 4}, tiny_backbone, FRAMES, PIXELS, PIXELS)
    # VMC alone trains on the appearance-invariant prompt (sec. 3.2, public code)
    assert recommended_training("vmc") == {"steps": 400, "learning_rate": 1e-4, "weight_decay": 1e-2, "max_grad_norm": 1.0, "simplified_prompt": True}
    assert recommended_training("vmc", {"training": {"steps": 50}})["steps"] == 50
    with pytest.raises(ValueError, match=r"train.vmc.training.lr: unknown key"):
        recommended_training("vmc", {"training": {"lr": 1}})
