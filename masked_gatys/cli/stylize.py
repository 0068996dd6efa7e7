"""``masked-gatys stylize``: per-image optimisation, or a trained network with ``--model``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import (
    MAX_SEED,
    CommaList,
    check_writable_output,
    deferred_interrupts,
    error_boundary,
    interrupted_exit_code,
    resolve_device,
)
from masked_gatys.config import STOP_TOL, StylizeConfig, field_defaults
from masked_gatys.files import check_outputs, write_json_atomic  # write_json_atomic: re-exported

# Defaults are defined once, in StylizeConfig (masked_gatys.config: no torch import).
_DEFAULTS = field_defaults(StylizeConfig)
_STOP = f"{STOP_TOL:.0e}".replace("e-0", "e-")  # shown as 1e-4, not 0.0001


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


#: --mask words that are not a file (``./auto`` names a file called auto)
MASK_WORDS = ("auto", "none")


def _mask_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | Path | None:
    """``--mask``: ``auto`` and ``none`` as words, anything else a path."""
    if value is None or value in MASK_WORDS:
        return value
    return Path(value)


def _companions(output: Path) -> tuple[Path, Path]:
    """Where the segmenter's masks go: ``OUT_labels.png`` and ``OUT_mask.png`` beside ``-o``."""
    return output.with_name(f"{output.stem}_labels.png"), output.with_name(f"{output.stem}_mask.png")


@click.command("stylize")
@click.argument("content", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--style", "style", type=click.Path(path_type=Path), multiple=True,
              help="Style image (not with --model). Repeat it to blend several styles (see --style-weights).")
@click.option("--mask", callback=_mask_value, metavar="auto|none|PATH",
              show_default="auto for an eye or a preset that needs a mask, else none",
              help="Content mask: white = attention region (or a label PNG with --mask-mode labels). auto: the "
              "eye-part segmenter makes it and writes OUT_labels.png, OUT_mask.png beside -o (./auto: a file "
              "named auto); none: no mask. With --model and a folder of images: a folder of masks.")
@click.option("--style-mask", type=click.Path(path_type=Path), multiple=True,
              help="Style mask (one per --style). Without it the whole style image is the target of every region.")
@click.option("--mask-mode", type=click.Choice(["binary", "labels", "parts"]), default=_DEFAULTS["mask_mode"],
              show_default=True, help="binary: white = attention; labels: a region per colour (regional "
              "preset); parts: eye part labels as render-eyes writes NAME_labels.png (masked matches skin and "
              "sclera apart: keeps the pupil and the lids).")
