"""Timing for the benchmark: medians and spreads of repeated runs, the floor and one evaluation.

>>> timed(lambda: None, repeats=2).n
2
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Timing", "measure_eval", "measure_floor", "measure_floor_and_eval", "ratio_to_floor", "timed",
           "timed_together"]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
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
    synchronize(device)
    samples: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    while len(samples[0]) < repeats:
        for fn, out in zip(fns, samples):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
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
