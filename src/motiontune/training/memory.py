"""Activation (gradient) checkpointing of the UNet3D's blocks for training. The other memory and speed
switches live beside it: mixed precision in :mod:`motiontune.training.precision`, ``torch.compile`` in
:mod:`motiontune.training.compilation`; the peak-memory probe is the benchmark's (``benchmarks/memory_probe.py``).

diffusers' ``UNet3DConditionModel`` has no gradient checkpointing of its own (``_supports_gradient_checkpointing``
is off), so :func:`gradient_checkpointing` builds it by module substitution: for the duration of a ``with``
block each of ``down_blocks[i]``, ``mid_block`` and ``up_blocks[i]`` is replaced by a :class:`CheckpointedBlock`
whose forward runs the original block under ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``.
The wrapper shares the block's child modules, parameters and buffers (the same dict objects), so module
paths, ``named_modules()`` and ``state_dict()`` keys are unchanged while it is in place, and on exit the
original block objects go back into their slots: the UNet is exactly what it was.

Methods change the UNet between passes (attention processors, swapped parameters, LoRA layers attached for
one forward). Backward runs after the method's context has been left, so a block recomputed then would see
the restored UNet and compute other values. Each checkpointed forward therefore records the block's
structure (child modules, parameters, buffers, attention processors) and the recomputation runs under that
recorded structure (``context_fn`` of ``torch.utils.checkpoint``).

Nothing here imports Kedro.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)

_MISSING = object()


# --------------------------------------------------------------------------------------------------------------
# gradient checkpointing


class CheckpointedBlock(nn.Module):
    """Runs a UNet block under activation checkpointing; otherwise indistinguishable from the block.

    The wrapper's ``_modules``, ``_parameters`` and ``_buffers`` *are* the block's, so paths below it and
    ``state_dict`` keys do not change; any other attribute (``has_cross_attention``, ``resnets``, ...) is read
    from, and written to, the wrapped block. With gradients disabled (sampling, frozen passes) the block is
    called directly.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_checkpointed_block", block)
        object.__setattr__(self, "_parameters", block._parameters)
        object.__setattr__(self, "_buffers", block._buffers)
        object.__setattr__(self, "_modules", block._modules)
        object.__setattr__(self, "_non_persistent_buffers_set", block._non_persistent_buffers_set)
        object.__setattr__(self, "training", block.training)

    @property
    def block(self) -> nn.Module:
        """The wrapped block (not a registered child: its children are the wrapper's)."""
        return object.__getattribute__(self, "_checkpointed_block")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        block = self.block
        if not torch.is_grad_enabled():
            return block(*args, **kwargs)
        recorded = _record_structure(block)
        return checkpoint(
            block,
            *args,
            use_reentrant=False,
            context_fn=lambda: (contextlib.nullcontext(), _structure_restored(recorded)),
            **kwargs,
        )

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_checkpointed_block"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "training":
            object.__setattr__(self, name, value)
            self.block.training = value
        elif (
            name.startswith("_")
            or isinstance(value, (nn.Module, nn.Parameter))
            or name in self._modules
            or name in self._parameters
            or name in self._buffers
        ):
            super().__setattr__(name, value)  # the shared dicts (or the wrapper's own bookkeeping)
        else:
            setattr(self.block, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__ or name in self._modules or name in self._parameters or name in self._buffers:
            super().__delattr__(name)
        else:
            delattr(self.block, name)

    def extra_repr(self) -> str:
        return f"checkpointed {type(self.block).__name__}"


@dataclass
class _ModuleState:
    module: nn.Module
    modules: dict[str, Any]
    parameters: dict[str, Any]
    buffers: dict[str, Any]
    processor: Any  # the attention processor, or _MISSING for modules without one
    requires_grad: list[tuple[torch.Tensor, bool]]


def _module_state(module: nn.Module, copy: bool) -> _ModuleState:
    parameters = dict(module._parameters) if copy else module._parameters
    return _ModuleState(
        module=module,
        modules=dict(module._modules) if copy else module._modules,
        parameters=parameters,
        buffers=dict(module._buffers) if copy else module._buffers,
        processor=module.__dict__.get("processor", _MISSING),
        requires_grad=[(p, p.requires_grad) for p in parameters.values() if p is not None],
    )


def _record_structure(block: nn.Module) -> list[_ModuleState]:
    """Every module under ``block`` with its children, parameters (and their requires_grad), buffers and
    attention processor, as they are now."""
    return [_module_state(module, copy=True) for module in block.modules()]


def _put(state: _ModuleState, fresh_dicts: bool) -> None:
    copy = dict if fresh_dicts else (lambda d: d)
    object.__setattr__(state.module, "_modules", copy(state.modules))
    object.__setattr__(state.module, "_parameters", copy(state.parameters))
    object.__setattr__(state.module, "_buffers", copy(state.buffers))
    if state.processor is _MISSING:
        state.module.__dict__.pop("processor", None)
    else:
        object.__setattr__(state.module, "processor", state.processor)
    for parameter, flag in state.requires_grad:
        if parameter.requires_grad != flag:
            parameter.requires_grad_(flag)


@contextlib.contextmanager
def _structure_restored(recorded: list[_ModuleState]) -> Iterator[None]:
    """Put a recorded structure in place (fresh copies of its dicts), then the current one back."""
    current = [_module_state(state.module, copy=False) for state in recorded]
    try:
        for state in recorded:
            _put(state, fresh_dicts=True)
        yield
    finally:
        for state in reversed(current):
            _put(state, fresh_dicts=False)


# The layer lists of a UNet3D block, in forward order within each of its layers (diffusers' CrossAttn*Block3D,
# DownBlock3D, UpBlock3D, UNetMidBlock3DCrossAttn): each entry is checkpointed on its own.
BLOCK_LAYER_LISTS = ("resnets", "temp_convs", "attentions", "temp_attentions", "downsamplers", "upsamplers")


def checkpointable_blocks(unet: nn.Module) -> list[tuple[nn.Module, str]]:
    """The slots ``(container, key)`` of every layer (resnet, temporal conv, spatial and temporal transformer,
    resampler) of a UNet3D's down blocks, mid block and up blocks, in block order.

    Layers rather than whole blocks: backward then recomputes one layer's activations at a time, not a whole
    block's, which lowers the peak (mid config: whole blocks cut it by about 35-40%, see benchmarks/results).
    """
    missing = [name for name in ("down_blocks", "up_blocks") if not isinstance(getattr(unet, name, None), nn.ModuleList)]
    if missing:
        raise ValueError(
            f"gradient_checkpointing: expected a UNet3DConditionModel with down_blocks, mid_block and up_blocks; "
            f"{type(unet).__name__} lacks {missing}"
        )
    blocks = [*unet.down_blocks, *([unet.mid_block] if unet._modules.get("mid_block") is not None else []), *unet.up_blocks]
    slots: list[tuple[nn.Module, str]] = []
    for block in blocks:
        for list_name in BLOCK_LAYER_LISTS:
            layers = block._modules.get(list_name)
            if isinstance(layers, nn.ModuleList):
                slots += [(layers, key) for key in layers._modules]
    return slots


@contextlib.contextmanager
def gradient_checkpointing(unet: nn.Module, enabled: bool = True) -> Iterator[list[str]]:
    """Checkpoint every layer of the UNet's down, mid and up blocks (:func:`checkpointable_blocks`) for the
    duration of the context.

    Yields the paths of the wrapped blocks (empty when ``enabled`` is false). Blocks already wrapped (a nested
    use) are left alone. On exit the original block objects are back in their slots.
    """
    if not enabled:
        yield []
        return
    replaced: list[tuple[nn.Module, str, nn.Module]] = []
    names = {id(module): name for name, module in unet.named_modules()}
    try:
        for container, key in checkpointable_blocks(unet):
            block = container._modules[key]
            if block is None or isinstance(block, CheckpointedBlock):
                continue
            container._modules[key] = CheckpointedBlock(block)
            replaced.append((container, key, block))
        yield [f"{names[id(container)]}.{key}" if names[id(container)] else key for container, key, _ in replaced]
    finally:
        for container, key, block in reversed(replaced):
            container._modules[key] = block