@click.option("--resize-masks", is_flag=True, help="Resize masks whose size differs from their image's.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              show_default="CONTENT_stylized.png", help="Output PNG (a folder with --model and a folder of images).")
@click.option("--preset", type=click.Choice(["gatys", "masked", "masked-eye", "regional"]),
              show_default="masked with a binary mask, regional with labels, else gatys", help="Objective preset.")
@click.option("--subject", type=click.Choice(["auto", "eye", "general"]), default=_DEFAULTS["subject"],
              show_default=True, help="masked on eye images runs masked-eye (keeps the pupil); auto: "
              "eye when the attention region holds a pupil-like dark blob.")
@click.option("--size", type=click.IntRange(min=0), default=_DEFAULTS["size"], callback=_check_size,
              show_default="the content's size, at most 512",
              help="Longest side of the working image; 0: the content's own size, however large.")
@click.option("--iterations", type=click.IntRange(min=0), default=_DEFAULTS["iterations"], show_default=True,
              help="Iterations at the working size; coarse-to-fine passes run a share more (--scale-iterations).")
@click.option("--optimizer", type=click.Choice(["plbfgs", "lbfgs", "lbfgs-b", "adam"]),
              default=_DEFAULTS["optimizer"], show_default=True,
              help="plbfgs: projected L-BFGS on the device; lbfgs: torch L-BFGS clamped (the paper's); "
                   "lbfgs-b: scipy; adam: clamped Adam.")
@click.option("--weights", help="imagenet, random, or a state-dict file (torchvision or caffe format).",
              show_default="$MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)")
@click.option("--weights-format", type=click.Choice(["auto", "torchvision", "caffe"]), default=_DEFAULTS["weights_format"],
              show_default=True)
@click.option("--max-layer", default=_DEFAULTS["max_layer"], show_default=True,
              help="Restrict the preset to layers no deeper than this (e.g. relu3_4); auto: as deep as the "
                   "weights go (a partial weights file works as it is).")
@click.option("--arch", type=click.Choice(["vgg19", "vgg16"]), default=_DEFAULTS["arch"],
              show_default=True, help="Loss network.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default=_DEFAULTS["pooling"], show_default=True)
@click.option("--history-size", type=click.IntRange(min=1), default=_DEFAULTS["history_size"], show_default=True,
              help="L-BFGS history (plbfgs, lbfgs).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS["lr"], show_default=True, help="Adam's step size.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=_DEFAULTS["seed"], show_default=True)
@click.option("--content-weight", type=float, show_default="the preset's", help="Content weight.")
@click.option("--style-weight", type=float, show_default="the preset's", help="Style weight.")
@click.option("--tv-weight", type=float, show_default="the preset's", help="Total-variation weight.")
@click.option("--init", default=_DEFAULTS["init"], show_default=True,
              help="content, noise, or an image file.")
@click.option("--style-weights", type=CommaList(click.FLOAT),
              show_default="equal", help="Blend of the --style images, e.g. 0.7,0.3 (normalised to sum 1).")
@click.option("--style-scale", type=float, default=_DEFAULTS["style_scale"], show_default=True,
              help="The style image's longest side relative to the working image's.")
@click.option("--content-layers", type=CommaList(),
              help="Content layers instead of the preset's, e.g. relu4_2 or relu3_2,relu4_2@attention "
                   "(LAYER@REGION for one region; without @: the whole image).")
@click.option("--style-layers", type=CommaList(),
              help="Style layers instead of the preset's, in every region the preset styles, e.g. "
                   "relu1_1,relu2_1,relu3_1.")
@click.option("--content-layer-weights", type=CommaList(click.FLOAT),
              show_default="1 each", help="One weight per --content-layers entry.")
@click.option("--style-layer-weights", type=CommaList(click.FLOAT),
              show_default="equal", help="One weight per --style-layers entry, normalised to sum 1 per region.")
@click.option("--time-limit", type=float, help="Stop after this many seconds with the best image so far.")
@click.option("--stop-tol", type=float, default=_DEFAULTS["stop_tol"], show_default=_STOP,
              help="End a pass once its objective fell by less than this fraction over the last "
                   "--stop-window iterations; 0: run the whole budget.")
@click.option("--stop-window", type=int, default=_DEFAULTS["stop_window"], show_default=True)
@click.option("--scales", type=int, show_default="one pass below 256 px (eye crops), above it one per doubling "
              "from --min-size", help="Coarse-to-fine passes (1: off).")
@click.option("--min-size", type=int, default=_DEFAULTS["min_size"], show_default=True,
              help="Longest side of the coarsest pass.")
@click.option("--scale-iterations", type=CommaList(click.INT),
              show_default="of N passes, each coarser one --iterations/N, the last --iterations",
              help="Iterations of each pass, coarsest first, e.g. 100,100,300.")
@click.option("--original-colors", type=click.Choice(["luminance", "histogram"]),
              help="luminance: transfer luminance only and keep the content's colours; histogram: match the "
                   "style's colours to the content's first. Per region with masks.")
@click.option("--colour", type=click.Choice(["keep", "style"]), default=None,
              show_default="keep for a grey content, style otherwise",
              help="keep: a grey content (one channel, or R, G, B equal) is styled on luminance and written "
                   "grey; style: the output takes the style's colours. With --model, keep turns the "
                   "network's output to luminance for a grey content.")
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
                    output: Path | None, device: str, save_every: int, log_path: Path | None, bits: str,
                    model: Path | None, quiet: bool, **options: Any) -> None:
    """Stylize CONTENT after --style, matching style per mask region.

    \b
    masked-gatys stylize eye.png --style unity.png --mask eye_mask.png \\
        --style-mask unity_mask.png -o out.png
    masked-gatys stylize eyes/ --model purifier --mask masks/ -o purified/
    masked-gatys stylize eye.png --style unity.png --mask auto -o out.png

    \b
    The progress bar shows the total objective and each weighted term, named
    kind + layer + region: c = content, s = style; 3_1 = relu3_1; a suffix a
    = attention region, b = background (none: the whole image); tv = total
    variation. E.g. s3_1a = the style term at relu3_1 on the attention region.
    """
    _check_paths(content, mask, model, style, style_mask)
    if model is not None:
        return _run_model(content, mask, output, model, device, bits, quiet, options.get("colour"))
    _check_styles(content, style, style_mask, options["style_weights"])
    style_mask = _style_companions(style, style_mask, mask, options["mask_mode"], quiet)
    init = options["init"]
    output = output or Path(f"{content.stem}_stylized.png")
    if init not in ("content", "noise") and not Path(init).exists():
        raise click.ClickException(f"--init image not found: {init}")
    inputs = [("content", content), ("--mask", mask if isinstance(mask, Path) else None),
              *(("--style", p) for p in style), *(("--style-mask", p) for p in style_mask),
              ("--init", Path(init) if init not in ("content", "noise") else None)]
    check_writable_output(output)
    if log_path is not None:
        check_writable_output(log_path)
    device = resolve_device(device)

    from masked_gatys.stylize import StylizeConfig, iteration_bound, stylize

    # every option named like a StylizeConfig field is that field (the rest are the command's own)
    fields = {f.name for f in dataclasses.fields(StylizeConfig)}
    config = StylizeConfig(device=device, **{k: v for k, v in options.items() if k in fields})
    outputs = [("-o", output), ("--log", log_path),
               *_save_every_outputs(output, save_every, iteration_bound(config), inputs)]
    # --mask auto's masks are checked now; without --mask (auto only for an eye) when they are made
    companions = list(zip(("segmenter labels", "segmenter mask"), _companions(output)))
    check_outputs(outputs + (companions if mask == "auto" else []), inputs)
    bar = _ProgressBar(output, save_every, quiet)
    # warnings print as they come, one line each (cli._common.warnings_as_lines, set up by the group)
    try:
        result = stylize(content, list(style) if len(style) > 1 else style[0], mask=mask,
                         style_mask=(list(style_mask) if len(style_mask) > 1 else style_mask[0]) if style_mask
                         else None, config=config, callback=bar)
    finally:
        bar.close()
    if result.mask_source == "segmenter" and mask is None:
        check_outputs(outputs + companions, inputs)  # an eye without --mask: made after all
    _write_result(result, content, style, output, log_path, bits, quiet, implicit=mask is None)


def _check_paths(content: Path, mask: Path | None, model: Path | None, style: tuple[Path, ...],
                 style_mask: tuple[Path, ...]) -> None:
    """Every file named on the command line exists (a shipped network's name stands for its file)."""
    from masked_gatys.checkpoints import SHIPPED

    named = [("content", content), ("mask", mask if isinstance(mask, Path) else None), ("model", model)]
    named += [("style", p) for p in style] + [("style mask", p) for p in style_mask]
    for label, path in named:
        if label == "model" and str(path) in SHIPPED:  # a shipped network by name
            continue
        if path is not None and not Path(path).exists():
            raise click.ClickException(f"{label} not found: {path}")


def _check_styles(content: Path, style: tuple[Path, ...], style_mask: tuple[Path, ...],
                  style_weights: tuple[float, ...] | None) -> None:
    """One image to optimise, and --style-mask / --style-weights one per --style."""
    if not style:
        raise click.ClickException("--style is required (or --model for a trained network)")
    if style_mask and len(style_mask) != len(style):
        raise click.ClickException(f"{len(style_mask)} --style-mask for {len(style)} --style: give one per style")
    if style_weights is not None and len(style_weights) != len(style):
        raise click.ClickException(f"--style-weights has {len(style_weights)} values for {len(style)} --style")
    if content.is_dir():
        raise click.ClickException(f"{content} is a folder: a folder of images needs --model")


def _style_companions(style: tuple[Path, ...], style_mask: tuple[Path, ...], mask: Any, mask_mode: str,
                      quiet: bool) -> tuple[Path, ...]:
    """Without --style-mask, with a content mask named (a file or ``auto``): each style's
    ``NAME_mask.png`` beside it (``NAME_labels.png`` with ``--mask-mode parts``), as ``purify``
    takes a style's companion, when every style has one; said in one line."""
    if style_mask or mask is None or mask == "none" or mask_mode == "labels":
        return style_mask
    from masked_gatys.manifests import find_companion

    found = [find_companion(p, "labels" if mask_mode == "parts" else "mask") for p in style]
    if any(f is None for f in found):
        return style_mask
    if not quiet:
        click.echo(f"style mask: {', '.join(str(f) for f in found)} beside the style (--style-mask names "
                   "another)", err=True)
    return tuple(f for f in found if f is not None)


class _ProgressBar:
    """``stylize``'s callback: a tqdm bar (made at the first iteration, so set-up errors print alone)
    with the objective's terms, and the ``--save-every`` images."""

    def __init__(self, output: Path, save_every: int, quiet: bool) -> None:
        self.output, self.save_every, self.quiet = output, save_every, quiet
        self.bar: Any = None

    def __call__(self, p: Any) -> bool:
        if self.bar is None and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total_steps, desc="stylize", unit="it", file=sys.stderr, dynamic_ncols=True)
        if self.bar is not None:
            if p.n_scales > 1:
                self.bar.set_description(f"stylize {p.scale + 1}/{p.n_scales} {p.size[1]}x{p.size[0]}",
                                         refresh=False)
            self.bar.update(p.step - self.bar.n)
            shown = {"total": f"{p.total:.4g}"}
            shown.update({_short(k): f"{v:.3g}" for k, v in p.terms.items()})
            self.bar.set_postfix(shown, refresh=False)
        if self.save_every and p.step % self.save_every == 0:
            from masked_gatys.image import save_image

            # a signal now waits for the write: raised inside the atomic write's set-up it would
            # leave the temporary file behind
            with deferred_interrupts():
                save_image(p.best_image[:1].detach().cpu(),
                           self.output.with_name(f"{self.output.stem}_{p.step:04d}.png"),
                           metadata={"iteration": p.step, "scale": p.scale, "total": p.total})
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _in_content_mode(image: Any, content: Any, colour: str | None) -> Any:
    """``image`` as one grey channel where ``colour`` keeps the content grey (grey in, grey out)."""
    from masked_gatys.colour import keeps_grey, luminance
    from masked_gatys.image import load_image

    content_img = load_image(content) if not hasattr(content, "shape") else content
    return luminance(image) if keeps_grey(colour, content_img) else image


def _write_result(result: Any, content: Path, style: tuple[Path, ...], output: Path, log_path: Path | None,
                  bits: str, quiet: bool, implicit: bool = False) -> None:
    """The image (with its parameters in the PNG) and the log; on an interrupt, the exit code for it."""
    from masked_gatys.image import save_image

    metadata = {"software": "masked-gatys", "parameters": result.config.to_dict(),
                "weights": result.weights.to_dict(), "total": result.total, "terms": result.terms,
                "content": str(content), "style": [str(p) for p in style] if len(style) > 1 else str(style[0]),
                "mask": {"source": result.mask_source, "segmenter": result.segmenter}}
    with deferred_interrupts():  # a Ctrl-C or SIGTERM now waits until the files are written
        save_image(_in_content_mode(result.image, content, result.config.colour), output, metadata=metadata,
                   bits=int(bits))
        if log_path is not None:
            write_json_atomic(result.to_dict(), log_path)
        if result.mask_source == "segmenter" and result.labels is not None:
            _write_companions(result.labels[0], content, output, implicit)
    if result.interrupted:
        click.echo(f"interrupted after {result.n_iter} iterations: wrote the best image so far to {output}",
                   err=True)
        sys.exit(interrupted_exit_code())
    if not quiet:
        why = {"stalled": ", stalled", "time_limit": ", time limit reached"}.get(result.stop_reason, "")
        click.echo(f"wrote {output} (objective {result.total:.5g}, {result.n_iter} iterations{why}, "
                   f"{result.seconds:.1f} s, weights {result.weights.name})", err=True)


def _write_companions(labels: Any, content: Path, output: Path, implicit: bool = False) -> None:
    """The segmenter's ``OUT_labels.png`` and ``OUT_mask.png`` beside ``output`` (atomic writes), and the
    run's one notice that the masks are the segmenter's."""
    from masked_gatys.eyes.segment import write_companions

    lab, msk = write_companions(labels, output, output.parent)
    why = "an eye without --mask: --mask auto" if implicit else "--mask auto"
    click.echo(f"masks for {content} made by the eye-part segmenter ({why}): wrote {lab} and {msk}; "
               "give --mask PATH to use your own, --mask none for none", err=True)


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
                    quiet: bool, colour: str | None = None) -> None:
    """``stylize FOLDER --model``: purify's machinery with one network (batched, resumable, a
    manifest); an image that cannot be read is recorded as failed and the rest go on."""
    from masked_gatys.purify import PurifyConfig, purify

    if output is None:
        raise click.ClickException("a folder of images needs -o OUTPUT_FOLDER")
    for label, folder in (("the input folder", content),
                          ("the --mask folder", mask if isinstance(mask, Path) else None)):
        if folder is not None and output.resolve() == Path(folder).resolve():
            raise click.ClickException(f"the output folder {output} is {label} {folder}; choose another")
    if isinstance(mask, Path) and not mask.is_dir():
        raise click.ClickException(f"--mask {mask}: with a folder of images, give a folder of masks")
    source = content if not isinstance(mask, Path) else _folder_items(content, mask, output)
    # --mask auto / none: purify's own mask handling (no --mask, or a folder: its default, auto)
    extra = {"mask": mask} if isinstance(mask, str) else {}
    config = PurifyConfig(method=str(model), device=device, pupil_shift=False, colour=colour, **extra)
    report = purify(source, output, config=config)
    if not quiet:
        click.echo(f"wrote {report.done} images to {output} ({report.skipped} already done, {report.failed} "
                   f"failed; manifest: {report.manifest})", err=True)
    if report.failed and not report.done and not report.skipped:
        first = next(r["status"] for r in report.records if r["status"] != "done")
        raise click.ClickException(f"every image failed ({report.failed}); the first: "
                                   f"{first.removeprefix('failed: ')}")


