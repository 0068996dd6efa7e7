"""Objectives: named content, style and TV terms, presets and the weighted total.

An objective is data (:class:`ObjectiveConfig`, a tuple of :class:`Term`) plus
a module (:class:`Objective`) that holds the targets. Style targets (masked
Gram matrices of the style image) are computed once when the objective is
built; content targets when :meth:`Objective.set_content` is called (once for
the optimizer, once per batch when training a network). Each evaluation runs
the encoder once and serves every term from that one forward pass.

Term values are **normalised by their target's scale** by default: a content
term is divided by the mean square of its target features, a style term by
``||T||_F^2 / N^2`` of its target Gram matrix. The terms are then relative
errors, so one set of weights serves every weight file (ImageNet, caffe or
random weights give activations of very different magnitudes). This departs
from Gatys et al. and Yan et al., whose weights (alpha = 1e2, beta = 1e4) are
for raw terms on the [0, 255] scale; ``normalize=False`` gives the raw terms.

>>> import torch, warnings
>>> from masked_gatys.encoder import load_encoder
>>> cfg = preset("gatys", max_layer="relu3_4")
>>> [t.name for t in cfg.terms]
['content/relu3_2@whole', 'style/relu1_1@whole', 'style/relu2_1@whole', 'style/relu3_1@whole']
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     enc = load_encoder(weights="random", layers=cfg.layers)
>>> obj = Objective(enc, cfg, style=torch.rand(1, 3, 32, 32))
>>> obj.set_content(torch.rand(1, 3, 32, 32))
>>> value = obj(torch.rand(1, 3, 32, 32))
>>> value.total.shape, sorted(value.terms)[0]
(torch.Size([1]), 'content/relu3_2@whole')
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from masked_gatys import functional as Fn
from masked_gatys.encoder import VGGEncoder
from masked_gatys.errors import MaskError, ObjectiveError
from masked_gatys.masks import Regions, grid_mask
from masked_gatys.presets import PRESETS, ObjectiveConfig, Term, preset, with_layers  # re-exported

__all__ = ["Term", "ObjectiveConfig", "ObjectiveValue", "Objective", "preset", "with_layers", "PRESETS"]

#: Style images per encoder forward when the targets of a pool are computed: 16 at eye sizes,
#: fewer for large images so that a chunk's features stay near 16 x 256 x 256 pixels' worth.
_STYLE_CHUNK_PIXELS = 16 * 256 * 256


# ---------------------------------------------------------------- module

@dataclass
class ObjectiveValue:
    """``total`` (B,) and the unweighted ``terms`` {name: (B,)} of one evaluation."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)

    def item_terms(self, index: int = 0) -> dict[str, float]:
        """The terms of one batch element as floats (one host sync)."""
        names = list(self.terms)
        if not names:
            return {}
        values = torch.stack([self.terms[n][index] for n in names]).tolist()
        return dict(zip(names, values))


def _region_masks(regions, names: Iterable[str | None], size: tuple[int, int], label: str):
    """{region name: (B, 1, h, w) mask at ``size``}; None maps to None (whole image)."""
    out: dict[str | None, Tensor | None] = {}
    for name in names:
        if name is None:
            out[None] = None
            continue

        if regions is None:
            raise ObjectiveError(f"term region {name!r} needs a {label}, and none was given")
        if name not in regions.names:
            raise ObjectiveError(
                f"the {label} has no region {name!r} (it has {', '.join(regions.names)})")
        # VGG's own floor 2x2 pooling chain, so mask and features line up at any size
        out[name] = grid_mask(regions.region(name), size)
    return out


