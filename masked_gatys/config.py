"""Settings shared by several commands, and defaults the CLI reads: no torch here.

The command line reads these for its ``--help`` (which must not import
torch), and the library's config dataclasses build on them, so each default
is written once: :class:`ObjectiveSettings` (the loss: term weights, VGG
weights, deepest layer) is shared by ``StylizeConfig``, ``PurifyConfig`` and
``TrainConfig``; :class:`OptimizerSettings` by the first two.
``StylizeConfig`` lives here whole (``masked_gatys.stylize`` re-exports it).

>>> DEMO_SIZE, DEMO_MAX_LAYER
((48, 72), 'relu3_4')
>>> StylizeConfig(tv_weight=1.0).tv_weight == ObjectiveSettings(tv_weight=1.0).tv_weight
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["ObjectiveSettings", "OptimizerSettings", "StylizeConfig", "OPTIMIZERS", "STOP_TOL", "STOP_WINDOW",
           "MIN_SIZE", "shared_settings", "field_defaults", "DEMO_CONTENT", "DEMO_STYLE", "DEMO_SIZE", "DEMO_ITERATIONS",
           "DEMO_MAX_LAYER"]

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


@dataclass(frozen=True)
class ObjectiveSettings:
    """The loss: how the terms are weighted, which VGG weights, how deep (stylize, purify, train)."""

    content_weight: float | None = None
    """None: the preset's (see ``masked_gatys.objective.PRESETS``)."""
    style_weight: float | None = None
    tv_weight: float | None = None
    weights: str | None = None
    """VGG-19 weights: a path, ``imagenet`` or ``random``; None: ``$MASKED_GATYS_WEIGHTS``, else
    the cached ImageNet file, else random weights (``encoder.default_weights``; never downloads)."""
    max_layer: str | None = "auto"
    """Restrict the preset to layers no deeper than this; ``auto`` (the default): as deep as the
    weights go, so a partial weights file works as it is; None: the preset's own layers."""


