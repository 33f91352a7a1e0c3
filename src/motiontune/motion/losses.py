"""Training losses on noise predictions of shape (B, C, F, h, w); selected by name from :data:`LOSSES`."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddpm_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The standard denoising objective: mean squared error between predicted and true noise."""
    return F.mse_loss(prediction.float(), target.float())


LOSSES: dict[str, LossFn] = {"ddpm": ddpm_loss}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ValueError(f"loss: '{name}' is not one of {sorted(LOSSES)}")
    return LOSSES[name]
