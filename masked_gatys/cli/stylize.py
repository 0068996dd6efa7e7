"""``masked-gatys stylize``: per-image optimisation, or a trained network with ``--model``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import check_writable_output, error_boundary, resolve_device
from masked_gatys.files import write_json_atomic  # noqa: F401  (re-exported for other commands)

# Defaults are defined once, in StylizeConfig; reading them here needs no torch import.
_DEFAULTS: dict[str, Any] = {}


def _default(name: str) -> Any:
    if not _DEFAULTS:
        from masked_gatys.stylize import StylizeConfig

        _DEFAULTS.update({f.name: f.default for f in dataclasses.fields(StylizeConfig)})
    return _DEFAULTS[name]


def _short(name: str) -> str:
    """``style/relu3_1@attention`` -> ``s3_1a`` for a progress bar that fits."""
    if "/" not in name:
        return name
    kind, rest = name.split("/", 1)
    layer, region = rest.split("@")
    return f"{kind[0]}{layer[4:]}{'' if region == 'whole' else region[0]}"


@click.command("stylize")
@click.argument("content", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--style", "style", type=click.Path(path_type=Path), help="Style image (not with --model).")
@click.option("--mask", type=click.Path(path_type=Path), help="Content mask: white = attention region "
              "(or a label PNG with --mask-mode labels). With --model and a folder of images: a folder of masks.")
@click.option("--style-mask", type=click.Path(path_type=Path),
              help="Style mask. Without it the whole style image is the target of every region.")
@click.option("--mask-mode", type=click.Choice(["binary", "labels"]), default=lambda: _default("mask_mode"),
              show_default="binary")
@click.option("--resize-masks", is_flag=True, help="Resize masks whose size differs from their image's.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output PNG (a folder with --model and a folder of images). Default: CONTENT_stylized.png.")
@click.option("--preset", type=click.Choice(["gatys", "masked", "regional"]),
              help="Objective preset. Default: masked with a binary mask, regional with labels, else gatys.")
@click.option("--size", type=int, default=lambda: _default("size"),
              help="Longest side of the working image. Default: the content image's own size.")
@click.option("--iterations", type=int, default=lambda: _default("iterations"), show_default="300")
@click.option("--optimizer", type=click.Choice(["plbfgs", "lbfgs", "lbfgs-b", "adam"]),
              default=lambda: _default("optimizer"), show_default="plbfgs",
              help="plbfgs: projected L-BFGS on the device; lbfgs: torch L-BFGS clamped (the paper's); "
                   "lbfgs-b: scipy; adam: clamped Adam.")
@click.option("--weights", help="imagenet, random, or a state-dict file (torchvision or caffe format). "
              "Default: $MASKED_GATYS_WEIGHTS, else imagenet.")
@click.option("--weights-format", type=click.Choice(["auto", "torchvision", "caffe"]), default="auto",
              show_default=True)
@click.option("--max-layer", help="Restrict the preset to layers no deeper than this (e.g. relu3_4), "
              "or 'auto' for as deep as the weights go.")
@click.option("--arch", type=click.Choice(["vgg19", "vgg16"]), default=lambda: _default("arch"),
              show_default="vgg19", help="Loss network.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max", show_default=True)
@click.option("--history-size", type=int, default=lambda: _default("history_size"), show_default="10",
              help="L-BFGS history (plbfgs, lbfgs).")
@click.option("--lr", type=float, default=lambda: _default("lr"), show_default="0.02", help="Adam's step size.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", type=int, default=lambda: _default("seed"), show_default="0")
@click.option("--content-weight", type=float, help="Default: the preset's.")
@click.option("--style-weight", type=float, help="Default: the preset's.")
@click.option("--tv-weight", type=float, help="Default: the preset's.")
@click.option("--init", default=lambda: _default("init"), show_default="content",
              help="content, noise, or an image file.")
@click.option("--save-every", type=int, default=0, help="Write the best image so far every N iterations.")
@click.option("--log", "log_path", type=click.Path(path_type=Path),
              help="Write parameters and the per-iteration history as JSON.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--model", type=click.Path(path_type=Path),
              help="Apply a trained network checkpoint instead of optimising.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@error_boundary
def stylize_command(content: Path, style: Path | None, mask: Path | None, style_mask: Path | None,
                    mask_mode: str, resize_masks: bool, output: Path | None, preset: str | None,
                    size: int | None, iterations: int, optimizer: str, weights: str | None,
                    weights_format: str, max_layer: str | None, arch: str, pooling: str, history_size: int,
                    lr: float, device: str, seed: int,
                    content_weight: float | None, style_weight: float | None, tv_weight: float | None,
                    init: str, save_every: int, log_path: Path | None, bits: str, model: Path | None,
                    quiet: bool) -> None:
    """Stylize CONTENT after --style, matching style per mask region.

    \b
    masked-gatys stylize eye.png --style unity.png --mask eye_mask.png \\
        --style-mask unity_mask.png -o out.png
    masked-gatys stylize eyes/ --model purifier.pt --mask masks/ -o purified/
    """
    for label, path in (("content", content), ("style", style), ("mask", mask), ("style mask", style_mask),
                        ("model", model)):
        if path is not None and not Path(path).exists():
            raise click.ClickException(f"{label} not found: {path}")
    if model is not None:
        return _run_model(content, mask, output, model, device, bits, quiet)
    if style is None:
        raise click.ClickException("--style is required (or --model for a trained network)")
    if content.is_dir():
        raise click.ClickException(f"{content} is a folder: a folder of images needs --model")
    output = output or Path(f"{content.stem}_stylized.png")
    check_writable_output(output, inputs=tuple(p for p in (content, style, mask, style_mask) if p))
    if log_path is not None:
        check_writable_output(log_path, inputs=tuple(p for p in (content, style, mask, style_mask) if p))
    if init not in ("content", "noise") and not Path(init).exists():
        raise click.ClickException(f"--init image not found: {init}")
    device = resolve_device(device)

    from masked_gatys.image import save_image
    from masked_gatys.stylize import StylizeConfig, stylize

    config = StylizeConfig(
        preset=preset, size=size, iterations=iterations, optimizer=optimizer, content_weight=content_weight,
        style_weight=style_weight, tv_weight=tv_weight, init=init, seed=seed, device=device, weights=weights,
        weights_format=weights_format, arch=arch, pooling=pooling, mask_mode=mask_mode,
        resize_masks=resize_masks, max_layer=max_layer, history_size=history_size, lr=lr)
    bar = None  # made at the first iteration, so set-up errors print alone

    def on_progress(p) -> bool:
        nonlocal bar
        if bar is None and not quiet:
            from tqdm import tqdm

            bar = tqdm(total=iterations, desc="stylize", unit="it", file=sys.stderr, dynamic_ncols=True)
        if bar is not None:
            bar.update(p.iteration - bar.n)
            shown = {"total": f"{p.total:.4g}"}
            shown.update({_short(k): f"{v:.3g}" for k, v in p.terms.items()})
            bar.set_postfix(shown, refresh=False)
        if save_every and p.iteration % save_every == 0:
            save_image(p.best_image[:1].detach().cpu(), output.with_name(f"{output.stem}_{p.iteration:04d}.png"),
                       metadata={"iteration": p.iteration, "total": p.total})
        return False

    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = stylize(content, style, mask=mask, style_mask=style_mask, config=config,
                             callback=on_progress)
        finally:
            if bar is not None:
                bar.close()
    seen = set()
    for w in caught:  # library warnings, once each, as plain lines
        text = str(w.message)
        if text not in seen and not issubclass(w.category, DeprecationWarning):
            seen.add(text)
            click.echo(f"warning: {text}", err=True)

    metadata = {"software": "masked-gatys", "parameters": result.config.to_dict(),
                "weights": result.weights.to_dict(), "total": result.total, "terms": result.terms,
                "content": str(content), "style": str(style)}
    save_image(result.image, output, metadata=metadata, bits=int(bits))
    if log_path is not None:
        write_json_atomic(result.to_dict(), log_path)
    if result.interrupted:
        click.echo(f"interrupted after {result.n_iter} iterations: wrote the best image so far to {output}",
                   err=True)
        sys.exit(130)
    if not quiet:
        click.echo(f"wrote {output} (objective {result.total:.5g}, {result.n_iter} iterations, "
                   f"{result.seconds:.1f} s, weights {result.weights.name})", err=True)


def _run_model(content: Path, mask: Path | None, output: Path | None, model: Path, device: str, bits: str,
               quiet: bool) -> None:
    device = resolve_device(device)
    from masked_gatys.train import load_model, stylize_folder

    net = load_model(model, device=device)
    if content.is_dir():
        if output is None:
            raise click.ClickException("a folder of images needs -o OUTPUT_FOLDER")
        if output.resolve() == content.resolve():
            raise click.ClickException("the output folder must differ from the input folder")
        output.mkdir(parents=True, exist_ok=True)
        written = stylize_folder(net, content, output, mask_dir=mask)
        if not quiet:
            click.echo(f"wrote {len(written)} images to {output}", err=True)
        return
    from masked_gatys.image import load_image, save_image
    from masked_gatys.masks import load_mask

    output = output or Path(f"{content.stem}_stylized.png")
    check_writable_output(output, inputs=tuple(p for p in (content, mask, model) if p))
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
