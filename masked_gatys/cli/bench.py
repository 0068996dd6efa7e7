"""``masked-gatys bench``: speed and objective value, optimizer against the feed-forward networks.

Options left out take :class:`masked_gatys.bench.BenchConfig`'s defaults (or
:func:`masked_gatys.bench.quick_config`'s with ``--quick``), so they are
written once. The method is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import (
    CommaList,
    check_writable_output,
    error_boundary,
    resolve_device,
)


@click.command("bench")
@click.option("--sizes", type=CommaList(click.INT, min=16), default=None, metavar="N,N,...",
              show_default="256,512,1024", help="Square image sizes in px.")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              show_default="400, the paper's baseline", help="N: report the optimizer's time for N iterations.")
@click.option("--run-iterations", type=click.IntRange(min=2), default=None,
              show_default="N", help="Most iterations actually run per optimizer run; fewer than N are "
                                            "extrapolated to N and labelled so.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds after which a timing loop, or an optimizer run with no net's level to reach, "
                   "stops (keeping at least two samples or iterations); for large sizes on slow devices.")
@click.option("--repeats", type=click.IntRange(min=1), default=None, show_default="5", help="Timed repeats.")
@click.option("--warmup", type=click.IntRange(min=0), default=None,
              show_default="1", help="Untimed calls before the timed ones.")
@click.option("--eyes", type=click.IntRange(min=1), default=None,
              show_default="3", help="K held-out rendered eyes for the objective comparison.")
@click.option("--compare-all", is_flag=True, default=False,
              help="Run every optimizer on all --eyes (without it: the first of --optimizers on all, the "
                   "others on the first eye only).")
@click.option("--full-curves", is_flag=True, default=False,
              help="Run every optimizer run to --run-iterations (without it: stop once every net's level is "
                   "reached).")
@click.option("--presets", type=CommaList(), default=None, metavar="P,P",
              show_default="both", help="Objective presets: gatys, masked.")
@click.option("--optimizers", type=CommaList(), default=None, metavar="M,M",
              show_default="all", help="Optimizers: plbfgs, lbfgs, lbfgs-b, adam.")
@click.option("--nets", type=CommaList(), default=None, metavar="NET,NET",
              show_default="johnson,purifier", help="Networks: shipped names (johnson, purifier) or checkpoint "
                                                         "paths; 'none' for no networks.")
@click.option("--weights", default=None,
              show_default="$MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)",
              help="Loss-network weights: a file, 'imagenet' or 'random'.")
@click.option("--max-layer", default=None,
              show_default="auto: as deep as the weights go", help="Deepest VGG layer the presets may use.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              show_default="torch's", help="torch CPU threads; recorded in the metadata.")
@click.option("--quick", is_flag=True, default=False,
              help="Smoke test: tiny sizes, a few iterations, seconds in all.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the metadata and result records as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG: objective against iteration, time against size.")
@click.option("--resume", is_flag=True, default=False,
              help="Keep the sizes already in --json (an earlier run with the same options, cut short) and "
                   "measure the rest; --json is written after each size either way.")
@click.option("--no-progress", is_flag=True, default=False, help="No progress bar on stderr.")
@error_boundary
def bench_command(device: str, threads: int | None, quick: bool, json_path: Path | None, plot_path: Path | None,
                  resume: bool, no_progress: bool, **options: Any) -> None:
    """Benchmark the optimizer (seconds per evaluation against the VGG floor, per iteration, for N
    iterations) and the feed-forward nets (seconds per image, speed-up, objective worth in
    iterations) at several sizes; print a table, optionally write JSON and a plot."""
    if plot_path is not None:  # before the run, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException("--plot needs matplotlib: pip install 'masked-gatys[bench]' "
                                       "(or pip install matplotlib)") from None
    device = resolve_device(device)
    earlier = _check_files(json_path, plot_path, resume)
    _check_weights(options["weights"])

    import torch

    from masked_gatys.bench import format_table, run_bench, write_plot
    from masked_gatys.files import write_json_atomic

    if threads is not None:
        torch.set_num_threads(threads)
    config = _config(options, device, quick)
    bar = _BenchBar(shown=not no_progress)

    def save(partial: Any) -> None:  # after each size, so that an interrupted run keeps them
        if json_path is not None:
            write_json_atomic(partial.to_dict(), json_path)

    try:
        result = run_bench(config, progress=bar, resume=earlier, checkpoint=save)
    except KeyboardInterrupt:
        if json_path is not None and json_path.is_file():
            click.echo(f"interrupted: the sizes finished are in {json_path}; --resume goes on from there", err=True)
        raise
    finally:
        bar.close()
    click.echo(format_table(result))
    if json_path is not None:
        write_json_atomic(result.to_dict(), json_path)
        click.echo(f"wrote {json_path}", err=True)
    if plot_path is not None:
        write_plot(result, plot_path)
        click.echo(f"wrote {plot_path}", err=True)


def _check_files(json_path: Path | None, plot_path: Path | None, resume: bool) -> dict[str, Any] | None:
    """--json and --plot can be written (and are two files); with --resume, the earlier run's records."""
    from masked_gatys.files import check_outputs

    for path in (json_path, plot_path):
        if path is not None:
            check_writable_output(path)
    check_outputs([("--json", json_path), ("--plot", plot_path)])
    if resume and json_path is None:
        raise click.ClickException("--resume goes on from the records in --json: give --json FILE")
    return _earlier_run(json_path) if resume else None


