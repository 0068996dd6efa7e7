"""The projected L-BFGS loop as it was written in one function (main at 72ca137), kept verbatim.

``tests/test_optim.py`` runs it beside :func:`masked_gatys.optim.projected_lbfgs` and asks for
the same iterates bit for bit: the split of the function into named steps must not change one
floating-point operation. The helpers (``_Box``, ``_Evaluator``, the checks) are the package's.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from masked_gatys.optim.core import (Bound, Fun, IterationInfo, OptimizeResult, _Box, _check_float, _check_int,
                                     _check_start, _check_x0, _counts, _Evaluator)


def reference_projected_lbfgs(
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
    x0 = _check_x0(x0)
    max_iter = _check_int("max_iter", max_iter, 0)
    m = _check_int("history_size", history_size, 1)
    tol = _check_float("tol", tol)
    ftol = _check_float("ftol", ftol)

    shape, dtype = x0.shape, x0.dtype
    b = shape[0]
    box = _Box(lower, upper, x0)
    evaluate = _Evaluator(fun, shape)
    eps = torch.finfo(dtype).eps
    c1 = 1e-4  # Armijo constant (Nocedal & Wright's usual choice)
    max_ls = 20  # backtracking trials per iteration

    x = box.project(x0.reshape(b, -1))
    f, g = evaluate(x)
    _check_start(f)
    n_eval = np.ones(b, dtype=np.int64)
    n_iter = np.zeros(b, dtype=np.int64)
    reason = [""] * b

    # Histories as (m, B, n) ring buffers with a write pointer shared by the
    # batch: slot order is then the same for every problem and the two-loop
    # recursion reads one contiguous slot per step for the whole batch, with no
    # gathers. Unlike the textbook, a rejected pair (or a finished problem)
    # still takes its slot, marked invalid, so it pushes out the oldest pair.
    # That is rare and it keeps the batch and a lone problem identical.
    s_hist = x.new_zeros((m,) + x.shape)
    y_hist = x.new_zeros((m,) + x.shape)
    valid = torch.zeros(m, b, dtype=torch.bool, device=x.device)
    ptr = 0
    n_stored = 0  # slots written so far (host side), bounds the two-loop length

    done_t = box.pg_norm(x, g) <= tol
    done = done_t.cpu().numpy().copy()
    for i in np.flatnonzero(done):
        reason[i] = "tol"

    iteration = 0
    while iteration < max_iter and not done.all():
        iteration += 1
        running = ~done
        free = box.free(x, g).to(dtype)
        g_free = g * free

        # Two-loop recursion on the free variables. The pairs are restricted
        # to them as well (s_F, y_F): with a stable active set this is exactly
        # L-BFGS on the reduced problem. A restricted pair can lose positive
        # curvature when the free set changed since it was stored, so each
        # pair is re-checked here and skipped if s_F.y_F <= eps |y_F|^2; the
        # matrix built from the remaining pairs stays positive definite.
        q = g_free
        ages = [(ptr - 1 - j) % m for j in range(min(n_stored, m))]
        alphas: list[Tensor] = []
        rhos: list[Tensor] = []
        gamma = torch.ones_like(f)
        found = torch.zeros_like(done_t)
        for slot in ages:  # newest first
            s, y_f = s_hist[slot], y_hist[slot] * free
            sy = (s * y_f).sum(dim=1)
            yy = (y_f * y_f).sum(dim=1)
            ok = valid[slot] & (sy > eps * yy) & (yy > 0)
            rho = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
            alpha = rho * (s * q).sum(dim=1)  # q is zero off the free set, so s.q = s_F.q
            q = q - alpha[:, None] * y_f
            gamma = torch.where(ok & ~found, sy / torch.where(ok, yy, torch.ones_like(yy)), gamma)
            found = found | ok
            alphas.append(alpha)
            rhos.append(rho)
        r = gamma[:, None] * q
        for slot, alpha, rho in zip(reversed(ages), reversed(alphas), reversed(rhos)):
            s, y = s_hist[slot], y_hist[slot]
            beta = rho * (y * r).sum(dim=1)  # r is zero off the free set
            r = r + (alpha - beta)[:, None] * (s * free)
        d = -r

        # Guard: fall back to projected steepest descent (and forget the
        # history) where rounding made d useless.
        slope = (g * d).sum(dim=1)
        bad = ~(slope < 0) | ~torch.isfinite(slope)
        d = torch.where(bad[:, None], -g_free, d)
        valid = valid & ~bad[None, :]
        fresh = bad | ~found  # no usable curvature: scale the first step
        d_norm = d.norm(dim=1)
        step = torch.where(
            fresh, torch.clamp(1.0 / torch.where(d_norm > 0, d_norm, torch.ones_like(d_norm)), max=1.0),
            torch.ones_like(d_norm),
        )

        # Backtracking Armijo search along P(x + a d), all problems at once.
        # Armijo on the projected arc (Bertsekas): f(x_a) <= f + c1 g.(x_a - x).
        pending = torch.from_numpy(running).to(x.device)
        pending_host = running.copy()
        x_new, f_new, g_new = x, f, g
        for _ in range(max_ls):
            # problems already accepted sit at their new point, so the last
            # call of fun before the callback is at every problem's iterate
            x_try = torch.where(pending[:, None], box.project(x + step[:, None] * d), x_new)
            f_try, g_try = evaluate(x_try)
            n_eval[pending_host] += 1
            decrease = (g * (x_try - x)).sum(dim=1)  # <= 0 along a descent arc
            # a trial counts only with a finite value *and* gradient: a NaN gradient at an
            # accepted point would poison the next direction and end the run there
            finite = torch.isfinite(f_try) & torch.isfinite(g_try).all(dim=1)
            accept = pending & finite & (f_try <= f + c1 * decrease)
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
        failed = pending

        s_new, y_new = x_new - x, g_new - g
        sy = (s_new * y_new).sum(dim=1)
        yy = (y_new * y_new).sum(dim=1)
        s_hist[ptr] = s_new
        y_hist[ptr] = y_new
        valid[ptr] = torch.from_numpy(running).to(x.device) & ~failed & (sy > eps * yy)
        ptr = (ptr + 1) % m
        n_stored += 1
        # A failed search with curvature in use: forget it and retry with
        # steepest descent; a failed steepest-descent search ends the problem.
        valid = valid & ~(failed & ~fresh)[None, :]

        scale = torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        small_decrease = ~failed & (f - f_new <= ftol * scale)
        converged = box.pg_norm(x_new, g_new) <= tol
        gave_up = failed & fresh
        x, f, g = x_new, f_new, g_new
        n_iter[running] += 1

        flags = torch.stack([converged, small_decrease, gave_up]).cpu().numpy()
        for i in np.flatnonzero(running):
            if flags[0, i]:
                reason[i] = "tol"
            elif flags[1, i]:
                reason[i] = "ftol"
            elif flags[2, i]:
                reason[i] = "line_search"
            elif iteration == max_iter:
                reason[i] = "max_iter"
            done[i] = bool(reason[i])
        done_t = torch.from_numpy(done).to(x.device)

        if callback is not None:
            info = IterationInfo(iteration, x.reshape(shape), f, _counts(n_eval), evaluate.calls)
            if callback(info):
                for i in np.flatnonzero(~done):
                    reason[i] = "callback"
                done[:] = True

    for i in np.flatnonzero(~done):  # only with max_iter == 0
        reason[i] = "max_iter"
    return OptimizeResult(
        x=x.reshape(shape), fun=f, n_iter=_counts(n_iter), n_eval=_counts(n_eval),
        reason=reason, method="plbfgs", n_calls=evaluate.calls,
    )
