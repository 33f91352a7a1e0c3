"""Motion Embeddings: every block preset, loss and embedding layout trains through the real loop."""

import pytest
import torch

from motiontune.methods.losses import get_loss
from motiontune.methods.base import build_method, recommended_training
from motiontune.methods.motion_embeddings import MotionEmbeddingsMethod
from motiontune.training.loop import TrainingConfig, train_motion

from motion_helpers import FRAMES, PIXELS, random_reference

pytestmark = pytest.mark.usefixtures("restore_unet")


@pytest.fixture(scope="module")
def reference():
    return random_reference(6)


def train_two_steps(backbone, reference, **options):
    unet = backbone.unet
    before = {name: value.clone() for name, value in unet.state_dict().items()}
    processors = {name: type(module.processor) for name, module in unet.named_modules() if hasattr(module, "set_processor")}
    method = MotionEmbeddingsMethod(backbone, FRAMES, PIXELS, PIXELS, **options)
    config = TrainingConfig(steps=2, learning_rate=0.05, checkpoint_every=0, progress_bar=False)
    result = train_motion(method, backbone, reference["latents"], reference["prompt_embeds"], config)
    assert len(result.loss_history) == 2 and all(torch.isfinite(torch.tensor(result.loss_history)))
    after = unet.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert processors == {name: type(module.processor) for name, module in unet.named_modules() if hasattr(module, "set_processor")}
    assert not any(p.requires_grad for p in unet.parameters())
    tensors = method.artifact_tensors()
    assert all(torch.count_nonzero(tensor) > 0 for tensor in tensors.values())
    return method, tensors, result


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ("all", 6),  # tiny backbone: every down and up temporal block
        ("deep", 3),  # the 64-channel ones (mid excluded)
        (["down_blocks.1", "up_blocks.1.temp_attentions.0"], 2),
    ],
)
def test_block_selections_train(tiny_backbone, reference, blocks, expected):
    method, tensors, _ = train_two_steps(tiny_backbone, reference, blocks=blocks)
    assert len(method.hyperparameters()["block_paths"]) == expected
    assert len(tensors) == 3 * expected  # query_key + a value for attn1 and for attn2 per block


@pytest.mark.parametrize(
    ("loss", "vmc_form"),
    [("ddpm", "paper"), ("vmc", "paper"), ("vmc", "public_code"), ("vmc", "l2"), ("debiased_temporal", "paper")],
)
def test_losses_train(tiny_backbone, reference, loss, vmc_form):
    method, _, _ = train_two_steps(tiny_backbone, reference, blocks="deep", loss=loss, vmc_form=vmc_form)
    hyperparameters = method.hyperparameters()
    assert hyperparameters["loss"] == loss
    assert hyperparameters.get("vmc_form") == (vmc_form if loss == "vmc" else None)


@pytest.mark.parametrize("query_key_layout", ["1d", "2d"])
@pytest.mark.parametrize("value_layout", ["1d", "2d"])
def test_embedding_layouts_train(tiny_backbone, reference, query_key_layout, value_layout):
    _, tensors, _ = train_two_steps(
        tiny_backbone, reference, blocks=["down_blocks.1"], query_key_layout=query_key_layout, value_layout=value_layout
    )
    positions = {"1d": 1, "2d": 4 * 4}  # down_blocks.1 works on the 8x8 latent halved
    key = "down_blocks.1.temp_attentions.0.transformer_blocks.0"
    assert tuple(tensors[f"{key}.query_key"].shape) == (positions[query_key_layout], FRAMES, 64)
    assert tuple(tensors[f"{key}.attn1.value"].shape) == (positions[value_layout], FRAMES, 64)
    assert tuple(tensors[f"{key}.attn2.value"].shape) == (positions[value_layout], FRAMES, 64)


def test_loss_selection_reaches_the_loss_function(tiny_backbone):
    prediction, target = torch.randn(1, 4, FRAMES, 8, 8), torch.randn(1, 4, FRAMES, 8, 8)
    method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, loss="vmc", vmc_form="l2")
    assert torch.equal(method.loss(prediction, target), get_loss("vmc", form="l2")(prediction, target))
    debiased = MotionEmbeddingsMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, loss="debiased_temporal")
    first = debiased.loss(prediction, target, generator=torch.Generator().manual_seed(0))
    again = debiased.loss(prediction, target, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, again) and first > get_loss("ddpm")(prediction, target)
    with pytest.raises(ValueError, match="vmc_form: 'abs' is not one of"):
        MotionEmbeddingsMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, loss="vmc", vmc_form="abs")
    with pytest.raises(ValueError, match="loss: 'l1' is not one of"):
        build_method("motion_embeddings", {"loss": "l1"}, tiny_backbone, FRAMES, PIXELS, PIXELS)


