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

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from masked_gatys.errors import ObjectiveError

__all__ = ["METHODS", "IterationInfo", "OptimizeResult", "minimize", "projected_lbfgs"]

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


# ----------------------------------------------------------------------------- projected L-BFGS


def projected_lbfgs(
    fun: Fun,
    x0: Tensor,
    *,
    lower: Bound = 0.0,
    upper: Bound = 1.0,
    max_iter: int = 100,
    history_size: int = 10,
    tol: float = 1e-5,
    ftol: float = 1e-9,
    callback: Optional[Callable[[IterationInfo], Optional[bool]]] = None,
) -> OptimizeResult:
    """Minimise a batch of independent box-constrained problems with projected L-BFGS.

    Each problem keeps its own curvature history and line search; the
    arithmetic runs on ``x0``'s device, synchronising with the host only for a
    few flags per line-search trial. Per iteration and problem:

    1. free variables: all but those at a bound whose gradient points outward;
    2. direction: L-BFGS two-loop recursion restricted to the free variables,
       falling back to projected steepest descent (and a fresh history) when
       that is not a descent direction;
    3. backtracking Armijo search along the projected path ``P(x + a d)``,
       first step ``min(1, 1/|d|)`` without history, 1 with;
    4. the pair ``(s, y)`` is stored only when ``s.y > eps |y|^2``;
    5. stop on projected-gradient inf-norm <= ``tol``, relative decrease
       <= ``ftol``, the budget ``max_iter``, or the callback returning True.
       A finished problem no longer changes.

    Args:
        fun: ``x -> (B,)`` values, differentiable by autograd.
        x0: the start, ``(B, ...)`` floating point; projected onto the box.
        lower, upper: bounds, scalars or tensors broadcastable to ``x0``.
        max_iter: iterations per problem.
        history_size: curvature pairs kept per problem.
        tol: projected-gradient inf-norm to stop at.
        ftol: relative decrease ``(f_k - f_k+1) / max(|f_k|, |f_k+1|, 1)`` to stop at.
        callback: called with an :class:`IterationInfo` after each iteration;
            returning True stops every problem still running (reason "callback").

    Returns:
        :class:`OptimizeResult`. The last call of ``fun`` before each
        callback is at ``info.x`` (every problem at its iterate), so a caller
        can read side results of that call. ``n_eval`` counts, per problem, the
        evaluations at that problem's own points (a batch call made for other
        problems' line searches does not count), so a problem solved in a
        batch reports the same counts as solved alone.

    >>> import torch
    >>> target = torch.tensor([[-1.0, 0.5, 3.0], [0.25, 0.75, 2.0]])
    >>> fun = lambda x: ((x - target) ** 2).sum(dim=1)
    >>> res = projected_lbfgs(fun, torch.full((2, 3), 0.5))
    >>> res.x
    tensor([[0.0000, 0.5000, 1.0000],
            [0.2500, 0.7500, 1.0000]])
    >>> res.reason
    ['tol', 'tol']
    """
    x0 = _check_x0(x0)
    max_iter = _check_int("max_iter", max_iter, 0)
    m = _check_int("history_size", history_size, 1)
    run = _PLBFGSRun(fun, x0, _Box(lower, upper, x0), m, _check_float("tol", tol), _check_float("ftol", ftol))
    iteration = 0
    while iteration < max_iter and not run.done.all():
        iteration += 1
        run.iterate(iteration, max_iter)
        if callback is not None:
            info = IterationInfo(iteration, run.x.reshape(run.shape), run.f, _counts(run.n_eval), run.evaluate.calls)
            if callback(info):
                for i in np.flatnonzero(~run.done):
                    run.reason[i] = "callback"
                run.done[:] = True
    for i in np.flatnonzero(~run.done):  # only with max_iter == 0
        run.reason[i] = "max_iter"
    return OptimizeResult(
        x=run.x.reshape(run.shape), fun=run.f, n_iter=_counts(run.n_iter), n_eval=_counts(run.n_eval),
        reason=run.reason, method="plbfgs", n_calls=run.evaluate.calls,
    )


