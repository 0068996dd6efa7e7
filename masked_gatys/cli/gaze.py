"""``masked-gatys gaze``: the paper's gaze experiment (Sec. 4.2, Table 2) in one command.

Defaults are :class:`masked_gatys.eyes.experiment.ExperimentConfig`'s, read from the
dataclass, so they are written once.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(gaze_command, ["--help"]).exit_code
0
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import CommaList, Size, error_boundary, resolve_device


class _Bar:
    """One tqdm bar per stage, and a line per finished stage."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, file=sys.stderr, leave=False, disable=None,
                            unit="eye" if stage.startswith(("render", "purify")) else "step")
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command("gaze")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder: results.json, table.md, plot.png, sheet.png and the caches "
                   "(rendered sets, trained CNN, purified eyes); a rerun reuses them. [default: gaze-out]")
@click.option("--estimators", type=CommaList(), default=None,
              help="Comma-separated: cnn, knn, svr, rf (svr and rf need scikit-learn: "
                   "pip install masked-gatys[gaze]). [default: cnn,knn,svr,rf]")
@click.option("--train", "train", default=None,
              help="Training set: 'render' (rendered synthetic eyes) or a data set path (labels file or "
                   "folder, UnityEyes folder, MPIIGaze .mat or folder). [default: render]")
@click.option("--train-n", type=click.IntRange(min=10), default=None, help="Training eyes. [default: 5000]")
@click.option("--test", "test", multiple=True,
              help="Test set: 'render' (rendered real eyes + synthetic renders of the same eyes) or a data "
                   "set path; repeat for several. [default: render]")
@click.option("--test-n", type=click.IntRange(min=1), default=None, help="Eyes per test set. [default: 500]")
@click.option("--size", type=Size(min=20), default=None, metavar="HxW", help="Eye size. [default: 36x60]")
@click.option("--layout", type=click.Choice(["unity", "default", "mpiigaze", "nir"]), default=None,
              help="Framing of the rendered eyes (train, test and style): unity (the original, RGB), "
                   "mpiigaze (MPIIGaze's grey, equalised patches: the paper's Table 2 setting), nir "
                   "(near-infrared frames; give --size too). [default: guessed from the first test data "
                   "set (grey 36x60: mpiigaze), said in one line; with rendered test sets only: unity]")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help="Training set seed. [default: 0]")
@click.option("--test-seed", type=click.IntRange(0, 2**63 - 1), default=None, help="Test set seed. [default: 1]")
@click.option("--purify", type=CommaList(), default=None,
              help="Comma-separated purification methods: none, an optimizer preset (gatys, masked, "
                   "regional, ...), johnson, purifier, or a checkpoint PATH.pt. Raw test sets are always "
                   "included. [default: none,masked,purifier]")
@click.option("--purify-synthetic", is_flag=True, default=False,
              help="Purify the synthetic test set too (doubles the optimizer's time).")
@click.option("--purify-n", type=click.IntRange(min=1), default=None,
              help="Purify only the first N eyes of each test set (the optimizer's time: about 1.6 s an "
                   "eye on a CPU core); purified columns and their change against raw use those eyes. "
                   "[default: all]")
