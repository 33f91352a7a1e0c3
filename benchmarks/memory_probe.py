"""Peak memory of a measured section, for benchmarks/train_step.py (CUDA allocator peak, or the process's peak
resident set size on CPU)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


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
