"""Change a UNet, then restore it exactly: the primitives every method, switch and recorder uses.

- :class:`ParameterSwap`: parameter objects put in place of a module tree's own and back (pointer swaps);
- :func:`processors_installed`: attention processors installed on named attention layers, the previous ones back;
- :class:`ModuleSwap`: child modules put in place of others in their parents' slots, and back;
- :func:`from_timestep`: a switch turned on or off before each UNet call by the call's timestep;
- :func:`forward_stopped_after`: a forward pass ended once a given block has returned;
- :func:`record_structure` / :func:`structure_restored`: a module tree's recorded structure put back for the
  duration of a context (activation checkpointing recomputes a block under the structure of its forward).

Each puts back the very objects that were there, so the UNet is bitwise what it was (modules, parameters,
processors), also when the body raises. Nothing here knows a backbone family's module paths (that is
:mod:`motiontune.backbone.layout`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class ParameterSwap:
    """Parameters (keyed ``<module path>.<parameter name>``) to put in place of a module tree's own, and back.

    Swapping only rebinds parameter objects (nothing is copied), and :meth:`swap_out` puts back the very objects
    that were there when the swap was built, so the tree's weights come back bitwise. A key the tree lacks, or a
    shape that differs, raises ``ValueError`` (prefixed with ``label``) when the swap is built.
    """

    def __init__(self, root: nn.Module, parameters: Mapping[str, nn.Parameter], label: str) -> None:
        modules = dict(root.named_modules())
        self._slots: list[tuple[nn.Module, str, nn.Parameter, nn.Parameter]] = []
        for key, parameter in parameters.items():
            path, _, name = key.rpartition(".")
            module = modules.get(path)
            original = module._parameters.get(name) if module is not None else None
            if not isinstance(original, nn.Parameter):
                raise ValueError(f"{label}: the backbone has no parameter '{key}'")
            if original.shape != parameter.shape:
                raise ValueError(f"{label}: '{key}' has shape {tuple(parameter.shape)}, the backbone's is {tuple(original.shape)}")
            self._slots.append((module, name, original, parameter))
        self.active = False

    def swap_in(self) -> None:
        """Put the replacement parameters in (no-op when they already are)."""
        if not self.active:
            for module, name, _, replacement in self._slots:
                setattr(module, name, replacement)
            self.active = True

    def swap_out(self) -> None:
        """Put the original parameter objects back (no-op when they already are)."""
        if self.active:
            for module, name, original, _ in reversed(self._slots):
                setattr(module, name, original)
            self.active = False

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The replacements in place for the duration of the context; the originals back on exit."""
        self.swap_in()
        try:
            yield
        finally:
            self.swap_out()


@contextmanager
def parameters_replaced(root: nn.Module, parameters: Mapping[str, nn.Parameter], label: str) -> Iterator[None]:
    """``parameters`` (keyed ``<module path>.<parameter name>``) in place of ``root``'s own for the context
    (:class:`ParameterSwap`); nothing is copied and no hook is added, so a pass costs what the plain one costs."""
    with ParameterSwap(root, parameters, label).swapped():
        yield


