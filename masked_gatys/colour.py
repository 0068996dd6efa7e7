"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

Two modes, both per region when masks are given (a region's statistics come from that
region of each image, soft masks weighting the pixels):

- ``luminance``: the transfer runs on luminance only. The style's luminance is first matched
  to the content's (mean and standard deviation, per region), both images become grey
  (Y in every channel), and the result's luminance is put back together with the content's
  chroma (YCbCr, ITU-R BT.601 full range, as JPEG). The luminance is kept inside the range
  where that chroma is a valid RGB colour, so the chroma survives exactly (up to the 8-bit
  rounding of the saved file).
- ``histogram``: the style image's colours are matched to the content's before the transfer,
  by the affine map that gives them the content's mean and covariance (the symmetric
  square-root form, ``A = C_c^(1/2) C_s^(-1/2)``).

>>> import torch
>>> x = torch.rand(1, 3, 4, 4)
>>> torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-6)
True
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "with_chroma", "match_luminance", "match_colours",
           "prepare_colours", "is_grey", "keeps_grey", "luminance"]

GREY_TOL = 1.0 / 255.0
"""Channels within this of each other count as equal (a grey JPEG decoded as RGB)."""

# ITU-R BT.601, full range (JFIF): rows give Y, Cb - 1/2, Cr - 1/2 from R, G, B.
_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                          [-0.168735892, -0.331264108, 0.5],
                          [0.5, -0.418687589, -0.081312411]], dtype=torch.float64)
_TO_RGB = torch.linalg.inv(_TO_YCBCR)


def _apply(matrix: Tensor, x: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(x.dtype).to(x.device), x)


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> Y, Cb, Cr in [0, 1] (chroma centred on 1/2).

    >>> rgb_to_ycbcr(torch.ones(1, 3, 1, 1)).flatten().tolist()
    [1.0, 0.5, 0.5]
    """
    out = _apply(_TO_YCBCR, x)
    return torch.cat([out[:, :1], out[:, 1:] + 0.5], dim=1)


def ycbcr_to_rgb(y: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    return _apply(_TO_RGB, torch.cat([y[:, :1], y[:, 1:] - 0.5], dim=1))


def with_chroma(image: Tensor, chroma: Tensor) -> Tensor:
    """``image``'s luminance with ``chroma`` ``(B, 2, H, W)`` (Cb, Cr), as RGB in [0, 1].

    Where ``Y + chroma`` would leave the RGB cube, Y is moved to the nearest
    value that keeps all three channels inside, rather than clipping the
    channels (which would change the chroma).

    >>> grey = torch.full((1, 3, 2, 2), 0.5)
    >>> red = rgb_to_ycbcr(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2))
    >>> out = with_chroma(grey, red[:, 1:])
    >>> torch.allclose(rgb_to_ycbcr(out)[:, 1:], red[:, 1:], atol=1e-6)
    True
    """
    y = rgb_to_ycbcr(image)[:, :1]
    offsets = ycbcr_to_rgb(torch.cat([torch.zeros_like(y).expand(-1, 1, -1, -1), chroma.to(y)], dim=1))
    low = (-offsets).amax(dim=1, keepdim=True)
    high = (1.0 - offsets).amin(dim=1, keepdim=True)
    y = torch.maximum(torch.minimum(y, high), low)
    return (y + offsets).clamp(0.0, 1.0)


def _region_weights(masks: Tensor | None, like: Tensor) -> Tensor:
    """``(B, R, H, W)`` pixel weights; one all-ones region without masks."""
    if masks is None:
        return like.new_ones(like.shape[0], 1, *like.shape[-2:])
    return masks.to(like)


def _moments(x: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Per region (pooled over the batch): weighted mean ``(R, C)`` and covariance ``(R, C, C)``."""
    c = x.shape[1]
    flat = x.double().permute(1, 0, 2, 3).reshape(c, -1)                    # (C, N)
    w = weights.double().expand(x.shape[0], -1, -1, -1).permute(1, 0, 2, 3).reshape(weights.shape[1], -1)
    mass = w.sum(dim=1, keepdim=True).clamp_min(1e-12)                     # (R, 1)
    mean = (w @ flat.T) / mass                                              # (R, C)
    centred = flat[None] - mean[:, :, None]                                 # (R, C, N)
    cov = torch.einsum("rcn,rdn,rn->rcd", centred, centred, w) / mass[:, :, None]
    return mean, cov


def _blend(style: Tensor, weights: Tensor, maps: list) -> Tensor:
    """Apply one map per region to ``style``, weighted by the regions' soft masks."""
    out = torch.zeros_like(style, dtype=torch.float64)
    total = weights.double().sum(dim=1, keepdim=True).clamp_min(1e-12)
    for r, fn in enumerate(maps):
        out = out + weights[:, r : r + 1].double() * fn(style.double())
    return (out / total).to(style.dtype).clamp(0.0, 1.0)


def _per_region(regions, style_regions) -> bool:
    """Whether both masks are real (a missing style mask means whole-image targets)."""
    return (regions is not None and style_regions is not None
            and not bool((style_regions.masks == 1).all()))


