"""Activation (gradient) checkpointing of the UNet3D's blocks for training. The other memory and speed
switches live beside it: mixed precision in :mod:`motiontune.training.precision`, ``torch.compile`` in
:mod:`motiontune.training.compilation`; the peak-memory probe is the benchmark's (``benchmarks/memory_probe.py``).

diffusers' ``UNet3DConditionModel`` has no gradient checkpointing of its own (``_supports_gradient_checkpointing``
is off), so :func:`gradient_checkpointing` builds it by module substitution: for the duration of a ``with``
block each layer the backbone's layout lists (:meth:`~motiontune.backbone.layout.BackboneLayout.checkpoint_slots`:
on a UNet3D every layer of the down, mid and up blocks) is replaced by a :class:`CheckpointedBlock` whose forward runs the original block under ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``.
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
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from motiontune.backbone.layout import layout_for
from motiontune.backbone.patching import ModuleSwap, record_structure, structure_restored

logger = logging.getLogger(__name__)



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
        recorded = record_structure(block)
        return checkpoint(
            block,
            *args,
            use_reentrant=False,
            context_fn=lambda: (contextlib.nullcontext(), structure_restored(recorded)),
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


def checkpointable_blocks(unet: nn.Module) -> list[tuple[nn.Module, str]]:
    """The slots ``(container, key)`` of the layers to checkpoint, in block order (the backbone's layout says
    which: on a UNet3D every resnet, temporal conv, spatial and temporal transformer and resampler of its down
    blocks, mid block and up blocks)."""
    try:
        return layout_for(unet).checkpoint_slots()
    except ValueError as error:
        raise ValueError(f"gradient_checkpointing: {error}") from error


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
    names = {id(module): name for name, module in unet.named_modules()}
    slots = [
        (container, key, CheckpointedBlock(container._modules[key]))
        for container, key in checkpointable_blocks(unet)
        if container._modules[key] is not None and not isinstance(container._modules[key], CheckpointedBlock)
    ]
    with ModuleSwap(slots).swapped():
        yield [f"{names[id(container)]}.{key}" if names[id(container)] else key for container, key, _ in slots]

