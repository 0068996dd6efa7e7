"""Optimizers for box-constrained problems: a projected L-BFGS on the device, and baselines.

Every optimizer minimises ``fun(x)`` subject to ``lower <= x <= upper`` where
``x`` has a leading batch dimension ``B`` of *independent* problems (one image
each) and ``fun(x)`` returns their values, shape ``(B,)``. Gradients are those
of the sum, which are the per-problem gradients since the problems are
separable.

Methods (:data:`METHODS`):

- ``"plbfgs"``: :func:`projected_lbfgs`, one history and one line search per
  problem, runs wherever ``x0`` lives (CPU or CUDA).
- ``"lbfgs"``: ``torch.optim.LBFGS`` (strong Wolfe line search) one step at a
  time, clamping ``x`` to the box after each step: the paper's baseline.
  Clamping after the step invalidates the curvature pair torch stores, which
  is why :func:`projected_lbfgs` exists.
- ``"lbfgs-b"``: scipy's L-BFGS-B in float64 on the host, the whole batch as
  one flat vector (the trusted reference).
- ``"adam"``: ``torch.optim.Adam`` with clamping after each step.

>>> import torch
>>> fun = lambda x: ((x - 2.0) ** 2).sum(dim=1)       # optimum outside the box
>>> minimize(fun, torch.zeros(1, 3), method="plbfgs", max_iter=20).x
tensor([[1., 1., 1.]])
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import Tensor

from masked_gatys.optim.baselines import _adam, _scipy_lbfgsb, _torch_lbfgs
from masked_gatys.optim.core import (METHODS, REASONS, Bound, Fun, IterationInfo, OptimizeResult, _Box, _check_float,
                                     _check_int, _check_x0)
from masked_gatys.optim.plbfgs import projected_lbfgs

__all__ = ["METHODS", "REASONS", "IterationInfo", "OptimizeResult", "minimize", "projected_lbfgs"]

# ----------------------------------------------------------------------------- dispatch

# method -> its options and their defaults
_DEFAULTS: dict[str, dict[str, Any]] = {
    "plbfgs": {"history_size": 10, "tol": 1e-5, "ftol": 1e-9},
    "lbfgs": {"history_size": 10, "tol": 1e-5, "ftol": 1e-9, "lr": 1.0},
    "lbfgs-b": {"history_size": 10, "tol": 1e-5, "ftol": 1e-9, "max_eval": 15000},
    "adam": {"lr": 0.02, "betas": (0.9, 0.999), "tol": 1e-5},
}


def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = _DEFAULTS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
            f"valid: {', '.join(sorted(allowed))}"
        )
    out = {**allowed, **options}
    for name, value in out.items():
        if name in ("history_size", "max_eval"):
            out[name] = _check_int(name, value, 1)
        elif name in ("tol", "ftol"):
            out[name] = _check_float(name, value)
        elif name == "lr":
            out[name] = _check_float(name, value, positive=True)
        elif name == "betas":
            try:
                b1, b2 = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"betas must be two numbers in [0, 1), got {value!r}") from None
            if not (0 <= b1 < 1 and 0 <= b2 < 1):
                raise ValueError(f"betas must be two numbers in [0, 1), got {value!r}")
            out[name] = (b1, b2)
    return out


def minimize(
    fun: Fun,
    x0: Tensor,
    *,
    method: str = "plbfgs",
    max_iter: int,
    lower: Bound = 0.0,
    upper: Bound = 1.0,
    callback: Optional[Callable[[IterationInfo], Optional[bool]]] = None,
    **options: Any,
) -> OptimizeResult:
    """Minimise ``fun`` over the box ``[lower, upper]`` with one of :data:`METHODS`.

    Options per method (defaults in brackets):

    - ``plbfgs``: ``history_size`` [10], ``tol`` [1e-5], ``ftol`` [1e-9];
    - ``lbfgs``: ``history_size`` [10], ``tol`` [1e-5], ``ftol`` [1e-9], ``lr`` [1];
    - ``lbfgs-b``: ``history_size`` [10], ``tol`` [1e-5], ``ftol`` [1e-9], ``max_eval`` [15000];
    - ``adam``: ``lr`` [0.02], ``betas`` [(0.9, 0.999)], ``tol`` [1e-5].

    An unknown method or option raises ValueError. The callback contract is
    the same for all methods (see :class:`IterationInfo`); returning True
    stops with reason "callback". KeyboardInterrupt raised inside ``fun`` or
    the callback propagates untouched.

    >>> import torch
    >>> fun = lambda x: ((x - 0.25) ** 2).sum(dim=1)
    >>> for method in METHODS:
    ...     res = minimize(fun, torch.zeros(1, 2), method=method, max_iter=300, tol=1e-4)
    ...     print(method, res.x.sub(0.25).abs().max().item() < 1e-2)
    plbfgs True
    lbfgs True
    lbfgs-b True
    adam True
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    opts = _check_options(method, options)
    if method == "plbfgs":
        return projected_lbfgs(fun, x0, lower=lower, upper=upper, max_iter=max_iter, callback=callback, **opts)
    x0 = _check_x0(x0)
    max_iter = _check_int("max_iter", max_iter, 0)
    box = _Box(lower, upper, x0)
    if method == "lbfgs":
        return _torch_lbfgs(fun, x0, box, max_iter, callback, **opts)
    if method == "lbfgs-b":
        return _scipy_lbfgsb(fun, x0, box, max_iter, callback, **opts)
    return _adam(fun, x0, box, max_iter, callback, **opts)
