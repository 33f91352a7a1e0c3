"""Memory and speed switches for training: gradient checkpointing of the UNet3D's blocks, mixed precision,
``torch.compile``, the frozen-weights check, and a peak-memory probe.

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
import ctypes
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)

MIXED_PRECISION = ("no", "bf16", "fp16")
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}

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


# --------------------------------------------------------------------------------------------------------------
# mixed precision


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


# --------------------------------------------------------------------------------------------------------------
# torch.compile


@dataclass
class CompileState:
    """Whether the UNet currently runs compiled, and why not if compilation was given up."""

    requested: bool = False
    active: bool = False
    error: str | None = None


@contextlib.contextmanager
def compiled(unet: nn.Module, enabled: bool, **compile_kwargs: Any) -> Iterator[CompileState]:
    """Compile the UNet in place (``nn.Module.compile``: same object, same paths) for the context.

    Compilation happens lazily at the first call; the caller reports an error from it with
    :func:`give_up_compile` and goes on uncompiled. On exit the UNet's own call is back.
    """
    state = CompileState(requested=enabled)
    if not enabled:
        yield state
        return
    had_own = "_compiled_call_impl" in unet.__dict__
    previous = unet.__dict__.get("_compiled_call_impl")
    try:
        unet.compile(**compile_kwargs)
        state.active = True
        logger.info("train.compile: the UNet is compiled with torch.compile; the first step(s) compile and are slow")
    except Exception as error:  # noqa: BLE001 - any failure to set up compile means: run uncompiled
        _restore_call(unet, had_own, previous)
        state.error = _one_line(error)
        logger.warning("train.compile: torch.compile is not available (%s); training uncompiled", state.error)
    try:
        yield state
    finally:
        _restore_call(unet, had_own, previous)


def give_up_compile(unet: nn.Module, state: CompileState, error: BaseException) -> None:
    """After a compile error: warn once, and run the UNet uncompiled from now on."""
    unet.__dict__.pop("_compiled_call_impl", None)
    state.active = False
    state.error = _one_line(error)
    logger.warning("train.compile: torch.compile failed (%s); continuing uncompiled", state.error)


def is_compile_error(error: BaseException) -> bool:
    """Whether an exception (or one it was raised from) comes from TorchDynamo / Inductor."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.startswith(("torch._dynamo", "torch._inductor", "torch._functorch")):
            return True
        current = current.__cause__ or current.__context__
    return False


def _restore_call(unet: nn.Module, had_own: bool, previous: Any) -> None:
    if had_own:
        unet.__dict__["_compiled_call_impl"] = previous
    else:
        unet.__dict__.pop("_compiled_call_impl", None)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


# --------------------------------------------------------------------------------------------------------------
# frozen weights


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


# --------------------------------------------------------------------------------------------------------------
# peak memory


@dataclass
class MemoryReading:
    """Peak memory of a measured section: ``peak_bytes`` above ``baseline_bytes`` (what was in use before)."""

    kind: str  # "cuda_max_memory_allocated" | "cpu_peak_rss" | "cpu_max_rss_since_start"
    baseline_bytes: int = 0
    peak_bytes: int = 0
    seconds: float = 0.0

    @property
    def peak_delta_bytes(self) -> int:
        return max(0, self.peak_bytes - self.baseline_bytes)


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    return _LIBC


def _proc_status() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) * 1024
    return values


def _reset_peak_rss() -> bool:
    libc = _libc()
    if libc:
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")  # Linux >= 4.0: reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


@contextlib.contextmanager
def peak_memory(device: torch.device | str) -> Iterator[MemoryReading]:
    """Measure the peak memory of the ``with`` body.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensors only) above ``memory_allocated`` before the body.
    CPU (Linux): peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``) above the RSS
    before the body, after ``malloc_trim`` has returned freed heap memory to the OS (so the body's allocations
    count again). Elsewhere the process's ``ru_maxrss`` since start (only an upper bound of the body's peak).
    """
    device = torch.device(device)
    started = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        reading = MemoryReading("cuda_max_memory_allocated", baseline_bytes=torch.cuda.memory_allocated(device))
        yield reading
        torch.cuda.synchronize(device)
        reading.peak_bytes = torch.cuda.max_memory_allocated(device)
    elif os.path.exists("/proc/self/clear_refs") and _reset_peak_rss():
        reading = MemoryReading("cpu_peak_rss", baseline_bytes=_proc_status()["VmRSS"])
        yield reading
        reading.peak_bytes = _proc_status()["VmHWM"]
    else:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        reading = MemoryReading("cpu_max_rss_since_start", baseline_bytes=0)
        yield reading
        reading.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    reading.seconds = time.perf_counter() - started