OPTIMIZERS = ("plbfgs", "lbfgs", "lbfgs-b", "adam")


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimizer's settings (stylize, and purify with a preset)."""

    optimizer: str = "plbfgs"
    history_size: int = 10
    """L-BFGS's history (``plbfgs``, ``lbfgs``, ``lbfgs-b``)."""
    init: str = "content"
    """``content``, ``noise`` or the path of an image."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**64):
            raise ValueError(f"seed must be an integer in the range 0..2**64-1, got {self.seed!r}")


def shared_settings(config: Any, kind: type) -> dict[str, Any]:
    """The fields of the settings class ``kind`` (:class:`ObjectiveSettings`, ...) from ``config``,
    as keyword arguments for another config that shares them.

    >>> shared_settings(StylizeConfig(tv_weight=2.0, iterations=5), ObjectiveSettings)["tv_weight"]
    2.0
    """
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(kind)}


def field_defaults(kind: type) -> Mapping[str, Any]:
    """Each field's default (the CLI's defaults, read without torch).

    >>> field_defaults(StylizeConfig)["iterations"]
    300
    """
    return {f.name: f.default for f in dataclasses.fields(kind)}


OPTIMIZERS = ("plbfgs", "lbfgs", "lbfgs-b", "adam")

#: The relative-decrease stop: a pass ends once its objective fell by less than STOP_TOL
#: (relative) over the last STOP_WINDOW iterations (docs/tuning.md, "Stopping").
STOP_TOL = 1e-4
STOP_WINDOW = 20
#: Coarse-to-fine: the coarsest pass's longest side (benchmarks/README.md, "Time to quality").
MIN_SIZE = 128


@dataclass(frozen=True)
class StylizeConfig(ObjectiveSettings, OptimizerSettings):
    """Every setting of a stylization run; the CLI's defaults are read from here.

    The loss settings (weights of the terms, VGG weights, deepest layer) are
    :class:`ObjectiveSettings`, the optimizer's :class:`OptimizerSettings`, shared with
    ``PurifyConfig`` (and the first with ``TrainConfig``).

    >>> StylizeConfig().optimizer in OPTIMIZERS
    True
    """

    preset: str | None = None
    """``gatys``, ``masked`` or ``regional``; None: ``masked`` when a binary
    mask is given, ``regional`` for a label mask, else ``gatys``."""
    size: int | None = None
    """Longest side of the working image; None: the content's size, scaled down to
    ``stylize.DEFAULT_SIZE_CAP`` (512) if larger; 0: the content's own size whatever it is."""
    iterations: int = 300
    device: str = "auto"
    weights_format: str = "auto"
    arch: str = "vgg19"
    pooling: str = "max"
    mask_mode: str = "binary"
    resize_masks: bool = False
    lr: float = 0.02
    """Adam's learning rate."""
    normalize: bool = True
    style_weights: tuple[float, ...] | None = None
    """Blend of several style images (one weight each, normalised to sum 1); None: equal."""
    style_scale: float = 1.0
    """The style image's longest side relative to the working content image's."""
    content_layers: tuple[str, ...] | None = None
    """Content terms on these layers (``relu4_2`` or ``relu4_2@region``) instead of the preset's."""
    style_layers: tuple[str, ...] | None = None
    """Style terms on these layers, in every region the preset styles, instead of the preset's."""
    content_layer_weights: tuple[float, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None
    """Relative, normalised to sum 1 within each region (default equal)."""
    time_limit: float | None = None
    """Seconds; once spent, the run stops with the best image so far (checked after each iteration)."""
    stop_tol: float = STOP_TOL
    """Stop a scale once its objective fell by less than this fraction over the last
    ``stop_window`` iterations; 0 switches the rule off."""
    stop_window: int = STOP_WINDOW
    scales: int | None = None
    """Coarse-to-fine passes; None: chosen by size (see :func:`scale_sizes`), 1: off."""
    min_size: int = MIN_SIZE
    """Longest side of the coarsest pass."""
    scale_iterations: tuple[int, ...] | None = None
    """Iterations of each pass, coarsest first; None: ``iterations`` at the working size and
    ``iterations // passes`` at each coarser one (:func:`split_iterations`)."""
    original_colors: str | None = None
    """``luminance`` (transfer luminance only, keep the content's chroma) or ``histogram``
    (match the style's colours to the content's first); per region with masks."""
    subject: str = "auto"
    """``eye``, ``general`` or ``auto``: ``masked`` on eye images runs ``masked-eye`` (style
    per part: iris and pupil apart); ``auto`` decides per batch with
    ``masked_gatys.eyes.pupil.looks_like_eye`` (a pupil-like dark blob in an iris-sized
    attention region, for at least half the batch)."""

    def __post_init__(self) -> None:
        OptimizerSettings.__post_init__(self)
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.size is not None and self.size != 0 and self.size < 16:
            raise ValueError(f"size must be at least 16 pixels (0: the content's own size), got {self.size}")
        if self.mask_mode not in ("binary", "labels", "parts"):
            raise ValueError(f"unknown mask mode {self.mask_mode!r}: use binary, labels or parts")
        for name in ("style_weights", "content_layers", "style_layers", "content_layer_weights",
                     "style_layer_weights", "scale_iterations"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if not (math.isfinite(self.style_scale) and self.style_scale > 0):
            raise ValueError(f"style_scale must be a number > 0, got {self.style_scale}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {self.time_limit}")
        if not (0 <= self.stop_tol < 1) or self.stop_window < 1:
            raise ValueError(f"stop_tol must be in [0, 1) and stop_window >= 1, got {self.stop_tol}, "
                             f"{self.stop_window}")
        if self.scales is not None and self.scales < 1:
            raise ValueError(f"scales must be >= 1, got {self.scales}")
        if self.min_size < 16:
            raise ValueError(f"min_size must be at least 16 pixels, got {self.min_size}")
        if self.scale_iterations is not None and (any(n < 0 for n in self.scale_iterations)
                                                  or not self.scale_iterations):
            raise ValueError(f"scale_iterations must be counts >= 0, got {self.scale_iterations}")
        if self.original_colors not in (None, "luminance", "histogram"):
            raise ValueError(f"unknown original_colors {self.original_colors!r}: use luminance or histogram")
        if self.subject not in ("auto", "eye", "general"):
            raise ValueError(f"unknown subject {self.subject!r}: use auto, eye or general")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