_C1 = 1e-4  # Armijo constant (Nocedal & Wright's usual choice)
_MAX_LS = 20  # backtracking trials per iteration


class _History:
    """Curvature pairs of every problem as ``(m, B, n)`` ring buffers with one write pointer.

    The pointer is shared by the batch: slot order is then the same for every problem and the
    two-loop recursion reads one contiguous slot per step for the whole batch, with no gathers.
    Unlike the textbook, a rejected pair (or a finished problem) still takes its slot, marked
    invalid, so it pushes out the oldest pair. That is rare and it keeps the batch and a lone
    problem identical.
    """

    def __init__(self, m: int, x: Tensor) -> None:
        self.m = m
        self.s = x.new_zeros((m,) + x.shape)
        self.y = x.new_zeros((m,) + x.shape)
        self.valid = torch.zeros(m, x.shape[0], dtype=torch.bool, device=x.device)
        self.ptr = 0
        self.n_stored = 0  # slots written so far (host side), bounds the two-loop length

    def ages(self) -> list[int]:
        """The slots in use, newest first."""
        return [(self.ptr - 1 - j) % self.m for j in range(min(self.n_stored, self.m))]

    def forget(self, problems: Tensor) -> None:
        """Invalidate every pair of the problems where ``problems`` (B,) is True."""
        self.valid = self.valid & ~problems[None, :]

    def store(self, s: Tensor, y: Tensor, ok: Tensor) -> None:
        """Write the pair ``(s, y)`` of every problem into the next slot, valid where ``ok``."""
        self.s[self.ptr] = s
        self.y[self.ptr] = y
        self.valid[self.ptr] = ok
        self.ptr = (self.ptr + 1) % self.m
        self.n_stored += 1


