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
from masked_gatys.eyes.labels import (  # re-exported: they lived here before eyes/labels.py
    EYE_PARTS, EYE_REGIONS, load_parts, parts_from_labels, resize_parts)
from masked_gatys.eyes.pupil import fit_pupil
from masked_gatys.masks import Regions

__all__ = ["EYE_REGIONS", "EYE_PARTS", "pupil_disc", "eye_regions", "parts_from_labels", "load_parts",
           "resize_parts"]


def _one_disc(image: Tensor, attention: Tensor) -> Tensor:
    h, w = image.shape[-2:]
    region = (attention.reshape(h, w) >= 0.5).numpy()
    try:
        fit = fit_pupil(image, attention if region.any() else None)
        radius = fit.radius
        if fit.ellipse is not None:
            # the fit runs at the half-way level of a slightly blurred edge, which puts it about
            # half a pixel inside the labelled pupil on the renders (radius 0.84x on 8 real eyes)
            radius = float(np.sqrt(np.prod(fit.ellipse[1]))) + 0.5
        x, y = fit.x, fit.y
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


def eye_regions(image: Tensor, attention: Tensor, pupil: Tensor | None = None) -> Regions:
    """:class:`~masked_gatys.masks.Regions` ``background, attention, iris, pupil`` of eye images.

    ``attention``: the iris + pupil mask ``(B or 1, 1, H, W)``; ``pupil``: the
    pupil's mask if known (e.g. from the renderer's labels), else
    :func:`pupil_disc`. iris = attention - pupil, background = 1 - attention.
    """
    b = image.shape[0]
    att = attention.to(image.dtype).expand(b, 1, *attention.shape[-2:]).clamp(0, 1)
    pup = pupil_disc(image, att) if pupil is None else (pupil.to(image.dtype) * att)
    pup = torch.minimum(pup, att)
    return Regions(torch.cat([1.0 - att, att, att - pup, pup], dim=1), EYE_REGIONS)

