"""Settings shared by several commands, and defaults the CLI reads: no torch here.

The command line reads these for its ``--help`` (which must not import
torch), and the library's config dataclasses build on them, so each default
is written once: :class:`ObjectiveSettings` (the loss: term weights, VGG
weights, deepest layer) is shared by ``StylizeConfig``, ``PurifyConfig`` and
``TrainConfig``; :class:`OptimizerSettings` by the first two.
``StylizeConfig`` and ``TrainConfig`` live here whole (``masked_gatys.stylize`` and
``masked_gatys.train`` re-export them).

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

__all__ = ["ObjectiveSettings", "OptimizerSettings", "StylizeConfig", "TrainConfig", "NET_NAMES",
           "LEGACY_SETTINGS", "OPTIMIZERS", "STOP_TOL", "STOP_WINDOW", "MIN_SIZE", "shared_settings",
           "field_defaults", "DEMO_CONTENT", "DEMO_STYLE", "DEMO_SIZE", "DEMO_ITERATIONS", "DEMO_MAX_LAYER"]

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


#: the feed-forward networks' architectures (``masked_gatys.nets.NETS``; a test keeps them equal)
NET_NAMES = ("johnson", "purifier")
# What a checkpoint that predates a setting trained with (it records no value for it).
LEGACY_SETTINGS = {"parts": False, "style_pool": 0, "mask_jitter": 0.0, "layout": None, "look": "any",
                   "net_masks": "truth"}


def _check_setting(name: str, value: Any, annotation: str) -> None:
    """Refuse a setting whose type is not its field's (``int``, ``float | None``, ``tuple[int, int]``, ...)."""
    allowed = {part.strip() for part in annotation.split("|")}
    if value is None and "None" in allowed:
        return
    ok = (("int" in allowed and isinstance(value, int) and not isinstance(value, bool))
          or ("float" in allowed and isinstance(value, (int, float)) and not isinstance(value, bool))
          or ("str" in allowed and isinstance(value, str))
          or ("bool" in allowed and isinstance(value, bool))
          or (any(a.startswith("tuple[int") for a in allowed) and isinstance(value, tuple)
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
          or (any(a.startswith("tuple[tuple") for a in allowed) and isinstance(value, tuple)
              and all(isinstance(v, tuple) for v in value)))
    if not ok:
        raise ValueError(f"setting {name!r} must be {annotation}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig(ObjectiveSettings):
    """Everything a training run depends on; the CLI's defaults come from here.

    The loss settings (term weights, VGG weights, ``max_layer``) are ``StylizeConfig``'s
    (:class:`masked_gatys.config.ObjectiveSettings`): ``max_layer="auto"``, as for ``stylize``,
    is as deep as the weights go, so a partial weights file works as it is.

    ``content_dir`` holds ``NAME.png`` with ``NAME_mask.png``; when it is None,
    ``render`` real-domain eyes are rendered (deterministically from ``seed``).
    ``style="rendered"`` renders a synthetic-domain eye as the style image.
    The last ``val`` content images (sorted by name) are held out for
    validation; rendered validation eyes use their own seeds. ``iterations``
    is the total step count, counted from the start of training (so a resumed
    run continues to it). ``checkpoint_every=0`` writes only at the end.

    >>> TrainConfig(net="johnson", iterations=10).size
    (64, 96)
    """

    net: str = "purifier"
    width: int = 16
    blocks: int | None = None
    content_dir: str | None = None
    render: int = 256
    style: str = "rendered"
    style_mask: str | None = None
    preset: str = "masked"
    size: tuple[int, int] = (64, 96)
    iterations: int = 2000
    batch_size: int = 4
    lr: float = 1e-4
    seed: int = 0
    device: str = "cpu"
    val: int = 8
    val_every: int = 50
    sample_every: int = 0
    sample_dir: str | None = None
    checkpoint_every: int = 0
    output: str | None = None
    resume: str | None = None
    sizes: tuple[tuple[int, int], ...] = ()
    """Several training sizes (HxW buckets; each step draws one): ``render`` eyes are split
    among them and each gets ``val`` held-out eyes. Empty: ``size`` alone."""
    styles: int = 1
    """Rendered style eyes (the synthetic eye of seed ``seed``; the first at gaze (0, 0), the
    others at gazes drawn within +-20 / +-10 degrees and pupil/iris ratios in 0.3-0.55, so
    the look stays and the geometry varies); each step draws one."""
    style_pool: int = 0
    """Render this many synthetic style eyes at each training size (``render_set``'s synthetic
    eyes of their own seed) and judge each content eye against the one that looks most like
    it (:class:`masked_gatys.eyes.styles.StylePool`, as ``purify --style-pool``); 0: the
    ``styles`` rendered eyes, one drawn per step. One style eye for every content eye pulls
    every output towards its gaze and opening (docs/gaze.md)."""
    parts: bool = True
    """With the ``masked`` preset, match skin, sclera, iris and pupil apart (``masked-eye``
    with the part labels) where both the content and the style eyes are labelled: rendered
    eyes, or ``NAME_labels.png`` beside the images; else the binary mask."""
    init: str | None = None
    """Start from this checkpoint's network weights (a path, or ``johnson`` / ``purifier``
    for a shipped one) with a fresh optimizer."""
    mask_jitter: float = 0.0
    """The probability that a training eye's mask, as the network is given it, is perturbed:
    dilated or eroded by 1-2 px, shifted by 1-2 px, or with a small hole
    (:func:`masked_gatys.mask_jitter.jitter_masks`), so the network learns to follow the image,
    not an imperfect mask (issue #22). The objective keeps the true mask; validation gives the
    network the true masks. 0: the exact masks (what the shipped networks were trained with)."""
    layout: str | None = None
    """Render the content and style eyes in this layout (``unity``, ``mpiigaze``, ``nir``:
    :mod:`masked_gatys.eyes.layouts`), content eyes in ``look``, style eyes in its clean look, gaze
    within its ranges, shut eyes (no iris) left out. None: the original renders (the unity
    framing, outdoor look, +-30 / +-20 degrees), as the first shipped networks were trained."""
    look: str = "any"
    """The content eyes' look with a ``layout``: one of its real looks, or ``any`` (each eye one
    of the layout's real looks, drawn from its seed)."""
    net_masks: str = "truth"
    """The masks the network is given: ``truth`` (the renderer's) or ``segmenter`` (the shipped
    segmenter's iris + pupil of each training and validation eye, as ``purify --mask auto`` gives
    it in use); ``mask_jitter`` perturbs them further. The objective keeps the true masks."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        object.__setattr__(self, "sizes", tuple(tuple(int(v) for v in s) for s in self.sizes))
        if any(len(s) != 2 or min(s) < 1 for s in self.sizes):
            raise ValueError(f"sizes must be (height, width) pairs with positive sides, got {self.sizes}")
        if self.styles < 1:
            raise ValueError(f"styles must be >= 1, got {self.styles}")
        if self.style_pool < 0:
            raise ValueError(f"style_pool must be >= 0, got {self.style_pool}")
        if self.style_pool and (self.style != "rendered" or self.styles != 1):
            raise ValueError("a style pool (style_pool) is rendered: it takes neither a style image nor styles > 1")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (height, width) with positive sides, got {self.size}")
        if self.net not in NET_NAMES:
            raise ValueError(f"unknown network {self.net!r}: choose one of {', '.join(sorted(NET_NAMES))}")
        for name in ("iterations", "val", "val_every", "sample_every", "checkpoint_every", "render"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.mask_jitter <= 1.0:
            raise ValueError(f"mask_jitter must be a probability in [0, 1], got {self.mask_jitter}")
        if self.net_masks not in ("truth", "segmenter"):
            raise ValueError(f"net_masks must be 'truth' or 'segmenter', got {self.net_masks!r}")
        if self.layout is not None and self.content_dir is not None:
            raise ValueError("a layout (layout) is rendered: it takes no content folder")

    def net_config(self) -> dict[str, Any]:
        """Keyword arguments for :func:`masked_gatys.nets.build`."""
        config: dict[str, Any] = {"name": self.net, "width": self.width}
        if self.blocks is not None:
            config["blocks"] = self.blocks
        return config

    @property
    def train_sizes(self) -> tuple[tuple[int, int], ...]:
        """The sizes trained on: ``sizes``, else ``(size,)``."""
        return self.sizes or (self.size,)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["sizes"] = [list(s) for s in self.sizes]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Settings from a dict (a checkpoint's ``train_config``), each checked against its type.

        >>> TrainConfig.from_dict({"iterations": "many"})
        Traceback (most recent call last):
        ...
        ValueError: setting 'iterations' must be int, got 'many'
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"training settings must be a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        convert = {"size": tuple, "sizes": lambda v: tuple(tuple(s) for s in v)}
        values = {}
        for k, v in data.items():
            if k in fields:
                try:
                    values[k] = convert[k](v) if k in convert and isinstance(v, (list, tuple)) else v
                except TypeError:
                    raise ValueError(f"setting {k!r} must be {fields[k].type}, got {v!r}") from None
        for name, value in values.items():
            _check_setting(name, value, str(fields[name].type))
        return cls(**values)


def field_defaults(kind: type) -> Mapping[str, Any]:
    """Each field's default (the CLI's defaults, read without torch).

    >>> field_defaults(StylizeConfig)["iterations"]
    300
    """
    return {f.name: f.default for f in dataclasses.fields(kind)}


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
    """``gatys``, ``masked``, ``masked-eye`` or ``regional``; None: ``masked`` when a binary
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
    colour: str | None = None
    """``keep``: a grey content stays grey (the transfer runs on luminance, with the style's
    luminance as its target, as ``original_colors="luminance"``); ``style``: the output takes
    the style's colours; None: keep for grey contents (one channel, or R, G, B within 1/255),
    style otherwise. An RGB content is unchanged by ``keep`` unless ``original_colors`` is set."""
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
        if self.colour not in (None, "keep", "style"):
            raise ValueError(f"unknown colour {self.colour!r}: use keep or style")
        if self.subject not in ("auto", "eye", "general"):
            raise ValueError(f"unknown subject {self.subject!r}: use auto, eye or general")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
