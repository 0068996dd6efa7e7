"""``masked-gatys stylize``: per-image optimisation, or a trained network with ``--model``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import (
    MAX_SEED,
    check_writable_output,
    deferred_interrupts,
    error_boundary,
    interrupted_exit_code,
    resolve_device,
)
from masked_gatys.files import check_outputs, write_json_atomic  # write_json_atomic: re-exported

# Defaults are defined once, in StylizeConfig; reading them here needs no torch import.
_DEFAULTS: dict[str, Any] = {}


def _default(name: str) -> Any:
    if not _DEFAULTS:
        from masked_gatys.stylize import StylizeConfig

        _DEFAULTS.update({f.name: f.default for f in dataclasses.fields(StylizeConfig)})
    return _DEFAULTS[name]


_STOP, _WINDOW, _MIN = "1e-4", "20", "128"  # shown without importing torch; tests check them


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",")]
    if not all(parts):
        raise click.BadParameter(f"empty entry in {value!r}")
    return parts


def _names(value: str | None) -> tuple[str, ...] | None:
    parts = _split(value)
    return None if parts is None else tuple(parts)


def _floats(value: str | None, name: str) -> tuple[float, ...] | None:
    parts = _split(value)
    try:
        return None if parts is None else tuple(float(v) for v in parts)
    except ValueError:
        raise click.BadParameter(f"--{name.replace('_', '-')} takes numbers separated by commas, got {value!r}")


def _ints(value: str | None, name: str) -> tuple[int, ...] | None:
    parts = _split(value)
    try:
        return None if parts is None else tuple(int(v) for v in parts)
    except ValueError:
        raise click.BadParameter(f"--{name.replace('_', '-')} takes whole numbers separated by commas, got {value!r}")


def _check_size(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and 0 < value < 16:
        raise click.BadParameter(f"{value} is not in the range x>=16 (or 0: the content's own size)")
    return value


def _short(name: str) -> str:
    """``style/relu3_1@attention`` -> ``s3_1a`` for a progress bar that fits."""
    if "/" not in name:
        return name
    kind, rest = name.split("/", 1)
    layer, region = rest.split("@")
    return f"{kind[0]}{layer[4:]}{'' if region == 'whole' else region[0]}"


@click.command("stylize")
@click.argument("content", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--style", "style", type=click.Path(path_type=Path), multiple=True,
              help="Style image (not with --model). Repeat it to blend several styles (see --style-weights).")
@click.option("--mask", type=click.Path(path_type=Path), help="Content mask: white = attention region "
              "(or a label PNG with --mask-mode labels). With --model and a folder of images: a folder of masks.")
@click.option("--style-mask", type=click.Path(path_type=Path), multiple=True,
              help="Style mask (one per --style). Without it the whole style image is the target of every region.")
@click.option("--mask-mode", type=click.Choice(["binary", "labels", "parts"]), default=lambda: _default("mask_mode"),
              show_default="binary", help="binary: white = attention; labels: a region per colour (regional "
              "preset); parts: eye part labels as render-eyes writes NAME_labels.png (masked matches skin and "
              "sclera apart: keeps the pupil and the lids).")
@click.option("--resize-masks", is_flag=True, help="Resize masks whose size differs from their image's.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              show_default="CONTENT_stylized.png", help="Output PNG (a folder with --model and a folder of images).")
@click.option("--preset", type=click.Choice(["gatys", "masked", "masked-eye", "regional"]),
              show_default="masked with a binary mask, regional with labels, else gatys", help="Objective preset.")
@click.option("--subject", type=click.Choice(["auto", "eye", "general"]), default=lambda: _default("subject"),
              show_default="auto", help="masked on eye images runs masked-eye (keeps the pupil); auto: "
              "eye when the attention region holds a pupil-like dark blob.")
@click.option("--size", type=click.IntRange(min=0), default=lambda: _default("size"), callback=_check_size,
              show_default="the content's size, at most 512",
              help="Longest side of the working image; 0: the content's own size, however large.")
@click.option("--iterations", type=click.IntRange(min=0), default=lambda: _default("iterations"), show_default="300",
              help="Iterations at the working size; coarse-to-fine passes run a share more (--scale-iterations).")
@click.option("--optimizer", type=click.Choice(["plbfgs", "lbfgs", "lbfgs-b", "adam"]),
              default=lambda: _default("optimizer"), show_default="plbfgs",
              help="plbfgs: projected L-BFGS on the device; lbfgs: torch L-BFGS clamped (the paper's); "
                   "lbfgs-b: scipy; adam: clamped Adam.")
@click.option("--weights", help="imagenet, random, or a state-dict file (torchvision or caffe format).",
              show_default="$MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)")
@click.option("--weights-format", type=click.Choice(["auto", "torchvision", "caffe"]), default="auto",
              show_default=True)
@click.option("--max-layer", default=lambda: _default("max_layer"), show_default="auto",
              help="Restrict the preset to layers no deeper than this (e.g. relu3_4); auto: as deep as the "
                   "weights go (a partial weights file works as it is).")
@click.option("--arch", type=click.Choice(["vgg19", "vgg16"]), default=lambda: _default("arch"),
              show_default="vgg19", help="Loss network.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max", show_default=True)
@click.option("--history-size", type=click.IntRange(min=1), default=lambda: _default("history_size"), show_default="10",
              help="L-BFGS history (plbfgs, lbfgs).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=lambda: _default("lr"), show_default="0.02", help="Adam's step size.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=lambda: _default("seed"), show_default="0")
@click.option("--content-weight", type=float, show_default="the preset's", help="Content weight.")
@click.option("--style-weight", type=float, show_default="the preset's", help="Style weight.")
@click.option("--tv-weight", type=float, show_default="the preset's", help="Total-variation weight.")
@click.option("--init", default=lambda: _default("init"), show_default="content",
              help="content, noise, or an image file.")
@click.option("--style-weights", callback=lambda c, p, v: _floats(v, p.name),
              show_default="equal", help="Blend of the --style images, e.g. 0.7,0.3 (normalised to sum 1).")
@click.option("--style-scale", type=float, default=lambda: _default("style_scale"), show_default="1.0",
              help="The style image's longest side relative to the working image's.")
@click.option("--content-layers", callback=lambda c, p, v: _names(v),
              help="Content layers instead of the preset's, e.g. relu4_2 or relu3_2,relu4_2@attention "
                   "(LAYER@REGION for one region; without @: the whole image).")
@click.option("--style-layers", callback=lambda c, p, v: _names(v),
              help="Style layers instead of the preset's, in every region the preset styles, e.g. "
                   "relu1_1,relu2_1,relu3_1.")
@click.option("--content-layer-weights", callback=lambda c, p, v: _floats(v, p.name),
              show_default="1 each", help="One weight per --content-layers entry.")
@click.option("--style-layer-weights", callback=lambda c, p, v: _floats(v, p.name),
              show_default="equal", help="One weight per --style-layers entry, normalised to sum 1 per region.")
@click.option("--time-limit", type=float, help="Stop after this many seconds with the best image so far.")
@click.option("--stop-tol", type=float, default=lambda: _default("stop_tol"), show_default=_STOP,
              help="End a pass once its objective fell by less than this fraction over the last "
                   "--stop-window iterations; 0: run the whole budget.")
@click.option("--stop-window", type=int, default=lambda: _default("stop_window"), show_default=_WINDOW)
@click.option("--scales", type=int, show_default="one pass below 256 px (eye crops), above it one per doubling "
              "from --min-size", help="Coarse-to-fine passes (1: off).")
@click.option("--min-size", type=int, default=lambda: _default("min_size"), show_default=_MIN,
              help="Longest side of the coarsest pass.")
@click.option("--scale-iterations", callback=lambda c, p, v: _ints(v, p.name),
              show_default="of N passes, each coarser one --iterations/N, the last --iterations",
              help="Iterations of each pass, coarsest first, e.g. 100,100,300.")
@click.option("--original-colors", type=click.Choice(["luminance", "histogram"]),
              help="luminance: transfer luminance only and keep the content's colours; histogram: match the "
                   "style's colours to the content's first. Per region with masks.")
@click.option("--save-every", type=click.IntRange(min=0), default=0, help="Write the best image so far every N iterations.")
@click.option("--log", "log_path", type=click.Path(path_type=Path),
              help="Write parameters and the per-iteration history as JSON.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--model", type=click.Path(path_type=Path),
              help="Apply a trained network instead of optimising: a checkpoint, or johnson / purifier "
              "(the shipped eye networks).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no closing 'wrote ...' line "
              "(warnings and errors still print).")
@error_boundary
def stylize_command(content: Path, style: tuple[Path, ...], mask: Path | None, style_mask: tuple[Path, ...],
                    mask_mode: str, resize_masks: bool, output: Path | None, preset: str | None,
                    size: int | None, iterations: int, optimizer: str, weights: str | None,
                    weights_format: str, max_layer: str | None, arch: str, pooling: str, history_size: int,
                    lr: float, device: str, seed: int,
                    content_weight: float | None, style_weight: float | None, tv_weight: float | None,
                    init: str, style_weights, style_scale: float, content_layers, style_layers,
                    content_layer_weights, style_layer_weights, time_limit: float | None, stop_tol: float,
                    stop_window: int, scales: int | None, min_size: int, scale_iterations,
                    original_colors: str | None, save_every: int, log_path: Path | None, bits: str,
                    model: Path | None, quiet: bool, subject: str = "auto") -> None:
    """Stylize CONTENT after --style, matching style per mask region.

    \b
    masked-gatys stylize eye.png --style unity.png --mask eye_mask.png \\
        --style-mask unity_mask.png -o out.png
    masked-gatys stylize eyes/ --model purifier --mask masks/ -o purified/

    \b
    The progress bar shows the total objective and each weighted term, named
    kind + layer + region: c = content, s = style; 3_1 = relu3_1; a suffix a
    = attention region, b = background (none: the whole image); tv = total
    variation. E.g. s3_1a = the style term at relu3_1 on the attention region.
    """
    from masked_gatys.train import SHIPPED

    named = [("content", content), ("mask", mask), ("model", model)]
    named += [("style", p) for p in style] + [("style mask", p) for p in style_mask]
    for label, path in named:
        if label == "model" and str(path) in SHIPPED:  # a shipped network by name
            continue
        if path is not None and not Path(path).exists():
            raise click.ClickException(f"{label} not found: {path}")
    if model is not None:
        return _run_model(content, mask, output, model, device, bits, quiet)
    if not style:
        raise click.ClickException("--style is required (or --model for a trained network)")
    if style_mask and len(style_mask) != len(style):
        raise click.ClickException(f"{len(style_mask)} --style-mask for {len(style)} --style: give one per style")
    if style_weights is not None and len(style_weights) != len(style):
        raise click.ClickException(f"--style-weights has {len(style_weights)} values for {len(style)} --style")
    if content.is_dir():
        raise click.ClickException(f"{content} is a folder: a folder of images needs --model")
    output = output or Path(f"{content.stem}_stylized.png")
    if init not in ("content", "noise") and not Path(init).exists():
        raise click.ClickException(f"--init image not found: {init}")
    inputs = [("content", content), ("--mask", mask), *(("--style", p) for p in style),
              *(("--style-mask", p) for p in style_mask),
              ("--init", Path(init) if init not in ("content", "noise") else None)]
    check_writable_output(output)
    if log_path is not None:
        check_writable_output(log_path)
    device = resolve_device(device)

    from masked_gatys.image import save_image
    from masked_gatys.stylize import StylizeConfig, iteration_bound, stylize

    config = StylizeConfig(
        preset=preset, size=size, iterations=iterations, optimizer=optimizer, content_weight=content_weight,
        style_weight=style_weight, tv_weight=tv_weight, init=init, seed=seed, device=device, weights=weights,
        weights_format=weights_format, arch=arch, pooling=pooling, mask_mode=mask_mode,
        resize_masks=resize_masks, max_layer=max_layer, history_size=history_size, lr=lr,
        style_weights=style_weights, style_scale=style_scale, content_layers=content_layers,
        style_layers=style_layers, content_layer_weights=content_layer_weights,
        style_layer_weights=style_layer_weights, time_limit=time_limit, stop_tol=stop_tol,
        stop_window=stop_window, scales=scales, min_size=min_size, scale_iterations=scale_iterations,
        original_colors=original_colors, subject=subject)
    check_outputs([("-o", output), ("--log", log_path),
                   *_save_every_outputs(output, save_every, iteration_bound(config), inputs)], inputs)
    bar = None  # made at the first iteration, so set-up errors print alone

    def on_progress(p) -> bool:
        nonlocal bar
        if bar is None and not quiet:
            from tqdm import tqdm

            bar = tqdm(total=p.total_steps, desc="stylize", unit="it", file=sys.stderr, dynamic_ncols=True)
        if bar is not None:
            if p.n_scales > 1:
                bar.set_description(f"stylize {p.scale + 1}/{p.n_scales} {p.size[1]}x{p.size[0]}", refresh=False)
            bar.update(p.step - bar.n)
            shown = {"total": f"{p.total:.4g}"}
            shown.update({_short(k): f"{v:.3g}" for k, v in p.terms.items()})
            bar.set_postfix(shown, refresh=False)
        if save_every and p.step % save_every == 0:
            # a signal now waits for the write: raised inside the atomic write's set-up it would
            # leave the temporary file behind
            with deferred_interrupts():
                save_image(p.best_image[:1].detach().cpu(), output.with_name(f"{output.stem}_{p.step:04d}.png"),
                           metadata={"iteration": p.step, "scale": p.scale, "total": p.total})
        return False

    # warnings print as they come, one line each (cli._common.warnings_as_lines, set up by the group)
    try:
        result = stylize(content, list(style) if len(style) > 1 else style[0], mask=mask,
                         style_mask=(list(style_mask) if len(style_mask) > 1 else style_mask[0]) if style_mask
                         else None, config=config, callback=on_progress)
    finally:
        if bar is not None:
            bar.close()

    metadata = {"software": "masked-gatys", "parameters": result.config.to_dict(),
                "weights": result.weights.to_dict(), "total": result.total, "terms": result.terms,
                "content": str(content), "style": [str(p) for p in style] if len(style) > 1 else str(style[0])}
    with deferred_interrupts():  # a Ctrl-C or SIGTERM now waits until the files are written
        save_image(result.image, output, metadata=metadata, bits=int(bits))
        if log_path is not None:
            write_json_atomic(result.to_dict(), log_path)
    if result.interrupted:
        click.echo(f"interrupted after {result.n_iter} iterations: wrote the best image so far to {output}",
                   err=True)
        sys.exit(interrupted_exit_code())
    if not quiet:
        why = {"stalled": ", stalled", "time_limit": ", time limit reached"}.get(result.stop_reason, "")
        click.echo(f"wrote {output} (objective {result.total:.5g}, {result.n_iter} iterations{why}, "
                   f"{result.seconds:.1f} s, weights {result.weights.name})", err=True)


def _save_every_outputs(output: Path, every: int, most: int, inputs: list) -> list[tuple[str, Path]]:
    """The ``--save-every`` files (OUTPUT_NNNN.png, up to ``most`` iterations) that an input's name matches."""
    import re

    if not every:
        return []
    pattern = re.compile(rf"{re.escape(output.stem)}_(\d{{4,}})\.png")
    found = []
    for _, path in inputs:
        match = pattern.fullmatch(Path(path).name) if path is not None else None
        if match and f"{int(match[1]):04d}" == match[1] and int(match[1]) % every == 0 and \
                0 < int(match[1]) <= most:
            found.append(("--save-every", output.with_name(Path(path).name)))
    return found


