"""Perturbed masks: what a user's imperfect eye mask looks like, for training the networks.

A network trained only on exact masks learns to trust the mask: on a real eye whose mask
is a little too big, shifted, or has a hole, it paints its template iris to fill the mask
instead of following the image (issue #22). Training with ``TrainConfig.mask_jitter`` feeds
the network, for a share of the training eyes, a perturbed copy of the mask made here, while
the objective keeps the true mask, so the network learns to put the iris and the pupil where
the image has them.

Each perturbed mask gets one of :data:`KINDS`, drawn uniformly:

- ``dilate``: grown by 1 or 2 px (max-pooling with a square window);
- ``erode``: shrunk by 1 or 2 px (``-maxpool(-mask)``; the image border is not an edge);
- ``shift``: moved by 1 or 2 px in one of the 8 directions (Chebyshev distance 1 or 2; what
  comes in from the border repeats the edge row);
- ``hole``: a disc of radius 1 to 3 px, centred on a pixel inside the mask, cut out.

A binary mask stays binary; values stay in [0, 1]. Every random number comes from the
``generator`` given, drawn in a fixed order whatever the outcome, so one seed gives one set
of masks (training seeds it from the seed and the step: ``train --resume`` replays them).

>>> import torch
>>> masks = torch.zeros(2, 1, 16, 16)
>>> masks[:, :, 5:11, 5:11] = 1
>>> out = jitter_masks(masks, 1.0, torch.Generator().manual_seed(0))
>>> out.shape, bool(((out == 0) | (out == 1)).all()), bool((out != masks).any())
(torch.Size([2, 1, 16, 16]), True, True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KINDS", "jitter_masks", "perturb_masks"]

#: the perturbations, in the order of the drawn kind index
KINDS = ("dilate", "erode", "shift", "hole")
#: the 8 directions of a shift (dy, dx)
_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_HOLE_RADIUS = (1.0, 3.0)


def _dilate(masks: Tensor, px: int) -> Tensor:
    return F.max_pool2d(masks, 2 * px + 1, stride=1, padding=px)


def _erode(masks: Tensor, px: int) -> Tensor:
    return -F.max_pool2d(-masks, 2 * px + 1, stride=1, padding=px)


def _shift(mask: Tensor, dy: int, dx: int) -> Tensor:
    """One ``(C, H, W)`` mask moved by ``(dy, dx)`` px, the border's values repeated."""
    h, w = mask.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(mask[None], (p, p, p, p), mode="replicate")[0]
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


def perturb_masks(masks: Tensor, kinds: Tensor, amounts: Tensor, directions: Tensor,
                  centres: Tensor, radii: Tensor) -> Tensor:
    """Each mask of ``(B, C, H, W)`` perturbed as told, without randomness.

    ``kinds`` ``(B,)``: an index into :data:`KINDS`, or -1 for unchanged; ``amounts`` ``(B,)``:
    1 or 2 px (dilate, erode, shift); ``directions`` ``(B,)``: an index into the 8 shift
    directions (``(-1, -1), (-1, 0), ..., (1, 1)`` as ``(dy, dx)``); ``centres`` ``(B, 2)``:
    a hole's ``(y, x)``; ``radii`` ``(B,)``: its radius in px.

    >>> import torch
    >>> m = torch.zeros(1, 1, 9, 9); m[..., 3:6, 3:6] = 1
    >>> grown = perturb_masks(m, torch.tensor([0]), torch.tensor([1]), torch.tensor([0]),
    ...                       torch.zeros(1, 2), torch.ones(1))
    >>> int(m.sum()), int(grown.sum())
    (9, 25)
    """
    out = masks.clone()
    if masks.shape[0] == 0:
        return out
    h, w = masks.shape[-2:]
    yy = torch.arange(h, device=masks.device, dtype=masks.dtype).view(1, 1, h, 1)
    xx = torch.arange(w, device=masks.device, dtype=masks.dtype).view(1, 1, 1, w)
    for px in (1, 2):
        for kind, op in ((0, _dilate), (1, _erode)):
            chosen = ((kinds == kind) & (amounts == px)).nonzero().flatten().tolist()
            if chosen:
                out[chosen] = op(masks[chosen], px)
    for i in (kinds == 2).nonzero().flatten().tolist():
        sy, sx = _DIRECTIONS[int(directions[i])]
        out[i] = _shift(masks[i], sy * int(amounts[i]), sx * int(amounts[i]))
    holes = (kinds == 3).nonzero().flatten().tolist()
    if holes:
        c = centres[holes].to(masks.device, masks.dtype)
        r = radii[holes].to(masks.device, masks.dtype).view(-1, 1, 1, 1)
        disc = (yy - c[:, 0].view(-1, 1, 1, 1)) ** 2 + (xx - c[:, 1].view(-1, 1, 1, 1)) ** 2 <= r ** 2
        out[holes] = masks[holes] * (~disc).to(masks.dtype)
    return out


def jitter_masks(masks: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """A copy of ``masks`` ``(B, C, H, W)`` in which each mask, with probability ``probability``,
    is dilated or eroded by 1-2 px, shifted by 1-2 px, or has a small hole (module docstring).

    The draws come from ``generator`` (a CPU generator) in a fixed order, so the same
    generator state gives the same masks; ``probability`` 0 returns the masks unchanged.

    >>> import torch
    >>> m = torch.zeros(3, 1, 12, 12); m[..., 4:8, 4:8] = 1
    >>> torch.equal(jitter_masks(m, 0.0, torch.Generator().manual_seed(1)), m)
    True
    >>> a = jitter_masks(m, 1.0, torch.Generator().manual_seed(1))
    >>> torch.equal(a, jitter_masks(m, 1.0, torch.Generator().manual_seed(1)))
    True
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"the mask jitter probability must be in [0, 1], got {probability}")
    b = masks.shape[0]
    # every draw, always, in this order: the outcome of one eye does not move another's
    chosen = torch.rand(b, generator=generator) < probability
    kinds = torch.randint(len(KINDS), (b,), generator=generator)
    amounts = torch.randint(1, 3, (b,), generator=generator)
    directions = torch.randint(len(_DIRECTIONS), (b,), generator=generator)
    where = torch.rand(b, generator=generator)
    radii = _HOLE_RADIUS[0] + (_HOLE_RADIUS[1] - _HOLE_RADIUS[0]) * torch.rand(b, generator=generator)
    if probability == 0.0 or not bool(chosen.any()):
        return masks.clone()
    kinds = torch.where(chosen, kinds, torch.full_like(kinds, -1))
    # a hole's centre: the k-th pixel inside the mask (the channels' maximum > 0.5), raster order
    w = masks.shape[-1]
    inside = (masks.amax(dim=1) > 0.5).flatten(1).cpu()
    centres = torch.zeros(b, 2)
    for i in (kinds == 3).nonzero().flatten().tolist():
        pixels = inside[i].nonzero().flatten()
        if pixels.numel() == 0:
            kinds[i] = -1  # nothing to punch a hole in
            continue
        k = int(pixels[min(int(where[i] * pixels.numel()), pixels.numel() - 1)])
        centres[i] = torch.tensor([k // w, k % w], dtype=torch.float32)
    return perturb_masks(masks, kinds, amounts, directions, centres, radii)
