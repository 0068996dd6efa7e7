"""Training the feed-forward networks on the optimizer's objective; checkpoints; inference.

The network is trained on exactly the objective ``stylize`` minimises: the
same :class:`~masked_gatys.objective.Objective` object built from the same
preset, with the content targets set per batch. Its objective values are
therefore directly comparable with the optimizer's, as long as the loss
network and the objective config are the same -- which :func:`check_compatible`
checks against what the checkpoint records.

Training is exactly resumable: the batch drawn at step ``s`` and the dropout
noise of step ``s`` are functions of ``(seed, s)`` only, and a checkpoint holds
the network, Adam's state and the step, so ``N`` steps, then a resume to
``N + M``, gives the weights of ``N + M`` steps in one run.

>>> import torch
>>> from masked_gatys import nets
>>> model = LoadedModel(nets.build("johnson", width=2, blocks=1).eval(), {})
>>> apply_model(model, torch.rand(1, 3, 9, 11)).shape
torch.Size([1, 3, 9, 11])
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masked_gatys import __version__, nets
from masked_gatys.files import atomic_write
from masked_gatys.errors import CheckpointError, ImageError, MaskError
from masked_gatys.manifests import find_companion, list_images

__all__ = [
    "TrainConfig", "TrainProgress", "TrainResult", "train", "train_step", "LoadedModel", "load_model",
    "check_compatible", "apply_model", "save_checkpoint", "strip_checkpoint",
    "CHECKPOINT_FORMAT", "SHIPPED", "shipped_checkpoint", "training_objective",
]

CHECKPOINT_FORMAT = "masked-gatys-net/1"

# Gaze range of the rendered training eyes, degrees (yaw, pitch): a little
# wider than MPIIGaze's bulk (about +-25 and +-20 degrees).
RENDER_YAW = 30.0
RENDER_PITCH = 20.0

# Options that may differ between a checkpoint and the run that resumes it:
# none of them changes what the next step computes.
_RESUMABLE = {"iterations", "output", "resume", "device", "sample_every", "sample_dir",
              "val_every", "checkpoint_every"}
# What a checkpoint that predates a setting trained with (it records no value for it).
_LEGACY_SETTINGS = {"parts": False, "style_pool": 0}


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
class TrainConfig:
    """Everything a training run depends on; the CLI's defaults come from here.

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
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    weights: str | None = None
    max_layer: str | None = "auto"
    """Deepest layer the preset may use: ``auto`` (the default, as for ``stylize``): as deep as
    the weights go, so a partial weights file works as it is; None: the preset's own layers."""
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
        if self.net not in nets.NETS:
            raise ValueError(f"unknown network {self.net!r}: choose one of {', '.join(sorted(nets.NETS))}")
        for name in ("iterations", "val", "val_every", "sample_every", "checkpoint_every", "render"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")

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


@dataclass(frozen=True)
class TrainProgress:
    """What the callback gets after each step. ``val`` is set on validation steps."""

    step: int
    iterations: int
    loss: float
    terms: dict[str, float]
    elapsed: float
    val: float | None = None
    sample: str | None = None


@dataclass
class TrainResult:
    """The trained network and its record."""

    net: nn.Module
    step: int
    history: list[dict[str, Any]]
    val_history: list[dict[str, Any]]
    seconds: float
    checkpoint: str | None
    objective_config: dict[str, Any]
    weights: dict[str, Any]
    interrupted: bool = False
    samples: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- data

@dataclass
class _Data:
    train_images: Tensor  # (N, 3, H, W)
    train_masks: Tensor   # (N, 1, H, W) attention
    val_images: Tensor
    val_masks: Tensor
    val_names: list[str]
    train_parts: Tensor | None = None  # (N, H, W) uint8 part labels, where known
    val_parts: Tensor | None = None
    train_styles: Tensor | None = None  # (N,) index of each eye's style-pool eye
    val_styles: Tensor | None = None


def _resize(x: Tensor, size: tuple[int, int], *, mask: bool = False) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mask:
        return F.interpolate(x, size=size, mode="area") if all(
            a >= b for a, b in zip(x.shape[-2:], size)) else F.interpolate(x, size=size, mode="bilinear",
                                                                          align_corners=False)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _attention(regions: Any) -> Tensor:
    """The attention channel of a :class:`~masked_gatys.masks.Regions`, (B, 1, H, W)."""
    if "attention" in regions.names:
        return regions.region("attention")
    if len(regions.names) == 1:
        return regions.masks[:, :1]
    raise MaskError(f"expected a binary (attention) mask, got regions {', '.join(regions.names)}")


def _load_mask_file(path: Path) -> Tensor:
    from masked_gatys.masks import load_mask

    return _attention(load_mask(path, mode="binary"))


def _folder_data(folder: Path, size: tuple[int, int], n_val: int) -> _Data:
    from masked_gatys.image import load_image

    files = list_images(folder)
    if len(files) <= n_val:
        raise ImageError(f"{folder}: {len(files)} images, but {n_val} are held out for validation; "
                         "add images or lower --val")
    images, masks, labels = [], [], []
    for path in files:
        mask_path = find_companion(path, "mask")
        if mask_path is None:
            raise MaskError(f"{path}: no mask {path.stem}_mask.png beside it")
        images.append(_resize(load_image(path), size))
        masks.append(_resize(_load_mask_file(mask_path), size, mask=True))
        labels.append(_load_labels(path.with_name(f"{path.stem}_labels.png"), size))
    split = len(files) - n_val
    img, msk = torch.cat(images), torch.cat(masks)
    lab = torch.cat(labels) if all(x is not None for x in labels) else None
    return _Data(img[:split], msk[:split], img[split:], msk[split:], [p.stem for p in files[split:]],
                 None if lab is None else lab[:split], None if lab is None else lab[split:])


def _load_labels(path: Path, size: tuple[int, int]) -> Tensor | None:
    """``NAME_labels.png`` (the renderer's part colours) as ``(1, H, W)`` uint8 at ``size``, or None."""
    if not path.is_file():
        return None
    from masked_gatys.eyes.parts import load_parts, resize_parts

    return resize_parts(load_parts(path), size).to(torch.uint8)


def _render_set(n: int, size: tuple[int, int], seed: int, stream: int,
                domain: str = "real") -> tuple[Tensor, Tensor, Tensor]:
    """``n`` rendered eyes: images, attention masks and part labels ``(n, H, W)`` uint8."""
    from masked_gatys.eyes import render_eye

    gen = torch.Generator().manual_seed(_mix(seed, stream))
    gaze = (torch.rand(n, 2, generator=gen) * 2 - 1) * torch.tensor([RENDER_YAW, RENDER_PITCH])
    seeds = torch.randint(0, 2**31 - 1, (n,), generator=gen)
    images, masks, labels = [], [], []
    for (yaw, pitch), s in zip(gaze.tolist(), seeds.tolist()):
        eye = render_eye(yaw=yaw, pitch=pitch, domain=domain, size=size, seed=int(s))
        images.append(eye.image.float())
        masks.append(eye.mask.float())
        labels.append(eye.labels.to(torch.uint8))
    if not images:
        h, w = size
        return torch.zeros(0, 3, h, w), torch.zeros(0, 1, h, w), torch.zeros(0, h, w, dtype=torch.uint8)
    return torch.cat(images), torch.cat(masks), torch.stack(labels)


def _rendered_data(n_train: int, n_val: int, size: tuple[int, int], seed: int, train_stream: int = 1,
                   val_stream: int = 2, prefix: str = "val") -> _Data:
    if n_train < 1:
        raise ValueError("render at least one training eye (--render N) or give --content DIR")
    images, masks, labels = _render_set(n_train, size, seed, train_stream)
    vi, vm, vl = _render_set(n_val, size, seed, val_stream)
    return _Data(images, masks, vi, vm, [f"{prefix}{i:03d}" for i in range(n_val)], labels, vl)


def _sized_data(config: TrainConfig) -> list[_Data]:
    """One data set per training size (a single one for ``size`` alone, as before ``sizes``)."""
    if not config.sizes:
        return [_rendered_data(config.render, config.val, config.size, config.seed)]
    n = max(1, -(-config.render // len(config.sizes)))
    return [_rendered_data(n, config.val, size, config.seed, 10 + b, 100 + b, f"val{size[0]}x{size[1]}_")
            for b, size in enumerate(config.sizes)]


def _style_pool(config: TrainConfig, size: tuple[int, int]) -> Any:
    """The style pool at ``size``: the same ``config.style_pool`` synthetic eyes at every size,
    each of its own shape, gaze and pupil but all in the skin and iris colours of the style eye
    (the synthetic eye of seed ``config.seed``).

    Unlike the optimizer's pool (``purify --style-pool``: each eye its own colours), a network
    cannot see which pool eye judges an output, so pool eyes of many colours would ask it for
    colours it cannot know: the look is held to one eye's, and the pool varies the geometry.
    """
    from masked_gatys.eyes import render_eye
    from masked_gatys.eyes.datasets import render_set
    from masked_gatys.eyes.styles import StylePool

    look = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=size, seed=config.seed).truth["appearance"]
    return StylePool.from_gaze_set(render_set(
        config.style_pool, domain="synthetic", size=size, seed=_mix(config.seed, 9) % (2**31 - 1),
        yaw_range=RENDER_YAW, pitch_range=RENDER_PITCH,
        skin_color=look["skin_color"], iris_color=look["iris_color"]))


def _style_gazes(config: TrainConfig) -> list[tuple[float, float, float | None]]:
    """(yaw, pitch, pupil ratio or None for the seed's own) of each style eye."""
    gen = torch.Generator().manual_seed(_mix(config.seed, 7))
    rest = torch.rand(config.styles - 1, 3, generator=gen).tolist()
    return [(0.0, 0.0, None)] + [((2 * a - 1) * 20.0, (2 * b - 1) * 10.0, 0.3 + 0.25 * c) for a, b, c in rest]


def _style(config: TrainConfig, size: tuple[int, int] | None = None,
           index: int = 0) -> tuple[Tensor, Tensor, Tensor | None]:
    """The style image (1, 3, H, W), its attention mask (1, 1, H, W) and its part labels
    (1, H, W) or None, at the training size.

    ``index`` picks one of ``config.styles`` rendered style eyes; ``size`` the
    training size (default ``config.size``).
    """
    h, w = size or config.size
    if config.style == "rendered":
        from masked_gatys.eyes import render_eye

        yaw, pitch, ratio = _style_gazes(config)[index]
        extra = {} if ratio is None else {"pupil_ratio": ratio}
        eye = render_eye(yaw=yaw, pitch=pitch, domain="synthetic", size=(h, w), seed=config.seed, **extra)
        return eye.image.float(), eye.mask.float(), eye.labels[None].to(torch.uint8)
    from masked_gatys.image import load_image

    path = Path(config.style)
    style = load_image(path)
    if config.style_mask is not None:
        mask_path: Path | None = Path(config.style_mask)
    else:
        mask_path = find_companion(path, "mask")
    if mask_path is None:
        raise MaskError(f"{path}: the style image needs a mask (--style-mask, or {path.stem}_mask.png beside it)")
    mask = _load_mask_file(mask_path)
    if mask.shape[-2:] != style.shape[-2:]:
        raise MaskError(f"{mask_path}: mask is {tuple(mask.shape[-2:])} but the style image {path} is "
                        f"{tuple(style.shape[-2:])}")
    # the style at the training scale: longest side to the longest training side
    scale = max(h, w) / max(style.shape[-2:])
    target = (max(1, round(style.shape[-2] * scale)), max(1, round(style.shape[-1] * scale)))
    labels = _load_labels(path.with_name(f"{path.stem}_labels.png"), target)
    return _resize(style, target), _resize(mask, target, mask=True), labels


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), for per-step generators."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


def _batch_indices(n: int, batch: int, seed: int, step: int) -> Tensor:
    """Indices of step ``step``'s batch: epochs of random permutations, a function of (seed, step)."""
    out = []
    for k in range(step * batch, (step + 1) * batch):
        epoch, pos = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, 3, epoch)))
        out.append(int(perm[pos]))
    return torch.tensor(out)


