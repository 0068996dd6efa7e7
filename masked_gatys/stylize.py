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

import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import torch
from torch import Tensor

from masked_gatys.encoder import LoadedWeights, VGGEncoder, WeightsIdentity, layer_names, resolve_weights
from masked_gatys.errors import ObjectiveError
from masked_gatys.objective import Objective, ObjectiveConfig, preset as make_preset

__all__ = ["StylizeConfig", "StylizeResult", "Progress", "Problem", "stylize", "prepare", "OPTIMIZERS"]

PathLike = Union[str, os.PathLike]
ImageLike = Union[PathLike, Tensor]

OPTIMIZERS = ("plbfgs", "lbfgs", "lbfgs-b", "adam")


@dataclass(frozen=True)
class StylizeConfig:
    """Every setting of a stylization run; the CLI's defaults are read from here.

    >>> StylizeConfig().optimizer in OPTIMIZERS
    True
    """

    preset: str | None = None
    """``gatys``, ``masked`` or ``regional``; None: ``masked`` when a binary
    mask is given, ``regional`` for a label mask, else ``gatys``."""
    size: int | None = None
    """Longest side of the working image; None keeps the content image's size."""
    iterations: int = 300
    optimizer: str = "plbfgs"
    content_weight: float | None = None
    """None: the preset's (see ``masked_gatys.objective.PRESETS``)."""
    style_weight: float | None = None
    tv_weight: float | None = None
    init: str = "content"
    """``content``, ``noise`` or the path of an image."""
    seed: int = 0
    device: str = "auto"
    weights: str | None = None
    """None: ``$MASKED_GATYS_WEIGHTS``, else ``imagenet``; or ``random`` or a path."""
    weights_format: str = "auto"
    arch: str = "vgg19"
    pooling: str = "max"
    mask_mode: str = "binary"
    resize_masks: bool = False
    max_layer: str | None = None
    """Restrict the preset to layers no deeper than this; ``auto``: as deep as the weights go."""
    history_size: int = 10
    lr: float = 0.02
    """Adam's learning rate."""
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.size is not None and self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if self.mask_mode not in ("binary", "labels"):
            raise ValueError(f"unknown mask mode {self.mask_mode!r}: use binary or labels")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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

    def to_dict(self) -> dict:
        return {
            "parameters": self.config.to_dict(),
            "objective": self.objective.to_dict(),
            "weights": self.weights.to_dict(),
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
    regions: Any
    style_regions: Any
    config: StylizeConfig
    objective_config: ObjectiveConfig
    device: torch.device


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for, but it is not available on this machine")
    return device


def _as_image(value: ImageLike, label: str) -> Tensor:
    from masked_gatys.image import load_image

    if isinstance(value, Tensor):
        image = value.detach().float()
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"the {label} image must be (B, 3, H, W), got {tuple(value.shape)}")
        if not torch.isfinite(image).all():
            raise ValueError(f"the {label} image holds NaN or infinite values")
        return image.clamp(0, 1)
    return load_image(value)


def _working_size(shape: tuple[int, int], size: int | None) -> tuple[int, int]:
    h, w = shape
    if size is None:
        return h, w
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == hw:
        return image
    from masked_gatys.image import resize_to

    return resize_to(image, hw)


def _regions(mask, style_mask, content: Tensor, style: Tensor, cfg: StylizeConfig):
    """Content and style Regions at the images' own sizes (None without a mask).

    Paths, binary mask tensors and Regions all go through the same checks
    (``masked_gatys.masks.load_mask_pair``).
    """
    if mask is None:
        if style_mask is not None:
            raise ValueError("a style mask was given without a content mask (--mask)")
        return None, None
    from masked_gatys.masks import load_mask_pair

    return load_mask_pair(mask, style_mask, mode=cfg.mask_mode, content_size=tuple(content.shape[-2:]),
                          style_size=tuple(style.shape[-2:]), resize=cfg.resize_masks)


