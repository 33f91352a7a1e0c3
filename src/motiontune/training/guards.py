"""Checks every training loop makes after each step: a loss or gradient that became NaN/inf stops the run with
the step and what to change; a gradient on a weight that should stay frozen stops it naming the weights."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn


class TrainingDivergedError(FloatingPointError):
    """The loss or a gradient became NaN/inf."""


class FrozenWeightGradientError(RuntimeError):
    """A weight outside the trained tensors received a gradient."""


def check_finite_loss(loss: torch.Tensor | float, label: str, step: int, advice: str) -> None:
    """Raise :class:`TrainingDivergedError` ("<label>: loss became nan at step 3; <advice>") unless finite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise TrainingDivergedError(f"{label}: loss became {value} at step {step}; {advice}")


def check_finite_gradients(parameters: Iterable[torch.Tensor], label: str, step: int, advice: str) -> None:
    """Raise :class:`TrainingDivergedError` when a gradient of ``parameters`` holds a NaN/inf."""
    if not all(p.grad is None or torch.isfinite(p.grad).all() for p in parameters):
        raise TrainingDivergedError(f"{label}: a gradient became NaN/inf at step {step}; {advice}")


def frozen_parameters_with_grad(modules: Mapping[str, nn.Module | None], trainable: Sequence[torch.Tensor]) -> list[str]:
    """Names (``<label>.<parameter path>``) of parameters outside ``trainable`` that hold a ``.grad``."""
    trainable_ids = {id(p) for p in trainable}
    found = []
    for label, module in modules.items():
        if module is None or not isinstance(module, nn.Module):
            continue
        for name, parameter in module.named_parameters():
            if parameter.grad is not None and id(parameter) not in trainable_ids:
                found.append(f"{label}.{name}")
    return found


def check_frozen_gradients(modules: Mapping[str, nn.Module | None], trainable: Sequence[torch.Tensor], label: str, step: int, advice: str) -> None:
    """Raise :class:`FrozenWeightGradientError` naming (up to five of) the frozen weights that received a gradient."""
    leaked = frozen_parameters_with_grad(modules, trainable)
    if leaked:
        raise FrozenWeightGradientError(
            f"{label}: frozen backbone weights received gradients at step {step} "
            f"({', '.join(leaked[:5])}{', ...' if len(leaked) > 5 else ''}); {advice}"
        )
