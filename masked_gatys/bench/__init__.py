"""Speed and objective benchmarks: the per-image optimizer against the feed-forward networks.

The method is written down in ``benchmarks/README.md``. In short:

- **floor**: one forward and one backward pass (gradient with respect to the
  input only; the weights are frozen) of the truncated VGG the objective
  uses, at the benchmark size (:func:`measure_floor`);
- **seconds per evaluation**: the objective's forward and the backward of
  ``total.sum()`` (:func:`measure_eval`); the **ratio to the floor** is their
  quotient;
- **seconds per iteration**: an optimizer run timed after every iteration
  (an iteration may spend several evaluations); the time for ``N``
  iterations is the measured time per iteration times ``N``, labelled
  ``extrapolated`` where fewer than ``N`` were run;
- **networks**: seconds per image at batch 1 and at the best batch;
- **objective**: K held-out rendered real eyes, the optimizer's objective
  after every iteration, each network's objective under the same objective,
  and how many optimizer iterations the network's result is worth
  (:func:`equivalent_iterations`).

Timings use ``time.perf_counter`` with ``torch.cuda.synchronize`` on CUDA,
warm-up runs first, and report the median and the spread (min, max,
quartiles). Nothing here prints: :func:`run_bench` reports progress
through a callback and returns records; :func:`format_table` and
:func:`write_plot` turn them into text and a figure.

The package, one concern a module: :mod:`~masked_gatys.bench.timing`,
:mod:`~masked_gatys.bench.memory`, :mod:`~masked_gatys.bench.metadata` (the run metadata the
gaze experiment records too), :mod:`~masked_gatys.bench.config` (settings and records),
:mod:`~masked_gatys.bench.inputs` (the held-out eyes), :mod:`~masked_gatys.bench.measures`
(optimizer runs), :mod:`~masked_gatys.bench.networks`, :mod:`~masked_gatys.bench.run` and
:mod:`~masked_gatys.bench.report`. The names below are importable from the package.

>>> equivalent_iterations([10.0, 8.0, 4.0, 2.0], 5.0)
1.75
"""

from __future__ import annotations

from masked_gatys.bench.config import (MIN_ITERATIONS, RESULT_FIELDS, BenchConfig, BenchProgress, BenchResult,
                                       quick_config, resumable_sizes)
from masked_gatys.bench.inputs import HELDOUT_SEEDS, held_out_eyes
from masked_gatys.bench.measures import equivalent_iterations, summarize
from masked_gatys.bench.memory import MemoryProbe, peak_memory
from masked_gatys.bench.metadata import machine_metadata
from masked_gatys.bench.report import format_table, write_plot
from masked_gatys.bench.run import run_bench
from masked_gatys.bench.timing import (Timing, measure_eval, measure_floor, measure_floor_and_eval, ratio_to_floor,
                                       timed, timed_together)

__all__ = [
    "HELDOUT_SEEDS",
    "MIN_ITERATIONS",
    "RESULT_FIELDS",
    "BenchConfig",
    "BenchProgress",
    "BenchResult",
    "MemoryProbe",
    "Timing",
    "equivalent_iterations",
    "format_table",
    "held_out_eyes",
    "machine_metadata",
    "measure_eval",
    "measure_floor",
    "measure_floor_and_eval",
    "peak_memory",
    "quick_config",
    "ratio_to_floor",
    "resumable_sizes",
    "run_bench",
    "summarize",
    "timed",
    "timed_together",
    "write_plot",
]
