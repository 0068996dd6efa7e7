"""Running under ``torchrun``: the rank's place, its device, the process group.

``torchrun`` (torch's own launcher) starts the processes and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; nothing here schedules or coordinates
anything itself. The backend is gloo on CPU and nccl on CUDA. The group's
timeout is long because a rank waits at the end for the slowest one.

>>> from_env({}) is None
True
>>> env = from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
>>> env.rank, env.world_size, env.device("cpu")
(1, 2, 'cpu')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from masked_gatys.device import resolve_device

__all__ = ["RankEnv", "from_env", "init", "gather_records", "finish", "TIMEOUT"]

#: how long a rank may wait for the others (at the start and at the end)
TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class RankEnv:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int

    def device(self, name: str = "auto") -> str:
        """The device of this rank: ``cuda:LOCAL_RANK`` for ``auto``/``cuda`` where CUDA exists."""
        return str(resolve_device(name, local_rank=self.local_rank))


def from_env(environ: Mapping[str, str] | None = None) -> RankEnv | None:
    """The torchrun environment, or None outside torchrun (or with a world of one)."""
    environ = os.environ if environ is None else environ
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise RuntimeError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is not in 0..WORLD_SIZE-1={world - 1}")
    return RankEnv(rank, world, local)


def init(env: RankEnv, device: str) -> Any:
    """Join the process group (gloo on CPU, nccl on CUDA); returns the default group."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.group.WORLD
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size, timeout=TIMEOUT)
    return dist.group.WORLD


def gather_records(records: list[dict[str, Any]], env: RankEnv) -> list[dict[str, Any]]:
    """Every rank's records on rank 0 (an empty list elsewhere)."""
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * env.world_size if env.rank == 0 else None
    dist.gather_object(records, gathered, dst=0)
    if env.rank != 0:
        return []
    return [r for part in gathered or [] for r in (part or [])]


def finish() -> None:
    """Leave the process group."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