def _two_loop(hist: _History, g_free: Tensor, free: Tensor, f: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """The L-BFGS direction on the free variables, and where a usable pair was found (B,).

    The pairs are restricted to the free variables as well (s_F, y_F): with a stable active
    set this is exactly L-BFGS on the reduced problem. A restricted pair can lose positive
    curvature when the free set changed since it was stored, so each pair is re-checked here
    and skipped if s_F.y_F <= eps |y_F|^2; the matrix built from the remaining pairs stays
    positive definite.
    """
    q = g_free
    ages = hist.ages()
    alphas: list[Tensor] = []
    rhos: list[Tensor] = []
    gamma = torch.ones_like(f)
    found = torch.zeros_like(f, dtype=torch.bool)
    for slot in ages:  # newest first
        s, y_f = hist.s[slot], hist.y[slot] * free
        sy = (s * y_f).sum(dim=1)
        yy = (y_f * y_f).sum(dim=1)
        ok = hist.valid[slot] & (sy > eps * yy) & (yy > 0)
        rho = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        alpha = rho * (s * q).sum(dim=1)  # q is zero off the free set, so s.q = s_F.q
        q = q - alpha[:, None] * y_f
        gamma = torch.where(ok & ~found, sy / torch.where(ok, yy, torch.ones_like(yy)), gamma)
        found = found | ok
        alphas.append(alpha)
        rhos.append(rho)
    r = gamma[:, None] * q
    for slot, alpha, rho in zip(reversed(ages), reversed(alphas), reversed(rhos)):
        s, y = hist.s[slot], hist.y[slot]
        beta = rho * (y * r).sum(dim=1)  # r is zero off the free set
        r = r + (alpha - beta)[:, None] * (s * free)
    return -r, found


def _descent_guard(g: Tensor, g_free: Tensor, d: Tensor, found: Tensor, hist: _History
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Projected steepest descent (and a forgotten history) where rounding made ``d`` useless.

    Returns the direction, where it is ``fresh`` (no usable curvature) and the first step:
    ``min(1, 1/|d|)`` where fresh, else 1.
    """
    slope = (g * d).sum(dim=1)
    bad = ~(slope < 0) | ~torch.isfinite(slope)
    d = torch.where(bad[:, None], -g_free, d)
    hist.forget(bad)
    fresh = bad | ~found  # no usable curvature: scale the first step
    d_norm = d.norm(dim=1)
    step = torch.where(
        fresh, torch.clamp(1.0 / torch.where(d_norm > 0, d_norm, torch.ones_like(d_norm)), max=1.0),
        torch.ones_like(d_norm),
    )
    return d, fresh, step


def _projected_armijo(evaluate: _Evaluator, box: _Box, x: Tensor, f: Tensor, g: Tensor, d: Tensor, step: Tensor,
                      running: np.ndarray, n_eval: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Backtracking Armijo search along ``P(x + a d)``, all problems at once.

    Armijo on the projected arc (Bertsekas): f(x_a) <= f + c1 g.(x_a - x). Counts each
    problem's own trials in ``n_eval``. Returns the new ``x, f, g`` (unchanged where the
    search failed) and where it ``failed`` (B,).
    """
    pending = torch.from_numpy(running).to(x.device)
    pending_host = running.copy()
    x_new, f_new, g_new = x, f, g
    for _ in range(_MAX_LS):
        # problems already accepted sit at their new point, so the last
        # call of fun before the callback is at every problem's iterate
        x_try = torch.where(pending[:, None], box.project(x + step[:, None] * d), x_new)
        f_try, g_try = evaluate(x_try)
        n_eval[pending_host] += 1
        decrease = (g * (x_try - x)).sum(dim=1)  # <= 0 along a descent arc
        # a trial counts only with a finite value *and* gradient: a NaN gradient at an
        # accepted point would poison the next direction and end the run there
        finite = torch.isfinite(f_try) & torch.isfinite(g_try).all(dim=1)
        accept = pending & finite & (f_try <= f + _C1 * decrease)
        x_new = torch.where(accept[:, None], x_try, x_new)
        f_new = torch.where(accept, f_try, f_new)
        g_new = torch.where(accept[:, None], g_try, g_new)
        pending = pending & ~accept
        # Next trial: minimiser of the quadratic through f, the arc's
        # secant slope and f_try, kept within [0.1, 0.5] of the step.
        excess = f_try - f - decrease
        quad = 0.5 * (-decrease) * step / torch.where(excess > 0, excess, torch.ones_like(excess))
        quad = torch.where(finite & (excess > 0), quad, 0.1 * step)
        step = torch.where(pending, torch.minimum(torch.maximum(quad, 0.1 * step), 0.5 * step), step)
        pending_host = pending.cpu().numpy()
        if not pending_host.any():
            break
    return x_new, f_new, g_new, pending


def _store_pair(hist: _History, x: Tensor, g: Tensor, x_new: Tensor, g_new: Tensor, running: np.ndarray,
                failed: Tensor, fresh: Tensor, eps: float) -> None:
    """Keep the step's pair where the search succeeded with curvature ``s.y > eps |y|^2``.

    A failed search with curvature in use forgets it (the next iteration retries with
    steepest descent); a failed steepest-descent search ends the problem (see
    :func:`_stop_reasons`).
    """
    s_new, y_new = x_new - x, g_new - g
    sy = (s_new * y_new).sum(dim=1)
    yy = (y_new * y_new).sum(dim=1)
    hist.store(s_new, y_new, torch.from_numpy(running).to(x.device) & ~failed & (sy > eps * yy))
    hist.forget(failed & ~fresh)


def _stop_reasons(reason: list[str], done: np.ndarray, running: np.ndarray, flags: np.ndarray, last: bool) -> None:
    """Each running problem's reason to stop, if any, in order of precedence; ``done`` follows.

    ``flags``: (3, B) converged, small decrease, gave up (a failed steepest-descent search);
    ``last``: the budget is spent.
    """
    for i in np.flatnonzero(running):
        if flags[0, i]:
            reason[i] = "tol"
        elif flags[1, i]:
            reason[i] = "ftol"
        elif flags[2, i]:
            reason[i] = "line_search"
        elif last:
            reason[i] = "max_iter"
        done[i] = bool(reason[i])


class _PLBFGSRun:
    """The state of one :func:`projected_lbfgs` call: iterates, history, counts, reasons."""

    def __init__(self, fun: Fun, x0: Tensor, box: _Box, m: int, tol: float, ftol: float) -> None:
        self.shape, self.dtype, b = x0.shape, x0.dtype, x0.shape[0]
        self.box, self.tol, self.ftol = box, tol, ftol
        self.evaluate = _Evaluator(fun, self.shape)
        self.eps = torch.finfo(x0.dtype).eps
        self.x = box.project(x0.reshape(b, -1))
        self.f, self.g = self.evaluate(self.x)
        _check_start(self.f)
        self.n_eval = np.ones(b, dtype=np.int64)
        self.n_iter = np.zeros(b, dtype=np.int64)
        self.reason = [""] * b
        self.hist = _History(m, self.x)
        self.done = (box.pg_norm(self.x, self.g) <= tol).cpu().numpy().copy()
        for i in np.flatnonzero(self.done):
            self.reason[i] = "tol"

    def iterate(self, iteration: int, max_iter: int) -> None:
        """One iteration of every running problem; a finished problem no longer changes."""
        x, f, g, box = self.x, self.f, self.g, self.box
        running = ~self.done
        free = box.free(x, g).to(self.dtype)  # x0's dtype: x may have been promoted by fun's
        g_free = g * free
        d, found = _two_loop(self.hist, g_free, free, f, self.eps)
        d, fresh, step = _descent_guard(g, g_free, d, found, self.hist)
        x_new, f_new, g_new, failed = _projected_armijo(self.evaluate, box, x, f, g, d, step, running, self.n_eval)
        _store_pair(self.hist, x, g, x_new, g_new, running, failed, fresh, self.eps)
        scale = torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        small_decrease = ~failed & (f - f_new <= self.ftol * scale)
        converged = box.pg_norm(x_new, g_new) <= self.tol
        gave_up = failed & fresh
        self.x, self.f, self.g = x_new, f_new, g_new
        self.n_iter[running] += 1
        flags = torch.stack([converged, small_decrease, gave_up]).cpu().numpy()
        _stop_reasons(self.reason, self.done, running, flags, iteration == max_iter)


# ----------------------------------------------------------------------------- baselines


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
        if bool((box.pg_norm(point, g) <= tol).all()):
            reason = "tol"
        elif abs(total_old - total) <= ftol * max(abs(total_old), abs(total), 1.0):
            reason = "ftol"
        elif iteration == max_iter:
            reason = "max_iter"
        if callback is not None:
            counts = torch.full((b,), evaluate.calls, dtype=torch.int64)
            info = IterationInfo(iteration, point.clone().reshape(shape), f, counts, evaluate.calls)
            if callback(info):
                reason = reason or "callback"
    return OptimizeResult(
        x=param.detach().clone(), fun=f, n_iter=torch.full((b,), iteration, dtype=torch.int64),
        n_eval=torch.full((b,), evaluate.calls, dtype=torch.int64), reason=[reason or "max_iter"] * b,
        method="lbfgs", n_calls=evaluate.calls,
    )


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
        if bool((box.pg_norm(point, g) <= tol).all()):
            reason = "tol"
        elif iteration == max_iter:
            reason = "max_iter"
        if callback is not None:
            counts = torch.full((b,), evaluate.calls, dtype=torch.int64)
            if callback(IterationInfo(iteration, point.clone().reshape(shape), f, counts, evaluate.calls)):
                reason = reason or "callback"
    return OptimizeResult(
        x=param.detach().clone(), fun=f, n_iter=torch.full((b,), iteration, dtype=torch.int64),
        n_eval=torch.full((b,), evaluate.calls, dtype=torch.int64), reason=[reason or "max_iter"] * b,
        method="adam", n_calls=evaluate.calls,
    )


class _StopRequested(Exception):
    """Raised inside scipy's callback to end L-BFGS-B when our callback asks to stop."""


def _scipy_lbfgsb(
    fun: Fun, x0: Tensor, box: _Box, max_iter: int, callback: Any,
    history_size: int = 10, tol: float = 1e-5, ftol: float = 1e-9, max_eval: int = 15000,
) -> OptimizeResult:
    """scipy.optimize.minimize(method="L-BFGS-B") in float64 on the host.

    The batch is one flat vector (the summed objective is separable), so
    scipy's ``ftol`` is relative to the *summed* value and every problem gets
    the same counts and reason. ``fun`` itself runs on ``x0``'s device and
    dtype; values and gradients come back as float64.
    """
    from scipy.optimize import Bounds
    from scipy.optimize import minimize as scipy_minimize

    shape, b = x0.shape, x0.shape[0]
    evaluate = _Evaluator(fun, shape)
    start = box.project(x0.reshape(b, -1))
    z0 = start.detach().double().cpu().numpy().ravel()

    def host(bound: Bound) -> Any:
        if isinstance(bound, Tensor):
            return bound.detach().double().cpu().numpy().ravel()
        return np.full(z0.shape, bound)

    memo: dict[str, Any] = {}

    def to_device(z: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(z, dtype=np.float64)).to(x0.device, x0.dtype).reshape(b, -1)

    def evaluate_at(z: np.ndarray) -> tuple[Tensor, Tensor]:
        # scipy's callback and the final result ask for the point it has just
        # evaluated: answer from the memo instead of paying another evaluation
        if "z" not in memo or not np.array_equal(memo["z"], z):
            values, grad = evaluate(to_device(z))
            memo["z"], memo["f"], memo["g"] = np.array(z, copy=True), values, grad
        return memo["f"], memo["g"]

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        values, grad = evaluate_at(z)
        return float(values.double().sum()), grad.double().cpu().numpy().ravel()

    def values_at(z: np.ndarray) -> Tensor:
        return evaluate_at(z)[0]

    state = {"iteration": 0, "z": z0}

    def scipy_callback(zk: np.ndarray) -> None:
        state["iteration"] += 1
        state["z"] = np.array(zk, copy=True)
        if callback is not None:
            values = values_at(zk)
            counts = torch.full((b,), evaluate.calls, dtype=torch.int64)
            info = IterationInfo(state["iteration"], to_device(zk).reshape(shape), values, counts, evaluate.calls)
            if callback(info):
                raise _StopRequested

    _check_start(values_at(z0))
    if max_iter == 0:
        reason = "max_iter"
        z = z0
    else:
        try:
            res = scipy_minimize(
                value_and_grad, z0, jac=True, method="L-BFGS-B", bounds=Bounds(host(box.lower), host(box.upper)),
                callback=scipy_callback,
                options={"maxiter": max_iter, "maxfun": max_eval, "maxcor": history_size,
                         "gtol": tol, "ftol": ftol},
            )
            z = res.x
            message = str(res.message).upper()
            if "PROJ" in message or "PGTOL" in message:
                reason = "tol"
            elif "REDUCTION" in message or "FACTR" in message:
                reason = "ftol"
            elif "ITERATION" in message:
                reason = "max_iter"
            elif "EVALUATION" in message or "F,G" in message:
                reason = "max_eval"
            else:
                reason = "line_search"
            state["iteration"] = int(res.nit)
        except _StopRequested:
            z, reason = state["z"], "callback"
    values = values_at(z)
    return OptimizeResult(
        x=to_device(z).reshape(shape), fun=values,
        n_iter=torch.full((b,), state["iteration"], dtype=torch.int64),
        n_eval=torch.full((b,), evaluate.calls, dtype=torch.int64), reason=[reason] * b,
        method="lbfgs-b", n_calls=evaluate.calls,
    )


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
