"""What the benchmark measures (:class:`BenchConfig`) and what it returns (:class:`BenchResult`).

>>> quick_config().sizes
(32, 48)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from masked_gatys.errors import MaskedGatysError
from masked_gatys.files import recorded_name
from masked_gatys.optim import METHODS

__all__ = ["MIN_ITERATIONS", "RESULT_FIELDS", "BenchConfig", "BenchProgress", "BenchResult", "quick_config",
           "resumable_sizes"]

#: A run that stops at the nets' levels runs at least this many iterations (4 timed after the warm-up).
MIN_ITERATIONS = 5

#: Fields every result record has (``None`` where a field does not apply).
RESULT_FIELDS = (
    "method", "kind", "preset", "size", "height", "width", "seconds_per_eval", "eval_timing", "floor_seconds",
    "floor_timing", "ratio_to_floor", "seconds_per_iteration", "iteration_timing", "evals_per_iteration",
    "seconds_for_n_iterations", "n_iterations", "measured_iterations", "extrapolated", "seconds_per_image",
    "image_timing", "best_batch", "seconds_per_image_best_batch", "batches", "speedup_vs_optimizer",
    "speedup_vs_optimizer_best_batch", "speedup_reference", "peak_memory_bytes", "objective",
    "equivalent_iterations", "equivalent_iterations_by_optimizer", "checkpoint", "notes",
)

ProgressFn = Callable[["BenchProgress"], Any]


@dataclass(frozen=True)
class BenchConfig:
    """What :func:`run_bench` measures; the CLI's defaults come from here.

    >>> BenchConfig().sizes
    (256, 512, 1024)
    """

    sizes: tuple[int, ...] = (256, 512, 1024)
    """Benchmark sizes: square images of ``size x size`` pixels."""
    presets: tuple[str, ...] = ("gatys", "masked")
    optimizers: tuple[str, ...] = ("plbfgs", "lbfgs", "lbfgs-b", "adam")
    nets: tuple[str, ...] = ("johnson", "purifier")
    """Shipped network names or checkpoint paths."""
    iterations: int = 400
    """N: the optimizer's time is reported for N iterations (the paper's baseline)."""
    run_iterations: int | None = None
    """Most iterations actually run per optimizer run (None: N)."""
    time_limit: float | None = None
    """Seconds: a timing loop, or an optimizer run with no net's level to reach, stops after this long
    (keeping two samples or iterations). Runs chasing a net's level stop at ``run_iterations``."""
    repeats: int = 5
    warmup: int = 1
    eyes: int = 3
    """K held-out eyes for the objective comparison."""
    compare_all: bool = False
    """Run every optimizer on all K eyes; by default only the first optimizer of ``optimizers`` does
    (the others run on the first eye: their speed and one curve)."""
    full_curves: bool = False
    """Run every optimizer run to ``run_iterations``; by default a run stops once every net's level is reached."""
    device: str = "cpu"
    weights: str | None = None
    """A weights file, ``imagenet`` or ``random``; None: ``$MASKED_GATYS_WEIGHTS``, else random."""
    max_layer: str | None = "auto"
    """Deepest VGG layer the presets may use; ``auto``: as deep as the weights go."""
    max_batch: int | None = None
    """Largest batch tried for the nets (None: 8 on the CPU, 256 on CUDA)."""
    history_size: int = 10
    lr: float = 0.02

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        for name in ("presets", "optimizers", "nets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.sizes or min(self.sizes) < 16:
            raise ValueError(f"sizes must be at least 16 pixels, got {self.sizes}")
        bad = [m for m in self.optimizers if m not in METHODS]
        if bad:
            raise ValueError(f"unknown optimizer(s) {', '.join(bad)}: use {', '.join(METHODS)}")
        bad = [p for p in self.presets if p not in ("gatys", "masked")]
        if bad:
            raise ValueError(f"unknown preset(s) {', '.join(bad)}: use gatys or masked")
        if self.iterations < 1 or self.repeats < 1 or self.eyes < 1 or self.warmup < 0:
            raise ValueError("iterations, repeats and eyes must be >= 1 and warmup >= 0")
        if self.run_iterations is not None and self.run_iterations < 2:
            raise ValueError(f"run_iterations must be >= 2 (the first iteration is a warm-up), "
                             f"got {self.run_iterations}")

    @property
    def iterations_per_run(self) -> int:
        return self.run_iterations if self.run_iterations is not None else self.iterations

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("sizes", "presets", "optimizers", "nets"):
            d[k] = list(d[k])
        return d


def quick_config(**changes: Any) -> BenchConfig:
    """The ``--quick`` smoke test: tiny sizes, few iterations, a few seconds in all.

    >>> quick_config().sizes
    (32, 48)
    """
    base = BenchConfig(sizes=(32, 48), iterations=10, run_iterations=3, time_limit=1.0, repeats=2, eyes=2,
                       max_layer="relu2_2", max_batch=4)
    return replace(base, **changes)


@dataclass(frozen=True)
class BenchProgress:
    """What the progress callback receives: ``done`` of ``total`` steps, and the step just started."""

    done: int
    total: int
    label: str


@dataclass
class BenchResult:
    """Run metadata and one record per method, preset and size (see :data:`RESULT_FIELDS`)."""

    metadata: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "results": self.results}