# ---------------------------------------------------------------- objective

def _regions(mask: Tensor, image: Tensor | None = None, cfg: Any = None, parts: Tensor | None = None) -> Any:
    """The regions an objective config needs of eyes (content or style): background/attention,
    or their parts for masked-eye (from the part labels when it matches skin and sclera apart,
    else the pupil found in the image)."""
    from masked_gatys.masks import Regions

    if cfg is not None and "skin" in cfg.regions:
        from masked_gatys.eyes.parts import parts_from_labels

        if parts is None:
            raise MaskError("this objective matches skin and sclera apart: the eyes need part labels")
        return parts_from_labels(parts.long()).to(mask.device)
    if image is not None and cfg is not None and "pupil" in cfg.regions:
        from masked_gatys.eyes.parts import eye_regions

        return eye_regions(image, mask)
    return Regions.from_binary(mask)


def _resolve_max_layer(config: TrainConfig) -> tuple[str | None, Any]:
    """``config.max_layer`` with ``auto`` resolved against the weights (stylize's rule), and
    the weights loaded for it (None when nothing was loaded)."""
    if config.max_layer != "auto":
        return config.max_layer, None
    from masked_gatys.encoder import auto_max_layer, resolve_weights, warn_if_random
    from masked_gatys.objective import preset

    weights = resolve_weights(config.weights, seed=config.seed)
    warn_if_random(weights, stacklevel=4)
    return auto_max_layer(preset(config.preset).layers, weights.deepest), weights


