"""The per-image pipeline: load, build the objective, optimise, report.

>>> import torch, warnings
>>> content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
>>> cfg = StylizeConfig(weights="random", iterations=3, max_layer="relu2_2", device="cpu")
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     result = stylize(content, style, config=cfg)
>>> result.image.shape, len(result.history) <= 3, result.weights.name
(torch.Size([1, 3, 32, 32]), True, 'random(seed=0)')
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import torch
from torch import Tensor

from masked_gatys.device import resolve_device
from masked_gatys.colour import keeps_grey, prepare_colours, with_chroma
from masked_gatys.config import (  # re-exported: the settings and their defaults live in the torch-free config
    MIN_SIZE, OPTIMIZERS, STOP_TOL, STOP_WINDOW, StylizeConfig)
from masked_gatys.encoder import (LoadedWeights, VGGEncoder, WeightsIdentity, auto_max_layer, check_image_size,
                                  resolve_weights, warn_if_random)
from masked_gatys.errors import MaskError, ObjectiveError
from masked_gatys.eyes.labels import parts_regions
from masked_gatys.image import as_image_batch, load_image, resize_to
from masked_gatys.masks import Regions, load_mask_pair
from masked_gatys.objective import Objective, ObjectiveConfig, preset as make_preset, with_layers
from masked_gatys.optim import minimize
from masked_gatys.stylize_masks import (  # re-exported
    MASK_WORDS, _content_masks, _content_name, clip_given_mask, content_masks, eye_labels, looks_like_eyes,
    style_masks_from_segmenter)

__all__ = ["StylizeConfig", "StylizeResult", "Progress", "Problem", "stylize", "prepare", "content_masks",
           "MASK_WORDS", "OPTIMIZERS", "STOP_TOL", "STOP_WINDOW", "MIN_SIZE"]

PathLike = Union[str, os.PathLike]
ImageLike = Union[PathLike, Tensor]

#: Coarse-to-fine: the longest side from which the default (``scales=None``) turns it on
#: (benchmarks/README.md, "Time to quality"); the coarsest pass's side is config.MIN_SIZE.
AUTO_SCALES_FROM = 256


@dataclass(frozen=True)
class Progress:
    """What a progress callback receives after each iteration."""

    iteration: int
    max_iter: int
    total: float
    terms: dict[str, float]
    n_eval: int
    elapsed: float
    best_image: Tensor = field(repr=False)
    """The best image so far, ``(B, 3, H, W)`` on the run's device; copy before keeping."""
    memory: int = 0
    """Peak CUDA memory in bytes (0 on CPU)."""
    scale: int = 0
    """Coarse-to-fine pass, 0 = the coarsest; ``iteration`` and ``max_iter`` count within it."""
    n_scales: int = 1
    size: tuple[int, int] = (0, 0)
    """``(h, w)`` of this pass."""
    step: int = 0
    """Iterations done over all passes."""
    total_steps: int = 0
    """The iteration budget over all passes."""


@dataclass(frozen=True)
class StylizeResult:
    """The outcome of :func:`stylize`; ``to_dict()`` is what ``--log`` writes."""

    image: Tensor
    total: float
    terms: dict[str, float]
    history: list[dict]
    weights: WeightsIdentity
    seconds: float
    n_iter: int
    n_eval: int
    interrupted: bool
    stop_reason: str
    config: StylizeConfig
    objective: ObjectiveConfig
    mask_source: str = "none"
    """Where the content's mask came from: ``given`` (a path, tensor or regions), ``segmenter``
    (``mask="auto"``, or an eye without a mask: :func:`content_masks`) or ``none``."""
    labels: Tensor | None = field(default=None, repr=False)
    """The segmenter's part labels ``(B, H, W)`` (0 skin, 1 sclera, 2 iris, 3 pupil) at the
    content's own size when ``mask_source == "segmenter"``, else None."""
    segmenter: str | None = None
    """Which segmenter made the masks: ``shipped`` (``masked_gatys/data/segmenter.pt``) or the
    model given; None when none did."""

    def to_dict(self) -> dict:
        return {
            "parameters": self.config.to_dict(),
            "objective": self.objective.to_dict(),
            "weights": self.weights.to_dict(),
            "mask": {"source": self.mask_source, "segmenter": self.segmenter},
            "result": {"total": self.total, "terms": self.terms, "seconds": self.seconds,
                       "n_iter": self.n_iter, "n_eval": self.n_eval, "interrupted": self.interrupted,
                       "stop_reason": self.stop_reason},
            "history": self.history,
        }


