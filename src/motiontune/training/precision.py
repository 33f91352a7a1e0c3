"""Mixed precision for training: the precision settings, autocast, the fp16 GradScaler and the float32
master-weights check. bf16 autocasts the forward pass (CPU and CUDA); fp16 needs CUDA and trains with a
GradScaler; the trainable tensors stay float32 in both."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch

MIXED_PRECISION = ("no", "bf16", "fp16")
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_mixed_precision(mixed_precision: str, device: torch.device) -> None:
    """Refuse a setting the device cannot train with (clear message, before any step runs)."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"train.mixed_precision: '{mixed_precision}' is not one of {list(MIXED_PRECISION)}")
    if mixed_precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"train.mixed_precision: fp16 needs a CUDA device (it trains with a GradScaler and CPU float16 "
            f"autocast is not useful); the backbone is on {device.type}: use bf16 or no"
        )
    if mixed_precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.mixed_precision: this GPU does not support bfloat16; use fp16 or no")


def autocast(device: torch.device, mixed_precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` on the device's type in the chosen precision, or a no-op for ``no``."""
    dtype = AUTOCAST_DTYPES[mixed_precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, mixed_precision: str) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 on CUDA (bf16 has float32's range and needs none)."""
    if mixed_precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def check_master_weights(parameters: Sequence[torch.Tensor], mixed_precision: str, label: str) -> None:
    """With mixed precision the trainable tensors are the float32 master weights; refuse anything else."""
    if mixed_precision == "no":
        return
    wrong = sorted({str(p.dtype) for p in parameters if p.dtype != torch.float32})
    if wrong:
        raise ValueError(
            f"{label}: train.mixed_precision={mixed_precision} keeps the trainable tensors in float32, but some "
            f"are {wrong}; load the backbone in float32 (backbone.dtype) or set train.mixed_precision: no"
        )

