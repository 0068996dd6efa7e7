"""Which torch device a name means: one rule for the library, the CLI and torchrun's ranks.

``auto`` is CUDA where it is available, else the CPU; asking for CUDA on a machine without it
fails at once with :class:`~masked_gatys.errors.DeviceError`, not later inside a computation.

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masked_gatys.errors import DeviceError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto", *, local_rank: int | None = None) -> torch.device:
    """The device ``name`` means: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (or another torch device type).

    ``local_rank`` (a torchrun rank on this machine) turns ``auto`` and a bare ``cuda`` into
    ``cuda:LOCAL_RANK`` modulo the visible GPUs. Raises :class:`~masked_gatys.errors.DeviceError`
    for an unknown name or CUDA asked for where there is none.

    >>> resolve_device("CPU", local_rank=3).type
    'cpu'
    >>> resolve_device("tpu-please")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.DeviceError: unknown device 'tpu-please': use auto, cpu or cuda
    """
    import torch  # here, not at the top: distributed and the CLI import this module without torch

    name = str(name).lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for, but CUDA is not available on this machine")
    if local_rank is not None and device.index is None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return device
