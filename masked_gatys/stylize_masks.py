"""Where a stylize run's content mask comes from: given, the eye-part segmenter's, or none.

:func:`content_masks` decides (``mask`` a file or tensor, ``"auto"``, ``"none"`` or None);
``masked_gatys.stylize`` calls it and re-exports it.

>>> import torch
>>> from masked_gatys.config import StylizeConfig
>>> content_masks(torch.rand(1, 3, 8, 8), "none", StylizeConfig())
(None, 'none', None)
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Union

import torch
from torch import Tensor

from masked_gatys.config import StylizeConfig
from masked_gatys.errors import MaskError
from masked_gatys.eyes.labels import resize_parts
from masked_gatys.image import as_image_batch, resize_to
from masked_gatys.masks import Regions

__all__ = ["content_masks", "style_masks_from_segmenter", "clip_given_mask", "eye_labels", "looks_like_eyes",
           "MASK_WORDS", "DETECT_SIDE", "EYE_CROP_IRIS"]

ImageLike = Union[str, os.PathLike, Tensor]


#: ``mask`` words that are not a file: the segmenter makes the masks, or there is none
MASK_WORDS = ("auto", "none")
#: the presets that cannot run without an attention mask
_NEEDS_MASK = ("masked", "masked-eye")


def _content_name(content: ImageLike, b: int, batch: int) -> str:
    if not isinstance(content, Tensor):
        return str(content)
    return "the content image" if batch == 1 else f"content image {b} of the batch"


def _segment(content_img: Tensor, segmenter: Any) -> Tensor:
    """The segmenter's labels ``(B, H, W)`` of the content images."""
    from masked_gatys.eyes.segment import segment  # deferred: scipy.ndimage (through eyes.pupil)

    return segment(content_img, model=segmenter)


#: the longest side at which an image without a mask is checked for an eye (the segmenter works at
#: 36x60 whatever the size, and its post-processing costs seconds at 240x320)
DETECT_SIDE = 120


#: an eye crop's iris covers at least this share of it (``subject="auto"`` without a mask): real
#: eyes taken measured 7.4 % and more (MPIIGaze 36x60) and 18 % (near-infrared 320x240), a face
#: photo's collar the segmenter took for an iris 3 %
EYE_CROP_IRIS = 0.05


def _detection_copy(content_img: Tensor) -> Tensor:
    """The content scaled down to :data:`DETECT_SIDE` (itself if no larger), for telling an eye."""
    h, w = content_img.shape[-2:]
    if max(h, w) <= DETECT_SIDE:
        return content_img
    scale = DETECT_SIDE / max(h, w)
    return resize_to(content_img, (max(4, round(h * scale)), max(4, round(w * scale))))


def looks_like_eyes(content_img: Tensor, labels: Tensor) -> bool:
    """Most images look like an eye in the segmenter's iris (``subject="auto"``'s rule): an iris
    covering :data:`EYE_CROP_IRIS` of each image, where the pupil detector finds a pupil for most.

    >>> from masked_gatys.eyes import render_eye
    >>> eye = render_eye(size=(36, 60), seed=1, domain="real")
    >>> looks_like_eyes(eye.image, eye.labels[None]), looks_like_eyes(eye.image, 0 * eye.labels[None])
    (True, False)
    """
    from masked_gatys.eyes.pupil import looks_like_eye  # deferred: scipy.ndimage costs 0.8 s to import

    share = (labels >= 2).flatten(1).float().mean(dim=1)
    if not bool((share >= EYE_CROP_IRIS).all()):
        return False
    attention = (labels >= 2).float()[:, None]
    votes = [looks_like_eye(content_img[b:b + 1], attention[b:b + 1]) for b in range(content_img.shape[0])]
    return 2 * sum(votes) >= len(votes)


