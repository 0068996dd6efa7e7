"""The baselines :func:`masked_gatys.optim.minimize` runs beside projected L-BFGS: torch's L-BFGS
and Adam with clamping, and scipy's L-BFGS-B on the host. Each treats the batch as one problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from masked_gatys.optim.core import (Bound, Fun, IterationInfo, OptimizeResult, _Box, _check_start, _Evaluator)

__all__: list[str] = []

def _batch_stop(box: _Box, point: Tensor, g: Tensor, tol: float, iteration: int, max_iter: int,
                small_change: bool = False) -> str:
    """Why a whole-batch baseline stops after this iteration ("" to go on): all problems below
    ``tol``, else ``small_change`` (ftol), else the budget."""
    if bool((box.pg_norm(point, g) <= tol).all()):
        return "tol"
    if small_change:
        return "ftol"
    return "max_iter" if iteration == max_iter else ""


def _finish_iteration(reason: str, iteration: int, point: Tensor, f: Tensor, evaluate: _Evaluator,
                      callback: Any) -> str:
    """Show a whole-batch baseline's iterate to the callback; a stop it asks for joins ``reason``."""
    if callback is not None:
        counts = torch.full((evaluate.b,), evaluate.calls, dtype=torch.int64)
        if callback(IterationInfo(iteration, point.clone().reshape(evaluate.shape), f, counts, evaluate.calls)):
            return reason or "callback"
    return reason


def _batch_result(x: Tensor, f: Tensor, iteration: int, evaluate: _Evaluator, reason: str,
                  method: str) -> OptimizeResult:
    """A whole-batch baseline's result: every problem shares the counts and the reason."""
    b = evaluate.b
    return OptimizeResult(
        x=x, fun=f, n_iter=torch.full((b,), iteration, dtype=torch.int64),
        n_eval=torch.full((b,), evaluate.calls, dtype=torch.int64), reason=[reason or "max_iter"] * b,
        method=method, n_calls=evaluate.calls,
    )


def _torch_lbfgs(
    fun: Fun, x0: Tensor, box: _Box, max_iter: int, callback: Any,
    history_size: int = 10, tol: float = 1e-5, ftol: float = 1e-9, lr: float = 1.0,
) -> OptimizeResult:
    """torch.optim.LBFGS one step at a time, clamping after each step (the paper's baseline).

    The batch is one problem for torch (it sees the sum), so every problem
    gets the same counts and reason. ``tol`` and ``ftol`` are checked by this
    wrapper on the clamped iterate (all problems below ``tol``, or a relative
    change of the summed value below ``ftol``).
    """
    shape, b = x0.shape, x0.shape[0]
    evaluate = _Evaluator(fun, shape)
    param = box.project(x0.reshape(b, -1)).reshape(shape).clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [param], lr=lr, max_iter=1, max_eval=25, history_size=history_size,
        tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
    )
    f, g = evaluate(param.detach().reshape(b, -1))
    _check_start(f)
    # `cached` answers the evaluation torch makes at the start of each step
    # (it is at the clamped iterate, already evaluated); `last` remembers the
    # line search's final point to avoid re-evaluating when clamping is a no-op.
    state: dict[str, Any] = {"cached": (f, g), "last": None}

    def closure() -> Tensor:
        if state["cached"] is not None:
            values, grad = state["cached"]
            state["cached"] = None
        else:
            point = param.detach().reshape(b, -1)
            values, grad = evaluate(point)
            state["last"] = (point.clone(), values, grad)
        param.grad = grad.reshape(shape).clone()
        return values.sum()

    reason = ""
    iteration = 0
    if bool((box.pg_norm(param.detach().reshape(b, -1), g) <= tol).all()):
        reason = "tol"
    while not reason and iteration < max_iter:
        iteration += 1
        state["cached"], state["last"] = (f, g), None
        opt.step(closure)
        with torch.no_grad():
            param.copy_(box.project(param.reshape(b, -1)).reshape(shape))
        point = param.detach().reshape(b, -1)
        last = state["last"]
        f_old = f
        if last is not None and torch.equal(last[0], point):
            f, g = last[1], last[2]
        else:
            f, g = evaluate(point)
        total_old, total = float(f_old.sum()), float(f.sum())
        small_change = abs(total_old - total) <= ftol * max(abs(total_old), abs(total), 1.0)
        reason = _batch_stop(box, point, g, tol, iteration, max_iter, small_change)
        reason = _finish_iteration(reason, iteration, point, f, evaluate, callback)
    return _batch_result(param.detach().clone(), f, iteration, evaluate, reason, "lbfgs")


def _adam(
    fun: Fun, x0: Tensor, box: _Box, max_iter: int, callback: Any,
    lr: float = 0.02, betas: tuple[float, float] = (0.9, 0.999), tol: float = 1e-5,
) -> OptimizeResult:
    """torch.optim.Adam, clamping after each step. Each iteration: one step, one evaluation.

    Adam acts elementwise, so the problems of a batch do not interact; they
    stop together (when all are below ``tol``, or on the budget).
    """
    shape, b = x0.shape, x0.shape[0]
    evaluate = _Evaluator(fun, shape)
    param = box.project(x0.reshape(b, -1)).reshape(shape).clone().requires_grad_(True)
    opt = torch.optim.Adam([param], lr=lr, betas=betas)
    f, g = evaluate(param.detach().reshape(b, -1))
    _check_start(f)
    reason = "tol" if bool((box.pg_norm(param.detach().reshape(b, -1), g) <= tol).all()) else ""
    iteration = 0
    while not reason and iteration < max_iter:
        iteration += 1
        param.grad = g.reshape(shape).clone()
        opt.step()
        with torch.no_grad():
            param.copy_(box.project(param.reshape(b, -1)).reshape(shape))
        point = param.detach().reshape(b, -1)
        f, g = evaluate(point)
        reason = _batch_stop(box, point, g, tol, iteration, max_iter)
        reason = _finish_iteration(reason, iteration, point, f, evaluate, callback)
    return _batch_result(param.detach().clone(), f, iteration, evaluate, reason, "adam")


