"""``torch.compile`` of the UNet for the duration of training, with the fallback to running it uncompiled when
compilation fails (a missing C++ compiler, an unsupported operator)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


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