def _build_objective(config: TrainConfig, style: Tensor, style_mask: Tensor, device: torch.device,
                     encoder: Any = None, max_layer: str | None = None, weights: Any = None,
                     style_parts: Tensor | None = None) -> Any:
    """The objective of one style (or of a pool: a batch of paired styles); ``style_parts``
    given: ``masked`` becomes ``masked-eye`` with skin and sclera apart (what ``stylize``
    and ``purify`` run on labelled eyes, so the objective values compare)."""
    from masked_gatys.encoder import load_encoder
    from masked_gatys.objective import Objective, preset

    if max_layer is None and weights is None:
        max_layer, weights = _resolve_max_layer(config)
    name, regions = config.preset, None
    if style_parts is not None and config.preset == "masked":
        from masked_gatys.eyes.parts import EYE_PARTS

        name, regions = "masked-eye", EYE_PARTS
    cfg = preset(name, content_weight=config.content_weight, style_weight=config.style_weight,
                 tv_weight=config.tv_weight, max_layer=max_layer, regions=regions)
    if encoder is None:
        encoder = load_encoder(weights=config.weights if weights is None else weights, layers=cfg.layers,
                               device=device, seed=config.seed)
    style_regions = _regions(style_mask, style, cfg, style_parts)
    return Objective(encoder, cfg, style=style.to(device), style_regions=style_regions.to(device))


def training_objective(model: "LoadedModel", images: Tensor, masks: Tensor, *, parts: Tensor | None = None,
                       encoder: Any = None, weights: Any = None) -> Any:
    """The objective a network was trained on, with ``images`` as the content: its recorded
    preset and terms, its style eye (the rendered one, or each image's nearest eye of its style
    pool, rendered at the images' size), and the part labels ``parts`` ``(B, H, W)`` where it
    matched skin and sclera apart. The optimizer minimising it from ``images`` is what the
    network's output compares with (``benchmarks/pupil.py``'s equivalent iterations).

    ``encoder`` (covering the objective's layers) or ``weights`` (default: the checkpoint's
    recorded file name, as ``--weights``) gives the loss network; its identity must be the
    checkpoint's (:func:`check_compatible`).
    """
    from masked_gatys.encoder import load_encoder
    from masked_gatys.objective import Objective, ObjectiveConfig

    meta = model.checkpoint
    if not meta.get("train_config") or not meta.get("objective"):
        raise CheckpointError(f"{model.path or 'checkpoint'}: it records no training settings or objective")
    config = TrainConfig.from_dict({**_LEGACY_SETTINGS, **meta["train_config"], "resume": None, "init": None})
    cfg = ObjectiveConfig.from_dict(meta["objective"])
    if encoder is None:
        encoder = load_encoder(weights=weights if weights is not None else config.weights, layers=cfg.layers,
                               device=images.device, seed=config.seed)
    check_compatible(model, cfg, encoder.identity)
    size = tuple(images.shape[-2:])
    if config.style_pool:
        pool = _style_pool(config, size)
        style_parts = pool.parts if "skin" in cfg.regions else None
        bank = Objective(encoder, cfg, style=pool.images,
                         style_regions=_regions(pool.masks, pool.images, cfg, style_parts))
        objective = bank.select_styles(pool.nearest(images))
    else:
        style, style_mask, style_parts = _style(config, size)
        objective = Objective(encoder, cfg, style=style, style_regions=_regions(style_mask, style, cfg, style_parts))
    objective.set_content(images, regions=_regions(masks, images, cfg, parts))
    return objective