def content_masks(content: ImageLike, mask, cfg: StylizeConfig, *, segmenter: Any = None,
                  style_mask=None) -> tuple[Any, str, Tensor | None]:
    """The content mask a run uses: ``(mask, source, labels)``.

    ``mask`` is a path, tensor or regions (used as given: source ``given``), ``"none"``
    (no mask), ``"auto"`` (the eye-part segmenter, ``masked_gatys.eyes.segment``, makes
    it: source ``segmenter``) or None, which means ``auto`` for an eye and no mask
    otherwise: ``auto`` when the preset needs a mask (``masked``, ``masked-eye``), or, with
    no preset named and ``config.subject`` ``eye`` or ``auto``, when the segmenter finds an
    iris in every image (for ``auto``: one covering :data:`EYE_CROP_IRIS` of the image, in
    which the pupil detector finds a pupil for most images,
    ``masked_gatys.eyes.pupil.looks_like_eye``; told on a copy at most :data:`DETECT_SIDE`
    px long); else no mask, as before.

    The segmenter's mask is the attention mask (iris + pupil) with ``mask_mode="binary"``
    and the part labels ``(B, H, W)`` with ``mask_mode="parts"``; ``labels`` are the
    segmenter's labels (else None). ``segmenter``: None (the shipped network) or what
    :func:`masked_gatys.eyes.segment.segment` takes as ``model``. ``"auto"`` on an eye
    without an iris (closed) is a :class:`~masked_gatys.errors.MaskError`.

    >>> import torch
    >>> content_masks(torch.rand(1, 3, 8, 8), "none", StylizeConfig())
    (None, 'none', None)
    """
    return _content_masks(content, None, mask, cfg, segmenter, style_mask)


def _content_masks(content: ImageLike, content_img: Tensor | None, mask, cfg: StylizeConfig, segmenter: Any,
                   style_mask) -> tuple[Any, str, Tensor | None]:
    if mask is not None and not (isinstance(mask, str) and mask in MASK_WORDS):
        return mask, "given", None
    needs = cfg.preset in _NEEDS_MASK
    if mask == "none":
        if needs:
            raise MaskError(f"the {cfg.preset} preset needs a mask: give --mask PATH or --mask auto, "
                            "or --preset gatys")
        if style_mask:
            raise MaskError("a style mask was given with --mask none: drop --style-mask, or give --mask")
        return None, "none", None
    if mask is None and (cfg.mask_mode == "labels" or (not needs and (cfg.preset is not None
                                                                       or cfg.subject == "general"))):
        return None, "none", None  # a general image, or an objective that takes no eye mask: as before
    if cfg.mask_mode == "labels":
        raise MaskError("--mask auto makes eye part labels: use --mask-mode binary or parts, not labels")
    if content_img is None:
        content_img = as_image_batch(content, "content")
    if mask is None and min(content_img.shape[-2:]) < 4:
        return None, "none", None  # too small for the segmenter: the size checks say why
    if mask is None and not needs:  # no preset named: an eye gets the segmenter's masks
        probe = _detection_copy(content_img)
        labels = _segment(probe, segmenter)
        share = (labels >= 2).flatten(1).float().mean(dim=1)
        if not bool((share > 0).all()) or \
                (cfg.subject == "auto" and not looks_like_eyes(probe, labels)):
            return None, "none", None
        if probe is not content_img:
            labels = _segment(content_img, segmenter)
    else:
        labels = _segment(content_img, segmenter)
    iris = (labels >= 2).flatten(1).any(dim=1)
    if not bool(iris.all()):
        name = _content_name(content, int((~iris).nonzero()[0, 0]), labels.shape[0])
        if mask is None:
            raise MaskError(f"the {cfg.preset} preset needs a binary mask (--mask) and the segmenter finds no "
                            f"iris in {name} (a closed eye?); give --mask PATH or --preset gatys")
        raise MaskError(f"the segmenter finds no iris in {name} (a closed eye?); give --mask PATH or --mask none")
    made = labels if cfg.mask_mode == "parts" else (labels >= 2).float()[:, None]
    return made, "segmenter", labels


