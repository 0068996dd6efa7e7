"""The parts of an eye from its attention mask: the pupil found in the image, the iris around it.

The ``masked-eye`` objective matches style separately in the pupil, the iris
and the background, so the pupil's statistics no longer trade area with the
iris's (which moves and grows the pupil towards the style eye's). A binary
attention mask (iris + pupil) does not say where the pupil is; the pupil
detector does: the pupil region is a soft disc at the detected centre with
the radius of the detected dark blob.

>>> from masked_gatys.eyes import render_eye
>>> eye = render_eye(size=(36, 60), seed=1, domain="real")
>>> r = eye_regions(eye.image, eye.mask)
>>> r.names
('background', 'attention', 'iris', 'pupil')
>>> bool((r.region("iris") + r.region("pupil") - eye.mask).abs().max() < 1e-6)
True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from masked_gatys.errors import ImageError

__all__ = ["EYE_REGIONS", "EYE_PARTS", "pupil_disc", "eye_regions", "parts_from_labels", "load_parts",
           "resize_parts"]

EYE_REGIONS = ("background", "attention", "iris", "pupil")
#: the regions of an eye whose parts are all known (a label mask): the background splits too
EYE_PARTS = EYE_REGIONS + ("skin", "sclera")


def _one_disc(image: Tensor, attention: Tensor) -> Tensor:
    from masked_gatys.eyes.pupil import _locate, _to_grey, _to_mask

    grey = _to_grey(image)
    region = _to_mask(attention, grey.shape) >= 0.5
    h, w = grey.shape
    try:
        x, y, info = _locate(grey, region if region.any() else None)
        radius = float(info["r_est"])
        if info.get("ellipse") is not None:
            # the fit runs at the half-way level of a slightly blurred edge, which puts it about
            # half a pixel inside the labelled pupil on the renders (radius 0.84x on 8 real eyes)
            radius = float(np.sqrt(np.prod(info["ellipse"][1]))) + 0.5
    except ImageError:  # no pupil to be found: a disc a third of the region's size at its centre
        ys, xs = np.nonzero(region) if region.any() else (np.array([h / 2]), np.array([w / 2]))
        x, y = float(xs.mean()), float(ys.mean())
        radius = max(1.0, math.sqrt(max(region.sum(), 1) / math.pi) / 3.0)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    d = ((xx - x) ** 2 + (yy - y) ** 2).sqrt()
    return (radius + 0.5 - d).clamp(0.0, 1.0)[None, None]  # anti-aliased edge, one pixel wide


def pupil_disc(image: Tensor, attention: Tensor) -> Tensor:
    """Soft pupil discs ``(B, 1, H, W)``, inside the attention mask, from the pupil detector.

    ``image`` ``(B, 3, H, W)``; ``attention`` ``(B or 1, 1, H, W)``.
    """
    b = image.shape[0]
    att = attention.expand(b, 1, *attention.shape[-2:])
    discs = [_one_disc(image[i:i + 1].detach().cpu(), att[i:i + 1].detach().cpu()) for i in range(b)]
    return torch.cat(discs).to(image.device, image.dtype) * att.to(image.dtype)


def eye_regions(image: Tensor, attention: Tensor, pupil: Tensor | None = None):
    """:class:`~masked_gatys.masks.Regions` ``background, attention, iris, pupil`` of eye images.

    ``attention``: the iris + pupil mask ``(B or 1, 1, H, W)``; ``pupil``: the
    pupil's mask if known (e.g. from the renderer's labels), else
    :func:`pupil_disc`. iris = attention - pupil, background = 1 - attention.
    """
    from masked_gatys.masks import Regions

    b = image.shape[0]
    att = attention.to(image.dtype).expand(b, 1, *attention.shape[-2:]).clamp(0, 1)
    pup = pupil_disc(image, att) if pupil is None else (pupil.to(image.dtype) * att)
    pup = torch.minimum(pup, att)
    return Regions(torch.cat([1.0 - att, att, att - pup, pup], dim=1), EYE_REGIONS)


def parts_from_labels(labels: Tensor):
    """:class:`~masked_gatys.masks.Regions` :data:`EYE_PARTS` from label maps ``(B, H, W)``
    (0 skin, 1 sclera, 2 iris, 3 pupil: the renderer's ``EyeRender.labels``).

    With the sclera and the skin apart, neither takes the other's statistics: one background
    region lets the optimizer paint sclera into the skin and move the lids (docs/gaze.md).

    >>> import torch
    >>> r = parts_from_labels(torch.tensor([[[0, 1, 2, 3]]]))
    >>> r.names
    ('background', 'attention', 'iris', 'pupil', 'skin', 'sclera')
    >>> r.masks[0, :, 0].tolist()
    [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
    """
    from masked_gatys.masks import Regions

    if labels.dim() == 2:
        labels = labels[None]
    if labels.dim() != 3:
        raise ImageError(f"label maps must be (B, H, W), got {tuple(labels.shape)}")
    one = torch.stack([(labels == k).float() for k in range(4)], dim=1)  # skin, sclera, iris, pupil
    skin, sclera, iris, pupil = one.unbind(1)
    masks = torch.stack([skin + sclera, iris + pupil, iris, pupil, skin, sclera], dim=1)
    return Regions(masks, EYE_PARTS)


def resize_parts(labels: Tensor, size) -> Tensor:
    """Label maps ``(B, H, W)`` at ``size`` (nearest label: labels are not averaged); same dtype.

    >>> resize_parts(torch.tensor([[[0, 1], [2, 3]]]), (4, 4))[0, :, 0].tolist()
    [0, 0, 2, 2]
    """
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    out = torch.nn.functional.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest-exact")
    return out[:, 0].to(labels.dtype)


def load_parts(path) -> Tensor:
    """A label mask file in the renderer's colours (``render-eyes`` writes ``NAME_labels.png``)
    as a label map ``(1, H, W)``; a colour outside those four is an error naming the file."""
    from masked_gatys.eyes.render import LABEL_COLORS
    from masked_gatys.masks import load_mask

    palette = ["#%02x%02x%02x" % LABEL_COLORS[k] for k in sorted(LABEL_COLORS)]
    regions = load_mask(path, mode="labels", palette=palette)
    return regions.masks.argmax(dim=1)