def _build_objectives(config: TrainConfig, device: torch.device, buckets: Sequence[_Data],
                      ) -> dict[tuple[int, int], Any]:
    """One objective per (training size, style eye), sharing one loss network; with a style
    pool, one per size holding the whole pool (``select_styles`` picks each batch's), and each
    bucket's ``train_styles`` / ``val_styles`` set to its eyes' nearest pool eyes."""
    objectives: dict[tuple[int, int], Any] = {}
    encoder = None
    max_layer, weights = _resolve_max_layer(config)
    labelled = config.parts and config.preset == "masked" and all(
        d.train_parts is not None and d.val_parts is not None for d in buckets)
    for b, size in enumerate(config.train_sizes):
        if config.style_pool:
            pool = _style_pool(config, size)
            bucket = buckets[b]
            bucket.train_styles = pool.nearest(bucket.train_images)
            bucket.val_styles = pool.nearest(bucket.val_images) if bucket.val_images.shape[0] else None
            sources = [(pool.images, pool.masks, pool.parts)]
        else:
            sources = [_style(config, size if config.sizes else None, j) for j in range(config.styles)]
        for j, (style, style_mask, style_parts) in enumerate(sources):
            objective = _build_objective(config, style, style_mask, device, encoder, max_layer, weights,
                                         style_parts if labelled else None)
            encoder = objective.encoder
            objectives[(b, j)] = objective
    return objectives


def _check_finite_state(state_dict: Mapping[str, Any], source: str | os.PathLike) -> None:
    """Refuse weights (or optimizer state) holding NaN or infinite values, naming the first tensor.

    Training from them fails at once with a loss of NaN, whose message (lower the learning rate)
    would point the wrong way.

    >>> _check_finite_state({"w": torch.tensor([1.0, float("nan")])}, "a.pt")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: a.pt: its w holds NaN or infinite values; it cannot be trained from: use an earlier checkpoint
    """
    def tensors(obj: Any, prefix: str):
        if isinstance(obj, Tensor):
            yield prefix, obj
        elif isinstance(obj, Mapping):
            for key, value in obj.items():
                yield from tensors(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(obj, (list, tuple)):
            for k, value in enumerate(obj):
                yield from tensors(value, f"{prefix}.{k}")

    for name, t in tensors(state_dict, ""):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{source}: its {name} holds NaN or infinite values; it cannot be trained "
                                  "from: use an earlier checkpoint")


def _warm_start(net: nn.Module, source: str) -> None:
    """Load the network weights of a checkpoint (a path or a shipped name) into ``net``."""
    path = shipped_checkpoint(source) if source in SHIPPED and not Path(source).is_file() else Path(source)
    data = _read_checkpoint(path)
    if data["net"] != net.config:
        raise CheckpointError(f"{path}: its network {data['net']} is not the one being trained ({net.config})")
    _check_finite_state(data["state_dict"], path)
    net.load_state_dict(data["state_dict"])


def _step_choice(config: TrainConfig, step: int) -> tuple[int, int]:
    """(size bucket, style index) of a step: a function of (seed, step), so resumes are exact."""
    b = _mix(config.seed, 5, step) % len(config.train_sizes)
    j = _mix(config.seed, 6, step) % config.styles
    return b, j


def _for_batch(objective: Any, styles: Tensor | None, idx: Tensor | slice) -> Any:
    """The objective for a batch: with a style pool, each eye's own pool eye."""
    return objective if styles is None else objective.select_styles(styles[idx])


def _evaluate(net: nn.Module, objective: Any, images: Tensor, masks: Tensor, batch: int,
              parts: Tensor | None = None, styles: Tensor | None = None) -> tuple[float, dict[str, float]]:
    """Mean objective of the network's outputs on a fixed set (eval mode, no grad)."""
    was_training = net.training
    net.eval()
    totals: list[Tensor] = []
    terms: dict[str, list[Tensor]] = {}
    try:
        with torch.no_grad():
            for i in range(0, images.shape[0], batch):
                x, m = images[i:i + batch], masks[i:i + batch]
                p = None if parts is None else parts[i:i + batch]
                judge = _for_batch(objective, styles, slice(i, i + batch))
                judge.set_content(x, regions=_regions(m, x, judge.config, p))
                value = judge(net(x, m))
                totals.append(value.total)
                for name, t in value.terms.items():
                    terms.setdefault(name, []).append(t)
    finally:
        net.train(was_training)
    return float(torch.cat(totals).mean()), {k: float(torch.cat(v).mean()) for k, v in terms.items()}


# ---------------------------------------------------------------- checkpoints

def _atomic_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(obj, fh), suffix=".tmp")


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict atomically (temporary file in the same folder, then ``os.replace``)."""
    _atomic_save(dict(checkpoint), Path(path))
    return Path(path)


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a masked-gatys network checkpoint")
    for key in ("net", "state_dict", "objective", "weights"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return data


_SHIPPED_HISTORY = 500  # per-step records kept by strip_checkpoint
_PATH_SETTINGS = ("weights", "output", "resume", "content_dir", "style", "style_mask", "sample_dir", "init")


def strip_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint without the optimizer and RNG state (for shipping; cannot be resumed).

    The per-step ``history`` is thinned to at most about 500 evenly spaced records (and the
    last); ``val_history`` is kept whole.

    >>> import tempfile, torch
    >>> from masked_gatys import nets
    >>> d = tempfile.mkdtemp()
    >>> net = nets.build("johnson", width=2, blocks=1)
    >>> _ = save_checkpoint(f"{d}/a.pt", {"format": CHECKPOINT_FORMAT, "net": net.config,
    ...     "state_dict": net.state_dict(), "objective": {}, "weights": {}, "optimizer": {}})
    >>> "optimizer" in torch.load(strip_checkpoint(f"{d}/a.pt", f"{d}/b.pt"))
    False
    """
    data = _read_checkpoint(src)
    for key in ("optimizer", "rng"):
        data.pop(key, None)
    history = data.get("history")
    if isinstance(history, list) and len(history) > _SHIPPED_HISTORY:
        # a long run's per-step records dwarf the network; keep an even sample (and the last)
        stride = -(-len(history) // _SHIPPED_HISTORY)
        data["history"] = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
    data["resumable"] = False
    settings = data.get("train_config")
    if isinstance(settings, dict):  # a shipped file names files by name only, not where they lay
        from masked_gatys.files import recorded_name

        data["train_config"] = {k: recorded_name(v) if k in _PATH_SETTINGS and isinstance(v, str) else v
                                for k, v in settings.items()}
    return save_checkpoint(dst, data)


# ---------------------------------------------------------------- training

def _sample_sheet(path: Path, rows: list[tuple[Tensor, Tensor]], title: str) -> None:
    """Content | output pairs, one row each, as a PNG (masked_gatys.sheet when there is one)."""
    from PIL import Image

    try:  # the package's sheet maker, if it is there
        from masked_gatys import sheet as _sheet  # type: ignore[attr-defined]

        make = getattr(_sheet, "make_sheet", None)
    except ImportError:
        make = None
    if make is not None:
        try:
            make([[c, o] for c, o in rows], path, columns=["content", "output"], title=title)
            return
        except TypeError:
            pass  # another signature: fall back to our own
    tiles = [torch.cat([c, o], dim=-1) for c, o in rows]
    grid = torch.cat(tiles, dim=-2)[0] if len(tiles) > 1 else tiles[0][0]
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: Image.fromarray(array).save(fh, format="PNG"), suffix=".png")


