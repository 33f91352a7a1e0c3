"""MotionMatcher (seed 001; details from its public code): LoRA fine-tuning by motion feature matching.

Per training step: t in [500, 1000); the UNet with LoRA predicts the noise of x_t; one DDIM step from x_t with
that prediction gives the predicted x_{t'}, one with the true noise gives the target x_{t'} (t' = t - stride).
Both go through the *same* UNet with the LoRA detached (the frozen pre-trained model), recording its attention
maps at one feature resolution: cross-attention maps (where and how large the subject is: camera framing) and
temporal self-attention maps (frame-to-frame: object dynamics), averaged over heads and layers.
``L_mot = w_ca * MSE(CA_pred, CA_true) + w_tsa * MSE(TSA_pred, TSA_true)``. The target branch runs without
gradients; the predicted branch's maps depend on the LoRA weights only through the first forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from motiontune.backbone.loading import Backbone
from motiontune.methods.attention_maps import (
    MotionAttentionFeatures,
    motion_attention_features,
    select_feature_layers,
)
from motiontune.backbone.layout import layout_for
from motiontune.methods.lora import LoraAdapter, LoraTargets, lora_applied
from motiontune.methods.base import MotionMethod, TrainingBatch, register_method
from motiontune.methods.config import InferenceDefaults, LoraMethodConfig, TrainingDefaults
from motiontune.sampling.ddim import ddim_step

ADAPTER_NAME = "motionmatcher"


@dataclass(frozen=True)
class MotionMatcherInference(InferenceDefaults):
    # Public inference.py: noise_prior 0.3, min_timestep 500 (its guidance 12 and 75 steps: we keep seed 004 A.3's
    # 10 and 50, uniform across methods; train.motionmatcher.inference changes them); the pipeline with the LoRA
    # loaded inverts under "", with the sampling step count (inversion_model: customised).
    noise_init: str = "blend"
    inversion_model: str = "customised"
    blend_strength: float = 0.3
    lora_scale: float = 1.0
    lora_min_timestep: int = 500


def _motion_matcher_training() -> TrainingDefaults:
    # Public code: AdamW lr 5e-4, weight decay 1e-2 (configs: 200-400 steps; design 4.3: 400); no clipping;
    # trains on the full caption.
    return TrainingDefaults(steps=400, learning_rate=5e-4, weight_decay=1e-2, max_grad_norm=None, simplified_prompt=False)


@dataclass(frozen=True)
class MotionMatcherConfig(LoraMethodConfig):
    """Options (public code ``configs/config_*.yaml``, ``train.py``): the LoRA options of
    :class:`LoraMethodConfig`, ``min_timestep`` (t in [500, 1000)), ``denoise_stride`` (``num_denoise_steps: 1``:
    one DDIM step t -> t - 1 before feature extraction), ``feature_sections`` (``from_where=("down",)``),
    ``feature_stride`` (null = the coarsest down resolution with both kinds of attention: latent / 4 on ZeroScope),
    ``cross_attention_weight`` and ``temporal_attention_weight`` (``loss_weights``: 2000 each)."""

    min_timestep: int = 500
    denoise_stride: int = 1
    feature_sections: tuple[str, ...] = ("down",)
    feature_stride: int | None = None
    cross_attention_weight: float = 2000.0
    temporal_attention_weight: float = 2000.0
    training: TrainingDefaults = field(default_factory=_motion_matcher_training)
    inference: MotionMatcherInference = field(default_factory=MotionMatcherInference)

    def __post_init__(self) -> None:
        if int(self.min_timestep) < 0:
            raise ValueError(f"min_timestep: must be >= 0, got {self.min_timestep}")
        if int(self.denoise_stride) < 1:
            raise ValueError(f"denoise_stride: must be at least 1, got {self.denoise_stride}")


class MotionMatcherMethod(MotionMethod):
    """MotionMatcher: peft LoRA on the UNet's transformers, trained by motion feature matching.

    Options (defaults from the public code, ``configs/config_*.yaml`` and ``utils/lora.py``):
    ``rank`` 32; LoRA targets ``spatial_targets`` (spatial transformers: ``attn1`` and ``ff``, not the
    cross-attention) and ``temporal_targets`` (temporal transformers: ``attn1``, ``attn2``, ``ff``, with
    the input temporal transformer); ``lora_dropout`` 0 (the public code: 0.1; see the report); ``min_timestep`` 500
    (t in [500, 1000)); ``denoise_stride`` 1 (``num_denoise_steps: 1``: features at t' = t - 1);
    ``feature_sections`` down blocks and ``feature_stride`` the coarsest one with both kinds of attention
    (latent / 4 on ZeroScope); ``cross_attention_weight`` = ``temporal_attention_weight`` = 2000;
    ``init_seed`` for lora_A. Inference: noise prior 0.3 (``blend``: sqrt(0.3) z_inv + sqrt(0.7) eps) and, as in
    the public inference script, the LoRA acts only at timesteps >= 500 (``lora_min_timestep``; 0 = always).
    """

    version = "1"
    config: MotionMatcherConfig

    def _configure(self) -> None:
        config = self.config
        self.rank = int(config.rank)
        self.targets = LoraTargets(tuple(config.spatial_targets), tuple(config.temporal_targets), bool(config.include_transformer_in))
        self.lora_dropout = float(config.lora_dropout)
        self.min_timestep = int(config.min_timestep)
        self.denoise_stride = int(config.denoise_stride)
        self.feature_sections = tuple(config.feature_sections)
        self.feature_stride = config.feature_stride
        self.cross_attention_weight = float(config.cross_attention_weight)
        self.temporal_attention_weight = float(config.temporal_attention_weight)
        self.init_seed = int(config.init_seed)

    def build(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        self.feature_layers = select_feature_layers(backbone.unet, self.feature_sections, self.feature_stride)
        generator = torch.Generator(device="cpu").manual_seed(self.init_seed)
        self.adapter = LoraAdapter(
            backbone.unet, self.targets.module_names(backbone.unet), self.rank, ADAPTER_NAME,
            dropout=self.lora_dropout, generator=generator,
        )


    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.adapter.parameters()

    def sample_timesteps(self, num_train_timesteps: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """t in [min_timestep, T): the public code's ``min_timestep: 500``."""
        if self.min_timestep >= num_train_timesteps:
            raise ValueError(f"min_timestep: {self.min_timestep} must be below the {num_train_timesteps} training timesteps")
        return torch.randint(self.min_timestep, num_train_timesteps, (batch_size,), generator=generator)

    def training_context(self, backbone: Backbone) -> Any:
        """The LoRA attached to the backbone's UNet (the model being fine-tuned)."""
        return self.adapter.attached()

    def motion_features(
        self, backbone: Backbone, sample: torch.Tensor, timesteps: torch.Tensor, prompt_embeds: torch.Tensor
    ) -> MotionAttentionFeatures:
        """Attention maps of the frozen model (the UNet without LoRA) on a noisy video (B, C, F, h, w)."""
        if self.adapter.is_attached:
            raise RuntimeError("motionmatcher: motion features come from the frozen model; detach the LoRA first")
        return motion_attention_features(backbone.unet, self.feature_layers, sample, timesteps, prompt_embeds)

    def feature_loss(self, predicted: MotionAttentionFeatures, target: MotionAttentionFeatures) -> torch.Tensor:
        """``w_ca * MSE(CA_pred, CA_true) + w_tsa * MSE(TSA_pred, TSA_true)``."""
        cross = F.mse_loss(predicted.cross_attention.float(), target.cross_attention.float())
        temporal = F.mse_loss(predicted.temporal_attention.float(), target.temporal_attention.float())
        return self.cross_attention_weight * cross + self.temporal_attention_weight * temporal

    def training_loss(self, backbone: Backbone, batch: TrainingBatch) -> torch.Tensor:
        with self.training_context(backbone):
            prediction = layout_for(backbone.unet).predict_noise(batch.noisy_latents, batch.timesteps, batch.prompt_embeds)
        previous = batch.timesteps - self.denoise_stride
        feature_timesteps = previous.clamp(min=0)
        alphas = batch.scheduler.alphas_cumprod
        prediction_type = batch.scheduler.config.prediction_type
        predicted_sample = ddim_step(alphas, batch.noisy_latents, prediction, batch.timesteps, previous, prediction_type)
        with torch.no_grad():
            target_sample = ddim_step(alphas, batch.noisy_latents, batch.target, batch.timesteps, previous, prediction_type)
            target_features = self.motion_features(backbone, target_sample, feature_timesteps, batch.prompt_embeds)
        predicted_features = self.motion_features(backbone, predicted_sample, feature_timesteps, batch.prompt_embeds)
        return self.feature_loss(predicted_features, target_features)

    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        return self.adapter.state_dict()

    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.adapter.load_state_dict(tensors)

    def hyperparameters(self) -> dict[str, Any]:
        adapter = self.adapter
        return {
            "rank": self.rank,
            "spatial_targets": list(self.targets.spatial),
            "temporal_targets": list(self.targets.temporal),
            "include_transformer_in": self.targets.include_transformer_in,
            "lora_dropout": self.lora_dropout,
            "min_timestep": self.min_timestep,
            "denoise_stride": self.denoise_stride,
            "feature_sections": list(self.feature_sections),
            "feature_stride": self.feature_layers[0].latent_stride,
            "feature_layers": [layer.path for layer in self.feature_layers],
            "cross_attention_weight": self.cross_attention_weight,
            "temporal_attention_weight": self.temporal_attention_weight,
            "init_seed": self.init_seed,
            "lora_config": adapter.config_dict(),
            "block_paths": adapter.block_paths(),
        }

    @classmethod
    @contextmanager
    def applied(cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Iterator[None]:
        """The artifact's LoRA (targets and rank from its keys and shapes), scaled by ``lora_scale``, fused into
        the UNet's weights for the UNet calls at timesteps >= ``lora_min_timestep``; the original weights come
        back below it and on exit."""
        scale = float(options.get("lora_scale", cls.inference_defaults["lora_scale"]))
        min_timestep = int(options.get("lora_min_timestep", cls.inference_defaults["lora_min_timestep"]))
        with lora_applied(unet, tensors, ADAPTER_NAME, scale, min_timestep):
            yield


register_method("motionmatcher", MotionMatcherConfig, MotionMatcherMethod)
