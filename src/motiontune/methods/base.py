"""Motion customisation methods behind one name (``train.method``).

A method declares in one place what trains, its loss, what its artifact holds, and how the artifact is
applied at inference (with its inference defaults). The training loop and the pipelines know only this
interface.
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from motiontune.backbone.loading import Backbone
from motiontune.backbone.structure import select_temporal_blocks
from motiontune.known_keys import check_known_keys
from motiontune.methods.embeddings import (
    DEBIAS_MODES,
    EmbeddingLayout,
    MotionEmbeddings,
    debias_value,
    motion_embeddings_attached,
    split_by_block,
)
from motiontune.methods.losses import VMC_FORMS, get_loss


@dataclass
class TrainingBatch:
    """One training step's inputs, all (B, C, F, h, w) unless noted."""

    latents: torch.Tensor  # clean reference latents
    noise: torch.Tensor
    timesteps: torch.Tensor  # (B,)
    noisy_latents: torch.Tensor
    target: torch.Tensor  # what the UNet should predict (noise, or velocity for v-prediction)
    prompt_embeds: torch.Tensor  # (B, L, D)
    scheduler: Any  # diffusers DDPMScheduler with the backbone's schedule
    generator: torch.Generator  # the run's RNG, for methods that draw more randomness
    step: int