def _check_resume(path: str, checkpoint: Mapping[str, Any], config: TrainConfig) -> None:
    if checkpoint.get("resumable") is False or "optimizer" not in checkpoint:
        raise CheckpointError(f"{path}: this checkpoint holds no optimizer state and cannot be resumed")
    for key, kind in (("step", int), ("optimizer", dict), ("train_config", dict), ("state_dict", dict)):
        if key not in checkpoint:
            raise CheckpointError(f"{path}: the checkpoint lacks {key!r}; cannot resume")
        if not isinstance(checkpoint[key], kind) or isinstance(checkpoint[key], bool):
            raise CheckpointError(f"{path}: the checkpoint's {key!r} is a {type(checkpoint[key]).__name__}, "
                                  f"not a {kind.__name__}; cannot resume")
    for key in ("history", "val_history"):
        if not isinstance(checkpoint.get(key, []), list):
            raise CheckpointError(f"{path}: the checkpoint's {key!r} is not a list; cannot resume")
    # settings added later did, before them, what these values do
    saved = {**_LEGACY_SETTINGS, **(checkpoint.get("train_config") or {})}
    mine = config.to_dict()
    # max_layer is checked through the objective it resolves to (train: the layers must match)
    differ = sorted(k for k in mine if k not in _RESUMABLE | {"max_layer"} and k in saved and saved[k] != mine[k])
    if differ:
        detail = ", ".join(f"{k}={saved[k]!r} (now {mine[k]!r})" for k in differ)
        raise CheckpointError(f"{path}: cannot resume with different settings: {detail}")


def _objective_mismatch(checkpoint: Mapping[str, Any], objective: Mapping[str, Any], identity: Mapping[str, Any],
                        config: TrainConfig) -> str:
    """What differs between a checkpoint's objective and loss network and this run's, in a line."""
    from masked_gatys.encoder import layer_names

    saved_w = checkpoint.get("weights") or {}
    if saved_w != identity:
        return (f"trained with the weights {saved_w.get('name')!r} (sha256 {str(saved_w.get('sha256'))[:12]}), "
                f"this run has {identity.get('name')!r} (sha256 {str(identity.get('sha256'))[:12]}); give --weights")
    saved_o = checkpoint.get("objective") or {}
    order = layer_names()

    def deepest(obj: Mapping[str, Any]) -> str | None:
        layers = [t.get("layer") for t in obj.get("terms", []) if t.get("layer") in order]
        return max(layers, key=order.index) if layers else None

    if deepest(saved_o) != deepest(objective):
        recorded = (checkpoint.get("train_config") or {}).get("max_layer", checkpoint.get("max_layer"))
        return (f"trained with layers up to {deepest(saved_o)} (max_layer {recorded!r}), this run's objective "
                f"goes to {deepest(objective)} (max_layer {config.max_layer!r}); give --max-layer "
                f"{deepest(saved_o)}")
    keys = sorted(k for k in set(saved_o) | set(objective) if saved_o.get(k) != objective.get(k))
    return f"trained on another objective (differs in: {', '.join(keys)})"


