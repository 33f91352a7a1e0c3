"""motiontune: learn the motion of a reference video and replay it with a text-to-video diffusion model."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public functions, imported on first use so that ``import motiontune`` stays cheap (no torch, no diffusers).
_LAZY = {
    "load_motion": ("motiontune.methods.load", "load_motion"),
    "export_motion": ("motiontune.methods.export", "export_motion"),
}
__all__ = ["__version__", "export_motion", "load_motion"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'motiontune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