@dataclass
class Problem:
    """An objective ready to minimise over images in [0, 1], and where to start."""

    objective: Objective
    x0: Tensor
    encoder: VGGEncoder
    content: Tensor
    style: Tensor
    regions: Regions | None
    style_regions: Regions | None
    config: StylizeConfig
    objective_config: ObjectiveConfig
    device: torch.device
    mask_source: str = "none"
    """As :attr:`StylizeResult.mask_source`."""
    labels: Tensor | None = None
    """As :attr:`StylizeResult.labels`."""


#: the longest side of the working image when no size is asked for (larger contents are scaled down)
DEFAULT_SIZE_CAP = 512


def _working_size(shape: tuple[int, int], size: int | None) -> tuple[int, int]:
    h, w = shape
    if size == 0 or (size is None and max(h, w) <= DEFAULT_SIZE_CAP):
        return h, w  # the content's own size
    if size is None:
        size = DEFAULT_SIZE_CAP
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == hw:
        return image

    return resize_to(image, hw)


@dataclass
class _Inputs:
    """The loaded inputs at their own sizes, before any resizing to a pass."""

    content: Tensor
    styles: list[Tensor]
    regions: Regions | None
    style_regions: list[Regions | None]
    chroma: Tensor | None = None
    """The content's (Cb, Cr) for ``original_colors="luminance"``."""
    mask_source: str = "none"
    labels: Tensor | None = None
    segmenter: str | None = None
    eye_labels: Tensor | None = None
    """The segmenter's labels of the content where masked-eye splits a binary mask (its pupil)."""
    style_labels: list[Tensor | None] | None = None
    """The same for each style image."""


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _load_inputs(content: ImageLike, style, mask, style_mask, cfg: StylizeConfig, segmenter: Any = None) -> _Inputs:
    """Load content, one or several styles and the masks; apply the colour mode.

    Paths, binary mask tensors and Regions all go through the same checks
    (``masked_gatys.masks.load_mask_pair``), one pair per style image;
    ``mask`` ``"auto"`` / ``"none"`` / None as :func:`content_masks`.
    """
    content_img = as_image_batch(content, "content")
    mask, mask_source, labels = _content_masks(content, content_img, mask, cfg, segmenter, style_mask)
    styles = [as_image_batch(s, "style") for s in _as_list(style)]
    if not styles:
        raise ValueError("give a style image")
    if any(s.shape[0] not in (1, content_img.shape[0]) for s in styles):
        raise ValueError("give one style image at a time (a list for several), or a batch of one style "
                         f"per content image ({content_img.shape[0]})")
    if cfg.style_weights is not None and len(cfg.style_weights) != len(styles):
        raise ValueError(f"{len(cfg.style_weights)} style weights for {len(styles)} style images")
    style_masks = _as_list(style_mask)
    segmented: list[Tensor] = []  # the style eyes' labels where the segmenter made their masks
    if mask_source == "segmenter" and not style_masks:  # the style eyes' parts, as the content's
        style_masks, segmented = style_masks_from_segmenter(styles, cfg.mask_mode, segmenter)
    regions, style_regions = None, [None] * len(styles)
    split_labels: tuple[Tensor | None, list[Tensor | None] | None] = (None, None)
    if mask is None:
        if style_masks:
            raise ValueError("a style mask was given without a content mask (--mask)")
    else:
        if len(style_masks) not in (0, len(styles)):
            raise ValueError(f"{len(style_masks)} style masks for {len(styles)} style images: give one per style")
        mode = cfg.mask_mode
        if mode == "parts":  # eye part labels in the renderer's colours: the named eye regions
            mask, style_masks, mode = parts_regions(mask), [parts_regions(m) for m in style_masks], "labels"
        style_regions = []
        for k, image in enumerate(styles):
            regions, sr = load_mask_pair(mask, style_masks[k] if style_masks else None, mode=mode,
                                         content_size=tuple(content_img.shape[-2:]),
                                         style_size=tuple(image.shape[-2:]), resize=cfg.resize_masks)
            style_regions.append(sr)
        if regions.names == ("background", "attention") and cfg.preset in (None, "masked", "masked-eye"):
            # masked-eye splits the attention by the segmenter's pupil, and a given mask past the
            # iris is clipped to it (else iris texture, rings and lobed pupils are painted there)
            content_labels = labels if mask_source == "segmenter" else None
            eye = cfg.preset == "masked-eye" or _is_eye(cfg, content_img, regions)
            if mask_source == "given" and (eye or cfg.subject == "auto"):
                content_labels = eye_labels(content_img, segmenter)
                # a mask beside the eye does not look like one: the segmenter's iris may
                eye = eye or looks_like_eyes(content_img, content_labels)
            if eye and mask_source == "given":
                regions, content_labels = clip_given_mask(content_img, regions, segmenter=segmenter,
                                                          name=_content_name(content, 0, 1), labels=content_labels)
            if eye:
                split_labels = (content_labels, [None if sr is None or bool((sr.masks == 1).all()) else
                                                 segmented[k] if segmented else eye_labels(image, segmenter)
                                                 for k, (image, sr) in enumerate(zip(styles, style_regions))])
    chroma = None
    colour_mode = cfg.original_colors
    if colour_mode is None and keeps_grey(cfg.colour, content_img):
        colour_mode = "luminance"  # grey in, grey out: the content's chroma is neutral, so the output is grey
    if colour_mode is not None:
        content_img, styles, chroma = prepare_colours(content_img, styles, regions, style_regions,
                                                      mode=colour_mode)
    who = None if labels is None else ("shipped" if segmenter is None else
                                        str(segmenter) if isinstance(segmenter, (str, os.PathLike)) else "given")
    return _Inputs(content_img, styles, regions, style_regions, chroma, mask_source, labels, who, *split_labels)


