"""``masked-gatys purify``: a folder or manifest of images, resumable, sharded, under torchrun.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(purify_command, ["--help"]).exit_code
0
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import error_boundary, parse_shard, resolve_device

_DEFAULTS: dict[str, Any] = {}


def _default(name: str) -> Any:
    if not _DEFAULTS:
        from masked_gatys.purify import PurifyConfig

        _DEFAULTS.update({f.name: f.default for f in dataclasses.fields(PurifyConfig)})
    return _DEFAULTS[name]


class _Signals:
    """SIGTERM raises KeyboardInterrupt like Ctrl-C, remembering which signal it was."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __enter__(self) -> "_Signals":
        def handler(signum: int, frame: Any) -> None:
            self.received = signum
            raise KeyboardInterrupt

        self.before = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.before[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (CliRunner in a thread): leave signals alone
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self.before.items():
            signal.signal(sig, old)

    @property
    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)


class _Bar:
    """A tqdm bar over this process's inputs: images/s, ETA, done / failed / skipped.

    It counts images as they finish and, during an optimizer batch, the batch's share of its
    iterations (``PurifyProgress.working``), so it moves and its rate is true from the start.
    """

    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc, self.quiet = desc, quiet
        self.bar: Any = None

    def __call__(self, p: Any) -> bool:
        if self.quiet:
            return False
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total - p.skipped, desc=self.desc, unit="img", file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.05,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        self.bar.update(p.done + p.failed + p.working - self.bar.n)
        self.bar.set_postfix({"failed": p.failed, "skipped": p.skipped}, refresh=False)
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("purify")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: purified images at the inputs' relative paths, masks beside them, "
                   "manifest.jsonl.")
@click.option("--model", help="A network: johnson, purifier (shipped) or a checkpoint.  [default: purifier, "
                               "unless --preset, --style or --style-pool choose the optimizer]")
@click.option("--preset", help="Objective preset for the optimizer (gatys, masked, regional, ...).  "
                               "[default: masked where --style or --style-pool is given]")
@click.option("--mask", "mask", type=click.Choice(["auto", "none"]), default=lambda: _default("mask"),
              show_default="auto",
              help="auto: each eye's NAME_mask.png where given, else the segmenter's (written beside the "
                   "output as NAME_mask.png, NAME_labels.png; an eye with no iris fails); none: no masks "
                   "(gatys only).")
@click.option("--segmenter", type=click.Path(dir_okay=False), metavar="FILE",
              help="Segmenter checkpoint for --mask auto.  [default: the shipped segmenter.pt]")
@click.option("--style", help="Style image (optimizer), or 'rendered' for a rendered synthetic eye.")
@click.option("--style-mask", show_default="STYLE_mask.png beside the style image", help="Style mask.")
@click.option("--layout", type=click.Choice(["unity", "default", "mpiigaze", "nir"]), default=None,
              help="Layout of the eyes: unity (RGB, the original), mpiigaze (36x60 grey, equalised), nir "
                   "(near-infrared frames): the --style rendered eye is drawn in it, and a shipped network is the "
                   "one trained in it where one is shipped.  [default: guessed from each batch's size and "
                   "channels, said when not unity]")
@click.option("--style-pool", type=click.Path(file_okay=False), metavar="FOLDER",
              help="Synthetic style eyes with NAME_mask.png (or a manifest.jsonl): each eye takes the "
                   "nearest-looking one as its style, instead of one --style for all.")
@click.option("--colour", type=click.Choice(["keep", "style"]), default=None,
              show_default="keep for grey inputs, style otherwise",
              help="keep: a grey input (one channel, or R, G, B equal) is purified on luminance and written "
                   "as a grey PNG (a network's output turned to luminance); style: the style's colours.")
@click.option("--iterations", type=int, default=lambda: _default("iterations"), show_default="100")
@click.option("--batch-size", type=int, show_default="8 (optimizer), 64 (network)", help="Images per batch.")
@click.option("--weights", show_default="$MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)", help="Loss network: imagenet, random or a file.")
@click.option("--max-layer", default=lambda: _default("max_layer"), show_default="auto")
@click.option("--content-weight", type=float, show_default="the preset's", help="Content weight.")
@click.option("--style-weight", type=float, show_default="the preset's", help="Style weight.")
@click.option("--tv-weight", type=float, show_default="the preset's", help="Total-variation weight.")
@click.option("--history-size", type=int, default=lambda: _default("history_size"), show_default="10")
@click.option("--seed", type=int, default=lambda: _default("seed"), show_default="0")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu or cuda; under torchrun, auto takes cuda:LOCAL_RANK where there is CUDA.")
@click.option("--shard", callback=parse_shard, metavar="I/N",
              help="Take shard I of N (a stable hash of each input's relative path). Under torchrun: "
                   "RANK/WORLD_SIZE.")
