"""Training losses on UNet predictions of shape (B, C, F, h, w); selected by name from :data:`LOSSES`.

Every loss takes ``(prediction, target, *, generator=None)`` and returns a scalar. ``target`` is what the UNet
should predict (the noise for epsilon-prediction). Losses that draw randomness (the anchor frame of the
appearance-debiased loss) use ``generator``, the training run's RNG, so a run is reproducible and resumable.
Per-loss options (the VMC form, the debias coefficients) are bound by :func:`get_loss`.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Protocol

import torch
import torch.nn.functional as F


class LossFn(Protocol):
    def __call__(
        self, prediction: torch.Tensor, target: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


def ddpm_loss(prediction: torch.Tensor, target: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard denoising objective: mean squared error between predicted and true noise."""
    return F.mse_loss(prediction.float(), target.float())


# ---------------------------------------------------------------------------------------------------------------
# VMC motion distillation (seed 003 sec. 3.1)
# ---------------------------------------------------------------------------------------------------------------

VMC_FORMS = ("paper", "public_code", "l2")


def frame_residuals(video: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Residuals between frames ``stride`` apart (seed 003 eq. 9): (B, C, F, h, w) -> (B, C, F - stride, h, w)."""
    if stride < 1:
        raise ValueError(f"frame_stride: must be at least 1, got {stride}")
    if video.shape[2] <= stride:
        raise ValueError(f"frame residuals need more than {stride} frames, the video has {video.shape[2]}")
    return video[:, :, stride:] - video[:, :, :-stride]


def vmc_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    form: str = "paper",
    frame_stride: int = 1,
) -> torch.Tensor:
    """Align the frame residuals of the prediction with those of the target noise.

    With ``d_pred[n] = pred[:, :, n + c] - pred[:, :, n]`` and ``d_eps[n]`` likewise on the target:

    - ``paper`` (eq. 17, Algorithm 1): mean over n and batch of ``1 - cos(d_eps[n], d_pred[n])``, the cosine taken
      over each frame residual flattened to a (C*h*w) vector. Identical residuals give 0, opposite ones 2.
    - ``public_code``: what the authors' code computes: ``abs()`` of both residuals and the cosine along the frame
      axis (one cosine per batch, channel and position), ``1 - mean``.
    - ``l2`` (eq. 16): mean squared error between the residuals. The paper's per-timestep factor
      (1 - a_t) / a_t is left out, as the DDPM "simple" loss leaves out its weights.
    """
    if form not in VMC_FORMS:
        raise ValueError(f"vmc_form: '{form}' is not one of {list(VMC_FORMS)}")
    predicted = frame_residuals(prediction.float(), frame_stride)
    true = frame_residuals(target.float(), frame_stride)
    if form == "l2":
        return F.mse_loss(predicted, true)
    if form == "public_code":
        return 1.0 - F.cosine_similarity(predicted.abs(), true.abs(), dim=2).mean()
    batch, _, residuals = predicted.shape[:3]
    # (B, C, N, h, w) -> (B, N, C*h*w): one vector per frame residual.
    predicted = predicted.transpose(1, 2).reshape(batch, residuals, -1)
    true = true.transpose(1, 2).reshape(batch, residuals, -1)
    return (1.0 - F.cosine_similarity(predicted, true, dim=-1)).mean()


# ---------------------------------------------------------------------------------------------------------------
# MotionDirector appearance-debiased temporal loss (seed 004 A.2; MotionDirector public code)
# ---------------------------------------------------------------------------------------------------------------

DEBIAS_BETA = 1.0
DEBIAS_ALPHA = math.sqrt(DEBIAS_BETA**2 + 1.0)  # the public code: alpha = sqrt(beta^2 + 1)


def draw_anchor_frame(num_frames: int, generator: torch.Generator | None) -> int:
    """A frame index in [0, num_frames) drawn with the run's generator."""
    if generator is None:
        raise ValueError("the appearance-debiased loss draws an anchor frame and needs the run's generator")
    return int(torch.randint(0, num_frames, (1,), generator=generator).item())


def appearance_debiased_mse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    anchor: int,
    alpha: float = DEBIAS_ALPHA,
    beta: float = DEBIAS_BETA,
) -> torch.Tensor:
    """``MSE(a * pred - b * pred[anchor], a * eps - b * eps[anchor])`` over (B, C, F, h, w).

    Subtracting the anchor frame removes what all frames share (appearance), so the term scores motion only.
    """
    prediction, target = prediction.float(), target.float()
    debiased_prediction = alpha * prediction - beta * prediction[:, :, anchor : anchor + 1]
    debiased_target = alpha * target - beta * target[:, :, anchor : anchor + 1]
    return F.mse_loss(debiased_prediction, debiased_target)


def debiased_temporal_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    alpha: float = DEBIAS_ALPHA,
    beta: float = DEBIAS_BETA,
) -> torch.Tensor:
    """MotionDirector's temporal loss: eps MSE plus the appearance-debiased term with a random anchor frame."""
    anchor = draw_anchor_frame(prediction.shape[2], generator)
    return ddpm_loss(prediction, target) + appearance_debiased_mse(prediction, target, anchor, alpha, beta)


LOSSES: dict[str, LossFn] = {
    "ddpm": ddpm_loss,
    "vmc": vmc_loss,
    "debiased_temporal": debiased_temporal_loss,
}


def loss_options(name: str) -> list[str]:
    """The keyword options a loss accepts besides ``generator``."""
    parameters = inspect.signature(get_loss(name)).parameters
    return [p.name for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "generator"]


def get_loss(name: str, **options: object) -> LossFn:
    """The loss registered as ``name``, with ``options`` (e.g. ``form="l2"`` for ``vmc``) bound."""
    if name not in LOSSES:
        raise ValueError(f"loss: '{name}' is not one of {sorted(LOSSES)}")
    loss = LOSSES[name]
    if not options:
        return loss
    unknown = sorted(set(options) - set(loss_options(name)))
    if unknown:
        raise ValueError(f"loss '{name}': unknown options {unknown}; it takes {loss_options(name)}")
    return functools.partial(loss, **options)