def _is_eye(cfg: StylizeConfig, content: Tensor | None, regions) -> bool:
    if cfg.subject != "auto":
        return cfg.subject == "eye"
    if content is None or regions is None or "attention" not in regions.names:
        return False
    from masked_gatys.eyes.pupil import looks_like_eye  # deferred: scipy.ndimage costs 0.8 s to import

    attention = regions.region("attention").expand(content.shape[0], -1, -1, -1)
    votes = [looks_like_eye(content[b:b + 1].cpu(), attention[b:b + 1].cpu()) for b in range(content.shape[0])]
    return 2 * sum(votes) >= len(votes)


def objective_config_for(cfg: StylizeConfig, regions, weights: LoadedWeights,
                         content: Tensor | None = None, content_regions=None) -> ObjectiveConfig:
    """The objective a config asks for, given the masks, the weights and (for ``subject``) the content."""
    name = cfg.preset
    if name is None:
        if regions is None:
            name = "gatys"
        elif {"attention", "background"} <= set(regions.names):  # a binary mask, or an eye's parts
            name = "masked"
        else:
            name = "regional"
    if name in ("masked", "masked-eye") and (regions is None or not {"attention", "background"} <= set(regions.names)):
        raise ValueError("the masked preset needs a binary mask (--mask) giving attention and background "
                         "regions; with --mask-mode labels use --preset regional")
    if name == "regional" and regions is None:
        raise ValueError("the regional preset needs a mask (--mask)")
    if name == "masked" and _is_eye(cfg, content, content_regions if content_regions is not None else regions):
        name = "masked-eye"
    max_layer = cfg.max_layer
    if max_layer == "auto" and cfg.content_layers is not None and cfg.style_layers is not None:
        max_layer = None  # the preset's layers are all replaced
    if max_layer == "auto":
        full = make_preset(name, regions=regions.names if regions is not None else None)
        max_layer = auto_max_layer(full.layers, weights.deepest, cfg.arch)
    config = make_preset(name, content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                         tv_weight=cfg.tv_weight, max_layer=max_layer,
                         regions=regions.names if regions is not None else None, normalize=cfg.normalize)
    if cfg.content_layers is None and cfg.style_layers is None:
        if cfg.content_layer_weights is not None or cfg.style_layer_weights is not None:
            raise ValueError("layer weights need the layers they weigh (--content-layers, --style-layers)")
        return config
    # Chosen layers are used as given: deeper than the weights go is the encoder's error,
    # naming the deepest available layer.
    return with_layers(config, content_layers=cfg.content_layers, style_layers=cfg.style_layers,
                       content_layer_weights=cfg.content_layer_weights,
                       style_layer_weights=cfg.style_layer_weights)


