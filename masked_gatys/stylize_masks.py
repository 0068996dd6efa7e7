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
from typing import Any, Union

from torch import Tensor

from masked_gatys.config import StylizeConfig
from masked_gatys.errors import MaskError
from masked_gatys.image import as_image_batch, resize_to

__all__ = ["content_masks", "style_masks_from_segmenter", "MASK_WORDS", "DETECT_SIDE", "EYE_CROP_IRIS"]

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


def _looks_like_eyes(content_img: Tensor, labels: Tensor) -> bool:
    """Most images look like an eye in the segmenter's iris (``subject="auto"``'s rule)."""
    from masked_gatys.eyes.pupil import looks_like_eye  # deferred: scipy.ndimage costs 0.8 s to import

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
                (cfg.subject == "auto" and not (bool((share >= EYE_CROP_IRIS).all()) and _looks_like_eyes(probe, labels))):
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


def style_masks_from_segmenter(styles: list[Tensor], mask_mode: str, segmenter: Any = None) -> list[Tensor]:
    """The style images' masks when the content's come from the segmenter (``mask="auto"``) and
    none is given: the same segmenter's, in the content's form (part labels with
    ``mask_mode="parts"``, else the attention mask), so each region is matched with the style
    eye's own region rather than with the whole style image. Empty (the whole style image, as
    before, with its warning) when it finds no iris in some style image: not an eye.

    >>> import torch
    >>> style_masks_from_segmenter([torch.zeros(1, 3, 36, 60)], "binary")
    []
    """
    made = []
    for image in styles:
        labels = _segment(image, segmenter)
        if not bool((labels >= 2).flatten(1).any(dim=1).all()):
            return []
        made.append(labels if mask_mode == "parts" else (labels >= 2).float()[:, None])
    return made