def match_luminance(style_y: Tensor, content_y: Tensor, style_masks: Tensor | None = None,
                    content_masks: Tensor | None = None) -> Tensor:
    """Style luminance ``(1, 1, h, w)`` mapped to the content's mean and std, per region.

    >>> s, c = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8) * 0.2 + 0.4
    >>> out = match_luminance(s, c)
    >>> abs(out.mean() - c.mean()) < 1e-5
    tensor(True)
    """
    ws, wc = _region_weights(style_masks, style_y), _region_weights(content_masks, content_y)
    ms, vs = _moments(style_y, ws)
    mc, vc = _moments(content_y, wc)
    gains = (vc[:, 0, 0].clamp_min(0).sqrt() / vs[:, 0, 0].clamp_min(1e-12).sqrt())
    maps = [lambda x, r=r: (x - ms[r, 0]) * gains[r] + mc[r, 0] for r in range(ws.shape[1])]
    return _blend(style_y, ws, maps)


def _sqrtm(cov: Tensor, inverse: bool = False) -> Tensor:
    values, vectors = torch.linalg.eigh(cov + 1e-5 * torch.eye(cov.shape[-1], dtype=cov.dtype))
    values = values.clamp_min(1e-8).sqrt()
    if inverse:
        values = 1.0 / values
    return vectors @ torch.diag_embed(values) @ vectors.transpose(-1, -2)


def match_colours(style: Tensor, content: Tensor, style_masks: Tensor | None = None,
                  content_masks: Tensor | None = None) -> Tensor:
    """Style RGB ``(1, 3, h, w)`` with the content's colour mean and covariance, per region.

    >>> s, c = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16) * 0.3
    >>> out = match_colours(s, c)
    >>> torch.allclose(out.mean(dim=(2, 3)), c.mean(dim=(2, 3)), atol=1e-3)
    True
    """
    ws, wc = _region_weights(style_masks, style), _region_weights(content_masks, content)
    ms, cs = _moments(style, ws)
    mc, cc = _moments(content, wc)
    maps = []
    for r in range(ws.shape[1]):
        a = _sqrtm(cc[r]) @ _sqrtm(cs[r], inverse=True)
        maps.append(lambda x, a=a, r=r: torch.einsum("ij,bjhw->bihw", a, x - ms[r].view(1, 3, 1, 1))
                    + mc[r].view(1, 3, 1, 1))
    return _blend(style, ws, maps)


def prepare_colours(content: Tensor, styles: list[Tensor], regions, style_regions: list, *,
                    mode: str) -> tuple[Tensor, list[Tensor], Tensor | None]:
    """The images the transfer runs on, and the chroma to put back (luminance mode).

    Returns ``(content, styles, chroma)``: for ``luminance`` the grey content
    and styles (luminance matched per region) and the content's ``(B, 2, H,
    W)`` chroma; for ``histogram`` the content as it is, the colour-matched
    styles and None.

    >>> c, (s,), chroma = prepare_colours(torch.rand(1, 3, 8, 8), [torch.rand(1, 3, 8, 8)], None, [None],
    ...                                   mode="luminance")
    >>> bool((c[:, 0] == c[:, 1]).all()), tuple(chroma.shape)
    (True, (1, 2, 8, 8))
    """
    if mode not in ("luminance", "histogram"):
        raise ValueError(f"unknown colour mode {mode!r}: use luminance or histogram")
    out_styles = []
    ycc = rgb_to_ycbcr(content)
    for style, sr in zip(styles, style_regions):
        per_region = _per_region(regions, sr)
        s_masks = sr.masks if per_region else None
        c_masks = regions.masks if per_region else None
        if mode == "luminance":
            y = match_luminance(rgb_to_ycbcr(style)[:, :1], ycc[:, :1], s_masks, c_masks)
            out_styles.append(y.expand(-1, 3, -1, -1).contiguous())
        else:
            out_styles.append(match_colours(style, content, s_masks, c_masks))
    if mode == "histogram":
        return content, out_styles, None
    return ycc[:, :1].expand(-1, 3, -1, -1).contiguous(), out_styles, ycc[:, 1:].contiguous()


def is_grey(image: Tensor, tol: float = GREY_TOL) -> bool:
    """Whether every image of ``(B, C, H, W)`` is grey: one channel, or R, G, B within ``tol``.

    >>> is_grey(torch.rand(1, 1, 4, 4)), is_grey(torch.rand(1, 1, 4, 4).expand(1, 3, 4, 4))
    (True, True)
    >>> is_grey(torch.rand(1, 3, 4, 4))
    False
    """
    if image.numel() == 0:
        return False  # an empty image is left to the size checks, which name the problem
    if image.shape[-3] == 1:
        return True
    if image.shape[-3] != 3:
        return False
    x = image.detach()
    return bool(((x[..., 0:1, :, :] - x[..., 1:2, :, :]).abs().max() <= tol + 1e-7)
                and ((x[..., 1:2, :, :] - x[..., 2:3, :, :]).abs().max() <= tol + 1e-7))


def keeps_grey(colour: str | None, image: Tensor) -> bool:
    """Whether ``colour`` (``keep``, ``style`` or None: auto) keeps ``image`` grey.

    None keeps grey inputs grey and gives RGB inputs the style's colours.

    >>> grey = torch.full((1, 3, 2, 2), 0.5)
    >>> keeps_grey(None, grey), keeps_grey("style", grey), keeps_grey(None, torch.rand(1, 3, 2, 2))
    (True, False, False)
    """
    if colour not in (None, "keep", "style"):
        raise ValueError(f"unknown colour {colour!r}: use keep or style")
    return colour != "style" and is_grey(image)


def luminance(image: Tensor) -> Tensor:
    """The BT.601 luminance ``(B, 1, H, W)`` of RGB (a one-channel image as it is).

    >>> round(luminance(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).item(), 6)
    0.299
    """
    if image.shape[-3] == 1:
        return image
    return rgb_to_ycbcr(image)[:, :1].clamp(0.0, 1.0)