class MotionMethod(ABC):
    """One motion customisation method; an instance holds the trainable state for one video.

    Class attributes: ``name`` (the ``train.method`` value), ``version`` (recorded in the artifact),
    ``inference_defaults`` (generation options recorded in the artifact manifest, ``guidance_scale`` and
    ``steps`` included; ``train.<method>.inference`` updates them, see :func:`recommended_inference`, and
    generation settings that are not null override them) and ``training_defaults`` (the loop settings the
    method's paper or public code uses: steps, learning_rate, weight_decay, max_grad_norm; see
    :func:`recommended_training`).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    inference_defaults: ClassVar[dict[str, Any]]
    training_defaults: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def prepare(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        """Create the trainable tensors for videos of ``num_frames`` x ``height`` x ``width`` pixels."""

    @abstractmethod
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Exactly the tensors the optimiser updates; everything else stays frozen."""

    def sample_timesteps(self, num_train_timesteps: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Training timesteps (B,) drawn uniformly from [0, T); methods restricting the range override this."""
        return torch.randint(0, num_train_timesteps, (batch_size,), generator=generator)

    @abstractmethod
    def training_loss(self, backbone: Backbone, batch: TrainingBatch) -> torch.Tensor:
        """One step's scalar loss. The backbone must be unchanged again when this returns."""

    @abstractmethod
    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        """The learned tensors only, keyed by module path."""

    @abstractmethod
    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Inverse of :meth:`artifact_tensors` (after :meth:`prepare`)."""

    @abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """Method options recorded in the artifact manifest."""

    @classmethod
    def options_from_manifest(cls, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor options that rebuild the method an artifact was made with, from its ``motion.json``: the
        recorded hyperparameters the constructor takes, and ``blocks`` as the exact block paths."""
        recorded = dict(manifest.get("hyperparameters", {}))
        accepted = inspect.signature(cls.__init__).parameters
        options = {key: value for key, value in recorded.items() if key in accepted}
        if "block_paths" in recorded and "blocks" in accepted:
            options["blocks"] = list(recorded["block_paths"])  # the exact blocks, whatever preset named them
        return options

    @classmethod
    @abstractmethod
    def applied(cls, backbone: Backbone, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Any:
        """Context manager that applies an artifact's tensors for generation with inference ``options``.

        On exit the backbone is exactly as before (same modules, parameters and attention processors).
        """


class NoisePredictionMethod(MotionMethod):
    """A method trained with one UNet forward per step, scored by a loss on the noise prediction."""

    @abstractmethod
    def training_context(self, backbone: Backbone) -> Any:
        """Context manager under which the UNet's forward pass uses the trainable tensors."""

    @abstractmethod
    def loss(self, prediction: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scalar loss from the UNet's prediction and its target, both (B, C, F, h, w)."""

    def training_loss(self, backbone: Backbone, batch: TrainingBatch) -> torch.Tensor:
        """The UNet's prediction under :meth:`training_context`, scored by :meth:`loss`."""
        with self.training_context(backbone):
            prediction = backbone.unet(batch.noisy_latents, batch.timesteps, encoder_hidden_states=batch.prompt_embeds).sample
        return self.loss(prediction, batch.target, generator=batch.generator)


class MotionEmbeddingsMethod(NoisePredictionMethod):
    """Motion Embeddings (seed 002 sec. 3.2, seed 004 A.1-A.4): only the embeddings train.

    Defaults: blocks ``all``, query/key 1D and value 2D, ``ddpm`` loss; at inference the value embedding
    is debiased by frame differences, scaled by gamma = 1, and sampling starts from a 0.5 blend of the
    inverted reference and random noise (seed 004 A.4).

    Options: ``blocks`` (``all`` | ``deep`` | list of module paths), ``loss`` (``ddpm`` | ``vmc`` |
    ``debiased_temporal``, seed 004 A.2), ``vmc_form`` (``paper`` | ``public_code`` | ``l2``, used with
    ``loss: vmc``), ``query_key_layout`` and ``value_layout`` (``1d`` | ``2d``, the ablation of seed 002 sec. 4.3),
    ``value_sharing`` (``per_attention``: attn1 and attn2 of a block each own a value embedding, as the public
    code does; ``shared``: one for both, motiontune's layout before method version 2).
    """

    name = "motion_embeddings"
    # 2: one value embedding per temporal attention (public code); artifacts of version 1 shared one per block.
    version = "2"
    # seed 002 eq. 5 (debias), seed 004 A.4 (blend 0.5), seed 004 A.3 (DDIM 50 steps, guidance 10; public code: 30, 12).
    inference_defaults = {
        "debias": "frame_diff", "value_scale": 1.0, "noise_init": "blend", "blend_strength": 0.5,
        "guidance_scale": 10.0, "steps": 50,
        # public code (utils/ddim_utils.py inverse_video): the base model inverts the reference under "".
        "inversion_model": "base", "inversion_prompt": "empty", "inversion_steps": None,
    }
    # seed 004 A.3: AdamW lr 5e-2, 800 steps (100-300 suffice for camera motion); no clipping.
    # Public code (train.py) trains on the full caption.
    training_defaults = {"steps": 800, "learning_rate": 5e-2, "weight_decay": 1e-2, "max_grad_norm": None, "simplified_prompt": False}

    def __init__(
        self,
        blocks: str | list[str] = "all",
        loss: str = "ddpm",
        query_key_layout: str = "1d",
        value_layout: str = "2d",
        vmc_form: str = "paper",
        value_sharing: str = "per_attention",
    ) -> None:
        self.blocks = blocks
        self.loss_name = loss
        if vmc_form not in VMC_FORMS:
            raise ValueError(f"vmc_form: '{vmc_form}' is not one of {list(VMC_FORMS)}")
        self.vmc_form = vmc_form
        self._loss = get_loss(loss, form=vmc_form) if loss == "vmc" else get_loss(loss)
        self.layout = EmbeddingLayout(query_key=query_key_layout, value=value_layout, value_sharing=value_sharing)
        self.embeddings: MotionEmbeddings | None = None

    def prepare(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        scale = backbone.vae_scale_factor
        if height % scale or width % scale:
            raise ValueError(f"video size {height}x{width} must be a multiple of the VAE factor {scale}")
        blocks = select_temporal_blocks(backbone.unet, self.blocks)
        self.embeddings = MotionEmbeddings(blocks, num_frames, (height // scale, width // scale), self.layout)
        self.embeddings.to(device=backbone.device, dtype=torch.float32)

    def _require_embeddings(self) -> MotionEmbeddings:
        if self.embeddings is None:
            raise RuntimeError("motion_embeddings: call prepare() first")
        return self.embeddings

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self._require_embeddings().parameters())

    def training_context(self, backbone: Backbone) -> Any:
        return motion_embeddings_attached(backbone.unet, self._require_embeddings().by_block(), value_scale=1.0)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._loss(prediction, target, generator=generator)

    def artifact_tensors(self) -> dict[str, torch.Tensor]:
        return self._require_embeddings().named_tensors()

    def load_artifact_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._require_embeddings().load_named_tensors(tensors)

    def hyperparameters(self) -> dict[str, Any]:
        hyperparameters = {
            "blocks": self.blocks,
            "loss": self.loss_name,
            "query_key_layout": self.layout.query_key,
            "value_layout": self.layout.value,
            "value_sharing": self.layout.value_sharing,
            "block_paths": list(self._require_embeddings().block_paths),
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
    def applied(cls, backbone: Backbone, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Iterator[None]:
        debias = options.get("debias", cls.inference_defaults["debias"])
        if debias not in DEBIAS_MODES:
            raise ValueError(f"debias: '{debias}' is not one of {list(DEBIAS_MODES)}")
        value_scale = float(options.get("value_scale", cls.inference_defaults["value_scale"]))
        place = {"device": backbone.device, "dtype": backbone.dtype}
        by_block = {
            path: (query_key.to(**place), {name: debias_value(value, debias).to(**place) for name, value in values.items()})
            for path, (query_key, values) in split_by_block(tensors).items()
        }
        with motion_embeddings_attached(backbone.unet, by_block, value_scale=value_scale):
            yield


METHODS: dict[str, type[MotionMethod]] = {MotionEmbeddingsMethod.name: MotionEmbeddingsMethod}

# The other methods live in their own modules, which import this one; they register themselves with
# @register_method when imported, which the first lookup does.
BUILTIN_METHOD_MODULES = (
    "motiontune.methods.vmc",
    "motiontune.methods.motion_matcher",
    "motiontune.methods.motion_director",
)

# Loop settings a method may recommend (TrainingConfig fields that depend on the method).
TRAINING_KEYS = ("steps", "learning_rate", "adam_betas", "weight_decay", "adam_epsilon", "max_grad_norm", "simplified_prompt")
# The option key, inside a method's ``train.<method>`` block, holding its recommended loop settings.
TRAINING_BLOCK = "training"
# The option key, inside a method's ``train.<method>`` block, updating its inference defaults (``motion.json``).
INFERENCE_BLOCK = "inference"
# Blocks of ``train.<method>`` that are not constructor options.
NON_CONSTRUCTOR_BLOCKS = (TRAINING_BLOCK, INFERENCE_BLOCK)


def register_method(cls: type[MotionMethod]) -> type[MotionMethod]:
    """Class decorator: make ``cls`` selectable as ``train.method: <cls.name>``."""
    METHODS[cls.name] = cls
    return cls


def _import_builtin_methods() -> None:
    for module in BUILTIN_METHOD_MODULES:
        importlib.import_module(module)


def method_names() -> list[str]:
    _import_builtin_methods()
    return sorted(METHODS)


def method_class(name: str) -> type[MotionMethod]:
    _import_builtin_methods()
    if name not in METHODS:
        raise ValueError(f"train.method: '{name}' is not one of {sorted(METHODS)}")
    return METHODS[name]


def build_method(name: str, options: Mapping[str, Any] | None) -> MotionMethod:
    """Instantiate a method from its name and its option block (``train.<method>`` in conf).

    The block's ``training`` entry (recommended loop settings, see :func:`recommended_training`) and its
    ``inference`` entry (inference defaults, see :func:`recommended_inference`) are not constructor options and
    are skipped here.
    """
    cls = method_class(name)
    constructor_options = {k: v for k, v in dict(options or {}).items() if k not in NON_CONSTRUCTOR_BLOCKS}
    accepted = [key for key in inspect.signature(cls.__init__).parameters if key != "self"]
    check_known_keys(f"train.{name}", constructor_options, (*accepted, *NON_CONSTRUCTOR_BLOCKS))
    try:
        return cls(**constructor_options)
    except TypeError as error:
        raise ValueError(f"train.{name}: {error}") from None


def recommended_training(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The loop settings recommended for a method: its ``training_defaults`` updated by ``train.<name>.training``.

    Keys are :class:`~motiontune.training.loop.TrainingConfig` fields (``steps``, ``learning_rate``,
    ``weight_decay``, ``max_grad_norm``, ...). The training loop does not read them by itself: the caller
    decides how they combine with the global ``train`` settings.
    """
    cls = method_class(name)
    overrides = dict((options or {}).get(TRAINING_BLOCK) or {})
    check_known_keys(f"train.{name}.{TRAINING_BLOCK}", overrides, TRAINING_KEYS)
    return {**cls.training_defaults, **overrides}


def recommended_inference(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A method's inference defaults (recorded as ``inference_defaults`` in ``motion.json``): its class's
    ``inference_defaults`` updated by ``train.<name>.inference`` (only keys the method has, e.g. ``guidance_scale``,
    ``steps``, ``noise_init``; null values are skipped). Generation settings that are not null override them.
    """
    cls = method_class(name)
    overrides = {k: v for k, v in dict((options or {}).get(INFERENCE_BLOCK) or {}).items() if v is not None}
    check_known_keys(f"train.{name}.{INFERENCE_BLOCK}", overrides, cls.inference_defaults)
    return {**cls.inference_defaults, **overrides}
