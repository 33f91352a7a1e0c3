"""Motion Embeddings (Motion Inversion; seed 002 sec. 3.2, seed 004 A.1-A.4): only the embeddings train.

The embeddings and their attention processors are in :mod:`motiontune.methods.embeddings` and
:mod:`motiontune.methods.attention`; this module holds the method: its configuration, trainable parameters,
loss and inference behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from motiontune.backbone.loading import Backbone
from motiontune.backbone.layout import select_temporal_blocks
from motiontune.methods.base import NoisePredictionMethod, register_method, unet_placement
from motiontune.methods.config import InferenceDefaults, MethodConfig, TrainingDefaults
from motiontune.methods.embeddings import (
    DEBIAS_MODES,
    EmbeddingLayout,
    MotionEmbeddings,
    debias_value,
    motion_embeddings_attached,
    split_by_block,
)
from motiontune.methods.losses import LOSSES, VMC_FORMS, get_loss


@dataclass(frozen=True)
class MotionEmbeddingsInference(InferenceDefaults):
    # seed 002 eq. 5 (debias), seed 004 A.4 (blend 0.5); public code (utils/ddim_utils.py inverse_video): the base
    # model inverts the reference under "" (inversion_model: base).
    noise_init: str = "blend"
    debias: str = "frame_diff"
    value_scale: float = 1.0
    blend_strength: float = 0.5

    def __post_init__(self) -> None:
        if self.debias not in DEBIAS_MODES:
            raise ValueError(f"debias: '{self.debias}' is not one of {list(DEBIAS_MODES)}")


def _motion_embeddings_training() -> TrainingDefaults:
    # seed 004 A.3: AdamW lr 5e-2, 800 steps (100-300 suffice for camera motion); no clipping.
    # Public code (train.py) trains on the full caption.
    return TrainingDefaults(steps=800, learning_rate=5e-2, weight_decay=1e-2, max_grad_norm=None, simplified_prompt=False)


@dataclass(frozen=True)
class MotionEmbeddingsConfig(MethodConfig):
    """Options: ``blocks`` (``all``: down + up, the papers' 15 on ZeroScope | ``deep``: the widest | a list of
    module paths), ``loss`` (``ddpm``, seed 002 sec. 3.2 | ``vmc``, seed 003 eq. 17 | ``debiased_temporal``,
    seed 004 A.2), ``vmc_form`` (with ``loss: vmc``: ``paper`` | ``public_code`` | ``l2``), ``query_key_layout``
    and ``value_layout`` (``1d`` | ``2d``; the paper's 1d / 2d, the other combinations its ablation, seed 002
    sec. 4.3), ``value_sharing`` (``per_attention``: attn1 and attn2 of a block each own a value embedding, as
    the public code's ``vSpatial``; ``shared``: one for both, motiontune's layout before method version 2)."""

    blocks: str | tuple[str, ...] = "all"
    loss: str = "ddpm"
    query_key_layout: str = "1d"
    value_layout: str = "2d"
    vmc_form: str = "paper"
    value_sharing: str = "per_attention"
    training: TrainingDefaults = field(default_factory=_motion_embeddings_training)
    inference: MotionEmbeddingsInference = field(default_factory=MotionEmbeddingsInference)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss: '{self.loss}' is not one of {sorted(LOSSES)}")
        if self.vmc_form not in VMC_FORMS:
            raise ValueError(f"vmc_form: '{self.vmc_form}' is not one of {list(VMC_FORMS)}")
        EmbeddingLayout(query_key=self.query_key_layout, value=self.value_layout, value_sharing=self.value_sharing)  # checks them


class MotionEmbeddingsMethod(NoisePredictionMethod):
    """Motion Embeddings: a query-key embedding (1, N, C) per selected temporal block, shared by its two temporal
    attentions, and a value embedding (H_i*W_i, N, C) per attention (seed 002 sec. 3.2; public code), zero
    initialised; nothing else trains. At inference the value embedding is debiased by frame differences
    (seed 002 eq. 5), scaled by gamma = 1, and sampling starts from a 0.5 blend of the inverted reference and
    random noise (seed 004 A.4). Options: :class:`MotionEmbeddingsConfig`.
    """

    # 2: one value embedding per temporal attention (public code); artifacts of version 1 shared one per block.
    version = "2"
    config: MotionEmbeddingsConfig

    def _configure(self) -> None:
        config = self.config
        self.blocks = list(config.blocks) if isinstance(config.blocks, tuple) else config.blocks
        self.loss_name = config.loss
        self.vmc_form = config.vmc_form
        self._loss = get_loss(config.loss, form=config.vmc_form) if config.loss == "vmc" else get_loss(config.loss)
        self.layout = EmbeddingLayout(query_key=config.query_key_layout, value=config.value_layout, value_sharing=config.value_sharing)

    def build(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        scale = backbone.vae_scale_factor
        if height % scale or width % scale:
            raise ValueError(f"video size {height}x{width} must be a multiple of the VAE factor {scale}")
        blocks = select_temporal_blocks(backbone.unet, self.blocks)
        self.embeddings = MotionEmbeddings(blocks, num_frames, (height // scale, width // scale), self.layout)
        self.embeddings.to(device=backbone.device, dtype=torch.float32)


    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.embeddings.parameters())

    def training_context(self, backbone: Backbone) -> Any:
        return motion_embeddings_attached(backbone.unet, self.embeddings.by_block(), value_scale=1.0)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._loss(prediction, target, generator=generator)

    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        return self.embeddings.named_tensors()

    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.embeddings.load_named_tensors(tensors)

    def hyperparameters(self) -> dict[str, Any]:
        hyperparameters = {
            "blocks": self.blocks,
            "loss": self.loss_name,
            "query_key_layout": self.layout.query_key,
            "value_layout": self.layout.value,
            "value_sharing": self.layout.value_sharing,
            "block_paths": list(self.embeddings.block_paths),
        }
        if self.loss_name == "vmc":
            hyperparameters["vmc_form"] = self.vmc_form
        return hyperparameters

    @classmethod
    def options_from_manifest(cls, manifest: Mapping[str, Any]) -> dict[str, Any]:
        options = super().options_from_manifest(manifest)
        if str(manifest.get("method_version", cls.version)) == "1":
            options.setdefault("value_sharing", "shared")  # version 1 shared one value embedding per block
        return options

    @classmethod
    @contextmanager
    def applied(cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Iterator[None]:
        debias = options.get("debias", cls.inference_defaults["debias"])
        if debias not in DEBIAS_MODES:
            raise ValueError(f"debias: '{debias}' is not one of {list(DEBIAS_MODES)}")
        value_scale = float(options.get("value_scale", cls.inference_defaults["value_scale"]))
        place = unet_placement(unet)
        by_block = {
            path: (query_key.to(**place), {name: debias_value(value, debias).to(**place) for name, value in values.items()})
            for path, (query_key, values) in split_by_block(tensors).items()
        }
        with motion_embeddings_attached(unet, by_block, value_scale=value_scale):
            yield


register_method("motion_embeddings", MotionEmbeddingsConfig, MotionEmbeddingsMethod)