def _run_model(content: Path, mask: Path | None, output: Path | None, model: Path, device: str, bits: str,
               quiet: bool, colour: str | None = None) -> None:
    """``--model``: a trained network over CONTENT (an image or a folder). Its warnings (the resize
    notice outside the trained sizes) print once each, as they come (cli._common.warnings_as_lines)."""
    device = resolve_device(device)
    if content.is_dir():
        _stylize_folder(content, mask, output, model, device, quiet, colour)
        return
    from masked_gatys.checkpoints import SHIPPED, load_model
    from masked_gatys.image import load_image, save_image
    from masked_gatys.masks import load_mask
    from masked_gatys.purify_methods import shipped_for

    output = output or Path(f"{content.stem}_stylized.png")
    check_writable_output(output)
    companions = list(zip(("segmenter labels", "segmenter mask"), _companions(output))) if mask == "auto" else []
    check_outputs([("-o", output), *companions], [("content", content), ("--mask", mask if isinstance(mask, Path)
                                                                          else None), ("--model", model)])
    image = load_image(content)
    named = str(model)
    if named in SHIPPED and not model.is_file():  # a shipped network: the one of the eye's layout
        model = shipped_for(str(model), image)[0]
    net = load_model(model, device=device)
    attention, labels = None, None
    if mask == "auto":
        from masked_gatys.eyes.segment import mask_image, segment

        labels = segment(image)[0]
        if not bool((labels >= 2).any()):
            raise click.ClickException(f"the segmenter finds no iris in {content} (a closed eye?); give "
                                       "--mask PATH or --mask none")
        attention = mask_image(labels)
    elif isinstance(mask, Path):
        regions = load_mask(mask)
        if tuple(regions.masks.shape[-2:]) != tuple(image.shape[-2:]):
            raise click.ClickException(f"mask {mask} is {tuple(regions.masks.shape[-2:])[::-1]} (WxH) but "
                                       f"{content} is {tuple(image.shape[-2:])[::-1]}")
        attention = regions.region("attention")
    out = net(image, attention)
    with deferred_interrupts():
        save_image(_in_content_mode(out.detach().cpu(), image, colour), output,
                   metadata={"software": "masked-gatys", "model": named, "checkpoint": model.name,
                             "mask": {"source": "segmenter" if labels is not None else
                                      "given" if isinstance(mask, Path) else "none"}}, bits=int(bits))
        if labels is not None:
            _write_companions(labels, content, output)
    if not quiet:
        click.echo(f"wrote {output}", err=True)
