"""Optimizers on the stylization problem: objective after N evaluations, own overhead, history size.

For each problem (eye crop size x preset x weights x seed) every method starts from the
same image (the content image) and runs until it has spent the largest budget of
evaluations (one evaluation = one forward and one backward pass of the objective). The
objective reported "after N evaluations" is that of the last *iterate* reached within N
evaluations (line-search trial points do not count), divided by the objective at the
start. Early stops are switched off (tol = ftol = 0), so the budget decides.

An optimizer's own overhead per iteration is the run's time minus the time spent in
evaluations (timed from the call of ``fun`` to the end of its backward pass), per
iteration, as a fraction of the median evaluation. On the CPU the times are CPU times of
the process (the machine may be shared); every method runs once on a toy problem first.

Only the public API is used: ``masked_gatys.stylize.prepare`` builds the objective,
``masked_gatys.optim.minimize`` runs the methods.

Examples::

    .venv/bin/python benchmarks/optimizers.py --help
    .venv/bin/python benchmarks/optimizers.py --sizes 128 --seeds 1 --budgets 25 50 --json o.json
    .venv/bin/python benchmarks/optimizers.py --report-only --json benchmarks/results/optimizers-cpu.json
"""

from __future__ import annotations

import os

# scipy's L-BFGS-B calls BLAS, whose idle threads then spin and bill their CPU time to the
# evaluations that follow (measured: +60% per evaluation on 2 cores); its vectors gain
# nothing from threads, so pin BLAS to one thread before numpy loads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime
import json
import math
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from masked_gatys.optim import METHODS, IterationInfo, minimize
from masked_gatys.stylize import StylizeConfig, prepare

ROOT = Path(__file__).resolve().parent.parent
#: the ImageNet weights file, from the environment (see the README's "Loss-network weights")
WEIGHTS_FILE = os.environ.get("MASKED_GATYS_WEIGHTS")
MAX_LAYER = "relu3_4"  # the partial ImageNet file stops at conv3_4; random weights use the same layers


# ----------------------------------------------------------------------------- problems