def train_step(net: nn.Module, objective: Any, optimizer: torch.optim.Optimizer, images: Tensor,
               masks: Tensor, parts: Tensor | None = None) -> Any:
    """One optimisation step on a batch: set the content targets, loss = mean total, Adam step.

    ``parts``: the batch's part labels ``(B, H, W)``, for an objective that
    matches skin and sclera apart. Returns the batch's
    :class:`~masked_gatys.objective.ObjectiveValue` (before the step). Raises
    ``ObjectiveError`` if the loss is not finite.
    """
    from masked_gatys.errors import ObjectiveError

    objective.set_content(images, regions=_regions(masks, images, objective.config, parts))
    value = objective(net(images, masks))
    loss = value.total.mean()
    if not torch.isfinite(loss):
        raise ObjectiveError(f"the training loss became {float(loss)}; lower the learning rate (--lr)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


def train(config: TrainConfig, *, callback: Callable[[TrainProgress], Any] | None = None) -> TrainResult:
    """Train a network on the style objective; write checkpoints to ``config.output``.

    ``callback(progress)`` runs after every step; returning True stops the run
    (the checkpoint is still written). KeyboardInterrupt writes the checkpoint
    and propagates.

    >>> import warnings
    >>> cfg = TrainConfig(net="johnson", width=2, blocks=1, render=2, val=1, size=(24, 32),
    ...                   iterations=1, batch_size=2, weights="random", max_layer="relu2_1")
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     result = train(cfg)
    >>> result.step, len(result.val_history)
    (1, 2)
    """
    device = torch.device(config.device)
    start = time.perf_counter()
    checkpoint: dict[str, Any] | None = None
    if config.resume is not None:  # fail before the slow set-up
        checkpoint = _read_checkpoint(config.resume)
        _check_resume(config.resume, checkpoint, config)
        _check_finite_state({"state_dict": checkpoint["state_dict"], "optimizer": checkpoint["optimizer"]},
                            config.resume)
    if config.content_dir is not None:
        if config.sizes:
            raise ValueError("several training sizes (sizes) need rendered eyes (--render), not --content")
        buckets = [_folder_data(Path(config.content_dir), config.size, config.val)]
    else:
        buckets = _sized_data(config)
    objectives = _build_objectives(config, device, buckets)
    objective = objectives[(0, 0)]
    objective_dict = objective.config.to_dict()
    identity = objective.encoder.identity.to_dict()

    with torch.random.fork_rng(devices=[]):  # the initialisation is a function of the seed
        torch.manual_seed(_mix(config.seed, 0))
        net = nets.build(**config.net_config())
    if config.init is not None and checkpoint is None:
        _warm_start(net, config.init)
    net.to(device).train()
    ranks = _Ranks(net, config.batch_size)  # one process, or a torchrun rank with DDP
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)

    step = 0
    history: list[dict[str, Any]] = []
    val_history: list[dict[str, Any]] = []
    seconds_before = 0.0
    if checkpoint is not None:
        if checkpoint["objective"] != objective_dict or checkpoint["weights"] != identity:
            raise CheckpointError(f"{config.resume}: cannot resume: "
                                  f"{_objective_mismatch(checkpoint, objective_dict, identity, config)}")
        net.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = int(checkpoint["step"])
        history = list(checkpoint.get("history", []))
        val_history = list(checkpoint.get("val_history", []))
        seconds_before = float(checkpoint.get("seconds", 0.0))

    def on(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    train_sets = [(d.train_images.to(device), d.train_masks.to(device), on(d.train_parts), d.train_styles)
                  for d in buckets]
    val_sets = [(d.val_images.to(device), d.val_masks.to(device), on(d.val_parts), d.val_styles)
                for d in buckets]
    val_images, val_masks = val_sets[0][:2]
    samples: list[str] = []
    sample_dir = Path(config.sample_dir) if config.sample_dir else (
        Path(config.output).with_suffix("").with_name(Path(config.output).stem + "_samples")
        if config.output else None)
    run_start = time.perf_counter()

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - run_start

    def checkpoint_dict() -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "net": net.config,
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "objective": objective_dict,
            "weights": identity,
            "max_layer": config.max_layer,
            "size": list(config.size),
            "trained_sizes": [list(s) for s in config.train_sizes],
            "style": config.style,
            "train_config": config.to_dict(),
            "optimizer": _to_cpu(optimizer.state_dict()),
            "rng": {"torch": torch.get_rng_state()},
            "step": step,
            "history": history,
            "val_history": val_history,
            "seconds": elapsed(),
            "resumable": True,
        }

    def write() -> str | None:
        if config.output is None or not ranks.main:
            return None
        save_checkpoint(config.output, checkpoint_dict())
        return str(config.output)

    def validate() -> float | None:
        if val_images.shape[0] == 0 or not ranks.main or any(v["step"] == step for v in val_history):
            return None
        by_size = {}
        for b, (vi, vm, vp, vs) in enumerate(val_sets):  # style 0 (or each eye's pool eye) at every size
            by_size[b] = _evaluate(net, objectives[(b, 0)], vi, vm, config.batch_size, vp, vs)
        total = sum(t for t, _ in by_size.values()) / len(by_size)
        terms = {k: sum(tr[k] for _, tr in by_size.values()) / len(by_size) for k in by_size[0][1]}
        record = {"step": step, "total": total, "terms": terms, "seconds": elapsed()}
        if config.sizes:
            h_w = config.train_sizes
            record["by_size"] = {f"{h_w[b][0]}x{h_w[b][1]}": t for b, (t, _) in by_size.items()}
        val_history.append(record)
        return total

    def sample() -> str | None:
        if sample_dir is None or val_images.shape[0] == 0 or not ranks.main:
            return None
        net.eval()
        with torch.no_grad():
            n = min(4, val_images.shape[0])
            out = net(val_images[:n], val_masks[:n])
        net.train()
        path = sample_dir / f"step{step:06d}.png"
        _sample_sheet(path, [(val_images[i:i + 1].cpu(), out[i:i + 1].cpu()) for i in range(n)],
                      f"step {step}")
        samples.append(str(path))
        return str(path)

    interrupted = False
    if step == 0 and config.val_every:
        validate()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            while step < config.iterations:
                b, j = _step_choice(config, step)
                train_images, train_masks, train_parts, train_styles = train_sets[b]
                batch_seed = config.seed if not config.sizes else _mix(config.seed, 8, b)
                idx = ranks.share(_batch_indices(train_images.shape[0], config.batch_size, batch_seed, step))
                x, m = train_images[idx.to(device)], train_masks[idx.to(device)]
                p = None if train_parts is None else train_parts[idx.to(device)]
                torch.manual_seed(_mix(config.seed, 4, step))  # dropout noise of this step
                value = train_step(ranks.model, _for_batch(objectives[(b, j)], train_styles, idx), optimizer,
                                   x, m, p)
                step += 1
                loss_value, terms = ranks.mean(float(value.total.detach().mean()),
                                               {k: float(v.detach().mean()) for k, v in value.terms.items()})
                history.append({"step": step, "loss": loss_value, "terms": terms})
                val = validate() if (config.val_every and step % config.val_every == 0) or \
                    step == config.iterations else None
                sheet = sample() if config.sample_every and (
                    step % config.sample_every == 0 or step == config.iterations) else None
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.iterations:
                    write()
                if callback is not None:
                    stop = callback(TrainProgress(step, config.iterations, loss_value, terms,
                                                  elapsed(), val, sheet))
                    if stop is True:
                        interrupted = True
                        if config.val_every:
                            validate()  # the record ends with the weights it keeps
                        break
    except KeyboardInterrupt:
        write()
        raise
    path = write()
    net.eval()
    return TrainResult(net=net, step=step, history=history, val_history=val_history,
                       seconds=time.perf_counter() - start, checkpoint=path,
                       objective_config=objective_dict, weights=identity, interrupted=interrupted,
                       samples=samples)


