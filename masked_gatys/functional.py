"""The maths of the objective as pure functions (DESIGN.md, "The objective").

Every loss returns one value per batch element, shape ``(B,)``, so a batch of
independent problems (one image each) can be optimised at once.

Notation: features ``f`` are ``(B, C, H, W)`` (``N = C`` channels, ``M = H*W``
positions); a mask ``m`` is ``(B, 1, H, W)`` or anything broadcastable to it,
with values in ``[0, 1]``.

>>> import torch
>>> f = torch.ones(1, 2, 3, 3)
>>> gram_matrix(f)
tensor([[[1., 1.],
         [1., 1.]]])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gram_matrix", "content_loss", "style_loss", "tv_loss", "masked_mean_square", "mask_box",
           "luma", "darkness", "blob_moments", "geometry_loss"]


def _flat_mask(features: Tensor, mask: Tensor) -> Tensor:
    """Mask broadcast to ``(B, 1, M)`` for ``features`` of shape ``(B, C, H, W)``."""
    b, _, h, w = features.shape
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (B, 1, H, W), got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, b) or mask.shape[-2:] not in ((1, 1), (h, w)):
        raise ValueError(f"mask {tuple(mask.shape)} does not fit features {tuple(features.shape)}: "
                         "it must be (B or 1, 1, H, W)")
    return mask.to(features.dtype).expand(b, 1, h, w).reshape(b, 1, h * w)


def gram_matrix(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mask-weighted mean of outer products: ``sum_j m_j f_j f_j^T / sum_j m_j``.

    With no mask (or the all-ones mask) this is the usual Gram matrix divided
    by ``H*W``. Dividing by the mask's mass rather than by ``H*W`` puts a
    small region and a large one on the same scale: the same texture in both
    gives the same matrix. (pystiche divides by the whole image instead.)

    Args:
        features: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)`` or broadcastable to it; ``None`` for all ones.

    Returns:
        ``(B, C, C)``. A region with zero mass gives the zero matrix; callers
        check coverage first (``masked_gatys.masks``).

    >>> import torch
    >>> f = torch.arange(4.0).reshape(1, 1, 2, 2)      # values 0, 1, 2, 3
    >>> gram_matrix(f)                                   # (0+1+4+9)/4
    tensor([[[3.5000]]])
    >>> m = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])
    >>> gram_matrix(f, m)                                # (4+9)/2
    tensor([[[6.5000]]])
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    if mask is None:
        return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)
    weights = _flat_mask(features, mask)
    mass = weights.sum(dim=2, keepdim=True).clamp_min(torch.finfo(features.dtype).tiny)
    return torch.bmm(flat * weights, flat.transpose(1, 2)) / mass


def masked_mean_square(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """``sum_j m_j ||f_j||^2 / (N sum_j m_j)`` per batch element, shape ``(B,)``.

    >>> import torch
    >>> masked_mean_square(torch.full((2, 3, 4, 4), 2.0))
    tensor([4., 4.])
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
    b, c, h, w = features.shape
    sq = features.square().sum(dim=1, keepdim=True)  # (B, 1, H, W)
    if mask is None:
        return sq.reshape(b, -1).mean(dim=1) / c
    weights = _flat_mask(features, mask).reshape(b, 1, h, w)
    mass = weights.reshape(b, -1).sum(dim=1).clamp_min(torch.finfo(features.dtype).tiny)
    return (sq * weights).reshape(b, -1).sum(dim=1) / (c * mass)