def _initial_image(cfg: StylizeConfig, content: Tensor) -> Tensor:
    if cfg.init == "content":
        return content.clone()
    if cfg.init == "noise":
        generator = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(content.shape, generator=generator).to(content.device)

    init = load_image(cfg.init)
    return _resize(init, tuple(content.shape[-2:])).expand_as(content.cpu()).clone().to(content.device)


def _split_eye(image: Tensor, regions: Regions, labels: Tensor | None) -> Regions:
    """``background, attention, iris, pupil`` of eye images: the attention split by the segmenter's
    pupil (``labels``), or, without labels, by the pupil detector's."""
    from masked_gatys.eyes.parts import eye_regions, segmenter_pupil  # deferred: scipy.ndimage (eyes.pupil)

    attention = regions.region("attention")
    pupil = None if labels is None else segmenter_pupil(image, attention.to(image.device), labels.to(image.device))
    return eye_regions(image, attention, pupil)


def _build(inputs: _Inputs, hw: tuple[int, int], cfg: StylizeConfig, encoder: VGGEncoder | None,
           weights: LoadedWeights | None = None) -> Problem:
    """The problem at working size ``hw``: images and masks resized, targets computed.

    Every coarse-to-fine pass is built here, so masks and targets follow the
    same path at every size.
    """
    device = resolve_device(cfg.device)
    content_img = _resize(inputs.content, hw)
    styles, style_regions = [], []
    style_side = max(16, round(cfg.style_scale * max(hw)))
    for image, sr in zip(inputs.styles, inputs.style_regions):
        style_hw = _working_size(tuple(image.shape[-2:]), style_side)
        styles.append(_resize(image, style_hw))
        if sr is not None and sr.size != style_hw:
            sr = sr.resized(style_hw)
        style_regions.append(sr)
    regions = inputs.regions
    if regions is not None:
        regions = regions.resized(hw) if regions.size != hw else regions
        if regions.masks.shape[0] == 1 and content_img.shape[0] > 1:
            regions = regions.expand(content_img.shape[0])

    if encoder is not None:
        weights = LoadedWeights(None, encoder.identity, encoder.arch, encoder.deepest_available)
    elif weights is None:
        weights = resolve_weights(cfg.weights, arch=cfg.arch, seed=cfg.seed, weights_format=cfg.weights_format)
    # the subject is told from the inputs at their own size, so every pass agrees
    objective_cfg = objective_config_for(cfg, regions, weights, inputs.content, inputs.regions)
    if objective_cfg.preset == "masked-eye" and "pupil" not in regions.names:
        # the segmenter's pupil (else the one the detector finds) splits the attention into iris and pupil
        regions = _split_eye(content_img, regions, inputs.eye_labels)
        # no style mask (every region the whole style image, as warned): so it stays, for the
        # eye's parts too; split, its background would be empty
        style_labels = inputs.style_labels or [None] * len(styles)
        style_regions = [None if sr is None else
                         type(sr).whole(sr.masks.shape[0], *sr.size, names=regions.names, dtype=sr.masks.dtype)
                         if bool((sr.masks == 1).all()) else _split_eye(image, sr, lab)
                         for image, sr, lab in zip(styles, style_regions, style_labels)]
    check_image_size(hw, objective_cfg.layers, cfg.arch, label="image")
    for image in styles:
        check_image_size(tuple(image.shape[-2:]), objective_cfg.layers, cfg.arch, label="style image")
    if encoder is None:
        warn_if_random(weights, stacklevel=4)  # the one wording (encoder)
        encoder = VGGEncoder(objective_cfg.layers, weights, pooling=cfg.pooling)
    encoder = encoder.to(device)
    content_img = content_img.to(device)
    styles = [image.to(device) for image in styles]
    objective = Objective(encoder, objective_cfg, style=styles, style_regions=style_regions,
                          style_weights=cfg.style_weights)
    objective.set_content(content_img, regions)
    x0 = _initial_image(cfg, content_img)
    return Problem(objective, x0, encoder, content_img, styles[0], regions, style_regions[0], cfg,
                   objective_cfg, device)