class Objective(nn.Module):
    """The objective as a module: targets in buffers, one encoder forward per call.

    Args:
        encoder: a :class:`~masked_gatys.encoder.VGGEncoder` covering ``config.layers``.
        config: the terms and weights.
        style: ``(1, 3, H, W)`` style image in [0, 1].
        style_regions: the style image's :class:`~masked_gatys.masks.Regions`;
            ``None`` makes the whole style image the target of every region.

    Several styles: ``style`` a sequence of ``(1, 3, H, W)`` images (sizes may
    differ), ``style_regions`` None or one Regions (or None) per style, and
    ``style_weights`` their blend (default equal; normalised to sum 1). Each
    style term's target is then the weighted mean of the styles' Gram
    matrices of that layer and region.

    Paired styles: a style image of batch ``B`` (with Regions of batch ``B``)
    gives content image ``i`` its own target, style image ``i`` (e.g. a style
    eye chosen per content eye, :mod:`masked_gatys.eyes.styles`); the content
    batch must then be ``B``.
    """

    def __init__(self, encoder: VGGEncoder, config: ObjectiveConfig, *, style,
                 style_regions=None, style_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        missing = [layer for layer in config.layers if layer not in encoder.layers]
        if missing:
            raise ObjectiveError(f"the encoder was not built for layers {missing}")
        self.encoder = encoder
        self.config = config
        self._content_ready = False
        self._geometry: dict[str, Tensor] | None = None
        self._content_targets: dict[str, Tensor] = {}
        self._content_scale: dict[str, Tensor] = {}
        self._masks: dict[tuple[str, str | None], Tensor | None] = {}
        styles = [style] if isinstance(style, Tensor) else list(style)
        if not styles:
            raise ObjectiveError("give at least one style image")
        if style_regions is None or not isinstance(style_regions, (list, tuple)):
            style_regions = [style_regions] * len(styles)
        if len(style_regions) != len(styles):
            raise ObjectiveError(f"{len(styles)} style images but {len(style_regions)} style masks")
        weights = _blend_weights(style_weights, len(styles))
        self._style_targets: dict[str, Tensor] = {}
        self._style_scale: dict[str, Tensor] = {}
        for image, regions, weight in zip(styles, style_regions, weights):
            for name, gram in self._style_grams(image, regions).items():
                part = weight * gram
                self._style_targets[name] = self._style_targets[name] + part if name in self._style_targets else part
        for name, gram in self._style_targets.items():
            c = gram.shape[-1]
            self._style_scale[name] = (gram.square().sum(dim=(1, 2)) / (c * c)).clamp_min(1e-12)
        # The output is judged with the (first) style eye's dark level: it is meant to take its colours.
        self._style_dark = None
        if config.geometry_weight and style_regions[0] is not None:
            first = styles[0].to(self._device())
            region = config.geometry_region
            self._style_dark = _dark_levels(first, _region_masks(
                style_regions[0].to(first.device), [region], tuple(first.shape[-2:]), "style mask")[region])

    @torch.no_grad()
    def _style_grams(self, style: Tensor, style_regions) -> dict[str, Tensor]:
        """{style term name: masked Gram of one style image, or of each of a batch of them}."""
        style = style.to(self._device())
        if style.dim() != 4 or style.shape[1] != 3:
            raise ObjectiveError(f"the style image must be (1, 3, H, W) or (B, 3, H, W), got {tuple(style.shape)}")
        chunk = max(1, min(16, _STYLE_CHUNK_PIXELS // (style.shape[-2] * style.shape[-1])))
        if style.shape[0] > chunk:  # a large style batch (a pool): its features a chunk at a time

            chunks = []
            for i in range(0, style.shape[0], chunk):
                part = style_regions
                if style_regions is not None and style_regions.masks.shape[0] > 1:
                    part = Regions(style_regions.masks[i:i + chunk], style_regions.names)
                chunks.append(self._style_grams(style[i:i + chunk], part))
            return {name: torch.cat([c[name] for c in chunks]) for name in chunks[0]}
        if style_regions is not None:
            style_regions = style_regions.to(style.device)
        grams = {}
        feats = self.encoder(style)
        for term in self.config.terms:
            if term.kind != "style":
                continue
            f = feats[term.layer]
            if term.region is None or style_regions is None:
                mask = None
            else:
                mask = _region_masks(style_regions, [term.region], f.shape[-2:], "style mask")[term.region]
                _check_mass(mask, term, "style mask")
            grams[term.name] = Fn.gram_matrix(f, mask)
        return grams

    def _device(self) -> torch.device:
        return next(iter(self.encoder.buffers())).device

    def select_styles(self, index) -> "Objective":
        """This objective with the paired style targets ``index`` of its style batch, for a
        content batch of ``len(index)``: content eye ``i`` is judged against style ``index[i]``.

        No forward pass (the targets were computed once); the encoder and the config are
        shared. Training judges each eye against its own pool eye this way.

        >>> import torch, warnings
        >>> from masked_gatys.encoder import load_encoder
        >>> cfg = preset("gatys", max_layer="relu2_1")
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     enc = load_encoder(weights="random", layers=cfg.layers)
        >>> bank = Objective(enc, cfg, style=torch.rand(5, 3, 16, 16))
        >>> two = bank.select_styles([4, 0])
        >>> two.set_content(torch.rand(2, 3, 16, 16))
        >>> tuple(two(torch.rand(2, 3, 16, 16)).total.shape)
        (2,)
        """
        paired = max(t.shape[0] for t in self._style_targets.values())
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if paired == 1:
            raise ObjectiveError("select_styles needs a batch of paired style images")
        if index.numel() == 0 or int(index.min()) < 0 or int(index.max()) >= paired:
            raise ObjectiveError(f"style indices must lie in 0..{paired - 1}, got {index.tolist()}")
        index = index.to(self._device())
        clone = copy.copy(self)  # a new __dict__; the encoder module is shared
        clone._style_targets = {k: v[index] for k, v in self._style_targets.items()}
        clone._style_scale = {k: v[index] for k, v in self._style_scale.items()}
        clone._content_ready = False
        clone._content_targets, clone._content_scale, clone._masks = {}, {}, {}
        clone._geometry = None
        return clone

    def _apply(self, fn, recurse=True):  # keep the target dicts on the module's device
        super()._apply(fn, recurse)
        for store in (self._style_targets, self._style_scale, self._content_targets, self._content_scale):
            for key, value in store.items():
                store[key] = fn(value)
        for key, value in self._masks.items():
            if value is not None:
                self._masks[key] = fn(value)
        if self._geometry is not None:
            self._geometry = {key: fn(value) for key, value in self._geometry.items()}
        if self._style_dark is not None:
            self._style_dark = tuple(fn(value) for value in self._style_dark)
        return self

    @torch.no_grad()
    def set_content(self, content: Tensor, regions=None) -> None:
        """Compute the content targets and the content image's region masks.

        ``regions`` is the content image's :class:`~masked_gatys.masks.Regions`
        (batch 1 or B); the output image is judged with this mask too.
        """
        if content.dim() != 4 or content.shape[1] != 3:
            raise ObjectiveError(f"the content image must be (B, 3, H, W), got {tuple(content.shape)}")
        paired = max((t.shape[0] for t in self._style_targets.values()), default=1)
        if paired not in (1, content.shape[0]):
            raise ObjectiveError(f"{paired} paired style images for {content.shape[0]} content images: "
                                 "give one style image, or one per content image")
        content = content.to(self._device())
        if regions is not None:
            regions = regions.to(content.device)
            if regions.masks.shape[-2:] != content.shape[-2:]:
                raise ObjectiveError(
                    f"the content mask is {tuple(regions.masks.shape[-2:])} but the content image "
                    f"is {tuple(content.shape[-2:])}")
        feats = self.encoder(content)
        # Build everything first and assign only after every check has
        # passed, so a failed call leaves the previous content in place.
        masks_at: dict[tuple[str, str | None], Tensor | None] = {}
        for term in self.config.terms:
            f = feats[term.layer]
            key = (term.layer, term.region)
            if key not in masks_at:
                masks_at[key] = _region_masks(regions, [term.region], f.shape[-2:], "content mask")[term.region]
                _check_mass(masks_at[key], term, "content mask")
        targets, scales = {}, {}
        for term in self.config.terms:
            if term.kind != "content":
                continue
            target = feats[term.layer]
            mask = masks_at[(term.layer, term.region)]
            targets[term.name] = target
            scales[term.name] = Fn.masked_mean_square(target, mask).clamp_min(1e-12)
        # The window each region's mask covers, for the style terms' Gram
        # products (exact; read on the host here, never per evaluation).
        boxes = {key: Fn.mask_box(mask) if mask is not None else None for key, mask in masks_at.items()}
        geometry = None
        if self.config.geometry_weight:
            region = self.config.geometry_region
            mask = _region_masks(regions, [region], tuple(content.shape[-2:]), "content mask")[region]
            threshold, softness = _dark_levels(content, mask)
            target = Fn.blob_moments(Fn.darkness(content, threshold, softness) * mask)
            scale = (target[:, 2] + target[:, 3]).clamp_min(0.25)
            if self._style_dark is not None:  # the output's dark level: the style eye's
                threshold, softness = (v.expand(content.shape[0]) for v in self._style_dark)
            geometry = {"mask": mask, "target": target, "threshold": threshold, "softness": softness,
                        "scale": scale}
        self._masks, self._content_targets, self._content_scale = masks_at, targets, scales
        self._geometry = geometry
        self._boxes = boxes
        self._content_shape = tuple(content.shape)
        self._content_ready = True

    def forward(self, x: Tensor) -> ObjectiveValue:
        if not self._content_ready:
            raise ObjectiveError("call set_content(content, regions) before evaluating the objective")
        if tuple(x.shape) != self._content_shape:
            raise ObjectiveError(f"the image is {tuple(x.shape)} but the content was {self._content_shape}: "
                                 "batch and size must match")
        cfg = self.config
        feats = self.encoder(x)
        terms: dict[str, Tensor] = {}
        total = x.new_zeros(x.shape[0])
        for term in cfg.terms:
            f = feats[term.layer]
            mask = self._masks[(term.layer, term.region)]
            if term.kind == "content":
                value = Fn.content_loss(f, self._content_targets[term.name], mask)
                scale = self._content_scale[term.name]
                group = cfg.content_weight
            else:
                value = Fn.style_loss(f, self._style_targets[term.name], mask,
                                      box=self._boxes[(term.layer, term.region)])
                scale = self._style_scale[term.name]
                group = cfg.style_weight
            if cfg.normalize:
                value = value / scale
            terms[term.name] = value
            total = total + (group * term.weight) * value
        if self._geometry is not None:
            g = self._geometry
            value = Fn.geometry_loss(x, g["target"], g["mask"], g["threshold"], g["softness"], g["scale"])
            terms[f"geometry@{cfg.geometry_region}"] = value
            total = total + cfg.geometry_weight * value
        if cfg.tv_weight:
            tv = Fn.tv_loss(x)
            terms["tv"] = tv
            total = total + cfg.tv_weight * tv
        return ObjectiveValue(total, terms)


def _blend_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Blend weights for ``n`` styles, normalised to sum 1 (None: equal).

    >>> _blend_weights([3, 1], 2)
    [0.75, 0.25]
    """
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ObjectiveError(f"{len(weights)} style weights for {n} style images")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ObjectiveError(f"style weights must be finite, >= 0 and not all 0, got {weights}")
    return [w / sum(weights) for w in weights]


def _dark_levels(image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, the luma threshold between pupil and iris inside ``mask`` and a softness.

    The threshold is halfway between the 5th percentile of the luma inside
    the mask (the pupil's core) and its median (the iris, which covers most
    of an eye's attention region); the softness is a sixth of that gap.
    """
    luma = Fn.luma(image)
    inside = mask.expand_as(luma) >= 0.5
    lows, mids = [], []
    for b in range(image.shape[0]):
        values = luma[b][inside[b]]
        if values.numel() == 0:
            values = luma[b].flatten()
        lows.append(torch.quantile(values.float(), 0.05))
        mids.append(torch.quantile(values.float(), 0.5))
    low, mid = torch.stack(lows).to(image.dtype), torch.stack(mids).to(image.dtype)
    gap = (mid - low).clamp_min(0.02)
    return low + 0.5 * gap, gap / 6.0


def _check_mass(mask: Tensor | None, term: Term, label: str) -> None:
    if mask is None:
        return
    mass = mask.sum(dim=(1, 2, 3))
    worst = float(mass.min())
    if worst < 0.5:
        h, w = mask.shape[-2:]
        raise MaskError(
            f"region {term.region!r} of the {label} covers {worst:.2f} positions at {term.layer} "
            f"({h}x{w} grid), fewer than 0.5: use a larger --size, a larger region, or drop that layer "
            f"(--max-layer)")