@click.option("--style", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Style eye for the optimizer methods. [default: the rendered synthetic eye seed 0 at (0, 0)]")
@click.option("--style-mask", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Mask of the style eye (white = iris + pupil).")
@click.option("--style-pool", default=None, metavar="train|none|FOLDER",
              help="Style eyes for the optimizer methods, chosen per test eye (the nearest-looking): "
                   "'train' = the first --style-pool-n training eyes, a FOLDER of eyes with masks, or "
                   "'none' for one style eye for all. --style turns it off. [default: train]")
@click.option("--style-pool-n", type=click.IntRange(min=1), default=None,
              help="Training eyes in the 'train' style pool. [default: 1000]")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Optimizer iterations per eye. [default: 100]")
@click.option("--weights", default=None,
              help="Loss-network weights for the optimizer methods (file, 'imagenet' or 'random'). "
                   "[default: $MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)]")
@click.option("--max-layer", default=None,
              help="Deepest VGG layer the optimizer methods use ('auto': as deep as the weights go; at "
                   "36x60 the iris and pupil regions vanish below relu3). [default: relu3_4]")
@click.option("--mask", "mask", type=click.Choice(["auto", "none"]), default=None,
              help="Masks of test sets that come without (MPIIGaze, a folder without a mask column): auto = "
                   "the shipped segmenter's, cached in --out (an eye with no iris is left out of the purified "
                   "columns that need a mask, and counted); none = no masks, and methods that need one "
                   "(masked, regional, purifier) are refused. [default: auto]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Eyes purified per batch. [default: purify's]")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most CNN epochs (early stopping on the validation error). [default: 12]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write results.json here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the grouped-bar plot here (needs matplotlib).")
@click.option("--quick", is_flag=True, default=False,
              help="A smoke test of every stage in well under a minute (300 training eyes, 12 test eyes, "
                   "5 iterations, 2 epochs).")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No progress bars.")
@error_boundary
def gaze_command(out: Path | None, estimators: tuple[str, ...] | None, train: str | None, train_n: int | None,
                 test: tuple[str, ...], test_n: int | None, size: tuple[int, int] | None, layout: str | None,
                 seed: int | None,
                 test_seed: int | None, purify: tuple[str, ...] | None, purify_synthetic: bool,
                 purify_n: int | None,
                 style: str | None, style_mask: str | None, style_pool: str | None, style_pool_n: int | None,
                 iterations: int | None, weights: str | None,
                 max_layer: str | None, mask: str | None, device: str, batch_size: int | None, epochs: int | None,
                 json_path: Path | None, plot_path: Path | None, quick: bool, quiet: bool) -> None:
    """Train gaze estimators on synthetic eyes; test them on real eyes, raw and purified.

    Prints a table like the paper's Table 2 (rows: estimators; columns: test sets; cells: mean
    +- std angular error in degrees, and in brackets the change against the raw set on the same
    eyes +- its 95% interval), with the pupil's distance from its true centre and the
    purification's pupil shift below. Writes results.json, table.md, plot.png and sheet.png into --out.
    """
    from masked_gatys.eyes.experiment import ExperimentConfig, evaluate, format_table, quick_config

    changes: dict[str, Any] = {k: v for k, v in {
        "estimators": estimators, "train": train, "train_n": train_n, "test": tuple(test) or None,
        "test_n": test_n, "size": size, "layout": layout, "seed": seed, "test_seed": test_seed, "purify": purify,
        "purify_n": purify_n, "style": style, "style_mask": style_mask, "style_pool_n": style_pool_n,
        "iterations": iterations, "weights": weights,
        "max_layer": max_layer, "batch_size": batch_size, "mask": mask}.items() if v is not None}
    changes["purify_synthetic"] = purify_synthetic
    if style_pool is not None:
        changes["style_pool"] = None if style_pool.lower() == "none" else style_pool
    changes["device"] = resolve_device(device)
    if style_mask and not style:
        raise click.ClickException("--style-mask needs --style")
    folder = str(out) if out is not None else ExperimentConfig.out
    cfg = quick_config(folder, **changes) if quick else ExperimentConfig(out=folder, **changes)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, cnn=dataclasses.replace(cfg.cnn, epochs=epochs))
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.ClickException("--plot needs matplotlib: pip install masked-gatys[bench]") from None
    bar = _Bar(quiet)
    try:
        report = evaluate(cfg, progress=bar, notify=lambda line: _notice(bar, line))
    finally:
        bar.close()
    for name, reason in report.skipped.items():
        click.echo(f"warning: skipped {name}: {reason}", err=True)
    click.echo(format_table(report), nl=False)
    _echo_targets(report.targets)
    if json_path is not None:
        shutil.copyfile(report.paths["results"], json_path)
    if plot_path is not None and "plot" in report.paths:
        shutil.copyfile(report.paths["plot"], plot_path)
    click.echo(f"wrote {', '.join(Path(p).name for p in report.paths.values())} to {cfg.out}", err=True)


def _notice(bar: _Bar, line: str) -> None:
    bar.close()  # the line under the finished bar, not through it
    bar.stage = None
    click.echo(f"notice: {line}", err=True)


def _echo_targets(targets: dict[str, Any]) -> None:
    ratio = targets.get("domain_gap_ratio")
    if ratio:
        cells = ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
        click.echo(f"domain gap (real / synthetic error): {cells}")
    for col, gains in targets.get("gain_vs_raw_deg", {}).items():
        cells = ", ".join(f"{k} {v:+.1f}" for k, v in gains.items())
        click.echo(f"gain of {col} over raw (degrees, + = better): {cells}")
    if "cnn_gap_closed_fraction" in targets:
        click.echo(f"best purification for the CNN: {targets['cnn_best_purification']} closes "
                   f"{100 * targets['cnn_gap_closed_fraction']:.0f}% of its domain gap")
