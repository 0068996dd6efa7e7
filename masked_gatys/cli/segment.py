"""``masked-gatys segment``: eye-part masks from the image, for a folder or manifest of eyes.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(segment_command, ["--help"]).exit_code
0
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from masked_gatys.cli._common import error_boundary, parse_shard


class _Bar:
    """A tqdm bar over this process's inputs."""

    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, done: int, failed: int, skipped: int, total: int) -> bool:
        if self.quiet:
            return False
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total - skipped, desc=self.desc, unit="eye", file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.05)
        self.bar.update(done + failed - self.bar.n)
        self.bar.set_postfix({"failed": failed, "skipped": skipped}, refresh=False)
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("segment")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: NAME_labels.png and NAME_mask.png at the inputs' relative paths, "
                   "manifest.jsonl.")
@click.option("--model", default="shipped", show_default=True,
              help="The segmenter: 'shipped' (masked_gatys/data/segmenter.pt) or a checkpoint file.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Eyes per batch.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--shard", callback=parse_shard, metavar="I/N",
              help="Take shard I of N (a stable hash of each input's relative path). Under torchrun: "
                   "RANK/WORLD_SIZE.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@error_boundary
def segment_command(source: Path, out_dir: Path, model: str, batch_size: int, device: str,
                    shard: tuple[int, int] | None, quiet: bool) -> None:
    """Label the skin, sclera, iris and pupil of every eye in SOURCE (a folder, or a .csv /
    .jsonl manifest) and write the masks the toolkit reads into OUTPUT.

    \b
    masked-gatys segment eyes/ -o masks/
    masked-gatys segment list.csv -o masks/ --shard 0/4
    torchrun --nproc-per-node 2 -m masked_gatys segment eyes/ -o masks/

    Any size, grey or RGB. An eye with no iris (closed) gets an empty mask and
    iris=false in the manifest. A rerun skips the eyes already done.
    """
    from masked_gatys import distributed

    if not source.exists():
        raise click.ClickException(f"input not found: {source}")
    if batch_size < 1:
        raise click.BadParameter("must be >= 1", param_hint="--batch-size")
    env = distributed.from_env()
    if env is not None and shard is not None:
        raise click.ClickException("--shard and torchrun both choose the shard: use one of them")
    if env is not None:
        shard = (env.rank, env.world_size)
        device = "cpu" if device == "cpu" else env.device(device)

    from masked_gatys.eyes.segment import load_segmenter, segment_folder

    seg = load_segmenter(None if model == "shipped" else model, device=device)
    group = distributed.init(env, "cpu" if device == "cpu" else device) if env is not None else None
    bar = _Bar("segment" if shard is None else f"segment {shard[0]}/{shard[1]}",
               quiet or (env is not None and env.rank != 0))
    try:
        report = segment_folder(source, out_dir, model=seg, batch_size=batch_size, shard=shard, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"interrupted: progress recorded in {out_dir}; run the same command again to resume", err=True)
        sys.exit(130)
    finally:
        bar.close()
    counts = (report.done, report.skipped, report.failed)
    closed = sum(1 for r in report.records if r.get("status") == "done" and r.get("iris") is False)
    where = report.manifest
    if group is not None:
        parts = distributed.gather_records([{"output": "", "counts": [*counts, closed]}, *report.records], env)
        if env.rank == 0:
            from masked_gatys.manifests import merge_manifests

            merge_manifests(out_dir, extra=[r for r in parts if "counts" not in r])
            totals = [sum(r["counts"][k] for r in parts if "counts" in r) for k in range(4)]
            counts, closed = tuple(totals[:3]), totals[3]
            where = out_dir / "manifest.jsonl"
        distributed.finish()
    if not quiet and (env is None or env.rank == 0):
        click.echo(f"{counts[0]} segmented, {counts[1]} already done, {counts[2]} failed, {closed} without an "
                   f"iris; manifest: {where}", err=True)
    if env is None or env.rank == 0:  # failures are named even with --quiet
        for r in report.records:
            if str(r.get("status", "")).startswith("failed"):
                click.echo(f"failed: {r.get('image', r['output'])}: {r['status'][len('failed: '):]}", err=True)