def test_debiased_training_is_reproducible_from_the_seed(tiny_backbone, reference):
    _, first, run = train_two_steps(tiny_backbone, reference, blocks="deep", loss="debiased_temporal")
    _, second, again = train_two_steps(tiny_backbone, reference, blocks="deep", loss="debiased_temporal")
    assert run.loss_history == again.loss_history
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_recommended_training_and_the_training_block(tiny_backbone):
    assert recommended_training("motion_embeddings") == {"steps": 800, "learning_rate": 5e-2, "weight_decay": 1e-2, "max_grad_norm": None, "simplified_prompt": False}
    assert isinstance(build_method("motion_embeddings", {"blocks": "deep", "training": {"steps": 300}}, tiny_backbone, FRAMES, PIXELS, PIXELS), MotionEmbeddingsMethod)
    assert recommended_training("motion_embeddings", {"training": {"steps": 300}})["steps"] == 300


def test_every_method_block_in_conf_equals_the_config_defaults(tiny_backbone, project_root):
    """The YAML is checked against each method's Config dataclass (the single source of the defaults): every key
    of ``train.<method>`` equals its default, and every option of the Config appears in the YAML."""
    import dataclasses

    import yaml

    from motiontune.methods.base import method_class

    train = yaml.safe_load((project_root / "conf" / "base" / "parameters_train.yml").read_text(encoding="utf-8"))["train"]
    for name in ("motion_embeddings", "vmc", "motionmatcher", "motiondirector"):
        method = build_method(name, train[name], tiny_backbone, FRAMES, PIXELS, PIXELS)
        config = method_class(name).Config()
        assert sorted(set(config.option_names()) - set(train[name])) == [], f"train.{name}: options missing from the YAML"
        for key, value in train[name].items():
            if key == "training":
                assert value == type(method).training_defaults == config.training.as_dict(), name
            elif key == "inference":
                assert value == {k: type(method).inference_defaults[k] for k in value}, name
                assert value == {k: dataclasses.asdict(config.inference)[k] for k in value}, name
            else:
                assert config.options()[key] == value, f"train.{name}.{key}"


def test_artifact_round_trip_applies_identically_and_restores_the_backbone(tiny_backbone, reference, tmp_path):
    from motiontune.methods.artifact import MotionArtifact, load_motion_artifact, save_motion_artifact
    from motiontune.training.customize import applied_motion, learn_motion

    unet = tiny_backbone.unet

    def output():
        with torch.no_grad():
            return unet(reference["latents"], torch.tensor([400]), encoder_hidden_states=reference["prompt_embeds"]).sample

    plain = output()
    processors = {name: module.processor for name, module in unet.named_modules() if hasattr(module, "set_processor")}
    untrained = MotionEmbeddingsMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, blocks="deep")
    with MotionEmbeddingsMethod.applied(tiny_backbone.unet, untrained.artifact_tensors(), MotionEmbeddingsMethod.inference_defaults):
        assert torch.equal(output(), plain)

    row = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "ref.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball"}
    artifact, _ = learn_motion(
        tiny_backbone, "motion_embeddings", {"blocks": "deep", "loss": "vmc"},
        TrainingConfig(steps=2, learning_rate=0.05, checkpoint_every=0, progress_bar=False), reference, row,
    )
    assert isinstance(artifact, MotionArtifact) and artifact.manifest["hyperparameters"]["vmc_form"] == "paper"
    loaded = load_motion_artifact(save_motion_artifact(tmp_path / "motion", artifact))
    with MotionEmbeddingsMethod.applied(tiny_backbone.unet, artifact.tensors, MotionEmbeddingsMethod.inference_defaults):
        in_memory = output()
    with applied_motion(tiny_backbone, loaded, {}):
        from_disk = output()
    assert torch.equal(in_memory, from_disk)
    assert (in_memory - plain).abs().max() > 1e-5
    assert processors == {name: module.processor for name, module in unet.named_modules() if hasattr(module, "set_processor")}
    assert torch.equal(output(), plain)