def _check_weights(weights: str | None) -> None:
    """A weights file that exists; a notice where the weights will be random."""
    from masked_gatys.encoder import default_weights

    if weights is None and default_weights()[0] == "random":
        click.echo("notice: no --weights and no $MASKED_GATYS_WEIGHTS: using random VGG weights (timings are "
                   "the same; the shipped nets' objectives do not compare and are reported unavailable)",
                   err=True)
    if weights is not None and weights not in ("random", "imagenet") and not Path(weights).expanduser().is_file():
        raise click.ClickException(f"weights file not found: {weights}")


def _config(options: dict[str, Any], device: str, quick: bool) -> Any:
    """BenchConfig (quick_config with --quick) with the options given; --nets none: no nets."""
    from masked_gatys.bench import BenchConfig, quick_config

    changes: dict[str, Any] = {"device": device}
    changes.update({k: v for k, v in options.items()
                    if v is not None and k not in ("nets", "full_curves", "compare_all")})
    if options["nets"] is not None:
        changes["nets"] = () if options["nets"] in ((), ("none",)) else options["nets"]
    for flag in ("full_curves", "compare_all"):
        if options[flag]:
            changes[flag] = True
    iterations = options["iterations"]
    if options["run_iterations"] is None and iterations is not None and quick:
        changes["run_iterations"] = min(iterations, quick_config().run_iterations or iterations)
    config = quick_config(**changes) if quick else BenchConfig(**changes)
    if config.run_iterations is not None and config.run_iterations > config.iterations:
        config = dataclasses.replace(config, run_iterations=config.iterations)
    return config


class _BenchBar:
    """``run_bench``'s progress callback: one tqdm bar of steps, labelled with the step under way."""

    def __init__(self, *, shown: bool) -> None:
        self.bar: Any = None
        if shown:
            from tqdm import tqdm

            self.bar = tqdm(total=1, desc="bench", unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)

    def __call__(self, p: Any) -> None:
        if self.bar is None:
            return
        self.bar.total = p.total
        self.bar.n = p.done
        self.bar.set_postfix_str(p.label, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _earlier_run(path: Path) -> dict[str, Any] | None:
    """The earlier run's records for ``--resume`` (None: no file yet, a fresh start)."""
    import json

    if not path.is_file():
        click.echo(f"notice: {path} does not exist yet: nothing to resume, starting afresh", err=True)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"cannot resume from {path}: not a bench JSON ({exc})") from None
    if not isinstance(data, dict) or "results" not in data or "metadata" not in data:
        raise click.ClickException(f"cannot resume from {path}: not a bench JSON (no metadata and results)")
    return data