class _Ranks:
    """One process, or this rank of a torchrun job: DistributedDataParallel over the global batch.

    Every rank draws the same global batch (a function of seed and step) and a
    DistributedSampler (no shuffling) gives rank r its elements r, r + W, ...;
    DDP averages the ranks' gradients of their mean losses, which is the
    gradient of the global batch's mean loss: the same steps as one process
    with that batch, to float tolerance. Not so for batch norm on CPU (each
    rank normalises over its share; on CUDA it becomes SyncBatchNorm) or for
    dropout (each rank draws its own share's noise). Rank 0 alone validates,
    samples and writes checkpoints; the records hold the global means.
    """

    def __init__(self, net: nn.Module, batch_size: int) -> None:
        import torch.distributed as dist

        self.on = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if self.on else (0, 1)
        self.main = self.rank == 0
        self.model: nn.Module = net
        if not self.on:
            return
        if batch_size % self.world:
            raise ValueError(f"the batch ({batch_size}) must split evenly over the {self.world} ranks")
        from torch.nn.parallel import DistributedDataParallel

        self.device = next(net.parameters()).device
        if self.device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        self.model = DistributedDataParallel(net, device_ids=[self.device] if self.device.type == "cuda" else None)

    def share(self, idx: Tensor) -> Tensor:
        if not self.on:
            return idx
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(len(idx)), num_replicas=self.world, rank=self.rank, shuffle=False)
        return idx[list(sampler)]

    def mean(self, loss: float, terms: dict[str, float]) -> tuple[float, dict[str, float]]:
        if not self.on:
            return loss, terms
        import torch.distributed as dist

        values = torch.tensor([loss, *terms.values()], dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        values = (values / self.world).tolist()
        return values[0], dict(zip(terms, values[1:]))


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


# ---------------------------------------------------------------- inference

_HEAVY = ("state_dict", "optimizer", "rng")


class LoadedModel:
    """A trained network ready for inference: ``model(image, mask=None) -> image``.

    ``checkpoint`` is the checkpoint's metadata (network and objective config,
    loss-network identity, training record) without the tensors.
    """

    def __init__(self, net: nn.Module, checkpoint: Mapping[str, Any], *, path: str | None = None) -> None:
        self.net = net.eval()
        self.checkpoint = dict(checkpoint)
        self.path = path

    @property
    def name(self) -> str:
        return str(getattr(self.net, "name", type(self.net).__name__))

    @property
    def objective_config(self) -> dict[str, Any] | None:
        return self.checkpoint.get("objective")

    @property
    def weights_identity(self) -> dict[str, Any] | None:
        return self.checkpoint.get("weights")

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> "LoadedModel":
        self.net.to(device)
        return self

    @property
    def trained_sizes(self) -> list[tuple[int, int]]:
        """The ``(h, w)`` sizes the network was trained on (older checkpoints: their one ``size``)."""
        sizes = self.checkpoint.get("trained_sizes") or ([self.checkpoint["size"]] if self.checkpoint.get("size")
                                                        else [])
        return [(int(h), int(w)) for h, w in sizes]

    def working_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The trained size to resize an ``(h, w)`` image to, or None when it is inside the trained range.

        Inside means between the smallest and largest trained height and width.
        Outside, the nearest trained size (in log scale) is returned.

        >>> LoadedModel(torch.nn.Identity(), {"trained_sizes": [[36, 60], [144, 240]]}).working_size((72, 120))
        >>> LoadedModel(torch.nn.Identity(), {"size": [48, 72]}).working_size((36, 60))
        (48, 72)
        """
        sizes = self.trained_sizes
        if not sizes:
            return None
        h, w = size
        if (min(s[0] for s in sizes) <= h <= max(s[0] for s in sizes)
                and min(s[1] for s in sizes) <= w <= max(s[1] for s in sizes)):
            return None
        return min(sizes, key=lambda s: abs(math.log(s[0] / h)) + abs(math.log(s[1] / w)))

    def __call__(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        return apply_model(self, image, mask)

    def __repr__(self) -> str:
        return f"LoadedModel({self.name}, path={self.path!r})"


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a trained network from a checkpoint written by :func:`train`.

    Raises :class:`~masked_gatys.errors.CheckpointError` naming the file when
    it is missing, corrupt or not a network checkpoint.

    ``path`` may also be the name of a shipped checkpoint (``johnson``,
    ``purifier``) when no file of that name exists.

    >>> len(load_model("purifier").trained_sizes) >= 1
    True
    >>> load_model("/nonexistent/net.pt")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: /nonexistent/net.pt: checkpoint not found
    """
    if str(path) in SHIPPED and not Path(path).is_file():
        path = shipped_checkpoint(str(path))
    data = _read_checkpoint(path)
    try:
        net = nets.build(**data["net"])
        net.load_state_dict(data["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the network does not load: {first}") from None
    meta = {k: v for k, v in data.items() if k not in _HEAVY}
    return LoadedModel(net.to(device).eval(), meta, path=str(path))


#: the eye checkpoints installed with the package (masked_gatys/data/README.md)
SHIPPED = {"johnson": "johnson_eyes.pt", "purifier": "purifier_eyes.pt"}


def shipped_checkpoint(name: str) -> Path:
    """Path of a checkpoint installed with the package: ``johnson`` or ``purifier`` (eyes).

    >>> shipped_checkpoint("purifier").name
    'purifier_eyes.pt'
    """
    if name not in SHIPPED:
        raise CheckpointError(f"no shipped checkpoint {name!r}: choose one of {', '.join(sorted(SHIPPED))}")
    path = Path(__file__).resolve().parent / "data" / SHIPPED[name]
    if not path.is_file():
        raise CheckpointError(f"{path}: shipped checkpoint missing (reinstall the package)")
    return path


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return dict(value)


def check_compatible(model: LoadedModel | Mapping[str, Any], objective_config: Any, weights_identity: Any) -> None:
    """Refuse to report an objective the checkpoint was not trained against.

    ``objective_config`` is an :class:`~masked_gatys.objective.ObjectiveConfig`
    (or its dict), ``weights_identity`` a ``WeightsIdentity`` (or its dict).
    Raises :class:`~masked_gatys.errors.CheckpointError` saying what differs.

    >>> meta = {"objective": {"tv_weight": 0.0}, "weights": {"name": "a", "sha256": "1", "format": "caffe"}}
    >>> check_compatible(meta, {"tv_weight": 0.0}, {"name": "a", "sha256": "1", "format": "caffe"})
    >>> check_compatible(meta, {"tv_weight": 0.0}, {"name": "b", "sha256": "2", "format": "caffe"})
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: checkpoint was trained against loss network a (sha256 1), not b (sha256 2): its objective values do not compare
    """
    if isinstance(model, LoadedModel):
        meta, label = model.checkpoint, f"checkpoint {model.path}" if model.path else "checkpoint"
    else:
        meta, label = dict(model), "checkpoint"
    trained_w = _as_dict(meta.get("weights"))
    wanted_w = _as_dict(weights_identity)
    if trained_w.get("sha256") != wanted_w.get("sha256"):
        raise CheckpointError(
            f"{label} was trained against loss network {trained_w.get('name')} "
            f"(sha256 {str(trained_w.get('sha256'))[:12]}), not {wanted_w.get('name')} "
            f"(sha256 {str(wanted_w.get('sha256'))[:12]}): its objective values do not compare")
    trained_o = _as_dict(meta.get("objective"))
    wanted_o = _as_dict(objective_config)
    if trained_o != wanted_o:
        keys = sorted(k for k in set(trained_o) | set(wanted_o) if trained_o.get(k) != wanted_o.get(k))
        raise CheckpointError(
            f"{label} was trained on another objective (preset {trained_o.get('preset')}; differs in "
            f"{', '.join(keys)}): its objective values do not compare; use the checkpoint's objective "
            "(--preset, weights and --max-layer it was trained with)")


def _as_net(model: LoadedModel | nn.Module) -> nn.Module:
    return model.net if isinstance(model, LoadedModel) else model


def apply_model(model: LoadedModel | nn.Module, image: Tensor, mask: Tensor | None = None) -> Tensor:
    """Run a trained network: ``(B, 3, H, W)`` or ``(3, H, W)`` image, attention mask -> image.

    The mask may be ``(B, 1, H, W)``, ``(1, H, W)``, ``(H, W)``, a
    :class:`~masked_gatys.masks.Regions` (its attention region) or None. The
    result has the input's shape, on the input's device, in [0, 1].

    >>> import torch
    >>> from masked_gatys import nets
    >>> apply_model(nets.build("purifier", width=2), torch.rand(3, 10, 14), torch.ones(10, 14)).shape
    torch.Size([3, 10, 14])
    """
    from masked_gatys.image import as_unit_float

    net = _as_net(model)
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    if x.dim() != 4 or x.shape[1] != 3:
        raise ImageError(f"expected an image (B, 3, H, W) or (3, H, W), got {tuple(image.shape)}")
    out_dtype = image.dtype if image.is_floating_point() else torch.float32
    x = as_unit_float(x, "image")  # uint8 scaled, NaN refused, outside [0, 1] clamped with a warning
    m = mask
    if m is not None and not isinstance(m, Tensor):
        m = _attention(m)
    if m is not None:
        m = m.detach().float() / 255.0 if m.dtype == torch.uint8 else m.detach().float()
        if not torch.isfinite(m).all():
            raise MaskError("the mask holds NaN or infinite values")
        m = m.clamp(0, 1)  # as stylize's masks
        while m.dim() < 4:
            m = m.unsqueeze(0)
        if m.shape[1] != 1:
            raise MaskError(f"expected a one-channel attention mask, got {tuple(mask.shape)}")  # type: ignore[union-attr]
        if m.shape[-2:] != x.shape[-2:]:
            raise MaskError(f"mask is {tuple(m.shape[-2:])} but the image is {tuple(x.shape[-2:])}")
    device = next(net.parameters()).device
    size = tuple(x.shape[-2:])
    work = model.working_size(size) if isinstance(model, LoadedModel) else None
    if work is not None:
        # outside the trained range the nets break down (blown pupils at 72x120 for a 48x72 net)
        sizes = model.trained_sizes
        trained = (f"{sizes[0][0]}x{sizes[0][1]}" if len(sizes) == 1 else
                   f"{min(s[0] for s in sizes)}x{min(s[1] for s in sizes)} to "
                   f"{max(s[0] for s in sizes)}x{max(s[1] for s in sizes)}")
        warnings.warn(f"{model.name} was trained on {trained} images; this {size[0]}x{size[1]} image is "
                      f"resized to {work[0]}x{work[1]} and back", UserWarning, stacklevel=2)
        x = _resize(x, work)
        m = None if m is None else _resize(m, work, mask=True)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            y = net(x.to(device, torch.float32), None if m is None else m.to(device, torch.float32))
    finally:
        net.train(was_training)
    if not torch.isfinite(y).all():
        bad = [n for n, p in net.named_parameters() if not torch.isfinite(p).all()]
        why = f"its weights hold NaN or infinite values ({bad[0]}{', ...' if len(bad) > 1 else ''})" if bad else \
            "its weights are finite, so the input or the network's arithmetic overflowed"
        name = getattr(model, "name", type(net).__name__)
        raise CheckpointError(f"the network {name} output NaN or infinite values: {why}")
    if work is not None:
        y = _resize(y, size)
    y = y.to(image.device, out_dtype)
    return y[0] if squeeze else y
