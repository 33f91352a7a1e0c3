"""A method's configuration in one frozen dataclass: its options, the loop settings its paper or public code
trains with, and its inference defaults.

Each method module declares ``<Method>Config(MethodConfig)`` with its options as fields (each default with its
source), plus ``training: TrainingDefaults`` and ``inference: <Method>Inference``. That dataclass is the single
source of every default: the method reads it, ``train.<method>`` in ``conf/base/parameters_train.yml`` is checked
against it by a test, and ``motion.json`` records its options and inference defaults.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from motiontune.known_keys import check_known_keys

# The option keys, inside a method's ``train.<method>`` block, holding its loop settings and its inference defaults.
TRAINING_BLOCK = "training"
INFERENCE_BLOCK = "inference"
NESTED_BLOCKS = (TRAINING_BLOCK, INFERENCE_BLOCK)

Config = TypeVar("Config", bound="MethodConfig")


@dataclass(frozen=True)
class TrainingDefaults:
    """Loop settings a method's paper or public code trains with (fields of ``TrainingConfig``); every global
    ``train.<key>`` that is not null wins over them. ``adam_betas`` / ``adam_epsilon`` null = the global ones."""

    steps: int
    learning_rate: float
    weight_decay: float
    max_grad_norm: float | None
    simplified_prompt: bool
    adam_betas: tuple[float, float] | None = None
    adam_epsilon: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The settings, without the optional ones left null (so they do not mask the global ones)."""
        values = dataclasses.asdict(self)
        return {key: value for key, value in values.items() if value is not None or key not in ("adam_betas", "adam_epsilon")}


@dataclass(frozen=True)
class InferenceDefaults:
    """Base of a method's inference defaults (recorded as ``inference_defaults`` in ``motion.json``); every
    generation setting that is not null overrides them. A method redeclares a field to change its default and
    adds its own (``lora_scale``, ``debias``, ...)."""

    noise_init: str = "random"  # random | inversion | blend | lowfreq (each method sets its paper's)
    # seed 004 A.3: DDIM 50 steps, guidance 10 for every method compared (the public codes: 30-75 steps, guidance 12).
    guidance_scale: float = 10.0
    steps: int = 50
    inversion_model: str = "base"  # base | customised (the motion applied): which model inverts the reference
    inversion_prompt: str = "empty"  # all four public codes invert under "" (empty | train: the training prompt)
    inversion_steps: int | None = None  # null = the sampling steps

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MethodConfig:
    """Base of a method's configuration. Subclasses add their options (with defaults) and the two nested
    fields ``training`` and ``inference`` (with ``default_factory``)."""

    method_name: ClassVar[str]

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The method's own options (constructor keys of ``train.<method>``), in declaration order."""
        return tuple(field.name for field in dataclasses.fields(cls) if field.name not in NESTED_BLOCKS)

    @classmethod
    def from_options(cls: type[Config], options: Mapping[str, Any] | None = None) -> Config:
        """The configuration of a ``train.<method>`` block: options, ``training`` and ``inference`` updates.

        Unknown keys and invalid values raise ``ValueError`` naming ``train.<method>.<key>``; null inference
        values keep the default. Lists become tuples (the dataclass is frozen and hashable).
        """
        section = f"train.{cls.method_name}"
        options = dict(options or {})
        check_known_keys(section, options, (*cls.option_names(), *NESTED_BLOCKS))
        defaults = {field.name: field.default_factory() for field in dataclasses.fields(cls) if field.name in NESTED_BLOCKS}
        training = _updated(f"{section}.{TRAINING_BLOCK}", defaults[TRAINING_BLOCK], options.pop(TRAINING_BLOCK, None) or {}, skip_null=False)
        inference = _updated(f"{section}.{INFERENCE_BLOCK}", defaults[INFERENCE_BLOCK], options.pop(INFERENCE_BLOCK, None) or {}, skip_null=True)
        hints = typing.get_type_hints(cls)
        values = {key: _frozen(value) if _is_sequence_type(hints.get(key)) else value for key, value in options.items()}
        try:
            return cls(**values, training=training, inference=inference)
        except TypeError as error:
            raise ValueError(f"{section}: {error}") from None

    def options(self) -> dict[str, Any]:
        """The method's own options as plain values (tuples as lists), in declaration order."""
        return {name: _plain(getattr(self, name)) for name in self.option_names()}


@dataclass(frozen=True)
class LoraMethodConfig(MethodConfig):
    """Options shared by the LoRA methods (MotionMatcher, MotionDirector; their public codes' ``configs/*.yaml``
    and ``utils/lora.py``): ``rank`` (``lora_rank: 32``), ``spatial_targets`` (sub-layers of the spatial
    transformers: attn1 + ff, not the cross-attention), ``temporal_targets`` (of the temporal transformers: attn1,
    attn2, ff), ``include_transformer_in`` (a temporal transformer too), ``lora_dropout`` (public code 0.1; 0 keeps
    runs reproducible: dropout draws from torch's global RNG), ``init_seed`` (lora_A ~ N(0, (1/r)^2) from it)."""

    rank: int = 32
    spatial_targets: tuple[str, ...] = ("attn1", "ff")
    temporal_targets: tuple[str, ...] = ("attn1", "attn2", "ff")
    include_transformer_in: bool = True
    lora_dropout: float = 0.0
    init_seed: int = 0


def _updated(section: str, default: Any, updates: Mapping[str, Any], skip_null: bool) -> Any:
    names = [field.name for field in dataclasses.fields(default)]
    updates = {key: value for key, value in dict(updates).items() if not (skip_null and value is None)}
    check_known_keys(section, updates, names)
    return dataclasses.replace(default, **{key: _frozen(value) for key, value in updates.items()})


def _is_sequence_type(hint: Any) -> bool:
    return any(getattr(arg, "__origin__", arg) is tuple for arg in (hint, *typing.get_args(hint)))


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
