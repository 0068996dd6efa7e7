"""``masked-gatys train``: train a feed-forward network on the style objective.

The defaults are :class:`masked_gatys.config.TrainConfig`'s, read from the
torch-free dataclass (also for ``--help``), so they are written once. With ``--resume`` the run continues with
the checkpoint's settings; options given on the command line override those
that do not change the computation (``--iterations``, ``-o``, ``--device``,
``--sample-every`` ...) and any other difference is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from masked_gatys.cli._common import MAX_SEED, CommaList, Size, check_writable_output, error_boundary, resolve_device
from masked_gatys.config import LEGACY_SETTINGS, TrainConfig, field_defaults  # torch-free: a fast --help

_T = field_defaults(TrainConfig)  # the defaults shown; None options take them in TrainConfig


def _short(name: str) -> str:
    """``style/relu3_1@attention`` -> ``style@attention`` (the bar groups terms by kind and region)."""
    if "/" not in name:
        return name
    kind, rest = name.split("/", 1)
    return f"{kind}@{rest.split('@', 1)[1]}" if "@" in rest else kind


@click.command("train")
@click.option("--content", "content_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of content images NAME.png with masks NAME_mask.png.")
@click.option("--render", type=click.IntRange(min=1), default=None,
              show_default=f"{_T['render']} when --content is not given", help="Render N real-domain eyes as content instead.")
@click.option("--style", default=None,
              show_default=_T["style"], help="Style image, or 'rendered' for a rendered synthetic eye.")
@click.option("--style-mask", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              show_default="STYLE_mask.png beside it", help="Mask of the style image.")
@click.option("--net", type=click.Choice(["johnson", "purifier"]), default=None,
              show_default=_T["net"], help="Network: purifier (Yan et al.) or johnson (Johnson et al.).")
@click.option("--width", type=click.IntRange(min=1), default=None, show_default=str(_T["width"]),
              help="Base channel count.")
@click.option("--blocks", type=click.IntRange(min=0), default=None,
              show_default="johnson 5, purifier 4", help="Residual blocks.")
@click.option("--preset", type=click.Choice(["masked", "masked-eye", "gatys"]), default=None,
              show_default=f"{_T['preset']}, the paper's",
              help="Objective preset (masked-eye: masked with the iris and the pupil styled apart, and with "
                   "part labels the skin and the sclera).")
@click.option("--sizes", type=CommaList(Size(min=1)), default=None,
              metavar="HxW,HxW,...", help="Train on several sizes (each step draws one); overrides --size.")
@click.option("--styles", type=click.IntRange(min=1), default=None,
              show_default=f"{_T['styles']}: the synthetic eye at gaze (0, 0)",
              help="Rendered style eyes to draw from.")
@click.option("--style-pool", type=click.IntRange(min=0), default=None,
              show_default=f"{_T['style_pool']}: the --styles eyes, one drawn per step",
              help="Render N synthetic style eyes at each size and judge each content eye against the one "
                   "that looks most like it (as purify --style-pool).")
@click.option("--parts/--no-parts", default=None, show_default="on" if _T["parts"] else "off",
              help="With the masked preset, match skin, sclera, iris and pupil apart where the eyes are "
                   "labelled (rendered eyes, NAME_labels.png).")
@click.option("--mask-jitter", type=click.FloatRange(0, 1), default=None,
              show_default=f"{_T['mask_jitter']}: the exact masks",
              help="Probability that a training eye's mask, as the network gets it, is perturbed (dilated or "
                   "eroded by 1-2 px, shifted by 1-2 px, or holed); the objective keeps the true mask, so the "
                   "network learns to follow the image, not the mask.")
@click.option("--layout", type=click.Choice(["unity", "default", "mpiigaze", "nir"]), default=None,
              show_default="the original renders (unity, outdoor look)",
              help="Render the content and style eyes in this layout (eyes.layouts): its framing, gaze ranges "
                   "and looks; the style eyes in its clean look.")
@click.option("--look", type=click.Choice(["any", "outdoor", "webcam", "photo", "nir"]), default=None,
              show_default=f"{_T['look']}: one of the layout's real looks per eye", help="The content eyes' look, with --layout.")
@click.option("--net-masks", type=click.Choice(["truth", "segmenter"]), default=None,
              show_default=f"{_T['net_masks']}: the renderer's",
              help="The masks the network is given: the renderer's, or the shipped segmenter's of each eye (what "
                   "purify --mask auto gives it in use); the objective keeps the true ones.")
@click.option("--init", default=None, help="Start from this checkpoint's weights (a file, or johnson / "
              "purifier for the shipped ones) with a fresh optimizer.")
@click.option("--size", type=Size(min=1), default=None, metavar="HxW",
              show_default="x".join(map(str, _T["size"])), help="Training image size.")
@click.option("--iterations", type=click.IntRange(min=0), default=None,
              help="Total training steps (a resumed run continues to this count).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, show_default=str(_T["batch_size"]),
              help="Batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              show_default=f"{_T['lr']:.0e}, the paper's".replace("e-0", "e-"), help="Adam learning rate.")
@click.option("--content-weight", type=click.FloatRange(min=0), default=None, help="Content weight alpha.")
@click.option("--style-weight", type=click.FloatRange(min=0), default=None, help="Style weight beta.")
@click.option("--tv-weight", type=click.FloatRange(min=0), default=None, help="Total-variation weight.")
@click.option("--weights", default=None,
              show_default="$MASKED_GATYS_WEIGHTS, else the cached ImageNet file, else random (README)",
              help="Loss-network weights: a file, 'imagenet' or 'random'.")
@click.option("--max-layer", default=None, show_default=f"{_T['max_layer']}; with --resume the checkpoint's",
              help="Deepest VGG layer the objective may use, e.g. relu3_4; auto: as deep as the weights go "
                   "(a partial weights file works as it is).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Seed of initialisation, data order and dropout.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--val", type=click.IntRange(min=0), default=None, show_default=str(_T["val"]),
              help="Held-out validation images.")
@click.option("--val-every", type=click.IntRange(min=0), default=None,
              show_default=str(_T["val_every"]), help="Validate every N steps (0: only at the end).")
@click.option("--sample-every", type=click.IntRange(min=0), default=None,
              show_default=str(_T["sample_every"]), help="Write a sample sheet every N steps (0: never).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=None,
              help="Write the checkpoint every N steps as well as at the end.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              show_default="the --resume file", help="Checkpoint to write.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Continue training from this checkpoint, exactly.")
@click.pass_context
@error_boundary
def train_command(ctx: click.Context, **options: Any) -> None:
    """Train a feed-forward network (johnson or purifier) on the style objective.

    \b
    masked-gatys train --render 256 --net purifier --weights vgg19.pth \\
        --max-layer relu3_4 --iterations 2000 -o purifier.pt
    masked-gatys train --resume purifier.pt --iterations 4000
    torchrun --nproc-per-node 2 -m masked_gatys train --render 256 -o purifier.pt

    Under torchrun each rank takes its share of every (global) --batch-size
    batch and DistributedDataParallel averages the gradients; rank 0 writes.
    """
    from masked_gatys import distributed
    from masked_gatys.train import train

    env = distributed.from_env()  # under torchrun: DistributedDataParallel, rank 0 writes
    device = env.device(options.pop("device")) if env is not None else resolve_device(options.pop("device"))
    config = _settings(options, device)
    check_writable_output(Path(config.output or ""))
    progress = _ProgressBar(config.iterations, env is None or env.rank == 0)
    if env is not None:
        distributed.init(env, device)
    try:
        result = train(config, callback=progress)
    finally:
        progress.close()
        if env is not None:
            distributed.finish()
    if env is not None and env.rank != 0:
        return
    val = result.val_history[-1]["total"] if result.val_history else None
    message = f"wrote {result.checkpoint} (step {result.step}"
    if val is not None:
        message += f", validation objective {val:.4g}"
    click.echo(message + f", {result.seconds:.1f} s)")


def _settings(options: dict[str, Any], device: str) -> TrainConfig:
    """The run's settings: the options given, over a resumed checkpoint's settings if any."""
    from masked_gatys.checkpoints import read_checkpoint

    resume: Path | None = options.pop("resume")
    output: Path | None = options.pop("output")
    given = {k: v for k, v in options.items() if v is not None}
    if given.get("content_dir") is not None and given.get("render") is not None:
        raise click.UsageError("give --content DIR or --render N, not both")
    if given.get("layout") == "default":
        given["layout"] = "unity"
    if "look" in given and "layout" not in given and resume is None:
        raise click.UsageError("--look needs --layout")
    if "content_dir" in given:
        given["content_dir"] = str(given["content_dir"])
    if "style_mask" in given:
        given["style_mask"] = str(given["style_mask"])
    if given.get("style") not in (None, "rendered") and not Path(given["style"]).is_file():
        raise click.BadParameter(f"{given['style']}: no such file (or use 'rendered')", param_hint="--style")
    if resume is not None:
        checkpoint = read_checkpoint(resume)
        saved = checkpoint.get("train_config")
        if not saved:
            raise click.ClickException(f"{resume}: the checkpoint holds no training settings to resume")
        # the layers it was trained with: its recorded max_layer (None, the old default, if it has none)
        # and what settings added since then did before them (no parts, no style pool)
        saved = {"max_layer": checkpoint.get("max_layer"), **LEGACY_SETTINGS, **saved}
        try:
            base = TrainConfig.from_dict(saved).to_dict()
        except (ValueError, TypeError) as exc:
            raise click.ClickException(f"{resume}: the checkpoint's training settings are unusable: {exc}") from None
        base.update(given)
        base.update(resume=str(resume), output=str(output or resume))
    else:
        if output is None:
            raise click.UsageError("give -o/--output for the checkpoint")
        base = dict(given, output=str(output))
    base["device"] = device
    return TrainConfig.from_dict(base)


class _ProgressBar:
    """train's callback: a tqdm bar of loss, last validation and the terms by kind and region
    (made at the first step, so set-up errors print no empty bar; only where ``shown``)."""

    def __init__(self, total: int, shown: bool) -> None:
        self.total, self.shown = total, shown
        self.bar: Any = None
        self.last_val: float | None = None

    def __call__(self, p: Any) -> None:
        if not self.shown:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=p.step - 1, unit="step", dynamic_ncols=True, leave=True)
        groups: dict[str, float] = {}
        for name, value in p.terms.items():
            key = _short(name)
            groups[key] = groups.get(key, 0.0) + value
        if p.val is not None:
            self.last_val = p.val
        postfix = {"loss": f"{p.loss:.4g}", **({"val": f"{self.last_val:.4g}"} if self.last_val is not None else {}),
                   **{k: f"{v:.3g}" for k, v in groups.items()}}
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(p.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