def _run_model(content: Path, mask: Path | None, output: Path | None, model: Path, device: str, bits: str,
               quiet: bool) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _apply_model(content, mask, output, model, device, bits, quiet)
        finally:
            seen = set()
            for w in caught:  # e.g. the resize notice outside the trained sizes, once each
                if str(w.message) not in seen and not issubclass(w.category, DeprecationWarning):
                    seen.add(str(w.message))
                    click.echo(f"warning: {w.message}", err=True)


def _folder_items(content: Path, mask: Path, output: Path) -> list:
    """The images of ``content`` (its subfolders too), each with its mask from the ``--mask``
    folder: ``NAME_mask.*``, else ``NAME.*``, at the image's relative place."""
    import dataclasses
    from pathlib import PurePosixPath

    from masked_gatys.manifests import IMAGE_EXTS, list_inputs

    items = []
    for item in list_inputs(content, exclude=[output, mask]):
        rel = PurePosixPath(item.rel)
        folder = mask.joinpath(*rel.parent.parts)
        found = next((folder / f"{name}{ext}" for name in (f"{rel.stem}_mask", rel.stem)
                      for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS)
                      if (folder / f"{name}{ext}").is_file()), None)
        columns = {**item.columns, "mask": None if found is None else str(found)}
        items.append(dataclasses.replace(item, mask=found, columns=columns))
    return items


