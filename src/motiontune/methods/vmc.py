"""VMC, Video Motion Customization (seed 003): fine-tune only the query/key/value projections of the
temporal attention layers with the motion distillation loss on frame residuals.

The trained projections are parameters owned by :class:`VMCMethod` (clones of the backbone's), swapped into
the UNet's modules for each forward pass and swapped out afterwards. So the backbone is never modified, no
copy of the UNet exists, and the artifact holds just these weights keyed by parameter path, e.g.
``<temporal block>.attn1.to_q.weight``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from motiontune.backbone.loading import Backbone
from motiontune.backbone.layout import layout_for
from motiontune.backbone import patching
from motiontune.methods.losses import VMC_FORMS, get_loss
from motiontune.methods.base import NoisePredictionMethod, register_method, unet_placement
from motiontune.methods.config import InferenceDefaults, MethodConfig, TrainingDefaults

VMC_PROJECTIONS = ("to_q", "to_k", "to_v")


def temporal_attention_projections(
    unet: nn.Module,
    projections: Sequence[str] = VMC_PROJECTIONS,
    include_transformer_in: bool = False,
) -> dict[str, nn.Linear]:
    """``{module path: Linear}`` for the given projections of the temporal attentions of every temporal block
    (the backbone's layout says which: :meth:`~motiontune.backbone.layout.BackboneLayout.temporal_attention_projections`).

    The blocks are the temporal transformers of the down, mid and up blocks, plus the input temporal transformer
    when ``include_transformer_in`` (the VMC public code selects modules by the name of the block temporal
    transformers, which leaves the input one out).
    """
    unknown = sorted(set(projections) - set(VMC_PROJECTIONS) - {"to_out.0"})
    if unknown or not projections:
        raise ValueError(f"projections: {list(projections)} must be a non-empty subset of {[*VMC_PROJECTIONS, 'to_out.0']}")
    try:
        selected = layout_for(unet).temporal_attention_projections(projections, include_transformer_in)
    except ValueError as error:
        raise ValueError(f"vmc: {error}") from error
    if not selected:
        raise ValueError("vmc: the UNet has no temporal attention layers to fine-tune")
    return selected


def parameters_replaced(unet: nn.Module, parameters: Mapping[str, nn.Parameter], label: str = "vmc") -> Any:
    """Put ``parameters`` (keyed ``<module path>.<parameter name>``) in place of the UNet's, then put the
    original parameter objects back (:func:`motiontune.backbone.patching.parameters_replaced`).

    A key the UNet lacks, or a shape that differs, raises ``ValueError`` (prefixed with ``label``) before
    anything is replaced.
    """
    return patching.parameters_replaced(unet, parameters, label)


@dataclass(frozen=True)
class VMCInference(InferenceDefaults):
    # seed 004 A.4 (VMC starts from the inversion); public train_inference.py: after training, the fine-tuned UNet
    # inverts the reference under "" (common/util.py); the paper uses 75 inversion steps (the default null = the
    # sampling steps; set inversion_steps: 75 to match it).
    noise_init: str = "inversion"
    inversion_model: str = "customised"


def _vmc_training() -> TrainingDefaults:
    # seed 003 appendix D: AdamW lr 1e-4, weight decay 1e-2, 400 steps; the public code clips gradients at 1.0.
    # Sec. 3.2 and public code: trains on the appearance-invariant (simplified) prompt.
    return TrainingDefaults(steps=400, learning_rate=1e-4, weight_decay=1e-2, max_grad_norm=1.0, simplified_prompt=True)


@dataclass(frozen=True)
class VMCConfig(MethodConfig):
    """VMC's options: ``vmc_form`` (``paper``: eq. 17 | ``public_code`` | ``l2``: eq. 16), ``frame_stride`` c
    (eq. 9; "fixed at c = 1 across all experiments", sec. 3.1), ``projections`` (appendix D: W^Q, W^K, W^V of the
    temporal attention layers), ``include_transformer_in`` (the public code trains the block temporal
    transformers only, which leaves the input one out)."""

    vmc_form: str = "paper"
    frame_stride: int = 1
    projections: tuple[str, ...] = VMC_PROJECTIONS
    include_transformer_in: bool = False
    training: TrainingDefaults = field(default_factory=_vmc_training)
    inference: VMCInference = field(default_factory=VMCInference)

    def __post_init__(self) -> None:
        if self.vmc_form not in VMC_FORMS:
            raise ValueError(f"vmc_form: '{self.vmc_form}' is not one of {list(VMC_FORMS)}")
        if int(self.frame_stride) < 1:
            raise ValueError(f"frame_stride: must be at least 1, got {self.frame_stride}")


class VMCMethod(NoisePredictionMethod):
    """VMC (seed 003 sec. 3, appendix D): temporal attention adaptation with motion distillation.

    Trainable: ``to_q``, ``to_k``, ``to_v`` of attn1 and attn2 of every temporal transformer block (down, mid,
    up), as in the public code; the input temporal transformer is left out unless ``include_transformer_in``. Loss: the
    residual cosine loss (eq. 17, ``vmc_form: paper``), or the public code's form (``public_code``), or
    eq. 16 (``l2``), with frame stride c = 1. The training prompt is the appearance-invariant one (ingest).
    Inference starts from the DDIM inversion of the reference (seed 004 A.4). Options: :class:`VMCConfig`.
    """

    version = "1"
    config: VMCConfig

    def _configure(self) -> None:
        self.vmc_form = self.config.vmc_form
        self.frame_stride = int(self.config.frame_stride)
        self.projections = tuple(self.config.projections)
        self.include_transformer_in = bool(self.config.include_transformer_in)
        self._loss = get_loss("vmc", form=self.vmc_form, frame_stride=self.frame_stride)

    def build(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        if num_frames <= self.frame_stride:
            raise ValueError(f"vmc: {num_frames} frames leave no residual at frame_stride {self.frame_stride}")
        modules = temporal_attention_projections(backbone.unet, self.projections, self.include_transformer_in)
        self.weights = {
            f"{path}.{name}": nn.Parameter(parameter.detach().clone(), requires_grad=True)
            for path, module in modules.items()
            for name, parameter in module.named_parameters(recurse=False)
        }


    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.weights.values())

    def training_context(self, backbone: Backbone) -> Any:
        return parameters_replaced(backbone.unet, self.weights)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._loss(prediction, target, generator=generator)

    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        return {key: parameter.detach() for key, parameter in self.weights.items()}

    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        weights = self.weights
        missing = sorted(set(weights) - set(tensors))
        unexpected = sorted(set(tensors) - set(weights))
        if missing or unexpected:
            raise ValueError(f"vmc: artifact tensors do not match (missing {missing[:3]}, unexpected {unexpected[:3]})")
        with torch.no_grad():
            for key, parameter in weights.items():
                if tuple(tensors[key].shape) != tuple(parameter.shape):
                    raise ValueError(f"vmc: '{key}' has shape {tuple(tensors[key].shape)}, expected {tuple(parameter.shape)}")
                parameter.copy_(tensors[key])

    def hyperparameters(self) -> dict[str, Any]:
        paths = sorted({key.split(".attn")[0] for key in self.weights})
        return {
            "vmc_form": self.vmc_form,
            "frame_stride": self.frame_stride,
            "projections": list(self.projections),
            "include_transformer_in": self.include_transformer_in,
            "block_paths": paths,
        }

    @classmethod
    @contextmanager
    def applied(cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Iterator[None]:
        """Swap the artifact's projection weights into the UNet; the originals come back on exit."""
        place = unet_placement(unet)
        parameters = {key: nn.Parameter(tensor.to(**place), requires_grad=False) for key, tensor in tensors.items()}
        with parameters_replaced(unet, parameters, label="vmc artifact"):
            yield


register_method("vmc", VMCConfig, VMCMethod)