def objective_config_for(cfg: StylizeConfig, regions, weights: LoadedWeights) -> ObjectiveConfig:
    """The objective a config asks for, given the masks and the weights at hand."""
    name = cfg.preset
    if name is None:
        if regions is None:
            name = "gatys"
        elif set(regions.names) == {"attention", "background"}:
            name = "masked"
        else:
            name = "regional"
    if name == "masked" and (regions is None or not {"attention", "background"} <= set(regions.names)):
        raise ValueError("the masked preset needs a binary mask (--mask) giving attention and background "
                         "regions; with --mask-mode labels use --preset regional")
    if name == "regional" and regions is None:
        raise ValueError("the regional preset needs a mask (--mask)")
    max_layer = cfg.max_layer
    if max_layer == "auto":
        order = layer_names(cfg.arch)
        full = make_preset(name, regions=regions.names if regions is not None else None)
        deepest = max(full.layers, key=order.index)
        max_layer = weights.deepest if order.index(deepest) > order.index(weights.deepest) else None
        if max_layer is not None:
            relus = [n for n in order[: order.index(max_layer) + 1] if n.startswith("relu")]
            max_layer = relus[-1]
    return make_preset(name, content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                       tv_weight=cfg.tv_weight, max_layer=max_layer,
                       regions=regions.names if regions is not None else None, normalize=cfg.normalize)


def _initial_image(cfg: StylizeConfig, content: Tensor) -> Tensor:
    if cfg.init == "content":
        return content.clone()
    if cfg.init == "noise":
        generator = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(content.shape, generator=generator).to(content.device)
    from masked_gatys.image import load_image

    init = load_image(cfg.init)
    return _resize(init, tuple(content.shape[-2:])).expand_as(content.cpu()).clone().to(content.device)


def prepare(content: ImageLike, style: ImageLike, *, mask=None, style_mask=None,
            config: StylizeConfig | None = None, encoder: VGGEncoder | None = None) -> Problem:
    """Load the inputs and build the objective, without optimising.

    Content, style and masks may be paths or tensors (content ``(B, 3, H, W)``
    for a batch of independent problems; masks ``(B, 1, H, W)`` binary
    tensors or :class:`~masked_gatys.masks.Regions`). The style image is
    resized so its longest side matches the working content image.

    >>> import torch, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     p = prepare(torch.rand(1, 3, 24, 32), torch.rand(1, 3, 40, 40),
    ...                 config=StylizeConfig(weights="random", max_layer="relu2_1", device="cpu"))
    >>> p.objective(p.x0).total.shape
    torch.Size([1])
    """
    cfg = config or StylizeConfig()
    device = _device(cfg.device)
    content_img = _as_image(content, "content")
    style_img = _as_image(style, "style")
    if style_img.shape[0] != 1:
        raise ValueError("give one style image")
    regions, style_regions = _regions(mask, style_mask, content_img, style_img, cfg)
    hw = _working_size(tuple(content_img.shape[-2:]), cfg.size)
    style_hw = _working_size(tuple(style_img.shape[-2:]), max(hw))
    content_img, style_img = _resize(content_img, hw), _resize(style_img, style_hw)
    if regions is not None:
        regions = regions.resized(hw) if tuple(regions.masks.shape[-2:]) != hw else regions
        style_regions = (style_regions.resized(style_hw)
                         if tuple(style_regions.masks.shape[-2:]) != style_hw else style_regions)
        if regions.masks.shape[0] == 1 and content_img.shape[0] > 1:
            regions = regions.expand(content_img.shape[0])

    if encoder is not None:
        weights = LoadedWeights(None, encoder.identity, encoder.arch, encoder.deepest_available)
    else:
        weights = resolve_weights(cfg.weights, arch=cfg.arch, seed=cfg.seed, weights_format=cfg.weights_format)
    objective_cfg = objective_config_for(cfg, regions, weights)
    if encoder is None:
        if weights.state is None:
            warnings.warn(f"using random VGG weights ({weights.identity.name}): for tests and offline "
                          "trials; images look right only with ImageNet weights", stacklevel=2)
        encoder = VGGEncoder(objective_cfg.layers, weights, pooling=cfg.pooling)
    encoder = encoder.to(device)
    content_img, style_img = content_img.to(device), style_img.to(device)
    objective = Objective(encoder, objective_cfg, style=style_img, style_regions=style_regions)
    objective.set_content(content_img, regions)
    x0 = _initial_image(cfg, content_img)
    return Problem(objective, x0, encoder, content_img, style_img, regions, style_regions, cfg,
                   objective_cfg, device)


def _record(value, batch: int) -> tuple[Any, dict[str, Any]]:
    totals = value.total.detach().tolist()
    names = list(value.terms)
    rows = torch.stack([value.terms[n].detach() for n in names]).tolist() if names else []
    if batch == 1:
        return totals[0], {n: r[0] for n, r in zip(names, rows)}
    return totals, {n: r for n, r in zip(names, rows)}


