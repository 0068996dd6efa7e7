"""Speed and objective benchmarks: the per-image optimizer against the feed-forward networks.

The method is written down in ``benchmarks/README.md``. In short:

- **floor**: one forward and one backward pass (gradient with respect to the
  input only; the weights are frozen) of the truncated VGG the objective
  uses, at the benchmark size (:func:`measure_floor`);
- **seconds per evaluation**: the objective's forward and the backward of
  ``total.sum()`` (:func:`measure_eval`); the **ratio to the floor** is their
  quotient;
- **seconds per iteration**: an optimizer run timed after every iteration
  (an iteration may spend several evaluations); the time for ``N``
  iterations is the measured time per iteration times ``N``, labelled
  ``extrapolated`` where fewer than ``N`` were run;
- **networks**: seconds per image at batch 1 and at the best batch;
- **objective**: K held-out rendered real eyes, the optimizer's objective
  after every iteration, each network's objective under the same objective,
  and how many optimizer iterations the network's result is worth
  (:func:`equivalent_iterations`).

Timings use ``time.perf_counter`` with ``torch.cuda.synchronize`` on CUDA,
warm-up runs first, and report the median and the spread (min, max,
quartiles). This module never prints: :func:`run_bench` reports progress
through a callback and returns records; :func:`format_table` and
:func:`write_plot` turn them into text and a figure.

>>> equivalent_iterations([10.0, 8.0, 4.0, 2.0], 5.0)
1.75
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masked_gatys import __version__
from masked_gatys.checkpoints import SHIPPED, apply_model, check_compatible, load_model, shipped_checkpoint
from masked_gatys.encoder import default_weights
from masked_gatys.errors import CheckpointError, MaskedGatysError
from masked_gatys.eyes.render import render_eye
from masked_gatys.files import recorded_name
from masked_gatys.masks import Regions
from masked_gatys.optim import METHODS, minimize
from masked_gatys.stylize import StylizeConfig, prepare
from masked_gatys.train import training_objective

__all__ = [
    "HELDOUT_SEEDS",
    "RESULT_FIELDS",
    "BenchConfig",
    "BenchProgress",
    "BenchResult",
    "MemoryProbe",
    "Timing",
    "equivalent_iterations",
    "format_table",
    "held_out_eyes",
    "machine_metadata",
    "measure_eval",
    "measure_floor",
    "measure_floor_and_eval",
    "peak_memory",
    "quick_config",
    "ratio_to_floor",
    "resumable_sizes",
    "run_bench",
    "summarize",
    "timed",
    "timed_together",
    "write_plot",
]

#: Seeds of the held-out eyes: training draws its render seeds with
#: ``torch.randint(0, 2**31 - 1)`` from a generator seeded by ``(seed, stream)``
#: (``masked_gatys.train``); ``tests/test_bench.py`` checks these are not among
#: the shipped checkpoints' training and validation seeds.
HELDOUT_SEEDS = 900_000
_GAZE_SEED = 20_240_601
#: Gaze range of the held-out eyes, degrees (the training range).
_YAW, _PITCH = 30.0, 20.0

#: A run that stops at the nets' levels runs at least this many iterations (4 timed after the warm-up).
MIN_ITERATIONS = 5

#: Fields every result record has (``None`` where a field does not apply).
RESULT_FIELDS = (
    "method", "kind", "preset", "size", "height", "width", "seconds_per_eval", "eval_timing", "floor_seconds",
    "floor_timing", "ratio_to_floor", "seconds_per_iteration", "iteration_timing", "evals_per_iteration",
    "seconds_for_n_iterations", "n_iterations", "measured_iterations", "extrapolated", "seconds_per_image",
    "image_timing", "best_batch", "seconds_per_image_best_batch", "batches", "speedup_vs_optimizer",
    "speedup_vs_optimizer_best_batch", "speedup_reference", "peak_memory_bytes", "objective",
    "equivalent_iterations", "equivalent_iterations_by_optimizer", "checkpoint", "notes",
)

ProgressFn = Callable[["BenchProgress"], Any]


# ----------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds of repeated runs of one thing: median, spread and the samples.

    >>> t = Timing.of([3.0, 1.0, 2.0], warmup=1)
    >>> t.median, t.min, t.max, t.n
    (2.0, 1.0, 3.0, 3)
    """

    median: float
    min: float
    max: float
    q1: float
    q3: float
    n: int
    warmup: int
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float], *, warmup: int = 0) -> Timing:
        s = sorted(float(v) for v in samples)
        if not s:
            raise ValueError("a timing needs at least one sample")
        if len(s) >= 2:
            q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
        else:
            q1 = q3 = s[0]
        return cls(statistics.median(s), s[0], s[-1], q1, q3, len(s), warmup, tuple(float(v) for v in samples))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = list(self.samples)
        return d


