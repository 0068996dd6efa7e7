"""Peak memory of a stretch of benchmark work (CUDA's allocator, or the process's peak RSS).

>>> peak_memory("cpu") > 0
True
"""

from __future__ import annotations

import resource
import sys

import torch

from masked_gatys.bench.timing import synchronize

__all__ = ["MemoryProbe", "peak_memory"]


class MemoryProbe:
    """Peak memory of a stretch of work.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset. CPU on Linux:
    the process's peak resident set (``VmHWM``), reset through
    ``/proc/self/clear_refs`` when the kernel allows it; otherwise
    ``resource.getrusage(...).ru_maxrss``, which is process-wide and only
    grows. Either CPU figure is the whole process's (Python, torch, the
    models), not the measured work's alone; :attr:`method` says which.

    >>> probe = MemoryProbe("cpu")
    >>> probe.start(); probe.peak() > 0
    True
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._can_reset = self.device.type == "cpu" and self._try_reset()

    @property
    def method(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated (reset before each measurement)"
        if self._can_reset:
            return "process peak RSS (VmHWM, reset through /proc/self/clear_refs before each measurement)"
        return "process peak RSS (ru_maxrss: process-wide and monotone)"

    @staticmethod
    def _try_reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return _vmhwm() is not None
        except OSError:
            return False

    def start(self) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._can_reset:
            self._can_reset = self._try_reset()

    def peak(self) -> int:
        if self.device.type == "cuda":
            synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        if self._can_reset:
            hwm = _vmhwm()
            if hwm is not None:
                return hwm
        return peak_memory(self.device)


def _vmhwm() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_memory(device: torch.device | str = "cpu") -> int:
    """Peak memory in bytes: CUDA's max allocated, else the process's ``ru_maxrss``.

    ``ru_maxrss`` is in KiB on Linux (bytes on macOS), process-wide and monotone.

    >>> peak_memory("cpu") > 0
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
