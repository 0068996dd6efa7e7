"""Eye part labels: the label ids and colours, and the named regions they make.

A label map holds 0 skin, 1 sclera, 2 iris, 3 pupil per pixel (the renderer's
``EyeRender.labels``); a label file is the same in colours (black skin, white
sclera, blue iris, red pupil: ``render-eyes`` writes ``NAME_labels.png``).
:func:`parts_from_labels` turns it into the :data:`EYE_PARTS` regions the
``masked-eye`` objective matches apart. A leaf of the eye domain: it imports
only the core (``masks``, ``errors``).

>>> import torch
>>> parts_from_labels(torch.tensor([[[0, 1, 2, 3]]])).names == EYE_PARTS
True
"""

from __future__ import annotations

import os
from typing import Union

import torch
from torch import Tensor

from masked_gatys.errors import ImageError
from masked_gatys.masks import Regions, load_mask

__all__ = ["LABELS", "LABEL_COLORS", "EYE_REGIONS", "EYE_PARTS", "parts_from_labels", "load_parts",
           "resize_parts", "parts_regions"]

#: label id -> name
LABELS: dict[int, str] = {0: "skin", 1: "sclera", 2: "iris", 3: "pupil"}
#: label id -> RGB colour (0-255) of the colour-coded label images
LABEL_COLORS: dict[int, tuple[int, int, int]] = {
    0: (0, 0, 0), 1: (255, 255, 255), 2: (0, 128, 255), 3: (255, 0, 0),
}
#: the regions of an eye whose pupil is known (``masked-eye``)
EYE_REGIONS = ("background", "attention", "iris", "pupil")
#: the regions of an eye whose parts are all known (a label mask): the background splits too
EYE_PARTS = EYE_REGIONS + ("skin", "sclera")


def parts_from_labels(labels: Tensor) -> Regions:
    """:class:`~masked_gatys.masks.Regions` :data:`EYE_PARTS` from label maps ``(B, H, W)``
    (0 skin, 1 sclera, 2 iris, 3 pupil: the renderer's ``EyeRender.labels``).

    With the sclera and the skin apart, neither takes the other's statistics: one background
    region lets the optimizer paint sclera into the skin and move the lids (docs/gaze.md).

    >>> r = parts_from_labels(torch.tensor([[[0, 1, 2, 3]]]))
    >>> r.names
    ('background', 'attention', 'iris', 'pupil', 'skin', 'sclera')
    >>> r.masks[0, :, 0].tolist()
    [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
    """
    if labels.dim() == 2:
        labels = labels[None]
    if labels.dim() != 3:
        raise ImageError(f"label maps must be (B, H, W), got {tuple(labels.shape)}")
    one = torch.stack([(labels == k).float() for k in range(4)], dim=1)  # skin, sclera, iris, pupil
    skin, sclera, iris, pupil = one.unbind(1)
    masks = torch.stack([skin + sclera, iris + pupil, iris, pupil, skin, sclera], dim=1)
    return Regions(masks, EYE_PARTS)


def resize_parts(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Label maps ``(B, H, W)`` at ``size`` (nearest label: labels are not averaged); same dtype.

    >>> resize_parts(torch.tensor([[[0, 1], [2, 3]]]), (4, 4))[0, :, 0].tolist()
    [0, 0, 2, 2]
    """
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    out = torch.nn.functional.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest-exact")
    return out[:, 0].to(labels.dtype)


def load_parts(path: Union[str, os.PathLike]) -> Tensor:
    """A label mask file in the renderer's colours (``render-eyes`` writes ``NAME_labels.png``)
    as a label map ``(1, H, W)``; a colour outside those four is an error naming the file.

    >>> load_parts("/nonexistent_labels.png")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.MaskError: mask file not found: /nonexistent_labels.png
    """
    palette = ["#%02x%02x%02x" % LABEL_COLORS[k] for k in sorted(LABEL_COLORS)]
    regions = load_mask(path, mode="labels", palette=palette)
    return regions.masks.argmax(dim=1)


def parts_regions(mask: Union[str, os.PathLike, Tensor, Regions]) -> Regions:
    """An eye's part labels as its :data:`EYE_PARTS` regions: a label file (as
    :func:`load_parts`), a label map ``(H, W)`` / ``(B, H, W)``, or regions already made
    (returned as they are). This is ``stylize``'s ``mask_mode="parts"``.

    >>> parts_regions(torch.tensor([[0, 3]])).names[-2:]
    ('skin', 'sclera')
    """
    if isinstance(mask, Regions):
        return mask
    if isinstance(mask, Tensor):
        return parts_from_labels(mask.long() if mask.dim() == 3 else mask.long()[None])
    return parts_from_labels(load_parts(mask))
