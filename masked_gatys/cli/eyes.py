"""``masked-gatys render-eyes`` and ``masked-gatys demo``.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(render_eyes_command, ["--help"]).exit_code
0
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import MAX_SEED, Size, check_writable_output, error_boundary, resolve_device
from masked_gatys.config import DEMO_ITERATIONS, DEMO_MAX_LAYER, DEMO_SIZE  # torch-free: a fast --help
from masked_gatys.files import atomic_write


def _size_option(default: str) -> Any:
    return click.option("--size", default=default, show_default=True, metavar="HxW",
                        type=Size(min=16), help="Image size, height x width.")


@click.command("render-eyes")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(1, 1_000_000), help="Number of eyes.")
@click.option("--domain", type=click.Choice(["real", "synthetic"]), default=None,
              help="real: the layout's real look (unity: outdoor capture with light, shadow, glints, "
                   "noise); synthetic: the clean UnityEyes look. Implied by --look when that is given.  "
                   "[default: real]")
@click.option("--layout", type=click.Choice(["unity", "default", "mpiigaze", "nir"]), default="unity",
              show_default=True,
              help="Framing: unity (the original, 72x120 RGB), mpiigaze (MPIIGaze's normalised 36x60 grey, "
                   "equalised patches), nir (240x320 near-infrared eye-camera frames).")
@click.option("--look", type=click.Choice(["clean", "outdoor", "webcam", "photo", "nir", "any"]), default=None,
              help="Capture: clean (synthetic), outdoor, webcam (laptop webcam), photo (RGB photo crop), nir "
                   "(near-infrared camera), any (one of the layout's real looks per eye).  [default: --domain's]")
@click.option("--size", default=None, metavar="HxW", type=Size(min=16),
              help="Image size, height x width.  [default: the layout's: 72x120, 36x60, 240x320]")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED), help="Seed of the whole set.")
@click.option("--yaw-range", default=None, type=click.FloatRange(0, 60),
              help="Yaw drawn uniformly in +-this many degrees.  [default: the layout's: 30, 25, 28]")
@click.option("--pitch-range", default=None, type=click.FloatRange(0, 45),
              help="Pitch drawn uniformly in +-this many degrees.  [default: the layout's: 20, 18, 18]")
@click.option("--force", is_flag=True,
              help="Render into a folder that is not empty: an earlier render-eyes set there (NNNN.png, "
                   "NNNN_mask.png, NNNN_labels.png, truth.jsonl) is removed first; other files are refused.")
@error_boundary
def render_eyes_command(out_dir: Path, n: int, domain: str | None, layout: str, look: str | None,
                        size: tuple[int, int] | None, seed: int, yaw_range: float | None,
                        pitch_range: float | None, force: bool) -> None:
    """Render N eye images with masks and ground truth into OUT_DIR.

    Writes NNNN.png (the eye; grey for the grey layouts), NNNN_mask.png
    (attention = iris + pupil, white), NNNN_labels.png (black skin, white
    sclera, blue iris, red pupil) and truth.jsonl (one JSON object per eye:
    pupil centre in pixels, iris ellipse, gaze (yaw, pitch) in degrees, eye
    corners, drawn parameters; for the mpiigaze and nir layouts also the
    layout, look, closure and the visible share of iris and pupil: their
    eyes may be half or wholly closed). The same seed gives the same files.
    """
    from tqdm import tqdm

    from masked_gatys.eyes import labels_to_rgb
    from masked_gatys.eyes.datasets import render_many
    from masked_gatys.eyes.layouts import get_layout
    from masked_gatys.image import save_image

    if look is None and domain is None:
        domain = "real"
    truth_path = out_dir / "truth.jsonl"
    _clear_earlier_set(out_dir, force)
    check_writable_output(truth_path)
    lines = []
    digits = max(4, len(str(n - 1)))
    lay = get_layout(layout)
    size = size or lay.size  # render_many's unity default is render_set's 36x60; render-eyes' is 72x120
    eyes = render_many(n, domain=domain, size=size, seed=seed, yaw_range=yaw_range, pitch_range=pitch_range,
                       layout=layout, look=look)
    what = look or domain
    for i, eye in enumerate(tqdm(eyes, total=n, desc=f"render-eyes ({lay.name}, {what})", unit="eye",
                                 file=sys.stderr, disable=None, leave=False)):
        stem = f"{i:0{digits}d}"
        names = {"image": f"{stem}.png", "mask": f"{stem}_mask.png", "labels": f"{stem}_labels.png"}
        save_image(eye.image[:, :1] if lay.channels == 1 else eye.image, out_dir / names["image"])
        save_image(eye.binary_mask, out_dir / names["mask"])
        save_image(labels_to_rgb(eye.labels), out_dir / names["labels"])
        lines.append(json.dumps({"index": i, "files": names, **eye.truth}, sort_keys=True))
        size = tuple(eye.truth["size"])
    text = "\n".join(lines) + "\n"
    atomic_write(truth_path, lambda fh: fh.write(text.encode("utf-8")))
    click.echo(f"wrote {n} {lay.name} {what} eyes ({size[0]}x{size[1]}) and truth.jsonl to {out_dir}", err=True)


_RENDERED = re.compile(r"\d{4,}(_mask|_labels)?\.png|truth\.jsonl")


def _clear_earlier_set(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty folder; with ``force``, remove an earlier set (and refuse anything else).

    Writing over an earlier set would keep its stale files and replace its
    ground truth, so the set would no longer match its truth.jsonl.
    """
    if not out_dir.is_dir():
        return
    present = sorted(p for p in out_dir.iterdir() if not p.name.startswith("."))
    if not present:
        return
    if not force:
        raise click.ClickException(f"{out_dir} is not empty ({len(present)} entries, e.g. {present[0].name}): "
                                   "give an empty or new folder, or --force to replace an earlier render-eyes set")
    foreign = [p for p in present if not (p.is_file() and _RENDERED.fullmatch(p.name))]
    if foreign:
        raise click.ClickException(f"{out_dir} holds {foreign[0].name}, which render-eyes did not write; "
                                   "--force replaces only an earlier render-eyes set")
    for p in present:
        p.unlink()


