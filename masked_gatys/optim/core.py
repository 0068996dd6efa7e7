"""What every optimizer of :mod:`masked_gatys.optim` shares: the result types, the box, the evaluator, the checks.

>>> box = _Box(0.0, 1.0, torch.zeros(1, 2))
>>> box.project(torch.tensor([[-1.0, 2.0]]))
tensor([[0., 1.]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np
import torch
from torch import Tensor

from masked_gatys.errors import ObjectiveError

__all__ = ["METHODS", "REASONS", "IterationInfo", "OptimizeResult"]

METHODS: tuple[str, ...] = ("plbfgs", "lbfgs", "lbfgs-b", "adam")

#: Stop reasons, one per problem in :attr:`OptimizeResult.reason`.
REASONS: dict[str, str] = {
    "tol": "projected-gradient inf-norm <= tol",
    "ftol": "relative decrease of f <= ftol",
    "max_iter": "iteration budget spent",
    "max_eval": "evaluation budget spent (lbfgs-b)",
    "callback": "the callback asked to stop",
    "line_search": "no decrease found along the projected steepest-descent path",
}

Bound = Union[float, Tensor]
Fun = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class IterationInfo:
    """What a callback sees after each iteration.

    Attributes:
        iteration: iterations done so far (1 after the first).
        x: the current iterate, same shape, dtype and device as ``x0``; a new
            tensor every iteration (never modified afterwards), so a callback
            may keep it.
        fun: ``(B,)`` values at ``x`` (detached).
        n_eval: ``(B,)`` int64 on the CPU: evaluations spent on each problem.
        n_calls: calls of ``fun`` so far (each call evaluates the whole batch).

    For every method, the last call of ``fun`` before the callback was at
    ``x``, so a caller can read side results (loss terms) of that call.
    """

    iteration: int
    x: Tensor
    fun: Tensor
    n_eval: Tensor
    n_calls: int


@dataclass
class OptimizeResult:
    """The outcome of :func:`minimize` or :func:`projected_lbfgs`.

    Attributes:
        x: the solution, same shape, dtype and device as ``x0``.
        fun: ``(B,)`` values at ``x`` (detached, on ``x``'s device).
        n_iter: ``(B,)`` int64 on the CPU: iterations per problem.
        n_eval: ``(B,)`` int64 on the CPU: evaluations per problem.
        reason: one stop reason per problem, a key of :data:`REASONS`.
        method: the method that produced it.
        n_calls: calls of ``fun`` in all.
    """

    x: Tensor
    fun: Tensor
    n_iter: Tensor
    n_eval: Tensor
    reason: list[str]
    method: str = "plbfgs"
    n_calls: int = 0


# ----------------------------------------------------------------------------- helpers


class _Box:
    """The bounds in the flat ``(B, n)`` layout: Python floats or ``(B, n)`` tensors."""

    def __init__(self, lower: Bound, upper: Bound, x0: Tensor) -> None:
        b, n = x0.shape[0], x0[0].numel()
        self.scalar = not isinstance(lower, Tensor) and not isinstance(upper, Tensor)
        if self.scalar:
            lo, hi = float(lower), float(upper)  # type: ignore[arg-type]
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise ValueError(f"need lower <= upper, got lower={lo}, upper={hi}")
            self.lower: Bound = lo
            self.upper: Bound = hi
            return
        bounds = []
        for name, value in (("lower", lower), ("upper", upper)):
            t = torch.as_tensor(value, dtype=x0.dtype, device=x0.device)
            try:
                t = torch.broadcast_to(t, x0.shape)
            except RuntimeError:
                raise ValueError(
                    f"{name} of shape {tuple(t.shape)} does not broadcast to x0's {tuple(x0.shape)}"
                ) from None
            bounds.append(t.reshape(b, n).contiguous())
        lo_t, hi_t = bounds
        if bool((lo_t > hi_t).any()) or bool(lo_t.isnan().any()) or bool(hi_t.isnan().any()):
            raise ValueError("need lower <= upper everywhere (and no NaN)")
        self.lower, self.upper = lo_t, hi_t

    def project(self, x: Tensor) -> Tensor:
        if self.scalar:
            return x.clamp(self.lower, self.upper)  # type: ignore[arg-type]
        return torch.maximum(torch.minimum(x, self.upper), self.lower)  # type: ignore[arg-type]

    def free(self, x: Tensor, g: Tensor) -> Tensor:
        """Variables not held at a bound by a gradient that points outward."""
        active = ((x <= self.lower) & (g > 0)) | ((x >= self.upper) & (g < 0))
        return ~active

    def pg_norm(self, x: Tensor, g: Tensor) -> Tensor:
        """Inf-norm of the projected gradient ``x - P(x - g)`` per problem, ``(B,)``."""
        return (x - self.project(x - g)).abs().amax(dim=1)


class _Evaluator:
    """Calls ``fun`` on a leaf copy of ``x`` and returns ``(values (B,), grad (B, n))``."""

    def __init__(self, fun: Fun, shape: torch.Size) -> None:
        self.fun = fun
        self.shape = shape
        self.b = shape[0]
        self.calls = 0

    def __call__(self, x_flat: Tensor) -> tuple[Tensor, Tensor]:
        leaf = x_flat.detach().clone().reshape(self.shape).requires_grad_(True)
        with torch.enable_grad():
            values = self.fun(leaf)
            if not isinstance(values, Tensor) or values.shape != (self.b,):
                got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
                raise ObjectiveError(f"fun must return a tensor of shape ({self.b},), got {got}")
            if not values.requires_grad:
                raise ObjectiveError("fun's values do not depend on x through autograd")
            (grad,) = torch.autograd.grad(values.sum(), leaf)
        self.calls += 1
        return values.detach(), grad.reshape(self.b, -1)


def _check_x0(x0: Any) -> Tensor:
    if not isinstance(x0, Tensor):
        raise TypeError(f"x0 must be a torch.Tensor, got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise ValueError(f"x0 must be a floating-point tensor, got {x0.dtype}")
    if x0.dim() < 1 or x0.shape[0] < 1 or x0[0].numel() < 1:
        raise ValueError(f"x0 needs a leading batch dimension and variables, got {tuple(x0.shape)}")
    return x0.detach()


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def _check_start(f: Tensor) -> None:
    bad = ~torch.isfinite(f)
    if bool(bad.any()):
        idx = bad.nonzero().flatten().tolist()
        raise ObjectiveError(f"fun is not finite at the starting point (problems {idx})")


def _counts(values: np.ndarray) -> Tensor:
    return torch.from_numpy(values.copy())