def content_loss(features: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked content loss (paper Eq. 11-12): ``sum_j m_j ||f_j - t_j||^2 / (N sum_j m_j)``.

    With no mask it is the plain mean squared error over ``C, H, W``.

    Args:
        features: ``(B, C, H, W)`` of the image being optimised.
        target: the content image's features, same shape (or batch 1).
        mask: ``(B, 1, H, W)`` or broadcastable; ``None`` for the whole image.

    Returns:
        ``(B,)``.

    >>> import torch
    >>> x, t = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    >>> content_loss(x, t)
    tensor([1.])
    """
    if features.dim() != 4 or target.dim() != 4:
        raise ValueError(f"features and target must have shape (B, C, H, W), got {tuple(features.shape)} "
                         f"and {tuple(target.shape)}")
    if features.shape[1:] != target.shape[1:] or target.shape[0] not in (1, features.shape[0]):
        raise ValueError(f"features {tuple(features.shape)} and target {tuple(target.shape)} differ")
    return masked_mean_square(features - target, mask)


class _FusedStyleLoss(torch.autograd.Function):
    """``||A F^T / mass - T||_F^2 / C^2`` with ``A = F * m``, one bmm each way.

    Autograd through ``gram_matrix`` would run two matrix products in the
    backward pass (one per operand of ``bmm``). The loss's gradient with
    respect to the Gram matrix, ``dG = 2 (G - T) / C^2``, enters as
    ``dG + dG^T``, so ``dL/dF = (dG + dG^T) A / mass`` needs only one.
    Gradients flow to the features only (the mask and target are constants
    here); ``style_loss`` falls back to the plain composition when they need
    gradients.

    With ``box`` (rows y0:y1, columns x0:x1 outside which the mask is zero)
    the products run over that window only: exact, and cheaper for a small
    region.
    """

    @staticmethod
    def forward(ctx, features: Tensor, mask: Tensor | None, mass: Tensor, target: Tensor,
                box: tuple[int, int, int, int] | None) -> Tensor:
        b, c, h, w = features.shape
        if box is not None:
            y0, y1, x0, x1 = box
            features = features[:, :, y0:y1, x0:x1]
            mask = mask[:, :, y0:y1, x0:x1]
        flat = features.reshape(b, c, -1)
        if mask is None:
            weighted = flat
        else:
            weighted = flat * mask.to(flat.dtype).expand(b, 1, *mask.shape[-2:]).reshape(b, 1, -1)
        diff = torch.bmm(weighted, flat.transpose(1, 2)).div_(mass).sub_(target)
        ctx.save_for_backward(weighted, diff, mass)
        ctx.shape, ctx.box = (b, c, h, w), box
        return diff.square().sum(dim=(1, 2)) / (c * c)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        weighted, diff, mass = ctx.saved_tensors
        b, c, h, w = ctx.shape
        scale = (4.0 / (c * c)) * grad.view(-1, 1, 1)
        # d||G - T||^2 / dF = (D + D^T) A / mass with D = 2 (G - T): only the
        # symmetric part of the difference matters (G - T itself is symmetric
        # whenever the target is a Gram matrix).
        grad_gram = (diff + diff.transpose(1, 2)).mul_(0.5) * (scale / mass)
        grad_flat = torch.bmm(grad_gram, weighted)
        if ctx.box is None:
            return grad_flat.view(b, c, h, w), None, None, None, None
        y0, y1, x0, x1 = ctx.box
        full = grad_flat.new_zeros(b, c, h, w)
        full[:, :, y0:y1, x0:x1] = grad_flat.view(b, c, y1 - y0, x1 - x0)
        return full, None, None, None, None


def mask_box(mask: Tensor, max_fraction: float = 0.5) -> tuple[int, int, int, int] | None:
    """The window ``(y0, y1, x0, x1)`` outside which every batch element's mask is zero.

    None when the window covers more than ``max_fraction`` of the grid
    (slicing would cost more than it saves) or the mask is empty. Computed
    once per mask, outside the optimisation loop: it reads the mask on the
    host.

    >>> import torch
    >>> m = torch.zeros(1, 1, 4, 6); m[..., 1:3, 2:4] = 0.5
    >>> mask_box(m)
    (1, 3, 2, 4)
    """
    covered = (mask.detach().reshape(-1, *mask.shape[-2:]) > 0).any(dim=0)
    rows = torch.nonzero(covered.any(dim=1)).flatten().tolist()
    cols = torch.nonzero(covered.any(dim=0)).flatten().tolist()
    if not rows:
        return None
    box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    area = (box[1] - box[0]) * (box[3] - box[2])
    return box if area <= max_fraction * covered.numel() else None


def style_loss(features: Tensor, target_gram: Tensor, mask: Tensor | None = None, *,
               box: tuple[int, int, int, int] | None = None) -> Tensor:
    """Masked Gram style loss (paper Eq. 14-19): ``||G(f, m) - T||_F^2 / N^2``.

    Args:
        features: ``(B, C, H, W)`` of the image being optimised.
        target_gram: ``(B, C, C)`` or ``(1, C, C)``: the style image's Gram
            matrix of the same region, computed with the *style* image's mask.
        mask: the region in the optimised image (the *content* image's mask).
        box: optional window ``(y0, y1, x0, x1)`` outside which ``mask`` is
            zero for every batch element (:func:`mask_box`); the Gram products
            then run over that window only. A window that cuts off part of
            the mask gives a wrong value.

    Returns:
        ``(B,)``. The backward pass is fused (one matrix product instead of
        two) when only ``features`` needs a gradient; it is then
        differentiable once.

    >>> import torch
    >>> f = torch.ones(1, 2, 2, 2)
    >>> style_loss(f, torch.zeros(1, 2, 2))            # four entries of 1, / 2**2
    tensor([1.])
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
    b, c, h, w = features.shape
    if target_gram.shape[-2:] != (c, c):
        raise ValueError(f"target Gram {tuple(target_gram.shape)} does not match {c} channels")
    if target_gram.dim() != 3 or target_gram.shape[0] not in (1, b):
        raise ValueError(f"target Gram must be (B or 1, {c}, {c}), got {tuple(target_gram.shape)}")
    constants = (mask is None or not mask.requires_grad) and not target_gram.requires_grad
    if not (constants and features.requires_grad and torch.is_grad_enabled()):
        diff = gram_matrix(features, mask) - target_gram
        return diff.square().sum(dim=(1, 2)) / (c * c)
    if mask is None:
        if box is not None:
            raise ValueError("a box needs the mask it was computed from")
        mass = features.new_full((1, 1, 1), float(h * w))
    else:
        weights = _flat_mask(features, mask)
        mass = weights.sum(dim=2, keepdim=True).clamp_min(torch.finfo(features.dtype).tiny)
    target = target_gram.to(features.dtype).expand(b, c, c)
    return _FusedStyleLoss.apply(features, mask, mass, target, box)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: mean squared difference of horizontal neighbours plus
    that of vertical neighbours, per batch element, shape ``(B,)``.

    >>> import torch
    >>> x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # horizontal steps of 1
    >>> tv_loss(x)
    tensor([1.])
    """
    if image.dim() != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    b = image.shape[0]
    dx = (image[..., :, 1:] - image[..., :, :-1]).square().reshape(b, -1)
    dy = (image[..., 1:, :] - image[..., :-1, :]).square().reshape(b, -1)
    zero = image.new_zeros(b)
    return (dx.mean(dim=1) if dx.shape[1] else zero) + (dy.mean(dim=1) if dy.shape[1] else zero)


# ----------------------------------------------------------------------------- pupil geometry

_LUMA = (0.299, 0.587, 0.114)


def luma(image: Tensor) -> Tensor:
    """ITU-R 601 luma of ``(B, 3, H, W)`` RGB, ``(B, 1, H, W)``.

    >>> import torch
    >>> luma(torch.ones(1, 3, 1, 1)).item()
    1.0
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
    return (image[:, 0] * _LUMA[0] + image[:, 1] * _LUMA[1] + image[:, 2] * _LUMA[2])[:, None]


def darkness(image: Tensor, threshold: Tensor, softness: Tensor) -> Tensor:
    """Soft membership of the dark blob: ``sigmoid((threshold - luma) / softness)``.

    ``image`` ``(B, 3, H, W)`` in [0, 1]; ``threshold`` and ``softness`` ``(B,)``
    (or broadcastable). Returns ``(B, 1, H, W)``.

    >>> import torch
    >>> d = darkness(torch.zeros(1, 3, 1, 2), torch.tensor([0.5]), torch.tensor([0.1]))
    >>> round(float(d[0, 0, 0, 0]), 4)
    0.9933
    """
    y = luma(image)
    t = threshold.reshape(-1, 1, 1, 1).to(image.dtype)
    s = softness.reshape(-1, 1, 1, 1).to(image.dtype)
    return torch.sigmoid((t - y) / s)


def blob_moments(weights: Tensor) -> Tensor:
    """Soft centroid and second central moments of a weight map, ``(B, 5)``.

    ``weights`` ``(B, 1, H, W)`` >= 0 (e.g. :func:`darkness` times the
    attention mask). Columns: ``x, y`` (pixels; the centre of pixel (row i,
    column j) is (j, i)), then ``xx, yy, xy`` (weighted covariances, px^2).

    >>> import torch
    >>> w = torch.zeros(1, 1, 5, 7); w[0, 0, 1:4, 2:5] = 1.0   # a 3x3 square
    >>> blob_moments(w)
    tensor([[3.0000, 2.0000, 0.6667, 0.6667, 0.0000]])
    """
    if weights.dim() != 4 or weights.shape[1] != 1:
        raise ValueError(f"weights must have shape (B, 1, H, W), got {tuple(weights.shape)}")
    b, _, h, w = weights.shape
    ys = torch.arange(h, dtype=weights.dtype, device=weights.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=weights.dtype, device=weights.device).view(1, 1, 1, w)
    mass = weights.sum(dim=(1, 2, 3)).clamp_min(torch.finfo(weights.dtype).tiny)
    cx = (weights * xs).sum(dim=(1, 2, 3)) / mass
    cy = (weights * ys).sum(dim=(1, 2, 3)) / mass
    dx = xs - cx.view(-1, 1, 1, 1)
    dy = ys - cy.view(-1, 1, 1, 1)
    xx = (weights * dx * dx).sum(dim=(1, 2, 3)) / mass
    yy = (weights * dy * dy).sum(dim=(1, 2, 3)) / mass
    xy = (weights * dx * dy).sum(dim=(1, 2, 3)) / mass
    return torch.stack([cx, cy, xx, yy, xy], dim=1)


def geometry_loss(image: Tensor, target: Tensor, mask: Tensor, threshold: Tensor, softness: Tensor,
                  scale: Tensor) -> Tensor:
    """How far the dark blob inside ``mask`` has moved or changed shape, ``(B,)``.

    ``|c - c_T|^2 / scale + ||S - S_T||^2 / scale^2`` with ``c`` the soft
    centroid and ``S`` the second central moments (``xx, yy, xy``; the
    off-diagonal entry counted twice, as in the Frobenius norm) of
    ``darkness(image) * mask`` (:func:`blob_moments`), ``target`` ``(B, 5)``
    those of the content image and ``scale`` ``(B,)`` its ``xx + yy`` (about
    r^2 / 2 for a disc of radius r), so the term does not depend on the eye's
    size in pixels. Not in the papers: it pins the pupil's centre and size,
    which the style Gram matrices of the attention region otherwise trade
    against the iris (see docs/tuning.md).

    >>> import torch
    >>> img = torch.ones(1, 3, 9, 9); img[..., 3:6, 3:6] = 0.0
    >>> t, s = torch.tensor([0.5]), torch.tensor([0.05])
    >>> target = blob_moments(darkness(img, t, s))
    >>> float(geometry_loss(img, target, torch.ones(1, 1, 9, 9), t, s, torch.tensor([1.0]))) < 1e-6
    True
    """
    m = blob_moments(darkness(image, threshold, softness) * mask.to(image.dtype))
    d = m - target.to(m.dtype)
    sc = scale.to(m.dtype)
    centre = d[:, 0].square() + d[:, 1].square()
    shape = d[:, 2].square() + d[:, 3].square() + 2.0 * d[:, 4].square()
    return centre / sc + shape / (sc * sc)
