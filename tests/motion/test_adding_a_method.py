"""Adding a method is one module (its Config, its Method) plus one register_method line: nothing else in the
project names it. This test is that module: a toy method that trains the UNet's output bias goes through the
parameter check, training, the artifact and generation like the four built-in ones."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

from motiontune.methods import base
from motiontune.methods.base import NoisePredictionMethod, build_method, method_names, register_method
from motiontune.methods.config import InferenceDefaults, MethodConfig, TrainingDefaults
from motiontune.methods.losses import ddpm_loss
from motiontune.training.customize import learn_motion

from motion_helpers import FRAMES, PIXELS, quick_config, random_reference

BIAS = "conv_out.bias"


@dataclass(frozen=True)
class OutputBiasInference(InferenceDefaults):
    scale: float = 1.0


@dataclass(frozen=True)
class OutputBiasConfig(MethodConfig):
    init: float = 0.0
    training: TrainingDefaults = field(default_factory=lambda: TrainingDefaults(
        steps=3, learning_rate=1e-2, weight_decay=0.0, max_grad_norm=None, simplified_prompt=False))
    inference: OutputBiasInference = field(default_factory=OutputBiasInference)


@contextmanager
def _bias_swapped(unet: nn.Module, bias: torch.Tensor) -> Iterator[None]:
    original = unet.conv_out.bias
    unet.conv_out.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias, requires_grad=False)
    try:
        yield
    finally:
        unet.conv_out.bias = original


class OutputBiasMethod(NoisePredictionMethod):
    version = "1"

    def build(self, backbone: Any, num_frames: int, height: int, width: int) -> None:
        self.bias = nn.Parameter(backbone.unet.conv_out.bias.detach().clone() + self.config.init)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.bias]

    def training_context(self, backbone: Any) -> Any:
        return _bias_swapped(backbone.unet, self.bias)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return ddpm_loss(prediction, target)

    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        return {BIAS: self.bias.detach()}

    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.bias.copy_(tensors[BIAS])

    def hyperparameters(self) -> dict[str, Any]:
        return self.config.options()

    @classmethod
    def applied(cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Any:
        return _bias_swapped(unet, tensors[BIAS] * float(options["scale"]))


@pytest.fixture
def output_bias_method():
    register_method("output_bias", OutputBiasConfig, OutputBiasMethod)  # the one registration line
    try:
        yield
    finally:
        base.METHODS.pop("output_bias")


def test_a_registered_module_is_a_method_everywhere(output_bias_method, tiny_backbone, restore_unet):
    from motiontune.parameters import parameter_problems

    assert "output_bias" in method_names()
    assert build_method("output_bias", {"init": 0.5}, tiny_backbone, FRAMES, PIXELS, PIXELS).config.init == 0.5
    with pytest.raises(ValueError, match=r"train\.output_bias\.inti: unknown key \(did you mean 'init'\?\)"):
        build_method("output_bias", {"inti": 0.5}, tiny_backbone, FRAMES, PIXELS, PIXELS)
    video = {"num_frames": 4, "height": 32, "width": 32, "fps": 8}
    assert parameter_problems({"video": video, "train": {"method": "output_bias", "output_bias": {"init": 0.1}}}) == []
    assert any("train.output_bias.training.stepz: unknown key" in problem for problem in parameter_problems(
        {"video": video, "train": {"method": "output_bias", "output_bias": {"training": {"stepz": 1}}}}))

    reference = random_reference(0)
    features = {"latents": reference["latents"], "prompt_embeds": reference["prompt_embeds"]}
    before = tiny_backbone.unet.conv_out.bias.detach().clone()
    artifact, result = learn_motion(tiny_backbone, "output_bias", {}, quick_config(steps=3, learning_rate=1e-2), features, reference["row"])
    assert result.steps == 3 and artifact.manifest["method"] == "output_bias"
    assert artifact.manifest["inference_defaults"] == {**OutputBiasInference().as_dict()}
    assert not torch.equal(artifact.tensors[BIAS], before)  # it trained
    assert torch.equal(tiny_backbone.unet.conv_out.bias, before)  # and the backbone is as before
    from motiontune.training.customize import applied_motion

    with applied_motion(tiny_backbone, artifact, {"scale": 2.0}):
        assert torch.equal(tiny_backbone.unet.conv_out.bias, artifact.tensors[BIAS] * 2.0)  # inference, its option
    assert torch.equal(tiny_backbone.unet.conv_out.bias, before)