def scale_sizes(shape: tuple[int, int], cfg: StylizeConfig) -> list[tuple[int, int]]:
    """The ``(h, w)`` of each coarse-to-fine pass, coarsest first; the last is the working size.

    Longest sides grow geometrically from ``cfg.min_size`` to the working
    size's. ``scales=None`` gives one pass below ``AUTO_SCALES_FROM`` px (so eye
    crops up to 144x240 are untouched), else one pass per doubling from
    ``min_size`` (measured faster at 256 px; benchmarks/README.md).

    >>> scale_sizes((300, 400), StylizeConfig(scales=3, min_size=100))
    [(75, 100), (150, 200), (300, 400)]
    >>> scale_sizes((60, 100), StylizeConfig(scales=3, min_size=128))
    [(60, 100)]
    """
    hw = _working_size(shape, cfg.size)
    side = max(hw)
    n = cfg.scales
    if n is None:
        n = 1 + round(math.log2(side / cfg.min_size)) if side >= AUTO_SCALES_FROM else 1
    if n == 1 or side <= cfg.min_size:
        return [hw]
    sides = [round(cfg.min_size * (side / cfg.min_size) ** (k / (n - 1))) for k in range(n)]
    out = []
    for s in sides[:-1]:
        size = _working_size(hw, s)
        if not out or size != out[-1]:
            out.append(size)
    return out + [hw]