def _stylize_folder(content: Path, mask: Path | None, output: Path | None, model: Path, device: str,
                    quiet: bool) -> None:
    """``stylize FOLDER --model``: purify's machinery with one network (batched, resumable, a
    manifest); an image that cannot be read is recorded as failed and the rest go on."""
    from masked_gatys.purify import PurifyConfig, purify

    if output is None:
        raise click.ClickException("a folder of images needs -o OUTPUT_FOLDER")
    for label, folder in (("the input folder", content), ("the --mask folder", mask)):
        if folder is not None and output.resolve() == Path(folder).resolve():
            raise click.ClickException(f"the output folder {output} is {label} {folder}; choose another")
    if mask is not None and not mask.is_dir():
        raise click.ClickException(f"--mask {mask}: with a folder of images, give a folder of masks")
    source = content if mask is None else _folder_items(content, mask, output)
    config = PurifyConfig(method=str(model), device=device, pupil_shift=False)
    report = purify(source, output, config=config)
    if not quiet:
        click.echo(f"wrote {report.done} images to {output} ({report.skipped} already done, {report.failed} "
                   f"failed; manifest: {report.manifest})", err=True)
    if report.failed and not report.done and not report.skipped:
        first = next(r["status"] for r in report.records if r["status"] != "done")
        raise click.ClickException(f"every image failed ({report.failed}); the first: "
                                   f"{first.removeprefix('failed: ')}")


def _apply_model(content: Path, mask: Path | None, output: Path | None, model: Path, device: str, bits: str,
                 quiet: bool) -> None:
    device = resolve_device(device)
    if content.is_dir():
        _stylize_folder(content, mask, output, model, device, quiet)
        return
    from masked_gatys.train import load_model

    net = load_model(model, device=device)
    from masked_gatys.image import load_image, save_image
    from masked_gatys.masks import load_mask

    output = output or Path(f"{content.stem}_stylized.png")
    check_writable_output(output)
    check_outputs([("-o", output)], [("content", content), ("--mask", mask), ("--model", model)])
    image = load_image(content)
    attention = None
    if mask is not None:
        regions = load_mask(mask)
        if tuple(regions.masks.shape[-2:]) != tuple(image.shape[-2:]):
            raise click.ClickException(f"mask {mask} is {tuple(regions.masks.shape[-2:])[::-1]} (WxH) but "
                                       f"{content} is {tuple(image.shape[-2:])[::-1]}")
        attention = regions.region("attention")
    out = net(image, attention)
    save_image(out.detach().cpu(), output, metadata={"software": "masked-gatys", "model": str(model)}, bits=int(bits))
    if not quiet:
        click.echo(f"wrote {output}", err=True)