def timed(fn: Callable[[], Any], *, device: torch.device | str = "cpu", repeats: int = 5, warmup: int = 1,
          time_limit: float | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then up to ``repeats`` timed ones.

    With ``time_limit`` (seconds), repeating stops once that much time has
    been spent on timed calls and at least two samples are in (or one, when
    ``repeats`` is 1).

    >>> timed(lambda: sum(range(1000)), repeats=3).n
    3
    """
    return timed_together([fn], device=device, repeats=repeats, warmup=warmup, time_limit=time_limit)[0]


def timed_together(fns: Sequence[Callable[[], Any]], *, device: torch.device | str = "cpu", repeats: int = 5,
                   warmup: int = 1, time_limit: float | None = None) -> list[Timing]:
    """Time several functions interleaved: each repeat calls every function once, in turn.

    On a shared machine the load drifts; interleaving lets every function see
    the same conditions, so ratios of their medians are steadier than from
    back-to-back loops. Otherwise as :func:`timed`.

    >>> a, b = timed_together([lambda: None, lambda: sum(range(100))], repeats=2)
    >>> a.n, b.n
    (2, 2)
    """
    device = torch.device(device)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        for fn in fns:
            fn()
    _sync(device)
    samples: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    while len(samples[0]) < repeats:
        for fn, out in zip(fns, samples):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - start)
            spent += out[-1]
        if time_limit is not None and spent >= time_limit and len(samples[0]) >= min(2, repeats):
            break
    return [Timing.of(out, warmup=max(0, warmup)) for out in samples]


def _floor_fn(encoder: torch.nn.Module, x: Tensor) -> Callable[[], None]:
    leaf = x.detach().clone().requires_grad_(True)
    deepest = list(encoder.layers)[-1]
    with torch.no_grad():
        ones = torch.ones_like(encoder(leaf)[deepest])

    def once() -> None:
        out = encoder(leaf)[deepest]
        torch.autograd.grad(out, leaf, grad_outputs=ones)

    return once


def _eval_fn(objective: Callable[[Tensor], Any], x: Tensor) -> Callable[[], None]:
    leaf = x.detach().clone().requires_grad_(True)

    def once() -> None:
        total = objective(leaf).total
        torch.autograd.grad(total.sum(), leaf)

    return once


def measure_floor(encoder: torch.nn.Module, x: Tensor, **timing: Any) -> Timing:
    """Seconds for one forward and backward pass of ``encoder`` at ``x``'s shape.

    The backward is that of the deepest layer's output (a gradient of ones)
    with respect to the input only; the encoder's weights are frozen. This is
    the floor of one objective evaluation. ``timing``: see :func:`timed`.

    >>> import warnings
    >>> from masked_gatys.encoder import load_encoder
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     enc = load_encoder(weights="random", layers=["relu1_1"])
    >>> measure_floor(enc, torch.rand(1, 3, 16, 16), repeats=2).median > 0
    True
    """
    return timed(_floor_fn(encoder, x), device=x.device, **timing)


def measure_eval(objective: Callable[[Tensor], Any], x: Tensor, **timing: Any) -> Timing:
    """Seconds for one objective evaluation: ``objective(x)`` and the backward of ``total.sum()``.

    ``objective(x)`` returns an object with a ``total`` (B,) tensor, as
    :class:`~masked_gatys.objective.Objective` does. ``timing``: see :func:`timed`.

    >>> from types import SimpleNamespace
    >>> fun = lambda x: SimpleNamespace(total=(x ** 2).flatten(1).sum(1))
    >>> measure_eval(fun, torch.rand(2, 3, 8, 8), repeats=2).median > 0
    True
    """
    return timed(_eval_fn(objective, x), device=x.device, **timing)


def measure_floor_and_eval(encoder: torch.nn.Module, objective: Callable[[Tensor], Any], x: Tensor,
                           **timing: Any) -> tuple[Timing, Timing]:
    """:func:`measure_floor` and :func:`measure_eval` interleaved (:func:`timed_together`).

    >>> import warnings
    >>> from masked_gatys.encoder import load_encoder
    >>> from types import SimpleNamespace
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     enc = load_encoder(weights="random", layers=["relu1_1"])
    >>> fun = lambda x: SimpleNamespace(total=enc(x)["relu1_1"].square().flatten(1).mean(1))
    >>> floor, per_eval = measure_floor_and_eval(enc, fun, torch.rand(1, 3, 16, 16), repeats=2)
    >>> floor.n, per_eval.n
    (2, 2)
    """
    floor, per_eval = timed_together([_floor_fn(encoder, x), _eval_fn(objective, x)], device=x.device, **timing)
    return floor, per_eval


def ratio_to_floor(per_eval: Timing | float, floor: Timing | float) -> float:
    """Median seconds per evaluation over the median floor.

    >>> ratio_to_floor(1.05, 1.0)
    1.05
    """
    a = per_eval.median if isinstance(per_eval, Timing) else float(per_eval)
    b = floor.median if isinstance(floor, Timing) else float(floor)
    return a / b


# ----------------------------------------------------------------------------- memory


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
            _sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._can_reset:
            self._can_reset = self._try_reset()

    def peak(self) -> int:
        if self.device.type == "cuda":
            _sync(self.device)
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


# ----------------------------------------------------------------------------- objective


def equivalent_iterations(curve: Sequence[float], level: float) -> float | None:
    """The first iteration at which ``curve`` reaches ``level`` (<=), interpolated linearly.

    ``curve[i]`` is the objective after ``i`` iterations (``curve[0]`` at the
    start). Returns 0 when the start is already at or below ``level``, and
    None when the curve never gets there (the net is worth more iterations
    than were run).

    >>> equivalent_iterations([10.0, 8.0, 4.0, 2.0], 5.0)   # 1 + (8 - 5) / (8 - 4)
    1.75
    >>> equivalent_iterations([10.0, 8.0], 1.0) is None
    True
    """
    if not curve:
        return None
    if math.isnan(level):
        return None
    if curve[0] <= level:
        return 0.0
    for i in range(1, len(curve)):
        if curve[i] <= level:
            a, b = float(curve[i - 1]), float(curve[i])
            return (i - 1) + (a - level) / (a - b) if a > b else float(i)
    return None


def summarize(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean and sample std of the values that are not None, and how many there were.

    >>> summarize([1.0, 3.0, None])
    {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2, 'missing': 1}
    """
    vals = list(values)
    got = [float(v) for v in vals if v is not None]
    return {"mean": statistics.fmean(got) if got else None,
            "std": statistics.stdev(got) if len(got) >= 2 else (0.0 if got else None),
            "n": len(got), "missing": len(vals) - len(got)}


def held_out_eyes(size: tuple[int, int], count: int) -> list[tuple[Tensor, Tensor, dict[str, Any]]]:
    """``count`` rendered real-domain eyes not used in training: (image, mask, info) each.

    Seeds are ``HELDOUT_SEEDS + k``; gazes are drawn from a fixed generator in
    the training range. ``info`` holds the seed, the gaze and the renderer's part
    labels (``labels``, ``(H, W)``: 0 skin, 1 sclera, 2 iris, 3 pupil).

    >>> image, mask, info = held_out_eyes((24, 40), 1)[0]
    >>> tuple(image.shape), tuple(mask.shape), info["seed"]
    ((1, 3, 24, 40), (1, 1, 24, 40), 900000)
    """
    gen = torch.Generator().manual_seed(_GAZE_SEED)
    gaze = ((torch.rand(max(count, 0), 2, generator=gen) * 2 - 1) * torch.tensor([_YAW, _PITCH])).tolist()
    out = []
    for k, (yaw, pitch) in enumerate(gaze):
        eye = render_eye(yaw=yaw, pitch=pitch, domain="real", size=size, seed=HELDOUT_SEEDS + k)
        out.append((eye.image.float(), eye.mask.float(),
                    {"seed": HELDOUT_SEEDS + k, "yaw": yaw, "pitch": pitch, "labels": eye.labels}))
    return out


def _style_eye(size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The shipped checkpoints' style recipe, at ``size``: the synthetic eye of seed 0 looking ahead."""
    eye = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=size, seed=0)
    return eye.image.float(), eye.mask.float()


# ----------------------------------------------------------------------------- config and results


@dataclass(frozen=True)
class BenchConfig:
    """What :func:`run_bench` measures; the CLI's defaults come from here.

    >>> BenchConfig().sizes
    (256, 512, 1024)
    """

    sizes: tuple[int, ...] = (256, 512, 1024)
    """Benchmark sizes: square images of ``size x size`` pixels."""
    presets: tuple[str, ...] = ("gatys", "masked")
    optimizers: tuple[str, ...] = ("plbfgs", "lbfgs", "lbfgs-b", "adam")
    nets: tuple[str, ...] = ("johnson", "purifier")
    """Shipped network names or checkpoint paths."""
    iterations: int = 400
    """N: the optimizer's time is reported for N iterations (the paper's baseline)."""
    run_iterations: int | None = None
    """Most iterations actually run per optimizer run (None: N)."""
    time_limit: float | None = None
    """Seconds: a timing loop, or an optimizer run with no net's level to reach, stops after this long
    (keeping two samples or iterations). Runs chasing a net's level stop at ``run_iterations``."""
    repeats: int = 5
    warmup: int = 1
    eyes: int = 3
    """K held-out eyes for the objective comparison."""
    compare_all: bool = False
    """Run every optimizer on all K eyes; by default only the first optimizer of ``optimizers`` does
    (the others run on the first eye: their speed and one curve)."""
    full_curves: bool = False
    """Run every optimizer run to ``run_iterations``; by default a run stops once every net's level is reached."""
    device: str = "cpu"
    weights: str | None = None
    """A weights file, ``imagenet`` or ``random``; None: ``$MASKED_GATYS_WEIGHTS``, else random."""
    max_layer: str | None = "auto"
    """Deepest VGG layer the presets may use; ``auto``: as deep as the weights go."""
    max_batch: int | None = None
    """Largest batch tried for the nets (None: 8 on the CPU, 256 on CUDA)."""
    history_size: int = 10
    lr: float = 0.02

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        for name in ("presets", "optimizers", "nets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.sizes or min(self.sizes) < 16:
            raise ValueError(f"sizes must be at least 16 pixels, got {self.sizes}")
        bad = [m for m in self.optimizers if m not in METHODS]
        if bad:
            raise ValueError(f"unknown optimizer(s) {', '.join(bad)}: use {', '.join(METHODS)}")
        bad = [p for p in self.presets if p not in ("gatys", "masked")]
        if bad:
            raise ValueError(f"unknown preset(s) {', '.join(bad)}: use gatys or masked")
        if self.iterations < 1 or self.repeats < 1 or self.eyes < 1 or self.warmup < 0:
            raise ValueError("iterations, repeats and eyes must be >= 1 and warmup >= 0")
        if self.run_iterations is not None and self.run_iterations < 2:
            raise ValueError(f"run_iterations must be >= 2 (the first iteration is a warm-up), "
                             f"got {self.run_iterations}")

    @property
    def iterations_per_run(self) -> int:
        return self.run_iterations if self.run_iterations is not None else self.iterations

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("sizes", "presets", "optimizers", "nets"):
            d[k] = list(d[k])
        return d


def quick_config(**changes: Any) -> BenchConfig:
    """The ``--quick`` smoke test: tiny sizes, few iterations, a few seconds in all.

    >>> quick_config().sizes
    (32, 48)
    """
    base = BenchConfig(sizes=(32, 48), iterations=10, run_iterations=3, time_limit=1.0, repeats=2, eyes=2,
                       max_layer="relu2_2", max_batch=4)
    return replace(base, **changes)


@dataclass(frozen=True)
class BenchProgress:
    """What the progress callback receives: ``done`` of ``total`` steps, and the step just started."""

    done: int
    total: int
    label: str


@dataclass
class BenchResult:
    """Run metadata and one record per method, preset and size (see :data:`RESULT_FIELDS`)."""

    metadata: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "results": self.results}


def _record(**values: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {k: None for k in RESULT_FIELDS}
    unknown = set(values) - set(rec)
    if unknown:
        raise KeyError(f"unknown result fields {sorted(unknown)}")
    rec.update(values)
    return rec


# ----------------------------------------------------------------------------- metadata


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


def machine_metadata(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions, device, threads, git commit and date: what a result needs to be read later.

    >>> meta = machine_metadata()
    >>> meta["torch_threads"] == torch.get_num_threads(), meta["device"]
    (True, 'cpu')
    """
    from importlib import metadata

    import numpy


    try:  # importing torchvision takes seconds (it loads torch._dynamo); its metadata does not
        tv_version: str | None = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        tv_version = None
    device = torch.device(device)
    git = _git_commit(Path(__file__).resolve().parent)
    meta: dict[str, Any] = {
        "package": "masked-gatys", "package_version": __version__, "torch": torch.__version__,
        "torchvision": tv_version, "numpy": numpy.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device), "device_name": _cpu_name() if device.type == "cpu" else None,
        "torch_cuda_build": torch.version.cuda, "git_commit": git["commit"] if git else None,
        "git_package_dirty": git["package_dirty"] if git else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (py3.9)
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        meta["device_name"] = torch.cuda.get_device_name(device)
    return meta


# ----------------------------------------------------------------------------- the run


@dataclass
class _Run:
    curve: list[float]        # objective at the start and after every iteration
    times: list[float]        # seconds since the start, after every iteration
    calls: list[int]          # evaluations so far, after every iteration
    peak: int


def _run_optimizer(objective: Any, x0: Tensor, method: str, cfg: BenchConfig, probe: MemoryProbe,
                   stop_below: float | None) -> _Run:
    """One optimizer run from ``x0``, timed after every iteration."""
    device = x0.device
    with torch.no_grad():
        f0 = float(objective(x0).total.sum())
    max_iter = cfg.iterations_per_run
    curve, times, calls = [f0], [], []

    def fun(x: Tensor) -> Tensor:
        return objective(x).total

    options: dict[str, Any] = {}
    if method in ("plbfgs", "lbfgs", "lbfgs-b"):
        options["history_size"] = cfg.history_size
    if method == "adam":
        options["lr"] = cfg.lr
    if method == "lbfgs-b":
        options["max_eval"] = 4 * max_iter + 20
    probe.start()
    _sync(device)
    start = time.perf_counter()

    def callback(info: Any) -> bool:
        _sync(device)
        times.append(time.perf_counter() - start)
        curve.append(float(info.fun.sum()))
        calls.append(int(info.n_calls))
        n = len(times)
        if n >= max_iter:
            return True
        if stop_below is not None:  # chasing the nets' levels: only run_iterations caps the run
            return n >= MIN_ITERATIONS and curve[-1] <= stop_below
        return n >= 2 and cfg.time_limit is not None and times[-1] >= cfg.time_limit

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        minimize(fun, x0, method=method, max_iter=max_iter, lower=0.0, upper=1.0, callback=callback, **options)
    return _Run(curve, times, calls, probe.peak())


def _iteration_stats(runs: list[_Run], n: int) -> dict[str, Any]:
    """Per-iteration timing over runs, the first iteration of each run being a warm-up."""
    durations: list[float] = []
    evals = 0
    for run in runs:
        for i in range(1, len(run.times)):
            durations.append(run.times[i] - run.times[i - 1])
            evals += run.calls[i] - run.calls[i - 1]
    first = runs[0] if runs else None
    if not durations:
        # a single iteration: the best we have is that iteration itself
        if first is None or not first.times:
            return {"seconds_per_iteration": None, "iteration_timing": None, "evals_per_iteration": None,
                    "seconds_for_n_iterations": None, "measured_iterations": 0, "extrapolated": None}
        durations = [first.times[0]]
        evals = first.calls[0]
    per_iter = sum(durations) / len(durations)
    if first is not None and len(first.times) >= n:
        total, extrapolated = first.times[n - 1], False
    else:
        total, extrapolated = per_iter * n, True
    return {"seconds_per_iteration": per_iter, "iteration_timing": Timing.of(durations).to_dict(),
            "evals_per_iteration": evals / len(durations), "seconds_for_n_iterations": total,
            "measured_iterations": len(durations), "extrapolated": extrapolated}


def _load_nets(cfg: BenchConfig, device: torch.device) -> list[tuple[str, Any, str]]:
    out = []
    for item in cfg.nets:
        path = shipped_checkpoint(item) if item in SHIPPED else Path(item)
        model = load_model(path, device=device)
        out.append((model.name, model, Path(path).name))  # recorded: the file's name, not its folder
    return out


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _time_net(model: Any, image: Tensor, mask: Tensor, cfg: BenchConfig, probe: MemoryProbe,
              ) -> dict[str, Any]:
    """Seconds per image at batch 1 and at the best batch (doubling while memory and time allow)."""
    device = image.device
    max_batch = cfg.max_batch or (256 if device.type == "cuda" else 8)
    batches: dict[int, dict[str, Any]] = {}
    best_b, best = 1, math.inf
    b = 1
    while b <= max_batch:
        x, m = image.expand(b, -1, -1, -1).contiguous(), mask.expand(b, -1, -1, -1).contiguous()
        try:
            probe.start()
            t = timed(lambda x=x, m=m: apply_model(model, x, m), device=device, repeats=cfg.repeats, warmup=cfg.warmup,
                      time_limit=cfg.time_limit)
            peak = probe.peak()
        except RuntimeError as exc:
            if not _is_oom(exc):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            break
        per_image = t.median / b
        batches[b] = {"seconds_per_image": per_image, "timing": t.to_dict(), "peak_memory_bytes": peak}
        if per_image < best * 0.98:
            best_b, best = b, per_image
        elif b > 1:
            break  # no gain from the last doubling
        if cfg.time_limit is not None and t.median * 2 > cfg.time_limit and b > 1:
            break
        b *= 2
    return {"batches": batches, "best_batch": best_b}


def _worth_on_training_objective(model: Any, eyes: list, weights: Any, cfg: BenchConfig, device: torch.device,
                                 cache: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A net's objective and worth on the objective it was trained on (``train.training_objective``:
    its preset, its style eye or each eye's nearest eye of its style pool, the eyes' part labels).

    The benchmark's presets judge every net against one style eye; a net trained on another
    objective (the shipped ones: ``masked-eye`` with a style pool) would be scored on terms it was
    not asked to lower. ``plbfgs`` runs on the same objective from each eye (all eyes as one
    batch, one history each) until every eye reaches the net's value or ``run_iterations``;
    nets sharing an objective (same terms, pool and seed) share the run through ``cache``.
    Raises :class:`~masked_gatys.errors.CheckpointError` when the weights are not the net's.
    """
    images = torch.cat([e[0] for e in eyes]).to(device)
    masks = torch.cat([e[1] for e in eyes]).to(device)
    parts = torch.stack([e[2]["labels"] for e in eyes]).to(device)
    trained = model.checkpoint.get("train_config") or {}
    key = json.dumps([model.checkpoint.get("objective"), trained.get("style_pool"), trained.get("seed"),
                      trained.get("parts")], sort_keys=True, default=str)
    if key not in cache:
        objective = training_objective(model, images, masks, parts=parts, weights=weights)
        cache[key] = {"objective": objective, "curves": None}
    entry = cache[key]
    objective = entry["objective"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resize-to-trained-size notice: the speed row gives it
        levels = [float(v) for v in objective(model(images, masks)).total]
    if entry["curves"] is None or (not cfg.full_curves and any(
            min(c) > lv and len(c) - 1 < cfg.iterations_per_run for c, lv in zip(entry["curves"], levels))):
        with torch.no_grad():
            start = objective(images).total.tolist()
        curves = [[float(v)] for v in start]
        goal = None if cfg.full_curves else levels

        def callback(info: Any) -> bool:
            for c, v in zip(curves, info.fun.tolist()):
                c.append(float(v))
            n = len(curves[0]) - 1
            if n >= cfg.iterations_per_run:
                return True
            return goal is not None and n >= MIN_ITERATIONS and all(min(c) <= g for c, g in zip(curves, goal))

        minimize(lambda x: objective(x).total, images.clone(), method="plbfgs", max_iter=cfg.iterations_per_run,
                 lower=0.0, upper=1.0, callback=callback, history_size=cfg.history_size)
        entry["curves"] = curves
    curves = entry["curves"]
    preset_name = objective.config.preset
    objective_rec = {"available": True, "preset": preset_name, "objective": "training", "values": levels,
                     "curves": curves, **summarize(levels)}
    eq = [equivalent_iterations(c, lv) for c, lv in zip(curves, levels)]
    equivalent = {"preset": preset_name, "optimizer": "plbfgs", "objective": "training", "per_eye": eq,
                  "at_least": [len(c) - 1 if e is None else None for c, e in zip(curves, eq)], **summarize(eq)}
    return objective_rec, equivalent


def _config_record(config: BenchConfig) -> dict[str, Any]:
    """The settings as a record holds them: files by name only (no paths of this machine)."""
    record = config.to_dict()
    record["weights"] = recorded_name(record.get("weights"))
    record["nets"] = [recorded_name(n) for n in record.get("nets") or []]
    return record


def resumable_sizes(config: BenchConfig, earlier: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The records of an earlier run (its JSON, as a dict) by size, for ``run_bench(resume=...)``.

    The earlier run must have had the same settings but for ``sizes``; otherwise its figures
    would not compare and a one-line :class:`~masked_gatys.errors.MaskedGatysError` says which
    setting differs.

    >>> cfg = quick_config()
    >>> done = {"metadata": {"config": dict(cfg.to_dict(), sizes=[32])}, "results": [{"size": 32}]}
    >>> resumable_sizes(cfg, done)
    {32: [{'size': 32}]}
    >>> resumable_sizes(cfg, {"metadata": {"config": dict(cfg.to_dict(), eyes=9)}, "results": []})
    Traceback (most recent call last):
    ...
    masked_gatys.errors.MaskedGatysError: the earlier run was made with other settings (eyes): resume with the same options, or write another --json
    """
    now = _config_record(config)
    then = (earlier.get("metadata") or {}).get("config") or {}
    differ = sorted(k for k in set(now) | set(then) if k != "sizes" and json.dumps(now.get(k), default=str)
                    != json.dumps(then.get(k), default=str))
    if differ:
        shown = ", ".join(differ[:3]) + (", ..." if len(differ) > 3 else "")
        raise MaskedGatysError(f"the earlier run was made with other settings ({shown}): resume with the same "
                               "options, or write another --json")
    by_size: dict[int, list[dict[str, Any]]] = {}
    for rec in earlier.get("results") or []:
        by_size.setdefault(int(rec["size"]), []).append(rec)
    return by_size


def run_bench(config: BenchConfig | None = None, *, progress: ProgressFn | None = None,
              resume: dict[str, Any] | None = None,
              checkpoint: Callable[[BenchResult], Any] | None = None) -> BenchResult:
    """Measure everything :class:`BenchConfig` asks for; return the metadata and the records.

    ``resume`` (an earlier run's :meth:`BenchResult.to_dict`, e.g. its JSON, made with the same
    settings: :func:`resumable_sizes`) gives the records of sizes measured before, which are
    kept (also those of sizes not asked for now) and not measured again; ``checkpoint(result)`` is called after each size with the
    records so far (``masked-gatys bench --json`` writes them then, so an interrupted run keeps
    its finished sizes and ``--resume`` goes on from there).

    Records (one dict each, the keys of :data:`RESULT_FIELDS`):

    - ``kind="objective"``, ``method="objective"``: one per preset and size:
      seconds per evaluation, the floor and their ratio;
    - ``kind="optimizer"``: one per optimizer, preset and size: the above plus
      seconds per iteration, evaluations per iteration, the time for N
      iterations, peak memory, the objective curves;
    - ``kind="net"``: one per network and size: seconds per image, best batch,
      speed-up over N optimizer iterations, the net's objective and the
      optimizer iterations it is worth (or why it is unavailable).
    """
    cfg = config or BenchConfig()


    weights = cfg.weights or default_weights()[0]  # the one rule (README: "Loss-network weights")
    device = torch.device(cfg.device)
    probe = MemoryProbe(device)
    nets = _load_nets(cfg, device)
    meta = machine_metadata(device)

    config_record = _config_record(cfg)
    meta.update(config=config_record, weights_requested=recorded_name(weights), memory_method=probe.method,
                image_shape="square: size x size pixels", style=("render_eye(yaw=0, pitch=0, domain='synthetic', "
                                                                  "size=(size, size), seed=0)"),
                held_out_eyes={"seeds": [HELDOUT_SEEDS + k for k in range(cfg.eyes)], "domain": "real"})
    result = BenchResult(meta)
    runs_per_preset = (cfg.eyes * len(cfg.optimizers) if cfg.compare_all
                       else len(cfg.optimizers) + (cfg.eyes - 1) * min(1, len(cfg.optimizers)))
    per_size = len(cfg.presets) * (1 + runs_per_preset) + len(nets)
    total, done = per_size * len(cfg.sizes), 0

    def step(label: str, advance: int = 1) -> None:
        nonlocal done
        if progress is not None:
            progress(BenchProgress(done, total, label))
        done += advance

    encoders: dict[str, Any] = {}
    identity: dict[str, Any] | None = None
    earlier = resumable_sizes(cfg, resume) if resume is not None else {}
    if earlier:
        meta["resumed_sizes"] = sorted(sz for sz in cfg.sizes if sz in earlier)
        meta["resumed_from"] = {k: (resume.get("metadata") or {}).get(k) for k in ("date", "git_commit")}
        identity = (resume.get("metadata") or {}).get("weights")
        # sizes the earlier run measured and this one does not ask for stay in the record too
        for sz in sorted(set(earlier) - set(cfg.sizes)):
            result.results.extend(earlier[sz])
        config_record["sizes"] = sorted(set(cfg.sizes) | set(earlier))
    for size in cfg.sizes:
        if size in earlier:  # measured by the earlier run
            result.results.extend(earlier[size])
            step(f"{size}px: kept from the earlier run", advance=per_size)
            continue
        hw = (size, size)
        eyes = held_out_eyes(hw, cfg.eyes)
        style, style_mask = _style_eye(hw)
        size_records: list[dict[str, Any]] = []
        net_levels: dict[tuple[str, str], list[float]] = {}  # (checkpoint, preset)
        net_reasons: dict[tuple[str, str], str] = {}
        own_objectives: dict[str, Any] = {}  # nets' training objectives at this size, and their runs
        for preset in cfg.presets:
            step(f"{size}px {preset}: floor and evaluation")
            # the preset as named (masked stays the paper's; masked-eye is asked for by name)
            scfg = StylizeConfig(preset=preset, weights=weights, max_layer=cfg.max_layer, device=str(device),
                                 history_size=cfg.history_size, lr=cfg.lr, subject="general")
            image0, mask0, _ = eyes[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the random-weights warning: recorded in the metadata
                problem = prepare(image0, style, mask=mask0, style_mask=style_mask, config=scfg,
                                  encoder=encoders.get(preset))
            encoders[preset] = problem.encoder
            identity = problem.encoder.identity.to_dict()
            objective = problem.objective
            timing = {"repeats": cfg.repeats, "warmup": cfg.warmup, "time_limit": cfg.time_limit}
            probe.start()
            floor, per_eval = measure_floor_and_eval(problem.encoder, objective, problem.x0, **timing)
            eval_peak = probe.peak()
            shared = {"preset": preset, "size": size, "height": hw[0], "width": hw[1],
                      "seconds_per_eval": per_eval.median, "eval_timing": per_eval.to_dict(),
                      "floor_seconds": floor.median, "floor_timing": floor.to_dict(),
                      "ratio_to_floor": ratio_to_floor(per_eval, floor)}
            size_records.append(_record(method="objective", kind="objective", peak_memory_bytes=eval_peak,
                                        notes=f"layers {', '.join(problem.encoder.layers)}", **shared))

            # which nets' objectives compare under this preset's objective
            comparable = []
            for name, model, path in nets:
                try:
                    check_compatible(model, problem.objective_config, problem.encoder.identity)
                    comparable.append(path)
                except CheckpointError as exc:
                    net_reasons[(path, preset)] = str(exc)
            n_eyes = cfg.eyes if comparable else 1
            runs: dict[str, list[_Run]] = {m: [] for m in cfg.optimizers}
            for k in range(cfg.eyes):
                methods = list(cfg.optimizers) if k == 0 or cfg.compare_all else list(cfg.optimizers[:1])
                if k >= n_eyes:
                    step(f"{size}px {preset}: (no comparable net: one eye)", advance=len(methods))
                    continue
                image, mask, _ = eyes[k]
                image, mask = image.to(device), mask.to(device)
                if k > 0:
                    objective.set_content(image, Regions.from_binary(mask))
                levels = []
                for name, model, path in nets:
                    if path not in comparable:
                        continue
                    with torch.no_grad():
                        level = float(objective(model(image, mask)).total.sum())
                    net_levels.setdefault((path, preset), []).append(level)
                    levels.append(level)
                stop_below = None if cfg.full_curves or not levels else min(levels)
                for method in methods:
                    step(f"{size}px {preset}: {method} on eye {k + 1}/{n_eyes}")
                    runs[method].append(_run_optimizer(objective, image.clone(), method, cfg, probe, stop_below))
            for method in cfg.optimizers:
                mruns = runs[method]
                stats = _iteration_stats(mruns, cfg.iterations)
                curves = [r.curve for r in mruns]
                finals = [c[-1] for c in curves]
                objective_rec = {"curves": curves, "eyes": len(curves), "start_mean": statistics.fmean(c[0] for c in curves),
                                 "final_mean": statistics.fmean(finals), "iterations_run": [len(c) - 1 for c in curves]}
                size_records.append(_record(method=method, kind="optimizer", n_iterations=cfg.iterations,
                                            peak_memory_bytes=max(r.peak for r in mruns), objective=objective_rec,
                                            **shared, **stats))

        # the networks: speed, then objective and equivalent iterations
        image0, mask0, _ = eyes[0]
        image0, mask0 = image0.to(device), mask0.to(device)
        for name, model, path in nets:
            step(f"{size}px {name}: seconds per image")
            net_preset = (model.objective_config or {}).get("preset") or "masked"
            speed = _time_net(model, image0, mask0, cfg, probe)
            batches = speed["batches"]
            b1 = batches.get(1)
            best_b = speed["best_batch"]
            ref = _reference(size_records, net_preset)
            ref_total = ref["seconds_for_n_iterations"] if ref else None
            per_image = b1["seconds_per_image"] if b1 else None
            per_image_best = batches[best_b]["seconds_per_image"] if batches else None
            preset_used = net_preset if net_preset in cfg.presets else (cfg.presets[0] if cfg.presets else None)
            levels = net_levels.get((path, preset_used)) if preset_used else None
            if levels:
                objective_rec: dict[str, Any] = {"available": True, "preset": preset_used, "values": levels,
                                                 **summarize(levels)}
                by_opt = {}
                for rec in size_records:
                    if rec["kind"] != "optimizer" or rec["preset"] != preset_used:
                        continue
                    curves = rec["objective"]["curves"]
                    eq = [equivalent_iterations(c, lv) for c, lv in zip(curves, levels)]
                    by_opt[rec["method"]] = {"preset": preset_used, "optimizer": rec["method"], "per_eye": eq,
                                             "at_least": [len(c) - 1 if e is None else None
                                                          for c, e in zip(curves, eq)], **summarize(eq)}
                main_opt = "plbfgs" if "plbfgs" in by_opt else next(iter(by_opt), None)
                equivalent = by_opt.get(main_opt) if main_opt else None
            else:
                reason = net_reasons.get((path, preset_used)) if preset_used else None
                reason = reason or (f"the net was trained on preset {net_preset!r}, which was not benchmarked"
                                    if preset_used != net_preset else "not measured")
                objective_rec = {"available": False, "reason": reason}
                by_opt, equivalent = {}, None
                if model.checkpoint.get("train_config") and model.checkpoint.get("objective"):
                    # not one of the benchmark's objectives: judge it on its own (see the helper)
                    step(f"{size}px {name}: plbfgs on its training objective", advance=0)
                    try:
                        objective_rec, equivalent = _worth_on_training_objective(
                            model, eyes, weights, cfg, device, own_objectives)
                        by_opt = {"plbfgs": equivalent}
                    except CheckpointError as exc:  # its own objective is out of reach too: say why
                        objective_rec = {"available": False, "reason": str(exc)}
            size_records.append(_record(
                method=name, kind="net", preset=net_preset, size=size, height=hw[0], width=hw[1],
                seconds_per_image=per_image, image_timing=b1["timing"] if b1 else None, best_batch=best_b,
                seconds_per_image_best_batch=per_image_best,
                batches={str(b): v for b, v in batches.items()},
                speedup_vs_optimizer=(ref_total / per_image) if ref_total and per_image else None,
                speedup_vs_optimizer_best_batch=(ref_total / per_image_best) if ref_total and per_image_best else None,
                speedup_reference=({"method": ref["method"], "preset": ref["preset"], "n_iterations": cfg.iterations,
                                    "seconds_for_n_iterations": ref_total, "extrapolated": ref["extrapolated"]}
                                   if ref else None),
                peak_memory_bytes=b1["peak_memory_bytes"] if b1 else None, objective=objective_rec,
                equivalent_iterations=equivalent, equivalent_iterations_by_optimizer=by_opt or None,
                checkpoint=path, n_iterations=cfg.iterations))
        result.results.extend(size_records)
        meta["weights"] = identity
        if checkpoint is not None:
            checkpoint(result)
    meta["weights"] = identity
    meta["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if progress is not None:
        progress(BenchProgress(total, total, "done"))
    return result


def _reference(records: list[dict[str, Any]], preset: str) -> dict[str, Any] | None:
    """The optimizer record a net's speed-up is taken against: plbfgs on the net's preset if there."""
    opts = [r for r in records if r["kind"] == "optimizer" and r["seconds_for_n_iterations"]]
    for pick in (lambda r: r["preset"] == preset and r["method"] == "plbfgs",
                 lambda r: r["preset"] == preset, lambda r: r["method"] == "plbfgs", lambda r: True):
        found = [r for r in opts if pick(r)]
        if found:
            return found[0]
    return None


# ----------------------------------------------------------------------------- reporting


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def format_table(result: BenchResult | dict[str, Any]) -> str:
    """The records as readable text tables (seconds, or ``ms`` and ``us`` below one second)."""
    data = result.to_dict() if isinstance(result, BenchResult) else result
    meta, recs = data["metadata"], data["results"]
    weights = meta.get("weights") or {}
    n = (meta.get("config") or {}).get("iterations")
    lines = [(f"masked-gatys {meta.get('package_version')} bench on {meta.get('device')} ({meta.get('device_name')}), "
              f"{meta.get('torch_threads')} torch threads, torch {meta.get('torch')}; weights "
              f"{weights.get('name')} ({str(weights.get('sha256'))[:12]}); {meta.get('date')}"), ""]
    lines.append("Objective evaluation (forward + backward) against the floor (VGG forward + backward):")
    rows = [[str(r["size"]), r["preset"], _s(r["seconds_per_eval"]), _s(r["floor_seconds"]),
             f"{r['ratio_to_floor']:.3f}", f"{_s(r['eval_timing']['min'])}-{_s(r['eval_timing']['max'])}",
             str(r["eval_timing"]["n"]), _mb(r["peak_memory_bytes"])]
            for r in recs if r["kind"] == "objective"]
    lines += _table(["size", "preset", "s/eval", "floor s", "ratio", "eval min-max", "n", "peak MiB"], rows)
    lines += ["", f"Optimizers (time for N={n} iterations; * = extrapolated from the measured iterations):"]
    rows = []
    for r in recs:
        if r["kind"] != "optimizer":
            continue
        obj = r["objective"] or {}
        rows.append([str(r["size"]), r["preset"], r["method"], _s(r["seconds_per_iteration"]),
                     "-" if r["evals_per_iteration"] is None else f"{r['evals_per_iteration']:.2f}",
                     _s(r["seconds_for_n_iterations"]) + ("*" if r["extrapolated"] else ""),
                     str(r["measured_iterations"]),
                     "-" if not obj else f"{obj['start_mean']:.4g} -> {obj['final_mean']:.4g}",
                     _mb(r["peak_memory_bytes"])])
    lines += _table(["size", "preset", "optimizer", "s/iter", "evals/iter", "s for N", "measured", "objective",
                     "peak MiB"], rows)
    lines += ["", ("Networks (speed-up = time for N optimizer iterations / seconds per image; "
                   "worth = optimizer iterations reaching the net's objective, mean +- std over the eyes):")]
    rows = []
    for r in recs:
        if r["kind"] != "net":
            continue
        obj = r["objective"] or {}
        eq = r["equivalent_iterations"]
        on = f"{eq['optimizer']}, its training objective" if eq and eq.get("objective") == "training" else \
            (eq or {}).get("optimizer")
        if eq and eq.get("mean") is not None:
            worth = f"{eq['mean']:.1f} +- {eq['std']:.1f} ({on})"
            if eq.get("missing"):
                worth += f", {eq['missing']} beyond the run"
        elif eq:
            worth = f"> {max(a for a in eq['at_least'] if a is not None)} ({on})"
        else:
            worth = "n/a"
        ref = r["speedup_reference"] or {}
        rows.append([str(r["size"]), r["method"], _s(r["seconds_per_image"]),
                     f"{_s(r['seconds_per_image_best_batch'])} @{r['best_batch']}",
                     "-" if r["speedup_vs_optimizer"] is None else
                     f"{r['speedup_vs_optimizer']:.0f}x ({ref.get('method')}/{ref.get('preset')})",
                     f"{obj['mean']:.4g}" if obj.get("available") else "unavailable", worth,
                     _mb(r["peak_memory_bytes"])])
    lines += _table(["size", "net", "s/image", "best batch", "speed-up", "objective", "worth (iterations)",
                     "peak MiB"], rows)
    reasons = {(r["method"], r["objective"]["reason"]) for r in recs
               if r["kind"] == "net" and not (r["objective"] or {}).get("available", True)}
    for name, reason in sorted(reasons):
        lines.append(f"  {name}: objective unavailable: {reason}")
    lines += ["", f"Peak memory: {meta.get('memory_method')}."]
    return "\n".join(lines)


def _eyes_label(record: dict[str, Any]) -> str:
    n = len(record["objective"]["curves"])
    return f"{record['method']} ({n} eye{'' if n == 1 else 's'})"


def write_plot(result: BenchResult | dict[str, Any], path: str | os.PathLike) -> Path:
    """Objective against iteration (nets' levels as lines), one panel per size; time against size."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    data = result.to_dict() if isinstance(result, BenchResult) else result
    recs = data["results"]
    sizes = sorted({r["size"] for r in recs})
    fig = Figure(figsize=(4.2 * (len(sizes) + 1), 3.8))
    axes = fig.subplots(1, len(sizes) + 1, squeeze=False)[0]
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, size in zip(axes, sizes):
        nets = [r for r in recs if r["kind"] == "net" and r["size"] == size and (r["objective"] or {}).get("available")]
        preset = nets[0]["objective"]["preset"] if nets else "masked"
        opts = [r for r in recs if r["kind"] == "optimizer" and r["size"] == size and r["preset"] == preset]
        if not opts:
            opts = [r for r in recs if r["kind"] == "optimizer" and r["size"] == size]
            preset = opts[0]["preset"] if opts else preset
        # every eye's curve is divided by its start (the content image), so the eyes share one scale
        starts = max((r["objective"]["curves"] for r in opts), key=len, default=[])
        starts = [c[0] for c in starts]
        for i, r in enumerate(opts):
            for j, curve in enumerate(r["objective"]["curves"]):
                ax.plot(range(len(curve)), [v / curve[0] for v in curve], color=colours[i % len(colours)], lw=1,
                        alpha=0.8, label=_eyes_label(r) if j == 0 else None)
        for i, r in enumerate(nets):
            rel = [v / f0 for v, f0 in zip(r["objective"]["values"], starts)]
            if rel:
                ax.axhline(statistics.fmean(rel), color=colours[(len(opts) + i) % len(colours)], ls="--", lw=1.2,
                           label=f"{r['method']} (mean)")
        ax.set_yscale("log")
        ax.set_title(f"{size} px, preset {preset}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("objective / objective at the start")
        ax.legend(fontsize=7)
    ax = axes[-1]
    series: dict[str, dict[int, float]] = {}
    for r in recs:
        if r["kind"] == "objective":
            series.setdefault(f"eval {r['preset']}", {})[r["size"]] = r["seconds_per_eval"]
            series.setdefault(f"floor {r['preset']}", {})[r["size"]] = r["floor_seconds"]
        elif r["kind"] == "net" and r["seconds_per_image"]:
            series.setdefault(f"{r['method']} per image", {})[r["size"]] = r["seconds_per_image"]
    for label, pts in series.items():
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", ls=":" if label.startswith("floor") else "-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("size (px, square)")
    ax.set_ylabel("seconds")
    ax.set_title("time against size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