def eye_pair(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(content, content mask, style, style mask): a "real" eye and a "synthetic" one, 3:5 crops.

    Uses the procedural eye renderer when it is there, else a disc on a gradient.
    """
    h, w = round(size * 3 / 5), size
    g = torch.Generator().manual_seed(seed)
    yaw, pitch = (torch.rand(2, generator=g) * 40 - 20).tolist()
    try:
        from masked_gatys.eyes import render_eye
    except ImportError:
        return (*_disc(h, w, seed, real=True), *_disc(h, w, seed + 1000, real=False))
    content = render_eye(yaw=yaw, pitch=pitch, domain="real", size=(h, w), seed=seed)
    style = render_eye(yaw=-yaw / 2, pitch=-pitch / 2, domain="synthetic", size=(h, w), seed=1000 + seed)
    return content.image, content.mask, style.image, style.mask


def _disc(h: int, w: int, seed: int, real: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    cy, cx = (0.3 + 0.4 * torch.rand(2, generator=g)).tolist()
    mask = (((yy - cy) * h) ** 2 + ((xx - cx) * w) ** 2 <= (0.25 * h) ** 2).float()
    base = torch.stack([0.8 * xx, 0.6 * yy, 0.5 + 0.3 * xx * yy])
    if real:
        base = base + 0.1 * torch.randn(3, h, w, generator=g)
    image = base * (1 - mask) + torch.tensor([0.2, 0.1, 0.05])[:, None, None] * mask
    return image.clamp(0, 1)[None], mask[None, None]


# ----------------------------------------------------------------------------- timing


class _Clock:
    """Time of each evaluation, from the call of fun to the end of its backward pass.

    On the CPU this is the process's CPU time, not wall time: the benchmark machine is
    shared, and CPU time does not count the slices other processes take (run with
    --threads 1 so that CPU time is also the critical path). On CUDA it is wall time
    after a synchronisation.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = 0.0
        self.durations: list[float] = []

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return time.perf_counter()
        return time.process_time()


class _Stamp(torch.autograd.Function):
    """Identity whose backward (the last step of the backward pass) records the time."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, clock: _Clock) -> torch.Tensor:  # type: ignore[override]
        ctx.clock = clock
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        clock = ctx.clock
        clock.durations.append(clock.now() - clock.start)
        return grad, None


def run_method(problem: Any, method: str, budget: int, history_size: int, lr: float) -> dict[str, Any]:
    """One method on one problem until ``budget`` evaluations; trace of (evaluations, objective)."""
    clock = _Clock(problem.x0.device)
    objective = problem.objective

    def fun(x: torch.Tensor) -> torch.Tensor:
        clock.start = clock.now()
        return objective(_Stamp.apply(x, clock)).total

    trace: list[tuple[int, float]] = []

    def callback(info: IterationInfo) -> bool:
        trace.append((info.n_calls, float(info.fun.sum())))
        return info.n_calls >= budget

    options: dict[str, Any] = {"tol": 0.0}
    if method in ("plbfgs", "lbfgs", "lbfgs-b"):
        options.update(history_size=history_size, ftol=0.0)
    if method == "adam":
        options["lr"] = lr
    if method == "lbfgs-b":
        options["max_eval"] = budget + 25
    with torch.no_grad():
        f0 = float(objective(problem.x0).total.sum())
    started = clock.now()
    result = minimize(fun, problem.x0, method=method, max_iter=budget, callback=callback, **options)
    wall = clock.now() - started
    n_iter = int(result.n_iter.max())
    evals = clock.durations
    eval_median = statistics.median(evals)
    overhead = max(wall - sum(evals), 0.0) / max(n_iter, 1)
    return {
        "method": method, "history_size": history_size, "budget": budget, "f0": f0, "trace": trace,
        "n_iter": n_iter, "n_calls": result.n_calls, "reason": result.reason[0],
        "time_s": wall, "eval_s": sum(evals), "eval_median_s": eval_median,
        "overhead_per_iter_s": overhead, "overhead_fraction": overhead / eval_median,
        "evals_per_iter": result.n_calls / max(n_iter, 1),
    }


def value_after(run: dict[str, Any], n: int) -> float:
    """Objective of the last iterate reached within n evaluations, relative to the start.

    NaN where the run's budget was smaller than n.
    """
    if n > run["budget"]:
        return math.nan
    value = run["f0"]
    for calls, f in run["trace"]:
        if calls > n:
            break
        value = f
    return value / run["f0"]


# ----------------------------------------------------------------------------- running


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    info = {
        "cpu": cpu, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def weights_label(weights: str) -> str:
    return "random" if weights == "random" else "imagenet-partial"


def warm_up(device: str) -> None:
    """Run every method once on a toy problem: first uses import and set up lazily (seconds)."""
    target = torch.linspace(-0.5, 1.5, 64, device=device)[None]
    for method in METHODS:
        minimize(lambda x: ((x - target) ** 2).sum(dim=1), torch.zeros(1, 64, device=device),
                 method=method, max_iter=3)


def run_all(args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    budget = args.max_evals or max(args.budgets)
    warm_up(args.device)
    runs: list[dict[str, Any]] = []
    encoders: dict[tuple[str, str], Any] = {}
    history_sizes = [h for h in args.history_sizes if h != args.history_size]
    for size in args.sizes:
        for preset in args.presets:
            for weights in args.weights:
                for seed in range(args.seeds):
                    content, mask, style, style_mask = eye_pair(size, seed)
                    config = StylizeConfig(preset=preset, weights=weights, size=size, max_layer=MAX_LAYER,
                                           device=args.device, seed=0)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # the random-weights warning
                        problem = prepare(content, style, mask=mask, style_mask=style_mask, config=config,
                                          encoder=encoders.get((weights, preset)))
                    encoders[(weights, preset)] = problem.encoder
                    jobs = [("compare", m, args.history_size) for m in args.methods]
                    if size in args.history_at and seed < args.history_seeds:
                        jobs += [("history", "plbfgs", h) for h in history_sizes]
                    for study, method, h in jobs:
                        run = run_method(problem, method, budget, h, args.lr)
                        run.update(study=study, size=size, preset=preset, weights=weights_label(weights),
                                   seed=seed, hw=list(problem.x0.shape[-2:]))
                        runs.append(run)
                        log(f"{size}px {preset:6} {run['weights']:16} seed {seed} {method:7} h={h:<3} "
                            f"f/f0 after {budget}: {value_after(run, budget):.4f}  "
                            f"{run['eval_median_s'] * 1e3:.0f} ms/eval  overhead {run['overhead_fraction']:.3f}")
    return runs


# ----------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _gmean(values: list[float]) -> float:
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def report(data: dict[str, Any]) -> str:
    runs = data["runs"]
    budgets = data["budgets"]
    lines: list[str] = []
    compare = [r for r in runs if r["study"] == "compare"]
    sizes = sorted({r["size"] for r in runs})
    methods = [m for m in METHODS if any(r["method"] == m for r in compare)]

    def problems_of(rs: list[dict[str, Any]]) -> list[tuple]:
        return sorted({(r["size"], r["preset"], r["weights"], r["seed"]) for r in rs})

    for size in sizes:
        rs = [r for r in compare if r["size"] == size]
        if not rs:
            continue
        probs = problems_of(rs)
        hw = rs[0]["hw"]
        reached = [n for n in budgets if n <= min(r["budget"] for r in rs)] or budgets[:1]
        top = reached[-1]
        lines += [f"### {size} px ({hw[0]}x{hw[1]}): {len(probs)} problem(s)", "",
                  "Objective after N evaluations relative to the start, f_N / f_0 (geometric mean over "
                  f"problems; lower is better; '-': not run that far); wins: problems where the method is "
                  f"lowest at N={top}; overhead: the optimizer's own time per iteration as a fraction of one "
                  "evaluation (median over problems).", ""]
        head = ["method"] + [f"N={n}" for n in budgets] + ["wins", "evals/iter", "overhead/iter", "CPU ms/eval"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        best = {}
        for p in probs:
            vals = {r["method"]: value_after(r, top) for r in rs
                    if (r["size"], r["preset"], r["weights"], r["seed"]) == p}
            best[p] = min(vals, key=vals.get)
        for m in methods:
            mr = [r for r in rs if r["method"] == m]
            cells = [m] + [_fmt(_gmean([value_after(r, n) for r in mr])) for n in budgets]
            cells += [f"{sum(1 for w in best.values() if w == m)}/{len(probs)}",
                      f"{_median([r['evals_per_iter'] for r in mr]):.2f}",
                      f"{_median([r['overhead_fraction'] for r in mr]):.3f}",
                      f"{_median([r['eval_median_s'] for r in mr]) * 1e3:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        # per preset and weights, at the largest budget
        groups = sorted({(r["preset"], r["weights"]) for r in rs})
        if len(groups) > 1:
            lines += [f"f_N / f_0 at N={top} by preset and weights ({size} px):", ""]
            head = ["preset", "weights"] + methods
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for preset, weights in groups:
                cells = [preset, weights]
                for m in methods:
                    mr = [r for r in rs if r["method"] == m and r["preset"] == preset and r["weights"] == weights]
                    cells.append(_fmt(_gmean([value_after(r, top) for r in mr])))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")

    hist = [r for r in runs if r["study"] == "history" or (r["study"] == "compare" and r["method"] == "plbfgs")]
    hist_sizes = sorted({r["size"] for r in runs if r["study"] == "history"})
    for size in hist_sizes:
        probs = problems_of([r for r in hist if r["size"] == size and r["study"] == "history"])
        rs = [r for r in hist if r["size"] == size
              and (r["size"], r["preset"], r["weights"], r["seed"]) in set(probs)]
        lines += [f"### plbfgs history size, {size} px: {len(probs)} problem(s)", ""]
        head = ["history_size"] + [f"N={n}" for n in budgets] + ["overhead/iter"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for h in sorted({r["history_size"] for r in rs}):
            hr = [r for r in rs if r["history_size"] == h]
            cells = [str(h)] + [_fmt(_gmean([value_after(r, n) for r in hr])) for n in budgets]
            cells.append(f"{_median([r['overhead_fraction'] for r in hr]):.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _recorded_argument(arg: str) -> str:
    """A command-line argument as the JSON records it: no path of this machine."""
    if WEIGHTS_FILE and arg == WEIGHTS_FILE:
        return "$MASKED_GATYS_WEIGHTS"
    from masked_gatys.files import recorded_name

    return recorded_name(arg) if os.path.isabs(arg) else arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="longest side, px")
    parser.add_argument("--presets", nargs="+", default=["gatys", "masked"])
    parser.add_argument("--weights", nargs="+", default=["random"] + ([WEIGHTS_FILE] if WEIGHTS_FILE else []),
                        help="'random' or a weights file (presets are restricted to relu3_4 either way); "
                             "default: random and $MASKED_GATYS_WEIGHTS where it is set")
    parser.add_argument("--seeds", type=int, default=5, help="problems (eye pairs) per size/preset/weights")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 200],
                        help="report the objective after these many evaluations; runs go to the largest")
    parser.add_argument("--max-evals", type=int, default=None,
                        help="stop every run after this many evaluations (default: the largest budget)")
    parser.add_argument("--history-size", type=int, default=10, help="for plbfgs, lbfgs and lbfgs-b")
    parser.add_argument("--history-sizes", type=int, nargs="+", default=[5, 10, 20, 100],
                        help="plbfgs history sizes to compare")
    parser.add_argument("--history-at", type=int, nargs="*", default=[128],
                        help="sizes at which the history sizes are compared")
    parser.add_argument("--history-seeds", type=int, default=5,
                        help="the history sizes are compared on the first this many seeds")
    parser.add_argument("--lr", type=float, default=0.02, help="Adam's learning rate")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "optimizers-cpu.json")
    parser.add_argument("--append", action="store_true", help="add the runs to those already in --json")
    parser.add_argument("--report-only", action="store_true", help="print the tables of --json and exit")
    args = parser.parse_args(argv)
    args.budgets = sorted(args.budgets)

    if args.report_only:
        print(report(json.loads(args.json.read_text())))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    for w in args.weights:
        if w != "random" and not Path(w).is_file():
            parser.error(f"weights file not found: {w}")

    data: dict[str, Any] = {"budgets": args.budgets, "runs": [], "commands": [], "machines": []}
    if args.append and args.json.is_file():
        data = json.loads(args.json.read_text())
        if data["budgets"] != args.budgets:
            parser.error(f"--append needs the same budgets as the file ({data['budgets']})")
    command = "python benchmarks/optimizers.py " + " ".join(
        _recorded_argument(a) for a in (argv or sys.argv[1:]))
    started = time.perf_counter()
    runs = run_all(args, lambda s: print(s, flush=True))
    data["runs"] += runs
    data["commands"].append({"command": command, "seconds": time.perf_counter() - started, **machine()})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1))
    print()
    print(report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
