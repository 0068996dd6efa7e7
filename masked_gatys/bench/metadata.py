"""What a result needs to be read later: versions, machine, threads, git commit and date.

:func:`machine_metadata` is the one run-metadata writer: ``masked-gatys bench`` and the gaze
experiment (``masked-gatys gaze``) both record it.

>>> machine_metadata()["device"]
'cpu'
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy
import torch

from masked_gatys import __version__

__all__ = ["machine_metadata", "package_version"]


def package_version(name: str) -> str | None:
    """An installed distribution's version, or None; reads its metadata, never imports it.

    >>> package_version("no-such-package-here") is None
    True
    """
    try:  # importing torchvision takes seconds (it loads torch._dynamo); its metadata does not
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(path: Path) -> dict[str, Any] | None:
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True,
                             timeout=10, check=False)
        if top.returncode != 0:
            return None
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                                timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=path, capture_output=True,
                               text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "package_dirty": bool(dirty)}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_metadata(device: torch.device | str = "cpu", *, packages: Iterable[str] = ()) -> dict[str, Any]:
    """Versions, device, threads, git commit and date: what a result needs to be read later.

    ``packages``: more distributions whose versions to record (e.g. ``("scikit-learn",)``),
    each under its own name.

    >>> meta = machine_metadata(packages=["numpy"])
    >>> meta["torch_threads"] == torch.get_num_threads(), meta["device"], meta["numpy"] == numpy.__version__
    (True, 'cpu', True)
    """
    device = torch.device(device)
    git = _git_commit(Path(__file__).resolve().parent.parent)
    meta: dict[str, Any] = {
        "package": "masked-gatys", "package_version": __version__, "torch": torch.__version__,
        "torchvision": package_version("torchvision"), "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device), "device_name": _cpu_name() if device.type == "cpu" else None,
        "torch_cuda_build": torch.version.cuda, "git_commit": git["commit"] if git else None,
        "git_package_dirty": git["package_dirty"] if git else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (py3.9)
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for name in packages:
        meta.setdefault(name, package_version(name))
    if device.type == "cuda":
        meta["device_name"] = torch.cuda.get_device_name(device)
    return meta