def stylize(content: ImageLike, style: ImageLike, *, mask=None, style_mask=None,
            config: StylizeConfig | None = None, callback: Callable[[Progress], Any] | None = None,
            encoder: VGGEncoder | None = None) -> StylizeResult:
    """Stylize ``content`` after ``style``, optionally per mask region.

    ``callback(Progress)`` runs after every iteration; returning True stops
    early. Ctrl-C (KeyboardInterrupt) stops the run and returns the best
    image so far with ``interrupted=True``. A NaN or infinite objective
    raises :class:`~masked_gatys.errors.ObjectiveError`.

    Returns a :class:`StylizeResult` whose ``image`` is ``(B, 3, H, W)`` on
    the CPU, the best image seen (lowest objective inside [0, 1]).
    """
    from masked_gatys.optim import minimize

    cfg = config or StylizeConfig()
    problem = prepare(content, style, mask=mask, style_mask=style_mask, config=cfg, encoder=encoder)
    objective, x0 = problem.objective, problem.x0
    batch = x0.shape[0]
    device = problem.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    best_x = x0.detach().clone()
    best_total = torch.full((batch,), math.inf, device=device)
    last: dict[str, Any] = {"value": None}
    history: list[dict] = []
    state = {"n_eval": 0}
    start = time.perf_counter()

    def fun(x: Tensor) -> Tensor:
        nonlocal best_x, best_total
        value = objective(x)
        state["n_eval"] += 1
        total = value.total.detach()
        # Only images inside the box count as "best": torch's L-BFGS line
        # search may evaluate points outside it before clamping.
        inside = ((x >= 0) & (x <= 1)).flatten(1).all(dim=1)
        better = inside & (total < best_total)
        best_total = torch.where(better, total, best_total)
        best_x = torch.where(better.view(-1, 1, 1, 1), x.detach(), best_x)
        last["value"] = value
        return value.total

    def on_iteration(info) -> bool:
        value = last["value"]
        total, terms = _record(value, batch)
        totals = total if isinstance(total, list) else [total]
        if not all(math.isfinite(t) for t in totals):
            bad = [n for n, v in terms.items() if not all(math.isfinite(t) for t in (v if isinstance(v, list) else [v]))]
            raise ObjectiveError(f"the objective became {totals} at iteration {info.iteration}"
                                 f" (non-finite terms: {', '.join(bad) or 'none'}); try smaller weights or "
                                 "another optimizer")
        history.append({"iteration": info.iteration, "n_eval": state["n_eval"], "total": total, "terms": terms})
        if callback is not None:
            memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
            progress = Progress(info.iteration, cfg.iterations, totals[0] if batch == 1 else sum(totals) / batch,
                                terms if batch == 1 else {k: sum(v) / batch for k, v in terms.items()},
                                state["n_eval"], time.perf_counter() - start, best_x, memory)
            return bool(callback(progress))
        return False

    interrupted, reason, n_iter = False, "max_iter", 0
    options: dict[str, Any] = {}
    if cfg.optimizer in ("plbfgs", "lbfgs", "lbfgs-b"):
        options["history_size"] = cfg.history_size
    elif cfg.optimizer == "adam":
        options["lr"] = cfg.lr
    try:
        if cfg.iterations > 0:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(cfg.seed)
                result = minimize(fun, x0, method=cfg.optimizer, max_iter=cfg.iterations, lower=0.0,
                                  upper=1.0, callback=on_iteration, **options)
            reason = result.reason[0] if result.reason else "max_iter"
            n_iter = int(torch.as_tensor(result.n_iter).max())
            fun(result.x.detach().clamp(0, 1))  # the final iterate counts too
    except KeyboardInterrupt:
        interrupted, reason = True, "interrupted"
        n_iter = len(history)
    if not torch.isfinite(best_total).all():  # nothing evaluated inside the box yet
        best_x = x0.detach().clamp(0, 1)
    image = best_x.detach().clamp(0, 1)
    with torch.no_grad():
        final = objective(image)
    total, terms = _record(final, batch)
    return StylizeResult(
        image=image.cpu(), total=total, terms=terms, history=history, weights=problem.encoder.identity,
        seconds=time.perf_counter() - start, n_iter=n_iter, n_eval=state["n_eval"], interrupted=interrupted,
        stop_reason=reason, config=cfg, objective=problem.objective_config)
