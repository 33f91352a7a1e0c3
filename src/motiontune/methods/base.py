"""Motion customisation methods behind one name (``train.method``).

A method declares in one place what trains, its loss, what its artifact holds, and how the artifact is
applied at inference (with its inference defaults). The training loop and the pipelines know only this
interface.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from motiontune.backbone.layout import layout_for
from motiontune.backbone.loading import Backbone
from motiontune.methods.config import MethodConfig


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

    Built ready for one backbone and video size from its frozen
    :class:`~motiontune.methods.config.MethodConfig`: ``Method(backbone, frames, height, width, config)``, or
    ``Method(backbone, frames, height, width, **options)`` with the options of a ``train.<method>`` block. Class attributes, set by
    :func:`register_method`: ``name`` (the ``train.method`` value), ``Config`` (the configuration class, the single
    source of the defaults), and from its defaults ``inference_defaults`` (generation options recorded in the
    artifact manifest, ``guidance_scale`` and ``steps`` included; ``train.<method>.inference`` updates them, see
    :func:`recommended_inference`, and generation settings that are not null override them) and
    ``training_defaults`` (the loop settings of the method's paper or public code; see
    :func:`recommended_training`). ``version`` (recorded in the artifact) is the method's own.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type[MethodConfig]]
    inference_defaults: ClassVar[dict[str, Any]]
    training_defaults: ClassVar[dict[str, Any]]

    def __init__(
        self, backbone: Backbone, num_frames: int, height: int, width: int, config: MethodConfig | None = None, **options: Any
    ) -> None:
        """A method ready to train (or to check an artifact's tensors) on ``backbone`` for videos of
        ``num_frames`` x ``height`` x ``width`` pixels, from its ``config`` or the same ``options`` as a
        ``train.<method>`` block."""
        if config is not None and options:
            raise TypeError(f"{self.name}: pass a config or options, not both")
        self.config = config if config is not None else type(self).Config.from_options(options)
        self._configure()
        self.build(backbone, num_frames, height, width)

    def _configure(self) -> None:  # noqa: B027 - a hook: methods that need nothing from their config skip it
        """Read what the method's code uses from ``self.config`` (before :meth:`build`)."""

    @abstractmethod
    def build(self, backbone: Backbone, num_frames: int, height: int, width: int) -> None:
        """Create the trainable tensors for videos of ``num_frames`` x ``height`` x ``width`` pixels (called once,
        by the constructor)."""

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
        """Inverse of :meth:`artifact_tensors`."""

    @abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """Method options recorded in the artifact manifest."""

    @classmethod
    def options_from_manifest(cls, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor options that rebuild the method an artifact was made with, from its ``motion.json``: the
        recorded hyperparameters that are options of its config, and ``blocks`` as the exact block paths."""
        recorded = dict(manifest.get("hyperparameters", {}))
        accepted = cls.Config.option_names()
        options = {key: value for key, value in recorded.items() if key in accepted}
        if "block_paths" in recorded and "blocks" in accepted:
            options["blocks"] = list(recorded["block_paths"])  # the exact blocks, whatever preset named them
        return options

    @classmethod
    @abstractmethod
    def applied(cls, unet: nn.Module, tensors: Mapping[str, torch.Tensor], options: Mapping[str, Any]) -> Any:
        """Context manager that applies an artifact's tensors to ``unet`` (a plain diffusers UNet of the
        backbone's family) for generation with inference ``options``; device and dtype are the UNet's
        (:func:`unet_placement`).

        On exit the UNet is exactly as before (same modules, parameters and attention processors).
        """


def unet_placement(unet: nn.Module) -> dict[str, Any]:
    """``{"device": ..., "dtype": ...}`` of the UNet's parameters (its first floating-point one)."""
    for parameter in unet.parameters():
        if parameter.is_floating_point():
            return {"device": parameter.device, "dtype": parameter.dtype}
    raise ValueError(f"{type(unet).__name__} has no floating-point parameter to read its device and dtype from")


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
            prediction = layout_for(backbone.unet).predict_noise(batch.noisy_latents, batch.timesteps, batch.prompt_embeds)
        return self.loss(prediction, batch.target, generator=batch.generator)


METHODS: dict[str, type[MotionMethod]] = {}

# Each method lives in its own module, which ends with its register_method(...) line; the first lookup imports them.
BUILTIN_METHOD_MODULES = (
    "motiontune.methods.motion_embeddings",
    "motiontune.methods.vmc",
    "motiontune.methods.motion_matcher",
    "motiontune.methods.motion_director",
)


def register_method(name: str, config_class: type[MethodConfig], method_class: type[MotionMethod]) -> type[MotionMethod]:
    """Make ``method_class`` selectable as ``train.method: <name>``, configured by ``config_class``."""
    config_class.method_name = name
    defaults = config_class()
    method_class.name = name
    method_class.Config = config_class
    method_class.training_defaults = defaults.training.as_dict()
    method_class.inference_defaults = defaults.inference.as_dict()
    METHODS[name] = method_class
    return method_class


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


def method_config(name: str, options: Mapping[str, Any] | None) -> MethodConfig:
    """The configuration of a ``train.<name>`` block (options, ``training`` and ``inference`` updates), checked:
    unknown keys and invalid values raise ``ValueError``."""
    return method_class(name).Config.from_options(options)


def build_method(
    name: str, options: Mapping[str, Any] | None, backbone: Backbone, num_frames: int, height: int, width: int
) -> MotionMethod:
    """The method ``name`` with its option block (``train.<method>`` in conf), ready to train on ``backbone`` for
    videos of ``num_frames`` x ``height`` x ``width``."""
    return method_class(name)(backbone, num_frames, height, width, method_config(name, options))


def recommended_training(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The loop settings recommended for a method: its training defaults updated by ``train.<name>.training``.

    Keys are :class:`~motiontune.training.loop.TrainingConfig` fields (``steps``, ``learning_rate``,
    ``weight_decay``, ``max_grad_norm``, ...). The training loop does not read them by itself: the caller
    decides how they combine with the global ``train`` settings.
    """
    return method_config(name, options).training.as_dict()


def recommended_inference(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A method's inference defaults (recorded as ``inference_defaults`` in ``motion.json``), updated by
    ``train.<name>.inference`` (only keys the method has, e.g. ``guidance_scale``, ``steps``, ``noise_init``; null
    values are skipped). Generation settings that are not null override them.
    """
    return method_config(name, options).inference.as_dict()
