"""Tests of masked_gatys.optim against independent references (scipy's L-BFGS-B in float64,
closed-form optima, the KKT conditions)."""

from __future__ import annotations

import doctest
from typing import Callable

import numpy as np
import pytest
import torch
from scipy.optimize import Bounds
from scipy.optimize import minimize as scipy_minimize

import masked_gatys.optim as optim
from masked_gatys.errors import ObjectiveError
from masked_gatys.optim import METHODS, IterationInfo, OptimizeResult, minimize, projected_lbfgs


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- problems


class Quadratics:
    """A batch of strictly convex quadratics ``0.5 x'Ax + c'x``, ``A = diag(d) + U U'``.

    ``d`` spans ``[1, kappa]`` (log-spaced, shuffled) and ``U`` is ``(n, rank)``, so a
    matrix-vector product is cheap even at ``n = 10^4``. The unconstrained optimum ``z``
    is drawn from ``[-0.5, 1.5]``, so about half of the box-constrained optimum lies on
    the bounds of ``[0, 1]``.
    """

    def __init__(self, n: int, seeds: list[int], kappa: float = 1e3, rank: int = 5) -> None:
        ds, us, cs = [], [], []
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            d = torch.logspace(0, float(np.log10(kappa)), n, dtype=torch.float64)
            d = d[torch.randperm(n, generator=g)]
            u = torch.randn(n, rank, generator=g, dtype=torch.float64) * (kappa / n) ** 0.5
            z = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 0.5
            ds.append(d)
            us.append(u)
            cs.append(-(d * z + u @ (u.T @ z)))
        self.d, self.u, self.c = torch.stack(ds), torch.stack(us), torch.stack(cs)
        self.n = n

    @classmethod
    def concat(cls, problems: list["Quadratics"]) -> "Quadratics":
        """One batch holding the given problems (same n)."""
        batch = cls.__new__(cls)
        batch.n = problems[0].n
        batch.d = torch.cat([p.d for p in problems])
        batch.u = torch.cat([p.u for p in problems])
        batch.c = torch.cat([p.c for p in problems])
        return batch

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        d, u = self.d.to(x), self.u.to(x)
        return d * x + torch.bmm(u, torch.bmm(u.transpose(1, 2), x[:, :, None]))[:, :, 0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * self.matvec(x)).sum(dim=1) + (self.c.to(x) * x).sum(dim=1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return self.matvec(x) + self.c.to(x)

    def scipy_reference(self, i: int, lower=0.0, upper=1.0) -> tuple[float, np.ndarray]:
        """Problem i solved by scipy's L-BFGS-B in float64 to tight tolerances."""
        d, u, c = self.d[i].numpy(), self.u[i].numpy(), self.c[i].numpy()

        def fg(z: np.ndarray) -> tuple[float, np.ndarray]:
            az = d * z + u @ (u.T @ z)
            return 0.5 * z @ az + c @ z, az + c

        res = scipy_minimize(
            fg, np.full(self.n, 0.5), jac=True, method="L-BFGS-B", bounds=Bounds(lower, upper),
            options={"maxiter": 100000, "maxfun": 100000, "gtol": 1e-12, "ftol": 1e-15},
        )
        return float(res.fun), res.x


Tensor = torch.Tensor


def projected_gradient(x: Tensor, g: Tensor, lower=0.0, upper=1.0) -> Tensor:
    """``x - P(x - g)``: zero exactly at a KKT point of the box-constrained problem."""
    return x - torch.clamp(x - g, lower, upper)


def rosenbrock(x: Tensor) -> Tensor:
    return (100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2).sum(dim=1)


def recorder() -> tuple[list[IterationInfo], Callable[[IterationInfo], None]]:
    infos: list[IterationInfo] = []
    return infos, infos.append


# ----------------------------------------------------------------------------- projected L-BFGS


@pytest.mark.parametrize("n", [10, 100, 1000, 10000])
def test_quadratic_reaches_scipy_objective_and_kkt_float64(n: int) -> None:
    q = Quadratics(n, [n])
    f_ref, x_ref = q.scipy_reference(0)
    on_bounds = np.mean((x_ref <= 0) | (x_ref >= 1))
    assert 0.2 < on_bounds < 0.8  # the problem really is constrained, and not only
    res = projected_lbfgs(q, torch.full((1, n), 0.5, dtype=torch.float64), max_iter=5000, tol=1e-9, ftol=0.0)
    f = res.fun.item()
    assert abs(f - f_ref) <= 1e-6 * abs(f_ref)
    # KKT: projected gradient ~ 0 relative to the gradient's own scale at the start
    g_scale = q.grad(torch.full((1, n), 0.5, dtype=torch.float64)).abs().max()
    assert projected_gradient(res.x, q.grad(res.x)).abs().max() <= 1e-6 * g_scale
    assert res.x.min() >= 0 and res.x.max() <= 1


@pytest.mark.parametrize("n", [10, 1000, 10000])
def test_quadratic_float32(n: int) -> None:
    # float32 resolves f only to ~1e-7 relative and sums n terms, so the line
    # search stops seeing decrease around 1e-6: compare to 1e-5 relative.
    q = Quadratics(n, [n + 1])
    f_ref, _ = q.scipy_reference(0)
    res = projected_lbfgs(q, torch.full((1, n), 0.5), max_iter=2000)
    assert res.x.dtype == torch.float32 and res.fun.dtype == torch.float32
    assert abs(res.fun.item() - f_ref) <= 1e-5 * abs(f_ref)
    assert res.reason[0] in ("tol", "ftol")


def test_tensor_bounds_match_scipy() -> None:
    n = 300
    q = Quadratics(n, [7])
    g = torch.Generator().manual_seed(1)
    lower = torch.rand(1, n, generator=g, dtype=torch.float64) * 0.4
    upper = 0.6 + torch.rand(1, n, generator=g, dtype=torch.float64) * 0.4
    f_ref, _ = q.scipy_reference(0, lower[0].numpy(), upper[0].numpy())
    res = projected_lbfgs(q, torch.full((1, n), 0.5, dtype=torch.float64), lower=lower, upper=upper,
                          max_iter=5000, tol=1e-9, ftol=0.0)
    assert abs(res.fun.item() - f_ref) <= 1e-6 * abs(f_ref)
    assert bool((res.x >= lower).all() and (res.x <= upper).all())
    pg = res.x - torch.maximum(torch.minimum(res.x - q.grad(res.x), upper), lower)
    g_scale = q.grad(torch.full((1, n), 0.5, dtype=torch.float64)).abs().max()
    assert pg.abs().max() <= 1e-6 * g_scale


def _recorder(q) -> tuple:
    """``fun`` and ``callback`` for an optimizer run on ``q``, and the list of infos.

    The callback checks that the last call of ``fun`` was at ``info.x`` (in a batch, problems
    accepted earlier sit at their new point), so side results of that call belong to it.
    """
    infos: list[IterationInfo] = []
    last_point: list[Tensor] = []

    def fun(x: Tensor) -> Tensor:
        last_point[:] = [x.detach().clone()]
        return q(x)

    def cb(info: IterationInfo) -> None:
        assert torch.equal(last_point[0], info.x)
        infos.append(info)

    return fun, cb, infos


def test_iterates_stay_in_box_and_accepted_steps_never_increase_f() -> None:
    q = Quadratics(200, [3, 4])
    lower = torch.tensor([[0.1], [0.0]], dtype=torch.float64)  # per-problem bounds, broadcast
    fun, cb, infos = _recorder(q)

    x0 = torch.rand(2, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = projected_lbfgs(fun, x0, lower=lower, upper=0.9, max_iter=200, callback=cb)
    assert len(infos) >= 10
    previous = q(torch.maximum(x0, lower).clamp(max=0.9))
    for info in infos:
        assert bool((info.x >= lower).all()) and bool((info.x <= 0.9).all())
        assert torch.allclose(info.fun, q(info.x), rtol=1e-12, atol=0)  # fun is the value at x
        assert bool((info.fun <= previous).all())
        previous = info.fun
    assert torch.equal(res.x, infos[-1].x)


def test_x0_outside_box_is_projected_and_max_iter_zero() -> None:
    q = Quadratics(20, [5])
    x0 = torch.linspace(-1, 2, 20, dtype=torch.float64)[None]
    res = projected_lbfgs(q, x0, max_iter=0)
    assert torch.equal(res.x, x0.clamp(0, 1))
    assert res.reason == ["max_iter"] and res.n_iter.tolist() == [0] and res.n_eval.tolist() == [1]
    assert torch.allclose(res.fun, q(x0.clamp(0, 1)))


def test_batch_gives_the_same_results_as_each_problem_alone() -> None:
    # Conditioning from 10 to 1e3, so the problems stop at different iterations
    # and some keep running after others are finished.
    n = 200
    problems = [Quadratics(n, [s], kappa=10.0 ** (s + 1)) for s in range(3)]
    batch = Quadratics.concat(problems)
    x0 = torch.full((3, n), 0.5, dtype=torch.float64)
    infos, cb = recorder()
    together = projected_lbfgs(batch, x0, max_iter=2000, tol=1e-8, ftol=0.0, callback=cb)
    assert len(set(together.n_iter.tolist())) > 1
    for i, p in enumerate(problems):
        alone_infos, alone_cb = recorder()
        alone = projected_lbfgs(p, x0[i:i + 1], max_iter=2000, tol=1e-8, ftol=0.0, callback=alone_cb)
        # The reductions of a (B, n) and a (1, n) tensor may round differently
        # in the last bit, so iterates agree closely early on (a problem
        # leaking into another would differ at once), and the solutions agree.
        for k in range(min(10, len(alone_infos))):
            assert torch.allclose(infos[k].x[i], alone_infos[k].x[0], rtol=0, atol=1e-12), k
        assert abs(together.fun[i].item() - alone.fun.item()) <= 1e-10 * abs(alone.fun.item())
        assert torch.allclose(together.x[i], alone.x[0], atol=1e-4)
        assert together.reason[i] == alone.reason[0]
        assert abs(int(together.n_iter[i]) - int(alone.n_iter[0])) <= max(3, 0.1 * int(alone.n_iter[0]))


def test_finished_problems_stop_changing() -> None:
    n = 200
    easy, hard = Quadratics(n, [1], kappa=2.0), Quadratics(n, [2], kappa=1e4)
    batch = Quadratics.concat([easy, hard])
    infos, cb = recorder()
    res = projected_lbfgs(batch, torch.full((2, n), 0.5, dtype=torch.float64), max_iter=1000, tol=1e-7, callback=cb)
    k_easy, k_hard = int(res.n_iter[0]), int(res.n_iter[1])
    assert k_easy < k_hard
    frozen = infos[k_easy - 1]
    for info in infos[k_easy:]:
        assert torch.equal(info.x[0], frozen.x[0]) and info.fun[0] == frozen.fun[0]
        assert info.n_eval[0] == frozen.n_eval[0]
    assert int(res.n_eval[0]) == int(frozen.n_eval[0]) < int(res.n_eval[1])


def test_bounded_rosenbrock_2d_closed_form(dtype: torch.dtype) -> None:
    # With x <= 0.8 the minimum of 100 (y - x^2)^2 + (1 - x)^2 is at (0.8, 0.64), f = 0.04.
    lower = torch.tensor([[-2.0, -2.0]], dtype=dtype)
    upper = torch.tensor([[0.8, 2.0]], dtype=dtype)
    res = projected_lbfgs(rosenbrock, torch.tensor([[-1.2, 1.0]], dtype=dtype), lower=lower, upper=upper,
                          max_iter=500, tol=1e-7)
    atol = 1e-3 if dtype == torch.float32 else 1e-6
    assert torch.allclose(res.x, torch.tensor([[0.8, 0.64]], dtype=dtype), atol=atol)
    assert res.x[0, 0] == 0.8  # exactly on the bound
    assert abs(res.fun.item() - 0.04) <= 10 * atol


def test_bounded_rosenbrock_matches_scipy() -> None:
    n = 20
    x0 = np.linspace(-1.0, 0.5, n)
    lo, hi = -1.5, 0.7

    def fg(z: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(z[None], requires_grad=True)
        v = rosenbrock(t).sum()
        v.backward()
        return v.item(), t.grad[0].numpy()

    ref = scipy_minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=Bounds(lo, hi),
                         options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10000})
    res = projected_lbfgs(rosenbrock, torch.tensor(x0[None]), lower=lo, upper=hi, max_iter=5000, tol=1e-9, ftol=0.0)
    assert abs(res.fun.item() - ref.fun) <= 1e-6 * abs(ref.fun)
    assert np.allclose(res.x[0].numpy(), ref.x, atol=1e-4)


def test_concave_objective_goes_to_the_far_corner() -> None:
    # Negative curvature everywhere: every pair has s.y < 0 and must be
    # rejected; the method then works as projected steepest descent.
    fun = lambda x: -((x - 0.3) ** 2).sum(dim=1)  # noqa: E731
    res = projected_lbfgs(fun, torch.full((2, 50), 0.35, dtype=torch.float64), max_iter=100)
    assert torch.equal(res.x, torch.ones(2, 50, dtype=torch.float64))
    assert res.reason == ["tol", "tol"]


def test_callback_stop() -> None:
    q = Quadratics(300, [9, 10])
    seen: list[int] = []

    def cb(info: IterationInfo) -> bool:
        seen.append(info.iteration)
        return info.iteration == 3

    res = projected_lbfgs(q, torch.full((2, 300), 0.5, dtype=torch.float64), max_iter=100, callback=cb)
    assert seen == [1, 2, 3]
    assert res.reason == ["callback", "callback"] and res.n_iter.tolist() == [3, 3]


def test_device_and_dtype_follow_the_input(device: torch.device, dtype: torch.dtype) -> None:
    q = Quadratics(64, [11])
    fun = lambda x: q(x.reshape(1, -1))  # noqa: E731 - x is (1, 4, 4, 4): any shape after B
    x0 = torch.full((1, 4, 4, 4), 0.5, dtype=dtype, device=device)
    devices = []

    def cb(info: IterationInfo) -> None:
        devices.append((info.x.device, info.fun.device, info.x.dtype, info.x.shape))

    res = projected_lbfgs(fun, x0, max_iter=200, callback=cb)
    assert res.x.device == x0.device and res.x.dtype == dtype and res.x.shape == x0.shape
    assert res.fun.device == x0.device and res.n_iter.device.type == "cpu"
    assert set(devices) == {(x0.device, x0.device, dtype, x0.shape)}
    f_ref, _ = q.scipy_reference(0)
    assert abs(res.fun.item() - f_ref) <= (1e-5 if dtype == torch.float32 else 1e-6) * abs(f_ref)


def test_n_eval_counts_each_problems_own_evaluations() -> None:
    calls = []
    q = Quadratics(50, [12])

    def fun(x: Tensor) -> Tensor:
        calls.append(1)
        return q(x)

    res = projected_lbfgs(fun, torch.full((1, 50), 0.5, dtype=torch.float64), max_iter=30)
    assert int(res.n_eval[0]) == len(calls) == res.n_calls
    assert int(res.n_eval[0]) >= int(res.n_iter[0]) + 1


# ----------------------------------------------------------------------------- minimize, all methods


@pytest.mark.parametrize("method", METHODS)
def test_all_methods_on_a_small_problem(method: str) -> None:
    q = Quadratics(30, [13], kappa=10.0)
    f_ref, x_ref = q.scipy_reference(0)
    fun, cb, infos = _recorder(q)

    x0 = torch.full((1, 30), 0.5, dtype=torch.float64)
    max_iter = {"adam": 2000, "lbfgs": 100}.get(method, 300)
    res = minimize(fun, x0, method=method, max_iter=max_iter, callback=cb, tol=1e-7)
    assert isinstance(res, OptimizeResult) and res.method == method
    assert res.x.shape == x0.shape and res.x.dtype == x0.dtype and res.fun.shape == (1,)
    assert res.n_iter.shape == (1,) and res.n_eval.shape == (1,) and len(res.reason) == 1
    assert res.reason[0] in optim.REASONS
    assert [i.iteration for i in infos] == list(range(1, len(infos) + 1))
    assert int(res.n_iter[0]) == len(infos)
    for info in infos:
        assert info.x.min() >= 0 and info.x.max() <= 1
        assert torch.allclose(info.fun, q(info.x), rtol=1e-12)
    counts = [int(i.n_eval[0]) for i in infos]
    assert counts == sorted(counts)
    assert torch.allclose(res.fun, q(res.x), rtol=1e-12)
    if method == "lbfgs":
        # The paper's baseline: clamping after torch's step breaks its line
        # search and curvature pairs, and with active bounds it stalls well
        # short of the optimum (see the next test for the unconstrained case).
        assert res.fun.item() < q(x0).item()
    else:
        rtol = {"plbfgs": 1e-9, "lbfgs-b": 1e-9, "adam": 1e-4}[method]
        assert abs(res.fun.item() - f_ref) <= rtol * abs(f_ref)


def test_torch_lbfgs_baseline_converges_when_no_bound_is_active() -> None:
    q = Quadratics(30, [13], kappa=10.0)
    x0 = torch.full((1, 30), 0.5, dtype=torch.float64)
    reference = minimize(q, x0, method="lbfgs-b", max_iter=500, lower=-100.0, upper=100.0, tol=1e-10, ftol=1e-15)
    res = minimize(q, x0, method="lbfgs", max_iter=200, lower=-100.0, upper=100.0, tol=1e-10, ftol=1e-15)
    assert abs(res.fun.item() - reference.fun.item()) <= 1e-9 * abs(reference.fun.item())
    assert res.reason[0] in ("tol", "ftol")


@pytest.mark.parametrize("method", METHODS)
def test_all_methods_callback_stop_and_keyboard_interrupt(method: str) -> None:
    q = Quadratics(30, [14], kappa=100.0)
    x0 = torch.full((2, 30), 0.5, dtype=torch.float64)
    q2 = Quadratics(30, [14, 15], kappa=100.0)
    res = minimize(q2, x0, method=method, max_iter=100, callback=lambda info: info.iteration == 2)
    assert res.reason == ["callback", "callback"] and res.n_iter.tolist() == [2, 2]
    assert torch.allclose(res.fun, q2(res.x))

    count = []

    def interrupted(x: Tensor) -> Tensor:
        count.append(1)
        if len(count) == 4:
            raise KeyboardInterrupt
        return q(x[:1]).expand(2) * 1.0

    with pytest.raises(KeyboardInterrupt):
        minimize(interrupted, x0, method=method, max_iter=100)

    def stop(info: IterationInfo) -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        minimize(q2, x0, method=method, max_iter=100, callback=stop)


@pytest.mark.parametrize("method", METHODS)
def test_lower_upper_tensors_for_all_methods(method: str) -> None:
    q = Quadratics(40, [16], kappa=10.0)
    lower = torch.full((1, 40), 0.2, dtype=torch.float64)
    infos, cb = recorder()
    res = minimize(q, torch.full((1, 40), 0.5, dtype=torch.float64), method=method, max_iter=50,
                   lower=lower, upper=0.7, callback=cb)
    for info in [*infos, res]:
        assert info.x.min() >= 0.2 and info.x.max() <= 0.7


def test_batch_for_lbfgsb_is_one_flat_problem() -> None:
    q = Quadratics(50, [17, 18])
    res = minimize(q, torch.full((2, 50), 0.5, dtype=torch.float64), method="lbfgs-b", max_iter=1000,
                   tol=1e-10, ftol=1e-15)
    for i in range(2):
        f_ref, _ = q.scipy_reference(i)
        assert abs(res.fun[i].item() - f_ref) <= 1e-8 * abs(f_ref)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "bfgs"}, "unknown method 'bfgs'"),
        ({"method": "plbfgs", "lr": 0.1}, "unknown option(s) 'lr' for method 'plbfgs'; valid: ftol, history_size, tol"),
        ({"method": "adam", "history_size": 3}, "unknown option(s) 'history_size' for method 'adam'"),
        ({"method": "lbfgs", "history_size": 0}, "history_size must be an integer >= 1"),
        ({"method": "lbfgs-b", "tol": -1}, "tol must be >= 0"),
        ({"method": "adam", "lr": 0}, "lr must be > 0"),
        ({"method": "adam", "betas": (0.9, 1.0)}, "betas must be two numbers in [0, 1)"),
        ({"method": "plbfgs", "lower": 1.0, "upper": 0.0}, "need lower <= upper"),
        ({"method": "lbfgs", "max_iter": -1}, "max_iter must be an integer >= 0"),
        ({"method": "plbfgs", "lower": torch.zeros(3)}, "does not broadcast"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    kwargs = {"max_iter": 10, **kwargs}
    with pytest.raises(ValueError) as err:
        minimize(lambda x: (x ** 2).sum(dim=1), torch.zeros(1, 2), **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("method", METHODS)
def test_bad_fun(method: str) -> None:
    with pytest.raises(ObjectiveError, match=r"shape \(2,\)"):
        minimize(lambda x: (x ** 2).sum(), torch.zeros(2, 3), method=method, max_iter=5)
    with pytest.raises(ObjectiveError, match="not finite"):
        minimize(lambda x: (x / x).sum(dim=1), torch.zeros(2, 3), method=method, max_iter=5)
    with pytest.raises(ObjectiveError, match="autograd"):
        minimize(lambda x: torch.ones(2), torch.zeros(2, 3), method=method, max_iter=5)
    with pytest.raises(TypeError):
        minimize(lambda x: x.sum(dim=1), [[0.0]], method=method, max_iter=5)


def test_doctests() -> None:
    assert doctest.testmod(optim).failed == 0


# --- branches of projected_lbfgs that the problems above do not reach (issue 11 item 19) --------------

class _NaNGradAbove(torch.autograd.Function):
    """Identity forward; the gradient is NaN wherever x > 0.6 (a finite value, a broken gradient)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.where(x > 0.6, torch.full_like(grad, float("nan")), grad)


def test_a_trial_with_a_finite_value_but_nan_gradient_is_rejected():
    def fun(x):
        return ((_NaNGradAbove.apply(x) - 0.9) ** 2).sum(dim=1)

    seen = []
    result = projected_lbfgs(fun, torch.full((1, 3), 0.1, dtype=torch.float64), max_iter=30,
                             callback=lambda info: seen.append(info.x.clone()))
    # every accepted iterate has a usable gradient; the run ends at the edge of that region, not
    # stopped early at a point where the gradient is NaN
    assert all((x <= 0.6).all() for x in seen) and (result.x <= 0.6).all()
    assert torch.allclose(result.x, torch.full((1, 3), 0.6, dtype=torch.float64), atol=0.05)


def test_armijo_is_checked_along_the_projected_arc_not_a_times_g_dot_d():
    # f(0.5) = 0, f'(0.5) = -1; the first trial P(0.5 + 1) = 1 lowers f by delta = 0.75 c1:
    # enough for the arc's test (c1 g.(x_a - x) = -0.5 c1), not for a g.d = -c1.
    c1, delta = 1e-4, 0.75e-4
    k = 2 - 4 * delta

    def fun(x):
        t = x - 0.5
        return (-t + k * t * t).sum(dim=1)

    first = []
    projected_lbfgs(fun, torch.full((1, 1), 0.5, dtype=torch.float64), max_iter=1,
                    callback=lambda info: first.append((info.x.item(), info.n_eval.item())))
    assert first == [(1.0, 2)]  # accepted at the first trial: one evaluation besides the start
    assert c1 * 0.5 <= delta < c1


def test_a_failed_line_search_with_history_in_use_retries_by_steepest_descent():
    quad = Quadratics(8, [3], kappa=50.0)
    calls = {"n": 0}

    def fun(x):
        calls["n"] += 1
        value = quad(x)
        if 3 <= calls["n"] < 3 + 20:  # one whole line search (20 trials) fails, after history exists
            value = value + float("inf")
        return value

    result = projected_lbfgs(fun, torch.full((1, 8), 0.5, dtype=torch.float64), max_iter=200, tol=1e-9)
    assert result.reason[0] != "line_search" and calls["n"] > 22  # it went on after the failure
    ref, _ = quad.scipy_reference(0)
    assert abs(float(result.fun[0]) - ref) <= 1e-7 * max(1.0, abs(ref))


def test_concave_directions_and_pairs_restricted_to_the_free_set():
    """x1 convex with its minimum beyond the bound, x2 concave: stored pairs have s.y > 0 while x1
    moves, and s_F.y_F < 0 once x1 sits at its bound; pairs with s.y <= 0 are never stored."""
    def fun(x):
        return ((x[:, 0] - 3.0) ** 2 - 0.05 * (x[:, 1] - 0.45) ** 2 + 0.0 * x.sum(dim=1))

    values = []
    result = projected_lbfgs(fun, torch.tensor([[0.1, 0.5]], dtype=torch.float64), max_iter=100,
                             callback=lambda info: values.append(float(info.fun[0])))
    assert result.reason[0] == "tol"
    assert torch.allclose(result.x, torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    assert all(b <= a for a, b in zip(values, values[1:]))  # every step went down


def test_a_concave_objective_goes_to_a_corner():
    result = projected_lbfgs(lambda x: -(x * x).sum(dim=1), torch.tensor([[0.3, 0.7, 0.01]], dtype=torch.float64),
                             max_iter=50)
    assert result.reason[0] == "tol" and torch.equal(result.x, torch.ones(1, 3, dtype=torch.float64))


def _pinned_problems():
    """Problems that walk every branch of the loop: bounds that bind and let go, a history that
    wraps (history_size 3), problems of a batch finishing at different iterations, failed line
    searches (a NaN wall), a concave corner, float32 and float64."""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(4, 6, generator=g, dtype=torch.float64) * 2 - 0.5

    def rosen(x):
        z = x * 1.6 - 0.3
        return (100 * (z[:, 1:] - z[:, :-1] ** 2) ** 2 + (1 - z[:, :-1]) ** 2).sum(1) + ((x - a) ** 2).sum(1)

    def wall(x):
        f = ((x - 1.5) ** 2).sum(1) + torch.sin(7 * x).sum(1)
        return torch.where(x.amax(1) > 0.9, torch.full_like(f, float("nan")), f)

    def concave(x):
        return -((x - 0.3) ** 2).sum(1) + 0.1 * x.sum(1)

    def stuck(x):  # problem 0 can go nowhere (every trial is NaN): its search fails; problem 1 can
        f = ((x - 0.8) ** 2).sum(1) + x.prod(1)
        cut = torch.tensor([True, False])[:, None] & x.gt(0)
        return torch.where(cut.any(1), torch.full_like(f, float("nan")), f)

    yield rosen, torch.rand(4, 6, generator=g, dtype=torch.float64), {"history_size": 3, "max_iter": 40}
    yield rosen, torch.rand(4, 6, generator=g, dtype=torch.float64).float(), {"max_iter": 25, "tol": 1e-7}
    yield wall, torch.full((3, 5), 0.2, dtype=torch.float64), {"max_iter": 15, "history_size": 4}
    yield concave, torch.rand(2, 4, generator=g, dtype=torch.float64), {"max_iter": 10}
    yield stuck, torch.zeros(2, 3, dtype=torch.float64), {"max_iter": 12}
    yield rosen, torch.rand(4, 6, generator=g, dtype=torch.float64), {"max_iter": 30, "lower": a * 0.5,
                                                                     "upper": a * 0.5 + 0.7}


def test_projected_lbfgs_iterates_are_those_of_the_one_function_version_bit_for_bit():
    from _reference_plbfgs import reference_projected_lbfgs

    for fun, x0, options in _pinned_problems():
        runs = []
        for solver in (projected_lbfgs, reference_projected_lbfgs):
            seen = []
            stop_at = 7 if options.get("max_iter") == 25 else None  # one run stopped by the callback

            def callback(info, seen=seen, stop_at=stop_at):
                seen.append((info.iteration, info.x.clone(), info.fun.clone(), info.n_eval.clone(), info.n_calls))
                return stop_at is not None and info.iteration >= stop_at

            res = solver(fun, x0.clone(), callback=callback, **options)
            runs.append((seen, res))
        (seen, res), (seen_ref, ref) = runs
        assert len(seen) == len(seen_ref) > 0
        for (i, x, f, n, c), (i_r, x_r, f_r, n_r, c_r) in zip(seen, seen_ref):
            assert i == i_r and c == c_r and torch.equal(n, n_r)
            assert torch.equal(x, x_r) and torch.equal(f, f_r)
        assert torch.equal(res.x, ref.x) and res.reason == ref.reason
        assert torch.equal(res.n_iter, ref.n_iter) and torch.equal(res.n_eval, ref.n_eval)
        assert res.n_calls == ref.n_calls