def eye_labels(images: Tensor, segmenter: Any = None) -> Tensor:
    """The segmenter's part labels ``(B, H, W)`` of eye images at their size (segmented on a copy
    at most :data:`DETECT_SIDE` px long, the labels then brought back, nearest).

    >>> from masked_gatys.eyes import render_eye
    >>> tuple(eye_labels(render_eye(size=(72, 120), seed=1).image).shape)
    (1, 72, 120)
    """
    hw = tuple(images.shape[-2:])
    labels = _segment(_detection_copy(images), segmenter)
    return labels if tuple(labels.shape[-2:]) == hw else resize_parts(labels, hw)


def clip_given_mask(content_img: Tensor, regions: Regions, *, segmenter: Any = None,
                    name: str = "the content", labels: Tensor | None = None) -> tuple[Regions, Tensor]:
    """A given binary mask's regions with the attention brought onto the eye's iris:
    ``(regions, labels)``, ``labels`` the segmenter's ``(B, H, W)`` (or ``labels`` as given).

    The masked-eye objective matches the style's iris and pupil over the attention region;
    a hand-made disc around the pupil, larger than the iris, holds sclera and skin, where
    the optimizer then paints iris texture, dark rings and lobes round the pupil (and a
    second iris where the disc lies beside the eye). So the eye-part segmenter
    (``masked_gatys.eyes.segment``, on a copy at most :data:`DETECT_SIDE` px long) labels
    the content and ``masked_gatys.eyes.parts.clip_attention`` clips the attention to its
    iris (grown by 1 px) where they disagree, with one warning naming what was done; an
    exact mask is kept as given. ``regions``: ``background, attention`` of the content.

    >>> from masked_gatys.eyes import render_eye
    >>> eye = render_eye(size=(36, 60), seed=1, domain="real")
    >>> exact = Regions.from_binary(eye.binary_mask)
    >>> clip_given_mask(eye.image, exact)[0] is exact  # the renderer's own mask: kept
    True
    """
    from masked_gatys.eyes.parts import clip_attention  # deferred: scipy.ndimage (through eyes.pupil)

    if labels is None:
        labels = eye_labels(content_img, segmenter)
    attention, actions = clip_attention(regions.region("attention").to(labels.device), labels)
    if all(a == "kept" for a in actions):
        return regions, labels
    done = sorted(set(actions) - {"kept"})
    what = " and ".join({"clipped": "clipped to the iris the segmenter finds",
                         "replaced": "replaced by the iris the segmenter finds (the mask misses it)"}[a] for a in done)
    count = "" if len(actions) == 1 else f" on {sum(a != 'kept' for a in actions)} of {len(actions)} images"
    warnings.warn(f"the mask of {name} reaches well past the eye's iris: its attention is {what}{count} "
                  "(sclera and skin in it would get iris texture and rings painted on them)", stacklevel=3)
    attention = attention.to(regions.masks.device, regions.masks.dtype)
    return Regions(torch.cat([1.0 - attention, attention], dim=1), ("background", "attention")), labels


def style_masks_from_segmenter(styles: list[Tensor], mask_mode: str,
                               segmenter: Any = None) -> tuple[list[Tensor], list[Tensor]]:
    """The style images' masks when the content's come from the segmenter (``mask="auto"``) and
    none is given: the same segmenter's, in the content's form (part labels with
    ``mask_mode="parts"``, else the attention mask), so each region is matched with the style
    eye's own region rather than with the whole style image; and the labels ``(B, H, W)`` they
    came from (masked-eye's pupil split takes them). Both empty (the whole style image, as
    before, with its warning) when it finds no iris in some style image: not an eye.

    >>> import torch
    >>> style_masks_from_segmenter([torch.zeros(1, 3, 36, 60)], "binary")
    ([], [])
    """
    made, found = [], []
    for image in styles:
        labels = _segment(image, segmenter)
        if not bool((labels >= 2).flatten(1).any(dim=1).all()):
            return [], []
        found.append(labels)
        made.append(labels if mask_mode == "parts" else (labels >= 2).float()[:, None])
    return made, found