class _StopRequested(Exception):
    """Raised inside scipy's callback to end L-BFGS-B when our callback asks to stop."""


class _HostProblem:
    """The batch as scipy sees it: one flat float64 vector on the host.

    ``fun`` itself runs on ``x0``'s device and dtype; values and gradients come back as
    float64. scipy's callback and the final result ask for the point it has just evaluated:
    that is answered from a memo instead of paying another evaluation.
    """

    def __init__(self, fun: Fun, x0: Tensor, box: _Box, callback: Any) -> None:
        self.shape, self.b, self.device, self.dtype = x0.shape, x0.shape[0], x0.device, x0.dtype
        self.evaluate = _Evaluator(fun, self.shape)
        self.z0 = box.project(x0.reshape(self.b, -1)).detach().double().cpu().numpy().ravel()
        self.callback = callback
        self.iteration, self.z = 0, self.z0
        self._memo: dict[str, Any] = {}

    def host(self, bound: Bound) -> Any:
        """A bound as scipy takes it: a flat float64 array."""
        if isinstance(bound, Tensor):
            return bound.detach().double().cpu().numpy().ravel()
        return np.full(self.z0.shape, bound)

    def to_device(self, z: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(z, dtype=np.float64)).to(self.device, self.dtype).reshape(self.b, -1)

    def evaluate_at(self, z: np.ndarray) -> tuple[Tensor, Tensor]:
        memo = self._memo
        if "z" not in memo or not np.array_equal(memo["z"], z):
            values, grad = self.evaluate(self.to_device(z))
            memo["z"], memo["f"], memo["g"] = np.array(z, copy=True), values, grad
        return memo["f"], memo["g"]

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """scipy's ``fun`` with ``jac=True``: the summed value and the flat gradient, float64."""
        values, grad = self.evaluate_at(z)
        return float(values.double().sum()), grad.double().cpu().numpy().ravel()

    def values_at(self, z: np.ndarray) -> Tensor:
        return self.evaluate_at(z)[0]

    def on_iteration(self, zk: np.ndarray) -> None:
        """scipy's callback: count, remember the iterate, show it to ours (which may stop the run)."""
        self.iteration += 1
        self.z = np.array(zk, copy=True)
        if self.callback is not None:
            counts = torch.full((self.b,), self.evaluate.calls, dtype=torch.int64)
            info = IterationInfo(self.iteration, self.to_device(zk).reshape(self.shape), self.values_at(zk), counts,
                                 self.evaluate.calls)
            if self.callback(info):
                raise _StopRequested


def _scipy_reason(message: str) -> str:
    """scipy's L-BFGS-B exit message as one of :data:`REASONS`."""
    message = message.upper()
    if "PROJ" in message or "PGTOL" in message:
        return "tol"
    if "REDUCTION" in message or "FACTR" in message:
        return "ftol"
    if "ITERATION" in message:
        return "max_iter"
    if "EVALUATION" in message or "F,G" in message:
        return "max_eval"
    return "line_search"


def _scipy_lbfgsb(
    fun: Fun, x0: Tensor, box: _Box, max_iter: int, callback: Any,
    history_size: int = 10, tol: float = 1e-5, ftol: float = 1e-9, max_eval: int = 15000,
) -> OptimizeResult:
    """scipy.optimize.minimize(method="L-BFGS-B") in float64 on the host.

    The batch is one flat vector (the summed objective is separable), so
    scipy's ``ftol`` is relative to the *summed* value and every problem gets
    the same counts and reason (see :class:`_HostProblem`).
    """
    # deferred: scipy.optimize takes 1.2 s to import, and only this baseline needs it
    from scipy.optimize import Bounds
    from scipy.optimize import minimize as scipy_minimize

    problem = _HostProblem(fun, x0, box, callback)
    _check_start(problem.values_at(problem.z0))
    z, reason = problem.z0, "max_iter"
    if max_iter > 0:
        try:
            res = scipy_minimize(
                problem.value_and_grad, problem.z0, jac=True, method="L-BFGS-B",
                bounds=Bounds(problem.host(box.lower), problem.host(box.upper)), callback=problem.on_iteration,
                options={"maxiter": max_iter, "maxfun": max_eval, "maxcor": history_size,
                         "gtol": tol, "ftol": ftol},
            )
            z, reason = res.x, _scipy_reason(str(res.message))
            problem.iteration = int(res.nit)
        except _StopRequested:
            z, reason = problem.z, "callback"
    values = problem.values_at(z)
    return _batch_result(problem.to_device(z).reshape(problem.shape), values, problem.iteration, problem.evaluate,
                         reason, "lbfgs-b")