def split_iterations(cfg: StylizeConfig, n_scales: int) -> list[int]:
    """Iterations of each pass, coarsest first.

    ``scale_iterations`` when given (its last entry repeats for missing
    passes); otherwise the working size's pass runs all ``iterations`` and each
    coarser pass ``iterations // n_scales`` more. (Until the fourth session of 2026-12-02 the budget
    was shared out equally; at 512 px that left the last pass too short to reach
    the baseline's objective: benchmarks/README.md, "Time to quality".)

    >>> split_iterations(StylizeConfig(iterations=300), 2), split_iterations(StylizeConfig(iterations=300), 3)
    ([150, 300], [100, 100, 300])
    """
    if cfg.scale_iterations is not None:
        given = list(cfg.scale_iterations)
        if len(given) > n_scales:
            return given[-n_scales:]
        return given + [given[-1]] * (n_scales - len(given))
    return [cfg.iterations // n_scales] * (n_scales - 1) + [cfg.iterations]


def iteration_bound(cfg: StylizeConfig) -> int:
    """The most iterations a run of ``cfg`` can take, whatever the image's size.

    >>> iteration_bound(StylizeConfig(iterations=300, scales=3)), iteration_bound(StylizeConfig(iterations=10, scales=1))
    (500, 10)
    """
    # scales=None gives one pass per doubling from min_size: far fewer than 16 for any image
    return sum(split_iterations(cfg, cfg.scales or 16))


def prepare(content: ImageLike, style, *, mask=None, style_mask=None,
            config: StylizeConfig | None = None, encoder: VGGEncoder | None = None,
            segmenter: Any = None) -> Problem:
    """Load the inputs and build the objective at the working size, without optimising.

    Content, style and masks may be paths or tensors (content ``(B, 3, H, W)``
    for a batch of independent problems; masks ``(B, 1, H, W)`` binary
    tensors or :class:`~masked_gatys.masks.Regions`). ``style`` may be a list
    of images (with ``style_mask`` a list of one mask per style), blended by
    ``config.style_weights``. Each style image is resized so its longest side
    is ``config.style_scale`` times the working content image's.

    >>> import torch, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     p = prepare(torch.rand(1, 3, 24, 32), torch.rand(1, 3, 40, 40),
    ...                 config=StylizeConfig(weights="random", max_layer="relu2_1", device="cpu"))
    >>> p.objective(p.x0).total.shape
    torch.Size([1])
    """
    cfg = config or StylizeConfig()
    resolve_device(cfg.device)
    inputs = _load_inputs(content, style, mask, style_mask, cfg, segmenter)
    hw = _working_size(tuple(inputs.content.shape[-2:]), cfg.size)
    problem = _build(inputs, hw, cfg, encoder)
    problem.mask_source, problem.labels = inputs.mask_source, inputs.labels
    return problem


def _record(value, batch: int) -> tuple[Any, dict[str, Any]]:
    totals = value.total.detach().tolist()
    names = list(value.terms)
    rows = torch.stack([value.terms[n].detach() for n in names]).tolist() if names else []
    if batch == 1:
        return totals[0], {n: r[0] for n, r in zip(names, rows)}
    return totals, {n: r for n, r in zip(names, rows)}


@dataclass
class _Run:
    """The state of a run across its passes."""

    cfg: StylizeConfig
    callback: Callable[[Progress], Any] | None
    start: float
    sizes: list[tuple[int, int]]
    budgets: list[int]
    history: list[dict] = field(default_factory=list)
    n_eval: int = 0
    n_iter: int = 0
    reason: str = "max_iter"
    interrupted: bool = False
    finished: bool = False
    """No further pass runs (time limit, callback, Ctrl-C)."""


def _stalled(totals: list[float], tol: float, window: int) -> bool:
    """The relative-decrease stop: less than ``tol`` fall over the last ``window`` iterations.

    >>> _stalled([10.0, 9.0, 8.999], 1e-3, 1), _stalled([10.0, 9.0, 8.999], 1e-3, 2)
    (True, False)
    """
    if tol <= 0 or len(totals) <= window:
        return False
    before, now = totals[-1 - window], totals[-1]
    return before - now <= tol * max(abs(before), 1e-12)


def _nonfinite_start(value, config: ObjectiveConfig) -> str:
    """Why the objective is NaN or infinite at the starting image, naming the terms."""
    raw = [n for n, v in value.terms.items() if not torch.isfinite(v).all()]
    if raw:
        return (f"the objective is not finite at the start: non-finite terms {', '.join(raw)}; likely cause: "
                "NaN or infinite values in the VGG weights file or in an input image")
    weights = {t.name: (config.content_weight if t.kind == "content" else config.style_weight) * t.weight
               for t in config.terms}
    weights["tv"] = config.tv_weight
    big = [f"{n} x {weights.get(n, 1.0):g}" for n, v in value.terms.items()
           if not torch.isfinite(weights.get(n, 1.0) * v).all()]
    return (f"the objective is not finite at the start: {', '.join(big) or 'the weighted sum'} overflows; "
            "likely cause: a weight too large (--content-weight, --style-weight, --tv-weight)")


class _PassMonitor:
    """One pass's watcher: the objective for the optimizer (keeping the best image inside
    [0, 1] it saw) and the per-iteration callback (history, progress, the stop rules)."""

    def __init__(self, problem: Problem, x0: Tensor, k: int, run: _Run, colour) -> None:
        self.problem, self.x0, self.k, self.run, self.colour = problem, x0, k, run, colour
        self.batch, self.max_iter = x0.shape[0], run.budgets[k]
        self.best_x = x0.detach().clamp(0, 1).clone()
        self.best_total = torch.full((self.batch,), math.inf, device=problem.device)
        self.last = None
        self.totals_seen: list[float] = []

    def fun(self, x: Tensor) -> Tensor:
        value = self.problem.objective(x)
        if self.last is None and not torch.isfinite(value.total).all():  # the start: say why
            raise ObjectiveError(_nonfinite_start(value, self.problem.objective_config))
        self.run.n_eval += 1
        total = value.total.detach()
        # Only images inside the box count as "best": torch's L-BFGS line
        # search may evaluate points outside it before clamping.
        inside = ((x >= 0) & (x <= 1)).flatten(1).all(dim=1)
        better = inside & (total < self.best_total)
        self.best_total = torch.where(better, total, self.best_total)
        self.best_x = torch.where(better.view(-1, 1, 1, 1), x.detach(), self.best_x)
        self.last = value
        return value.total

    def on_iteration(self, info) -> bool:
        run, batch = self.run, self.batch
        total, terms = _record(self.last, batch)
        totals = total if isinstance(total, list) else [total]
        if not all(math.isfinite(t) for t in totals):
            bad = [n for n, v in terms.items() if not all(math.isfinite(t) for t in (v if isinstance(v, list) else [v]))]
            raise ObjectiveError(f"the objective became {totals} at iteration {info.iteration}"
                                 f" (non-finite terms: {', '.join(bad) or 'none'}); try smaller weights or "
                                 "another optimizer")
        run.n_iter += 1
        record = {"iteration": info.iteration, "n_eval": run.n_eval, "total": total, "terms": terms}
        if len(run.sizes) > 1:
            record.update(scale=self.k, size=list(self.x0.shape[-2:]))
        run.history.append(record)
        elapsed = time.perf_counter() - run.start
        if run.callback is not None and run.callback(self._progress(info.iteration, totals, terms, elapsed)):
            run.reason, run.finished = "callback", True
            return True
        self.totals_seen.append(sum(totals))
        if run.cfg.time_limit is not None and elapsed >= run.cfg.time_limit:
            run.reason, run.finished = "time_limit", True
            return True
        if _stalled(self.totals_seen, run.cfg.stop_tol, run.cfg.stop_window):
            run.reason = "stalled"
            return True
        return False

    def _progress(self, iteration: int, totals: list[float], terms: dict[str, Any], elapsed: float) -> Progress:
        run, batch, device = self.run, self.batch, self.problem.device
        memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
        shown = self.best_x if self.colour is None else self.colour(self.best_x)
        return Progress(iteration, self.max_iter, totals[0] if batch == 1 else sum(totals) / batch,
                        terms if batch == 1 else {k_: sum(v) / batch for k_, v in terms.items()},
                        run.n_eval, elapsed, shown, memory, self.k, len(run.sizes),
                        tuple(self.x0.shape[-2:]), run.n_iter, sum(run.budgets))

    def best(self) -> Tensor:
        if not torch.isfinite(self.best_total).all():  # nothing evaluated inside the box yet
            return self.x0.detach().clamp(0, 1)
        return self.best_x.detach().clamp(0, 1)


def _run_pass(problem: Problem, x0: Tensor, k: int, run: _Run, colour) -> Tensor:
    """Optimise one pass from ``x0``; returns the best image inside [0, 1] it saw."""
    cfg, device = run.cfg, problem.device
    monitor = _PassMonitor(problem, x0, k, run, colour)
    options: dict[str, Any] = {}
    if cfg.optimizer in ("plbfgs", "lbfgs", "lbfgs-b"):
        options["history_size"] = cfg.history_size
    elif cfg.optimizer == "adam":
        options["lr"] = cfg.lr
    try:
        if monitor.max_iter > 0:
            run.reason = "max_iter"
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(cfg.seed)
                result = minimize(monitor.fun, x0, method=cfg.optimizer, max_iter=monitor.max_iter, lower=0.0,
                                  upper=1.0, callback=monitor.on_iteration, **options)
            if run.reason not in ("callback", "time_limit", "stalled"):
                run.reason = result.reason[0] if result.reason else "max_iter"
            monitor.fun(result.x.detach().clamp(0, 1))  # the final iterate counts too
    except KeyboardInterrupt:
        run.interrupted, run.reason, run.finished = True, "interrupted", True
    return monitor.best()


def stylize(content: ImageLike, style, *, mask=None, style_mask=None,
            config: StylizeConfig | None = None, callback: Callable[[Progress], Any] | None = None,
            encoder: VGGEncoder | None = None, segmenter: Any = None) -> StylizeResult:
    """Stylize ``content`` after ``style``, optionally per mask region.

    ``style`` is one image or a list of them (blended by
    ``config.style_weights``, with ``style_mask`` one mask per style), or
    a batch ``(B, 3, H, W)`` of one style per content image (style ``i``
    for content ``i``: e.g. :class:`~masked_gatys.eyes.styles.StylePool`'s
    nearest eyes).
    ``callback(Progress)`` runs after every iteration; returning True stops
    early. Ctrl-C (KeyboardInterrupt) stops the run and returns the best
    image so far with ``interrupted=True``; so does ``config.time_limit``
    (``stop_reason="time_limit"``). A pass also ends once its objective
    stalls (``stop_tol``, ``stop_window``; ``stop_reason="stalled"``). With
    several passes (``config.scales``) each starts from the previous one's
    best image, upsampled. A NaN or infinite objective raises
    :class:`~masked_gatys.errors.ObjectiveError`.

    ``mask`` is a path, a tensor or regions; ``"auto"``: the eye-part
    segmenter makes the content's masks (``segmenter``: None for the shipped
    network, or a model :func:`masked_gatys.eyes.segment.segment` takes);
    ``"none"``: no mask; None: ``auto`` for an eye, else no mask
    (:func:`content_masks` says when). The result's ``mask_source`` and
    ``labels`` record what the segmenter made.

    Returns a :class:`StylizeResult` whose ``image`` is ``(B, 3, H, W)`` on
    the CPU: the best image seen in the last pass run (lowest objective
    inside [0, 1]), at the working size.
    """
    cfg = config or StylizeConfig()
    resolve_device(cfg.device)
    inputs = _load_inputs(content, style, mask, style_mask, cfg, segmenter)
    sizes = scale_sizes(tuple(inputs.content.shape[-2:]), cfg)
    run = _Run(cfg, callback, 0.0, sizes, split_iterations(cfg, len(sizes)))
    colour = None
    problem, best, weights = None, None, None
    for k, hw in enumerate(sizes):
        if run.finished:
            break
        if encoder is None and weights is None:
            weights = resolve_weights(cfg.weights, arch=cfg.arch, seed=cfg.seed, weights_format=cfg.weights_format)
        try:
            problem = _build(inputs, hw, cfg, encoder, weights)
        except MaskError as exc:
            if k == len(sizes) - 1:
                raise
            raise MaskError(f"{exc} -- at coarse-to-fine pass {k + 1} of {len(sizes)} ({hw[1]}x{hw[0]} px): "
                            "raise --min-size or use fewer --scales") from None
        encoder = problem.encoder  # built once, used by every pass
        if k == 0:
            run.start = time.perf_counter()
            if problem.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(problem.device)
        x0 = problem.x0 if best is None else _resize(best, hw).to(problem.device)
        if inputs.chroma is not None:
            chroma = _resize_any(inputs.chroma, hw).to(problem.device)
            colour = lambda x, c=chroma: with_chroma(x, c)  # noqa: E731
        best = _run_pass(problem, x0, k, run, colour)
    if problem is None or tuple(problem.x0.shape[-2:]) != sizes[-1]:
        problem = _build(inputs, sizes[-1], cfg, encoder, weights)  # stopped before the last pass
        best = _resize(best, sizes[-1]).to(problem.device) if best is not None else problem.x0
    image = best.detach().clamp(0, 1)
    with torch.no_grad():
        final = problem.objective(image)
    total, terms = _record(final, image.shape[0])
    if inputs.chroma is not None:
        image = with_chroma(image, _resize_any(inputs.chroma, sizes[-1]).to(image.device))
    return StylizeResult(
        image=image.cpu(), total=total, terms=terms, history=run.history, weights=problem.encoder.identity,
        seconds=time.perf_counter() - run.start, n_iter=run.n_iter, n_eval=run.n_eval,
        interrupted=run.interrupted, stop_reason=run.reason, config=cfg, objective=problem.objective_config,
        mask_source=inputs.mask_source, labels=inputs.labels, segmenter=inputs.segmenter)


def _resize_any(t: Tensor, hw: tuple[int, int]) -> Tensor:
    """Bilinear resize of any-channel maps (chroma), unchanged at the same size."""
    if tuple(t.shape[-2:]) == tuple(hw):
        return t
    return torch.nn.functional.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=True)
