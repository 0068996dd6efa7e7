"""Optimizer runs timed after every iteration, and what their curves say about the nets.

>>> equivalent_iterations([10.0, 8.0, 4.0, 2.0], 5.0)   # 1 + (8 - 5) / (8 - 4)
1.75
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from masked_gatys.bench.config import MIN_ITERATIONS, BenchConfig
from masked_gatys.bench.memory import MemoryProbe
from masked_gatys.bench.timing import Timing, synchronize
from masked_gatys.optim import minimize

__all__ = ["equivalent_iterations", "summarize"]


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


@dataclass
class OptimizerRun:
    """One optimizer run's record, iteration by iteration."""

    curve: list[float]        # objective at the start and after every iteration
    times: list[float]        # seconds since the start, after every iteration
    calls: list[int]          # evaluations so far, after every iteration
    peak: int


def run_optimizer(objective: Any, x0: Tensor, method: str, cfg: BenchConfig, probe: MemoryProbe,
                  stop_below: float | None) -> OptimizerRun:
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
    synchronize(device)
    start = time.perf_counter()

    def callback(info: Any) -> bool:
        synchronize(device)
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
    return OptimizerRun(curve, times, calls, probe.peak())


def iteration_stats(runs: list[OptimizerRun], n: int) -> dict[str, Any]:
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