def make_record(**values: Any) -> dict[str, Any]:
    """A result record: every field of :data:`RESULT_FIELDS`, None unless given; an unknown one is a KeyError.

    >>> make_record(method="adam")["method"], make_record()["size"]
    ('adam', None)
    """
    rec: dict[str, Any] = {k: None for k in RESULT_FIELDS}
    unknown = set(values) - set(rec)
    if unknown:
        raise KeyError(f"unknown result fields {sorted(unknown)}")
    rec.update(values)
    return rec



def config_record(config: BenchConfig) -> dict[str, Any]:
    """The settings as a record holds them: files by name only (no paths of this machine).

    >>> config_record(BenchConfig(weights="/somewhere/vgg.pth"))["weights"]
    'vgg.pth'
    """
    record = config.to_dict()
    record["weights"] = recorded_name(record.get("weights"))
    record["nets"] = [recorded_name(n) for n in record.get("nets") or []]
    return record


def resumable_sizes(config: BenchConfig, earlier: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The records of an earlier run (its JSON, as a dict) by size, for ``run_bench(resume=...)``.

    The earlier run must have had the same settings but for ``sizes``; otherwise its figures
    would not compare and a one-line :class:`~masked_gatys.errors.MaskedGatysError` says which
    setting differs.

    >>> cfg = quick_config()
    >>> done = {"metadata": {"config": dict(cfg.to_dict(), sizes=[32])}, "results": [{"size": 32}]}
    >>> resumable_sizes(cfg, done)
    {32: [{'size': 32}]}
    >>> resumable_sizes(cfg, {"metadata": {"config": dict(cfg.to_dict(), eyes=9)}, "results": []})
    Traceback (most recent call last):
    ...
    masked_gatys.errors.MaskedGatysError: the earlier run was made with other settings (eyes): resume with the same options, or write another --json
    """
    now = config_record(config)
    then = (earlier.get("metadata") or {}).get("config") or {}
    differ = sorted(k for k in set(now) | set(then) if k != "sizes" and json.dumps(now.get(k), default=str)
                    != json.dumps(then.get(k), default=str))
    if differ:
        shown = ", ".join(differ[:3]) + (", ..." if len(differ) > 3 else "")
        raise MaskedGatysError(f"the earlier run was made with other settings ({shown}): resume with the same "
                               "options, or write another --json")
    by_size: dict[int, list[dict[str, Any]]] = {}
    for rec in earlier.get("results") or []:
        by_size.setdefault(int(rec["size"]), []).append(rec)
    return by_size