class _Bars:
    """A tqdm bar per preset, fed by the demo's progress callback."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bars: dict[str, Any] = {}

    def __call__(self, preset: str, progress: Any) -> None:
        from tqdm import tqdm

        if preset not in self.bars:
            self.close()  # one preset at a time
            self.bars[preset] = tqdm(total=self.total, desc=preset, unit="it", file=sys.stderr, leave=False,
                                     disable=None)
        bar = self.bars[preset]
        bar.n = progress.iteration
        bar.set_postfix(total=f"{progress.total:.4g}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@click.command("demo")
@click.option("--out", "out", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for sheet.png, results.json and the images.")
@_size_option(f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]}")
@click.option("--iterations", default=DEMO_ITERATIONS, show_default=True, type=click.IntRange(0, None),
              help="Optimizer iterations per preset.")
@click.option("--weights", default=None, metavar="PATH|imagenet|random",
              show_default="$MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)", help="VGG-19 weights.")
@click.option("--max-layer", default=DEMO_MAX_LAYER, show_default=True,
              help="Deepest VGG layer any term may use ('auto': as deep as the weights go).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@error_boundary
def demo_command(out: Path, size: tuple[int, int], iterations: int, weights: str | None, max_layer: str,
                 device: str) -> None:
    """Purify a rendered real-looking eye towards a synthetic one; write a comparison sheet.

    Runs the gatys and masked presets (and any shipped feed-forward networks)
    and writes into OUT:

    \b
      sheet.png         content | style | gatys | masked | nets, with objective
                        values and pupil shift
      results.json      weights, settings and every method's figures
      content.png, content_mask.png, style.png, style_mask.png   the inputs
      gatys.png, masked.png, johnson.png, purifier.png           the outputs
      outputs.pt        the outputs as float tensors (no 8-bit rounding)
    """
    from masked_gatys.eyes.demo import TORCHVISION_VGG19, find_demo_weights, run_demo

    device = resolve_device(device)
    check_writable_output(out / "sheet.png")
    source = "--weights"
    if weights is None:
        weights, source = find_demo_weights()
        if weights == "random":
            click.echo("notice: no ImageNet VGG-19 weights found (MASKED_GATYS_WEIGHTS is unset and "
                       f"{TORCHVISION_VGG19} is not in the torch hub cache): using RANDOM weights. The sheet "
                       "shows the pipeline, not the quality; set MASKED_GATYS_WEIGHTS=PATH for real results.",
                       err=True)
        else:
            click.echo(f"weights: {weights} (from {source})", err=True)
    elif weights == "random":
        click.echo("notice: using RANDOM VGG weights as asked: the sheet shows the pipeline, not the quality.",
                   err=True)
    start = time.perf_counter()
    bars = _Bars(iterations)
    try:
        results = run_demo(out, size=size, iterations=iterations, weights=weights, device=device,
                           max_layer=max_layer, weights_source=source, on_progress=bars,
                           echo=lambda message: click.echo(message, err=True))
    finally:
        bars.close()
    for key, m in results["methods"].items():
        shift = m.get("pupil_shift")
        click.echo(f"{key:>9}: objective {m['objective']:.4g}  pupil shift "
                   f"{'n/a' if shift is None else f'{shift:.2f} px'}  {m['seconds']:.1f} s", err=True)
    click.echo(f"wrote {out / 'sheet.png'} and {out / 'results.json'} in {time.perf_counter() - start:.0f} s",
               err=True)
