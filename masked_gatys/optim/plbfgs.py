"""Projected L-BFGS for a batch of independent box-constrained problems, on the device (:func:`projected_lbfgs`).

One function's loop cut into its steps: the history (:class:`_History`), the two-loop direction,
the descent guard, the Armijo search along the projected arc, the pair's storage and the stop
reasons, driven by :class:`_PLBFGSRun`.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from masked_gatys.optim.core import (Bound, Fun, IterationInfo, OptimizeResult, _Box, _check_float, _check_int,
                                     _check_start, _check_x0, _counts, _Evaluator)

__all__ = ["projected_lbfgs"]

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