def parent_and_child(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module holding ``path`` and the child's name in it."""
    parent_name, _, child = path.rpartition(".")
    return (root.get_submodule(parent_name) if parent_name else root), child


class ModuleSwap:
    """Modules to put in their parents' slots ``(parent, key)`` in place of the ones there, and back.

    :meth:`swap_in` puts the replacements in, :meth:`swap_out` the modules that were in the slots when the swap
    was built (only where a slot still holds its replacement, so a nested swap is left alone).
    """

    def __init__(self, slots: Sequence[tuple[nn.Module, str, nn.Module]]) -> None:
        self._slots = [(parent, key, parent._modules[key], replacement) for parent, key, replacement in slots]

    @property
    def originals(self) -> list[nn.Module]:
        return [original for _, _, original, _ in self._slots]

    def is_in(self) -> bool:
        """Whether every slot holds its replacement."""
        return all(parent._modules[key] is replacement for parent, key, _, replacement in self._slots)

    def swap_in(self) -> None:
        for parent, key, _, replacement in self._slots:
            setattr(parent, key, replacement)

    def swap_out(self) -> None:
        for parent, key, original, replacement in reversed(self._slots):
            if parent._modules[key] is replacement:
                setattr(parent, key, original)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The replacements in their slots for the context; the original modules back on exit."""
        try:
            self.swap_in()
            yield
        finally:
            self.swap_out()


@contextmanager
def processors_installed(root: nn.Module, processors: Mapping[str, Any], label: str = "processors") -> Iterator[None]:
    """Install ``processors`` (``{attention module path: processor}``) for the context; the attention layers get
    their previous processors back on exit (also when installing or the body fails).

    A path that is not a module of ``root`` raises ``ValueError`` (prefixed with ``label``).
    """
    modules = dict(root.named_modules())
    originals: dict[str, Any] = {}
    try:
        for path, processor in processors.items():
            attention = modules.get(path)
            if attention is None:
                raise ValueError(f"{label}: the backbone has no module '{path}'")
            originals[path] = attention.processor
            attention.set_processor(processor)
        yield
    finally:
        for path, processor in originals.items():
            modules[path].set_processor(processor)


def call_timestep(args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    """The largest timestep of a UNet call (the second positional argument or ``timestep=``)."""
    timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
    return float(torch.as_tensor(timestep).max())


@contextmanager
def from_timestep(unet: nn.Module, min_timestep: int, switch_on: Callable[[], None], switch_off: Callable[[], None]) -> Iterator[None]:
    """``switch_on`` before each UNet call whose timestep is ``>= min_timestep``, ``switch_off`` before the
    others (one forward pre-hook on the UNet); always on when ``min_timestep <= 0``. Off again on exit."""
    if min_timestep <= 0:
        switch_on()
        try:
            yield
        finally:
            switch_off()
        return

    def switch(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        (switch_on if call_timestep(args, kwargs) >= min_timestep else switch_off)()

    handle = unet.register_forward_pre_hook(switch, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
        switch_off()


class ForwardStoppedError(Exception):
    """Raised by :func:`forward_stopped_after` after its block, to skip the rest of the forward pass."""


@contextmanager
def forward_stopped_after(root: nn.Module, block_path: str, stop: type[Exception] = ForwardStoppedError) -> Iterator[None]:
    """Raise ``stop`` when the module ``block_path`` of ``root`` has returned.

    The hook sits on the module in that slot when the context is entered (a gradient-checkpointing wrapper
    included), outside anything recomputed in backward, so the block itself always runs to its end.
    """

    def raise_stop(module: nn.Module, args: Any, output: Any) -> None:
        raise stop

    handle = root.get_submodule(block_path).register_forward_hook(raise_stop)
    try:
        yield
    finally:
        handle.remove()


_MISSING = object()


@dataclass
class ModuleState:
    """One module's children, parameters (with their requires_grad), buffers and attention processor."""

    module: nn.Module
    modules: dict[str, Any]
    parameters: dict[str, Any]
    buffers: dict[str, Any]
    processor: Any  # the attention processor, or _MISSING for modules without one
    requires_grad: list[tuple[torch.Tensor, bool]]


def _module_state(module: nn.Module, copy: bool) -> ModuleState:
    parameters = dict(module._parameters) if copy else module._parameters
    return ModuleState(
        module=module,
        modules=dict(module._modules) if copy else module._modules,
        parameters=parameters,
        buffers=dict(module._buffers) if copy else module._buffers,
        processor=module.__dict__.get("processor", _MISSING),
        requires_grad=[(p, p.requires_grad) for p in parameters.values() if p is not None],
    )


def record_structure(block: nn.Module) -> list[ModuleState]:
    """Every module under ``block`` with its children, parameters (and their requires_grad), buffers and
    attention processor, as they are now."""
    return [_module_state(module, copy=True) for module in block.modules()]


def _put(state: ModuleState, fresh_dicts: bool) -> None:
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


@contextmanager
def structure_restored(recorded: list[ModuleState]) -> Iterator[None]:
    """Put a recorded structure in place (fresh copies of its dicts), then the current one back."""
    current = [_module_state(state.module, copy=False) for state in recorded]
    try:
        for state in recorded:
            _put(state, fresh_dicts=True)
        yield
    finally:
        for state in reversed(current):
            _put(state, fresh_dicts=False)
