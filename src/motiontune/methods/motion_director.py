"""MotionDirector (baseline; seed 004 A.2 and the MotionDirector public code): dual-path LoRA.

A temporal LoRA on the temporal transformers learns the motion; a spatial LoRA on the spatial transformers,
trained on single frames with the temporal LoRA off, absorbs the reference's appearance so the temporal LoRA
does not have to. Per step (public code ``MotionDirector_train.py``):

- with probability ``spatial_skip_probability`` (0.2) the spatial path is skipped for the step;
- spatial path: one random frame, a one-frame UNet pass (F = 1) with the spatial LoRA on and the temporal LoRA
  off, eps MSE on that frame;
- temporal path: the whole video with the temporal LoRA on (and the spatial LoRA too, unless skipped; it acts
  but is trained by the spatial path only), eps MSE plus the appearance-debiased term with a random anchor
  frame.

The step's loss is the sum of both paths. At inference only the temporal LoRA is applied (the public code's
``spatial_scale: 0``), so only the temporal LoRA goes into the artifact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from motiontune.backbone.loading import Backbone
from motiontune.methods.losses import DEBIAS_ALPHA, DEBIAS_BETA, ddpm_loss, debiased_temporal_loss
from motiontune.backbone.layout import layout_for
from motiontune.methods.lora import LoraAdapter, LoraTargets, lora_applied
from motiontune.methods.base import MotionMethod, TrainingBatch, register_method
from motiontune.methods.config import InferenceDefaults, LoraMethodConfig, TrainingDefaults

SPATIAL_ADAPTER = "motiondirector_spatial"
TEMPORAL_ADAPTER = "motiondirector_temporal"


@dataclass(frozen=True)
class MotionDirectorInference(InferenceDefaults):
    # seed 004 A.4 (blend 0.5; public code noise_prior: 0.5); public MotionDirector_train.py: the base model
    # inverts the reference under "" before training (inversion_model: base).
    noise_init: str = "blend"
    blend_strength: float = 0.5
    lora_scale: float = 1.0


def _motion_director_training() -> TrainingDefaults:
    # Public code (single video, config_single_video.yaml): AdamW lr 5e-4, weight decay 1e-2, 150 steps; no
    # clipping; trains on the full caption.
    return TrainingDefaults(steps=150, learning_rate=5e-4, weight_decay=1e-2, max_grad_norm=None, simplified_prompt=False)


@dataclass(frozen=True)
class MotionDirectorConfig(LoraMethodConfig):
    """Options (public code ``configs/config_single_video.yaml``; seed 004 A.2): the LoRA options of
    :class:`LoraMethodConfig` (``spatial_targets``: the spatial LoRA, trained on one random frame with the temporal
    LoRA off; ``temporal_targets``: the temporal LoRA, applied at inference), ``spatial_skip_probability`` (the
    spatial path is skipped with probability 0.2 per step), ``debias_alpha`` sqrt(beta^2 + 1) and ``debias_beta``
    of the appearance-debiased loss."""

    spatial_skip_probability: float = 0.2
    debias_alpha: float = DEBIAS_ALPHA
    debias_beta: float = DEBIAS_BETA
    training: TrainingDefaults = field(default_factory=_motion_director_training)
    inference: MotionDirectorInference = field(default_factory=MotionDirectorInference)

    def __post_init__(self) -> None:
        if not self.spatial_targets or not self.temporal_targets:
            raise ValueError("motiondirector: needs both spatial_targets and temporal_targets")
        if not 0.0 <= float(self.spatial_skip_probability) <= 1.0:
            raise ValueError(f"spatial_skip_probability: must be in [0, 1], got {self.spatial_skip_probability}")


class MotionDirectorMethod(MotionMethod):
    """MotionDirector with a spatial and a temporal peft LoRA; the artifact holds the temporal one.

    Options (defaults from the public code, ``configs/config_single_video.yaml``, ``utils/lora.py``): ``rank``
    32; ``spatial_targets`` (``attn1``, ``ff`` of the spatial transformers) and ``temporal_targets``
    (``attn1``, ``attn2``, ``ff`` of the temporal transformers, the input one included);
    ``lora_dropout`` 0 (the public code: 0.1); ``spatial_skip_probability`` 0.2; ``debias_alpha`` sqrt(2) and
    ``debias_beta`` 1; ``init_seed`` for lora_A. Inference: ``blend`` noise with p = 0.5 (seed 004 A.4; public
    code ``noise_prior: 0.5``), temporal LoRA at ``lora_scale`` 1.
    """

    version = "1"
    config: MotionDirectorConfig

    def _configure(self) -> None:
        config = self.config
        self.rank = int(config.rank)
        self.spatial_targets = LoraTargets(spatial=tuple(config.spatial_targets))
        self.temporal_targets = LoraTargets(temporal=tuple(config.temporal_targets), include_transformer_in=bool(config.include_transformer_in))
        self.lora_dropout = float(config.lora_dropout)
        self.spatial_skip_probability = float(config.spatial_skip_probability)
        self.debias_alpha = float(config.debias_alpha)
        self.debias_beta = float(config.debias_beta)
        self.init_seed = int(config.init_seed)

    def build(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        unet = backbone.unet
        generator = torch.Generator(device="cpu").manual_seed(self.init_seed)
        self.temporal = LoraAdapter(
            unet, self.temporal_targets.module_names(unet), self.rank, TEMPORAL_ADAPTER, dropout=self.lora_dropout, generator=generator
        )
        self.spatial = LoraAdapter(
            unet, self.spatial_targets.module_names(unet), self.rank, SPATIAL_ADAPTER, dropout=self.lora_dropout, generator=generator
        )


    def trainable_parameters(self) -> list[nn.Parameter]:
        spatial, temporal = (self.spatial, self.temporal)
        return spatial.parameters() + temporal.parameters()

    def spatial_loss(self, backbone: Backbone, batch: TrainingBatch, frame: int) -> torch.Tensor:
        """eps MSE of a one-frame pass on ``frame`` with the spatial LoRA only."""
        spatial, _ = (self.spatial, self.temporal)
        with spatial.attached():
            prediction = layout_for(backbone.unet).predict_noise(
                batch.noisy_latents[:, :, frame : frame + 1], batch.timesteps, batch.prompt_embeds
            )
        return ddpm_loss(prediction, batch.target[:, :, frame : frame + 1])

    def temporal_loss(self, backbone: Backbone, batch: TrainingBatch, with_spatial: bool) -> torch.Tensor:
        """eps MSE plus the appearance-debiased term of a whole-video pass with the temporal LoRA.

        With ``with_spatial`` the spatial LoRA acts too but gets no gradient from this pass.
        """
        spatial, temporal = (self.spatial, self.temporal)
        with ExitStack() as stack:
            stack.enter_context(temporal.attached())
            if with_spatial:
                stack.enter_context(spatial.attached(trainable=False))
            prediction = layout_for(backbone.unet).predict_noise(batch.noisy_latents, batch.timesteps, batch.prompt_embeds)
        return debiased_temporal_loss(prediction, batch.target, generator=batch.generator, alpha=self.debias_alpha, beta=self.debias_beta)

    def training_loss(self, backbone: Backbone, batch: TrainingBatch) -> torch.Tensor:
        skip_spatial = float(torch.rand((), generator=batch.generator)) < self.spatial_skip_probability
        if skip_spatial:
            return self.temporal_loss(backbone, batch, with_spatial=False)
        frame = int(torch.randint(0, batch.noisy_latents.shape[2], (1,), generator=batch.generator))
        return self.spatial_loss(backbone, batch, frame) + self.temporal_loss(backbone, batch, with_spatial=True)

    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        """The temporal LoRA only (the spatial one is not used at inference)."""
        return self.temporal.state_dict()

    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.temporal.load_state_dict(tensors)

    def hyperparameters(self) -> dict[str, Any]:
        spatial, temporal = (self.spatial, self.temporal)
        return {
            "rank": self.rank,
            "spatial_targets": list(self.spatial_targets.spatial),
            "temporal_targets": list(self.temporal_targets.temporal),
            "include_transformer_in": self.temporal_targets.include_transformer_in,
            "lora_dropout": self.lora_dropout,
            "spatial_skip_probability": self.spatial_skip_probability,
            "debias_alpha": self.debias_alpha,
            "debias_beta": self.debias_beta,
            "init_seed": self.init_seed,
            "lora_config": temporal.config_dict(),
            "spatial_lora_config": spatial.config_dict(),
            "block_paths": temporal.block_paths(),
        }

    @classmethod
    @contextmanager
    def applied(cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Iterator[None]:
        """The artifact's temporal LoRA, scaled by ``lora_scale``, fused into the UNet's weights; the original
        weights come back on exit."""
        scale = float(options.get("lora_scale", cls.inference_defaults["lora_scale"]))
        with lora_applied(unet, tensors, TEMPORAL_ADAPTER, scale):
            yield


register_method("motiondirector", MotionDirectorConfig, MotionDirectorMethod)
