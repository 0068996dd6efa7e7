"""The parts of an eye from its attention mask: the pupil found in the image, the iris around it.

The ``masked-eye`` objective matches style separately in the pupil, the iris
and the background, so the pupil's statistics no longer trade area with the
iris's (which moves and grows the pupil towards the style eye's). A binary
attention mask (iris + pupil) does not say where the pupil is; the eye-part
segmenter's pupil label does (:func:`segmenter_pupil`, what ``stylize`` uses),
else the pupil detector: a soft disc at the detected centre with the radius of
the detected dark blob (:func:`pupil_disc`). A given mask that reaches well past
the segmenter's iris is clipped to it first (:func:`clip_attention`): issue 22's
multi-lobed pupils and rings came from a disc mask larger than the iris.

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
from masked_gatys.masks import Regions, resize_mask

__all__ = ["EYE_REGIONS", "EYE_PARTS", "pupil_disc", "eye_regions", "parts_from_labels", "load_parts",
           "resize_parts", "clip_attention", "segmenter_pupil", "CLIP_MARGIN", "CLIP_TOLERANCE", "CLIP_KEEP"]

#: the image's iris (the segmenter's iris + pupil) grown by this many pixels bounds a given attention mask
CLIP_MARGIN = 1
#: a given attention mask is clipped when more than this share of its mass lies outside that bound
#: (an exact iris mask: about 0-3 % on the renders; a disc around the pupil larger than the iris: 30-50 %)
CLIP_TOLERANCE = 0.1
#: a clipped mask that keeps less than this share of the image's iris missed it: the iris replaces it
CLIP_KEEP = 0.5


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



def _grow(mask: Tensor, pixels: int) -> Tensor:
    """``mask`` ``(B, 1, H, W)`` dilated by ``pixels`` (8-connected)."""
    for _ in range(pixels):
        mask = torch.nn.functional.max_pool2d(mask, 3, stride=1, padding=1)
    return mask


def clip_attention(attention: Tensor, labels: Tensor, *, margin: int = CLIP_MARGIN,
                   tolerance: float = CLIP_TOLERANCE, keep: float = CLIP_KEEP) -> tuple[Tensor, list[str]]:
    """A given attention mask brought onto the image's iris: ``(attention (B, 1, H, W), actions)``.

    ``attention``: the given iris + pupil mask ``(B or 1, 1, H, W)``; ``labels``: the
    segmenter's part labels ``(B, H, W)`` of the same images (2 iris, 3 pupil). Per image,
    where more than ``tolerance`` of the mask's mass lies outside the image's iris grown by
    ``margin`` px (a disc drawn around the pupil, larger than the iris, holds sclera and
    skin), the mask is clipped to that bound (action ``clipped``); where the clipped mask
    keeps less than ``keep`` of the iris's area (the mask lies beside the iris) the iris
    itself replaces it (``replaced``). Otherwise it is kept as given (``kept``; also where the
    segmenter finds no iris). The masked-eye objective matches the style's iris and pupil
    statistics over this region: sclera and skin inside it get iris texture and dark rings
    painted on them, and a mask beside the iris gets a second iris painted there.

    >>> labels = torch.zeros(1, 9, 9, dtype=torch.long)
    >>> labels[0, 3:6, 3:6] = 2
    >>> disc = torch.ones(1, 1, 9, 9)
    >>> clipped, actions = clip_attention(disc, labels)
    >>> actions, int(clipped.sum())
    (['clipped'], 25)
    >>> clip_attention((labels >= 2).float()[:, None], labels)[1]
    ['kept']
    """
    b = labels.shape[0]
    att = attention.expand(b, 1, *attention.shape[-2:]).to(torch.float32)
    iris = (labels >= 2).to(att.device, torch.float32)[:, None]
    bound = _grow(iris, margin)
    out, actions = [], []
    for i in range(b):
        a, bnd, ir = att[i:i + 1], bound[i:i + 1], iris[i:i + 1]
        mass = float(a.sum())
        if float(ir.sum()) == 0 or mass == 0 or float((a * (1 - bnd)).sum()) <= tolerance * mass:
            out.append(a)
            actions.append("kept")
            continue
        clipped = a * bnd
        if float((clipped * ir).sum()) < keep * float(ir.sum()):
            out.append(ir)
            actions.append("replaced")
        else:
            out.append(clipped)
            actions.append("clipped")
    return torch.cat(out).to(attention.dtype), actions


def segmenter_pupil(image: Tensor, attention: Tensor, labels: Tensor) -> Tensor:
    """The pupil ``(B, 1, H, W)`` that splits ``attention`` into iris and pupil: the segmenter's.

    ``labels``: the segmenter's part labels ``(B, h, w)`` of the images (any size: the pupil
    label is brought to the image's with :func:`~masked_gatys.masks.resize_mask`). Where it
    finds no pupil inside the attention, the detector's disc (:func:`pupil_disc`) stands in.
    The segmenter's pupil is the better one (IoU with the renderer's pupil, median over 40
    renders with their exact masks: 0.75 against the detector's 0.50 on ``mpiigaze`` webcam
    eyes, 0.89 against 0.75 on ``unity`` at 36x60): the detector takes the dark iris and lid
    shadows into its blob (3x the pupil and more on 16 % of those webcam eyes, the whole iris
    on a disc mask larger than the iris), and the style's small pupil matched over such a
    region is painted several times in it: the multi-lobed pupils of issue 22.

    >>> from masked_gatys.eyes import render_eye
    >>> eye = render_eye(size=(36, 60), seed=1, domain="real")
    >>> labels = eye.labels[None]
    >>> pupil = segmenter_pupil(eye.image, eye.binary_mask, labels)
    >>> bool(pupil.equal((labels == 3).float()[:, None] * eye.binary_mask))
    True
    """
    b, hw = image.shape[0], tuple(image.shape[-2:])
    att = attention.to(image.dtype).expand(b, 1, *attention.shape[-2:])
    pup = (labels == 3).to(image.device, image.dtype)[:, None].expand(b, 1, *labels.shape[-2:])
    if tuple(pup.shape[-2:]) != hw:
        pup = resize_mask(pup, hw)
    pup = pup * att
    missing = [i for i in range(b) if float(pup[i].sum()) < 0.5]
    if missing:
        idx = torch.tensor(missing, device=image.device)
        pup = pup.clone()
        pup[idx] = pupil_disc(image[idx], att[idx])
    return pup
