"""``masked-gatys render-eyes`` and ``masked-gatys demo``.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(render_eyes_command, ["--help"]).exit_code
0
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import MAX_SEED, check_writable_output, error_boundary, resolve_device
from masked_gatys.eyes.datasets import eye_seed_and_gaze  # render-eyes and render_set draw the same eyes
from masked_gatys.files import atomic_write

# What the demo renders: a real-looking content eye and a synthetic style eye. The style eye
# and the size are those the shipped networks were trained with (masked_gatys/data/README.md),
# so every method is judged by the same objective.
DEMO_CONTENT = {"yaw": 18.0, "pitch": -8.0, "seed": 7}
DEMO_STYLE = {"yaw": 0.0, "pitch": 0.0, "seed": 0}
DEMO_SIZE = (48, 72)
DEMO_ITERATIONS = 150
# relu4/relu5 see 6x9 and 3x4 positions of a 48x72 eye; relu3_4 is also where the shared
# ImageNet file stops, so runs with random and with ImageNet weights use the same terms.
DEMO_MAX_LAYER = "relu3_4"
DEMO_NETS = ("johnson_eyes.pt", "purifier_eyes.pt")
TORCHVISION_VGG19 = "vgg19-dcbb9e9d.pth"


def _parse_size(value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give HxW, e.g. 72x120") from None
    if h < 16 or w < 16:
        raise click.BadParameter(f"{value!r}: at least 16x16")
    return h, w


def _size_option(default: str) -> Any:
    return click.option("--size", default=default, show_default=True, metavar="HxW",
                        callback=lambda ctx, param, v: _parse_size(v), help="Image size, height x width.")


def _size_or_layout(ctx: Any, param: Any, value: str | None) -> tuple[int, int] | None:
    return None if value is None else _parse_size(value)


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
@click.option("--size", default=None, metavar="HxW", callback=_size_or_layout,
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


def find_demo_weights() -> tuple[str, str]:
    """(weights for ``StylizeConfig.weights``, where they came from): env, hub cache, else random."""
    from masked_gatys.encoder import default_weights

    choice, source = default_weights()  # the one rule every command follows (README)
    if choice == "imagenet":  # the cached file itself, so the demo names what it used
        import torch

        return str(Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19), "torch hub cache"
    return choice, ("random" if choice == "random" else "MASKED_GATYS_WEIGHTS")


def _data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


class _Bar:
    """A tqdm bar fed by stylize's progress callback."""

    def __init__(self, desc: str, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="it", file=sys.stderr, leave=False, disable=None)

    def __call__(self, progress: Any) -> bool:
        self.bar.n = progress.iteration
        self.bar.set_postfix(total=f"{progress.total:.4g}", refresh=False)
        self.bar.refresh()
        return False

    def close(self) -> None:
        self.bar.close()