@click.option("--merge", is_flag=True, help="Only join the shard manifests of OUTPUT into manifest.jsonl.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first bad input (without it: record it as failed and go on).")
@click.option("--pupil-shift/--no-pupil-shift", default=True, show_default=True,
              help="Measure each output's pupil shift (about 22 ms per 36x60 image).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@error_boundary
def purify_command(source: Path | None, out_dir: Path, model: str | None, preset: str | None, mask: str,
                   segmenter: str | None, style: str | None,
                   style_mask: str | None, layout: str | None, style_pool: str | None, colour: str | None, iterations: int, batch_size: int | None, weights: str | None,
                   max_layer: str | None, content_weight: float | None, style_weight: float | None,
                   tv_weight: float | None, history_size: int, seed: int, device: str,
                   shard: tuple[int, int] | None, merge: bool, fail_fast: bool, pupil_shift: bool,
                   quiet: bool) -> None:
    """Purify every image of SOURCE (a folder, or a .csv / .jsonl manifest) into OUTPUT.

    \b
    masked-gatys purify eyes/ -o purified/
    masked-gatys purify eyes/ -o purified/ --style unity.png --iterations 100
    masked-gatys purify eyes/ -o purified/ --style-pool synthetic-eyes/
    masked-gatys purify list.csv -o purified/ --model purifier --shard 0/4
    masked-gatys purify --merge -o purified/
    torchrun --nproc-per-node 2 -m masked_gatys purify eyes/ -o purified/ --model purifier

    With no method named, the shipped purifier network runs, with each
    eye's NAME_mask.png or, where there is none, the segmenter's mask
    (--mask auto). A rerun skips what is done and redoes what failed, was cut off or
    changed; OUTPUT's manifest.jsonl keeps the records of every source
    purified into it. A bad image is recorded as failed and the run goes on;
    it exits 1 when every image failed. Ctrl-C or SIGTERM finish the writes
    under way, record progress and exit with 130 / 143.
    """
    from masked_gatys import distributed

    if merge:
        return _merge(out_dir)
    if source is None:
        raise click.ClickException("give SOURCE (a folder or a manifest), or --merge")
    if not source.exists():
        raise click.ClickException(f"input not found: {source}")
    env = distributed.from_env()
    if env is not None and shard is not None:
        raise click.ClickException("--shard and torchrun both choose the shard: use one of them")
    if env is not None:
        shard = (env.rank, env.world_size)
        device = env.device(device)
    else:
        device = resolve_device(device)

    from masked_gatys.purify import PurifyConfig, purify

    config = PurifyConfig(
        method=model if model is not None else preset, mask=mask, segmenter=segmenter, style=style, style_mask=style_mask, layout=layout,
        style_pool=style_pool, colour=colour, iterations=iterations, batch_size=batch_size, weights=weights, max_layer=max_layer, device=device,
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
        history_size=history_size, seed=seed, shard=shard, fail_fast=fail_fast, pupil_shift=pupil_shift)
    group = distributed.init(env, device) if env is not None else None
    desc = "purify" if shard is None else f"purify {shard[0]}/{shard[1]}"
    bar = _Bar(desc, quiet or (env is not None and env.rank != 0))
    with _Signals() as signals, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = purify(source, out_dir, config=config, progress=bar)
        except KeyboardInterrupt:
            bar.close()
            click.echo(f"interrupted: progress recorded in {out_dir}; run the same command again to resume",
                       err=True)
            sys.exit(signals.exit_code)
        finally:
            bar.close()
    _echo_warnings(caught)
    counts = (report.done, report.skipped, report.failed)
    if group is not None:
        counts = _gather(report, counts, env, out_dir)
    if not quiet and (env is None or env.rank == 0):
        where = out_dir / ("manifest.jsonl" if shard is None or env is not None else report.manifest.name)
        ranks = f" on {env.world_size} ranks" if env is not None else ""
        click.echo(f"{counts[0]} purified, {counts[1]} already done, {counts[2]} failed{ranks} "
                   f"({report.seconds:.1f} s); manifest: {where}", err=True)
    if report.failed and fail_fast:
        sys.exit(1)
    if counts[2] and not counts[0] and not counts[1]:
        first = next((r["status"] for r in report.records if r.get("status") != "done"), "")
        raise click.ClickException(f"every image failed ({counts[2]}); the first: {first.removeprefix('failed: ')}")


def _merge(out_dir: Path) -> None:
    """``--merge``: join the shard manifests of OUTPUT into manifest.jsonl."""
    from masked_gatys.manifests import merge_manifests

    records = merge_manifests(out_dir)
    done = sum(r.get("status") == "done" for r in records)
    click.echo(f"merged {len(records)} records ({done} done) into {out_dir / 'manifest.jsonl'}", err=True)


def _gather(report: Any, counts: tuple[int, int, int], env: Any, out_dir: Path) -> tuple[int, ...]:
    """Under torchrun: rank 0 merges every rank's records into the manifest; the counts of all ranks."""
    from masked_gatys import distributed
    from masked_gatys.manifests import merge_manifests

    parts = distributed.gather_records([{"output": "", "counts": counts}, *report.records], env)
    if env.rank == 0:
        merge_manifests(out_dir, extra=[r for r in parts if "counts" not in r])
        counts = tuple(sum(r["counts"][k] for r in parts if "counts" in r) for k in range(3))
    distributed.finish()
    return counts


def _echo_warnings(caught: list) -> None:
    seen = set()
    for w in caught:
        text = str(w.message)
        if text not in seen and not issubclass(w.category, DeprecationWarning):
            seen.add(text)
            click.echo(f"warning: {text}", err=True)