def run_demo(out: Path, *, size: tuple[int, int], iterations: int, weights: str, device: str,
             max_layer: str = DEMO_MAX_LAYER, weights_source: str | None = None,
             echo: Any = None) -> dict[str, Any]:
    """Render the two eyes, stylize with both presets and any shipped networks, write the sheet.

    Returns what ``results.json`` holds. ``echo`` receives notices (the CLI's stderr).
    """
    import torch

    from masked_gatys.eyes import render_eye
    from masked_gatys.image import save_image
    from masked_gatys.eyes.pupil import pupil_center, pupil_shift
    from masked_gatys.sheet import Column, compose_sheet, save_sheet
    from masked_gatys.stylize import StylizeConfig, prepare, stylize

    say = echo or (lambda message: None)
    content = render_eye(domain="real", size=size, **DEMO_CONTENT)
    style = render_eye(domain="synthetic", size=size, **DEMO_STYLE)
    save_image(content.image, out / "content.png")
    save_image(content.binary_mask, out / "content_mask.png")
    save_image(style.image, out / "style.png")
    save_image(style.binary_mask, out / "style_mask.png")
    mask, style_mask = content.binary_mask, style.binary_mask

    def config(preset: str) -> StylizeConfig:
        return StylizeConfig(preset=preset, iterations=iterations, weights=weights, max_layer=max_layer,
                             device=device)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning: the CLI says it once
        judges = {p: prepare(content.image, style.image, mask=mask, style_mask=style_mask, config=config(p))
                  for p in ("gatys", "masked")}

    def judge(image: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            return {p: float(j.objective(image.to(j.device)).total[0]) for p, j in judges.items()}

    truth = content.truth["pupil_center"]
    measured = pupil_center(content.image, mask)
    methods: dict[str, dict[str, Any]] = {}
    outputs: dict[str, torch.Tensor] = {}
    identity = None
    for preset in ("gatys", "masked"):
        bar = _Bar(preset, iterations)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = stylize(content.image, style.image, mask=mask, style_mask=style_mask,
                                 config=config(preset), callback=bar)
        finally:
            bar.close()
        identity = result.weights.to_dict()
        outputs[preset] = result.image
        methods[preset] = {"kind": "optimizer", "objective": result.total, "terms": result.terms,
                           "seconds": result.seconds, "n_iter": result.n_iter, "n_eval": result.n_eval,
                           "stop_reason": result.stop_reason}
    for name in DEMO_NETS:
        path = _data_dir() / name
        if not path.is_file():
            continue
        try:
            from masked_gatys.train import load_model

            model = load_model(path, device=device)
            start = time.perf_counter()
            with torch.no_grad():
                image = model(content.image.to(device), mask.to(device)).cpu()
            seconds = time.perf_counter() - start
        except Exception as exc:  # a broken or incompatible checkpoint must not sink the demo
            say(f"notice: skipping {path.name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")
            continue
        key = path.stem.replace("_eyes", "")
        outputs[key] = image
        methods[key] = {"kind": "network", "checkpoint": path.name, "seconds": seconds,
                        "trained_with_weights": getattr(model, "weights_identity", None)}

    torch.save({key: image.detach().cpu() for key, image in outputs.items()}, out / "outputs.pt")
    for key, image in outputs.items():
        save_image(image, out / f"{key}.png")
        values = judge(image)
        methods[key]["objective_gatys"] = values["gatys"]
        methods[key]["objective_masked"] = values["masked"]
        if methods[key]["kind"] == "network":
            methods[key]["objective"] = values["masked"]
        try:
            methods[key]["pupil_shift"] = pupil_shift(content.image, image, mask)
        except (ValueError, RuntimeError) as exc:
            methods[key]["pupil_shift"] = None
            methods[key]["pupil_shift_error"] = str(exc)

    def fmt(v: Any, spec: str) -> str:
        return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)

    columns = [
        Column("content (real)", [content.image, mask],
               [f"seed {DEMO_CONTENT['seed']}, gaze ({DEMO_CONTENT['yaw']:g}, {DEMO_CONTENT['pitch']:g})",
                "attention mask"]),
        Column("style (synthetic)", [style.image, style_mask],
               [f"seed {DEMO_STYLE['seed']}, gaze ({DEMO_STYLE['yaw']:g}, {DEMO_STYLE['pitch']:g})",
                "style mask"]),
    ]
    for key, image in outputs.items():
        m = methods[key]
        lines = [f"gatys obj {fmt(m['objective_gatys'], '.4g')}",
                 f"masked obj {fmt(m['objective_masked'], '.4g')}",
                 f"pupil shift {fmt(m.get('pupil_shift'), '.2f')} px",
                 f"{m['seconds']:.1f} s" if m["seconds"] >= 0.1 else f"{m['seconds'] * 1000:.0f} ms"]
        trained = m.get("trained_with_weights") or {}
        if m["kind"] == "network" and identity and trained.get("sha256") != identity.get("sha256"):
            lines.append("(trained with other VGG weights)")
            m["note"] = "trained with other loss-network weights than the demo's: its objective values do not compare"
        heading = key if m["kind"] == "optimizer" else f"{key} (net)"
        columns.append(Column(heading, [image, None], ["\n".join(lines)]))
    weights_name = identity["name"] if identity else weights
    title = (f"masked-gatys demo: {size[0]}x{size[1]} eyes, {iterations} iterations, layers <= {max_layer}, "
             f"weights {weights_name}"
             f"{' (RANDOM: shows the pipeline, not the quality)' if weights == 'random' else ''}")
    save_sheet(compose_sheet(columns, title=title), out / "sheet.png")

    results = {
        "size": list(size), "iterations": iterations, "max_layer": max_layer, "device": device,
        "weights": identity, "weights_source": weights_source or "--weights",
        "content": {**DEMO_CONTENT, "domain": "real", "pupil_center_truth": truth,
                    "pupil_center_measured": list(measured)},
        "style": {**DEMO_STYLE, "domain": "synthetic"},
        "methods": methods,
        "notes": "objective: the method's own preset (networks: masked); objective_gatys/objective_masked: "
                 "every output judged by both presets' objectives with the same weights; pupil_shift: "
                 "distance in pixels between pupil_center of the content and of the output, inside the "
                 "content's attention mask",
    }
    tmp = out / f".results.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out / "results.json")
    return results


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
    results = run_demo(out, size=size, iterations=iterations, weights=weights, device=device,
                       max_layer=max_layer, weights_source=source, echo=lambda message: click.echo(message, err=True))
    for key, m in results["methods"].items():
        shift = m.get("pupil_shift")
        click.echo(f"{key:>9}: objective {m['objective']:.4g}  pupil shift "
                   f"{'n/a' if shift is None else f'{shift:.2f} px'}  {m['seconds']:.1f} s", err=True)
    click.echo(f"wrote {out / 'sheet.png'} and {out / 'results.json'} in {time.perf_counter() - start:.0f} s",
               err=True)
