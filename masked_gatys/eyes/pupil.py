"""Measurements on eye images: the pupil centre, and how far stylization moves it.

:func:`pupil_center` works in four steps: (1) a dark-blob detector (a disc
darker than the ring around it in at least six of eight sectors, scored by
contrast so lighting cancels) finds the eye, inside the attention mask if one
is given; (2) the darkest spot near it seeds the pupil; (3) the threshold is
raised from the pupil's level until the dark component around the seed stops
growing (as in MSER: the pupil is stable until the iris joins), and the
threshold is reset half-way between the levels inside and just outside that
component; (4) rays from its centre find where the image crosses that level
(sub-pixel, by interpolation) and a direct least-squares ellipse fit with
outlier rejection (glints, lids) gives the centre. When too few edge points
remain, the centroid of the soft pupil coverage is used instead.

Pixel convention (as in :mod:`masked_gatys.eyes`): the centre of pixel
``(row i, column j)`` is ``(x, y) = (j, i)``.

>>> from masked_gatys.eyes import render_eye
>>> r = render_eye(yaw=10, pitch=0, size=(72, 120), seed=0)
>>> x, y = pupil_center(r.image)
>>> abs(x - r.truth["pupil_center"][0]) < 0.5 and abs(y - r.truth["pupil_center"][1]) < 0.5
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from masked_gatys.errors import ImageError, MaskError

__all__ = ["looks_like_eye", "pupil_center", "pupil_shift", "PupilFit", "fit_pupil"]

_LUMA = np.array([0.299, 0.587, 0.114])


def _to_grey(image: Any) -> np.ndarray:
    """``(H, W)`` float64 luminance from a (1,3,H,W)/(3,H,W) tensor or an HxWx3 / HxW array."""
    arr = image.detach().cpu().double().numpy() if hasattr(image, "detach") else np.asarray(image)
    is_tensor = hasattr(image, "detach")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float64) / 65535.0
    else:
        arr = arr.astype(np.float64)
    if is_tensor:
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[0] in (1, 3):
            arr = np.moveaxis(arr, 0, -1)
        elif arr.ndim != 2:
            raise ImageError(f"pupil_center takes a (1, 3, H, W) or (3, H, W) tensor, got {tuple(image.shape)}")
    if arr.ndim == 3 and arr.shape[-1] == 3:
        grey = arr @ _LUMA
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        grey = arr[..., 0]
    elif arr.ndim == 2:
        grey = arr
    else:
        raise ImageError(f"pupil_center takes an RGB image (HxWx3 array or (1,3,H,W) tensor), got shape {arr.shape}")
    if grey.shape[0] < 8 or grey.shape[1] < 8:
        raise ImageError(f"image too small to find a pupil: {grey.shape[0]}x{grey.shape[1]}")
    if not np.all(np.isfinite(grey)):
        raise ImageError("image contains NaN or infinite values")
    return grey


def _to_mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    arr = mask.detach().cpu().double().numpy() if hasattr(mask, "detach") else np.asarray(mask, dtype=np.float64)
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[0] == 2:  # (background, attention) regions
        arr = arr[1]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # an RGB(A) array
        arr = arr[..., :3].mean(axis=-1)
    if arr.shape != shape:
        raise MaskError(f"mask of shape {arr.shape} does not match the image's {shape}")
    if arr.max() > 1.0:
        arr = arr / 255.0
    return arr.astype(np.float64)


#: 4-connectivity within each image of a stack ``(N, H, W)``, none across images
_CROSS_STACK = np.zeros((3, 3, 3), dtype=bool)
_CROSS_STACK[1] = ndimage.generate_binary_structure(2, 1)


def _disc(radius: float) -> np.ndarray:
    r = int(math.ceil(radius))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    k = (x * x + y * y <= radius * radius + 1e-9).astype(np.float64)
    return k / k.sum()


def _sector_ring(r_in: float, r_out: float, sector: int, n: int) -> np.ndarray:
    r = int(math.ceil(r_out))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    d = np.hypot(x, y)
    ang = np.mod(np.arctan2(y, x) - 2 * np.pi * sector / n + np.pi / n, 2 * np.pi)
    k = ((d > r_in) & (d <= r_out) & (ang < 2 * np.pi / n)).astype(np.float64)
    s = k.sum()
    return k / s if s > 0 else k


@functools.lru_cache(maxsize=512)
def _kernel_fft(shape: tuple[int, int], r_in: float, r_out: float, sector: int) -> np.ndarray:
    """FFT of a (disc or ring-sector) averaging kernel placed for a 'same' convolution on ``shape``."""
    k = _disc(r_out) if sector < 0 else _sector_ring(r_in, r_out, sector, 8)
    full = np.zeros(shape)
    c = k.shape[0] // 2
    full[:k.shape[0], :k.shape[1]] = k
    full = np.roll(full, (-c, -c), axis=(0, 1))  # kernel centre at the origin
    return np.fft.rfft2(full)


@functools.lru_cache(maxsize=128)
def _kernels_fft(shape: tuple[int, int], r: float) -> np.ndarray:
    """``(9, ...)``: the FFTs of the disc of radius ``r`` and of the 8 sectors of its ring (1.4 r to 2.4 r)."""
    return np.stack([_kernel_fft(shape, 0.0, r, -1)]
                    + [_kernel_fft(shape, 1.4 * r, 2.4 * r + 0.5, k) for k in range(8)])


def _blob_score(grey: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Dark-blob contrast per pixel and the radius giving it.

    For a disc of radius r around each pixel and the ring from 1.4 r to 2.4 r
    split in 8 sectors: the third darkest sector's mean minus the disc's mean,
    over their sum (contrast, not difference: lighting cancels). Dark lines
    (lash line, shadow edges) have dark sectors along them and score low; a
    pupil is ringed by brighter iris almost all round.
    """
    h, w = grey.shape
    r_max = max(1.5, min(h, w) / 7.0)
    radii = np.geomspace(1.0, r_max, num=6)
    pad = int(math.ceil(2.4 * r_max)) + 2
    padded = np.pad(grey, pad, mode="edge")
    shape = padded.shape
    image_fft = np.fft.rfft2(padded)

    best = np.full(grey.shape, -np.inf)
    best_r = np.ones(grey.shape)
    for r in radii:
        r = float(r)
        # the disc and its 8 ring sectors in one inverse FFT, done as irfft2 does it (the columns,
        # then the rows) but with the rows outside the image dropped in between: the same numbers
        # as one irfft2 per kernel, with less work
        spec = np.fft.ifft(image_fft * _kernels_fft(shape, r), axis=-2)[:, pad:pad + h]
        conv = np.fft.irfft(spec, n=shape[1], axis=-1)[:, :, pad:pad + w]
        disc = conv[0]
        ring = np.partition(conv[1:], 2, axis=0)[2]  # the third darkest sector
        score = (ring - disc) / (ring + disc + 0.05)
        better = score > best
        best = np.where(better, score, best)
        best_r = np.where(better, r, best_r)
    if region is not None:
        best = np.where(region, best, -np.inf)
    return best, best_r


@dataclass(frozen=True)
class PupilFit:
    """Where the detector put the pupil: centre ``(x, y)`` in pixels, the dark blob's radius
    estimate, the fitted ellipse ``((cx, cy), (a, b), angle)`` (None when too few edge points
    were left and the centre is the soft coverage's centroid), and the (inside, outside)
    grey levels of the pupil's edge."""

    x: float
    y: float
    radius: float
    ellipse: Any
    levels: tuple[float, float]


def fit_pupil(image: Any, mask: Any = None) -> PupilFit:
    """The pupil detector's whole answer (:func:`pupil_center` gives its centre alone).

    Same inputs and errors as :func:`pupil_center`.

    >>> import numpy as np
    >>> img = np.ones((20, 30, 3)); img[8:13, 10:15] = 0.0
    >>> fit = fit_pupil(img)
    >>> round(fit.x, 3), round(fit.y, 3), fit.radius > 1
    (12.0, 10.0, True)
    """
    grey = _to_grey(image)
    region = None
    if mask is not None:
        region = _to_mask(mask, grey.shape) >= 0.5
        if not region.any():
            raise MaskError("the attention mask is empty: no pixel >= 0.5")
    x, y, info = _locate(grey, region)
    return PupilFit(float(x), float(y), float(info["r_est"]), info.get("ellipse"), tuple(info["levels"]))


def pupil_center(image: Any, mask: Any = None) -> tuple[float, float]:
    """Centre ``(x, y)`` in pixels of the pupil in an eye image.

    ``image``: a ``(1, 3, H, W)`` or ``(3, H, W)`` tensor in [0, 1], or an
    ``HxWx3`` numpy array (float in [0, 1] or uint8). ``mask``: optional
    attention mask (iris + pupil; same H, W; soft values are thresholded at
    0.5); the pupil is then searched for inside it. Raises ``ImageError`` when
    no dark blob is found, ``MaskError`` for an empty or mismatched mask.

    >>> import numpy as np
    >>> img = np.ones((20, 30, 3)); img[8:13, 10:15] = 0.0
    >>> x, y = pupil_center(img)
    >>> round(x, 3), round(y, 3)
    (12.0, 10.0)
    """
    fit = fit_pupil(image, mask)
    return fit.x, fit.y


def _locate(grey: np.ndarray, region: np.ndarray | None) -> tuple[float, float, dict[str, Any]]:
    """The pupil centre and what led to it (for debugging and tests)."""
    h, w = grey.shape
    # a grey opening removes bright specks narrower than the window (glints, striations) and keeps
    # dark blobs and the ramps of their edges as they are
    if min(h, w) >= 60:
        grey = ndimage.grey_opening(grey, size=(5, 5), mode="nearest")
    score, radius = _blob_score(grey, region)
    if not np.isfinite(score).any() or np.nanmax(score) <= 0:
        raise ImageError("no dark pupil-like blob found in the image")
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    r = float(radius[iy, ix])

    # the darkest spot of the blob (the blob may be the whole iris)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - ix, yy - iy)
    smooth = ndimage.gaussian_filter(grey, 0.8, mode="nearest")
    near = d <= max(2.0, 1.2 * r)
    if region is not None and (near & region).any():
        near &= region
    sy, sx = np.unravel_index(int(np.argmin(np.where(near, smooth, np.inf))), grey.shape)

    # levels: pupil p, iris q, from a 3-class split of the neighbourhood
    d = np.hypot(xx - sx, yy - sy)
    hood = d <= max(4.0, 2.5 * r)
    if region is not None and (hood & region).sum() >= 16:
        hood &= region
    p, q_hi = _levels(grey[hood], float(smooth[sy, sx]))
    if q_hi - p <= 1e-3:
        raise ImageError("no dark pupil-like blob found in the image (no contrast)")
    # the stable blob is searched for in a window around the seed (its area only grows past it
    # once the iris has joined)
    half = int(math.ceil(4 * r + 6))
    y0, y1, x0, x1 = max(0, sy - half), min(h, sy + half + 1), max(0, sx - half), min(w, sx + half + 1)
    blob = np.zeros(grey.shape, dtype=bool)
    win, thr = _stable_blob(smooth[y0:y1, x0:x1], sy - y0, sx - x0, float(smooth[sy, sx]), q_hi,
                            None if region is None else region[y0:y1, x0:x1])
    blob[y0:y1, x0:x1] = win
    # the half-way level between the pupil and the iris right around it
    inner = ndimage.binary_erosion(blob) if blob.sum() > 12 else blob
    outer = ndimage.binary_dilation(blob, iterations=3) & ~ndimage.binary_dilation(blob, iterations=1)
    if region is not None and (outer & region).sum() >= 4:
        outer &= region
    if inner.any() and outer.any():
        mid = 0.5 * (float(np.median(smooth[inner])) + float(np.median(smooth[outer])))
        if 0.5 * thr < mid < 2.0 * thr:
            thr = mid
    area = float(blob.sum())
    cy0, cx0 = (yy[blob].mean(), xx[blob].mean())
    r_est = max(1.0, math.sqrt(area / math.pi))
    info: dict[str, Any] = {"seed": (float(ix), float(iy), r), "dark": (float(sx), float(sy)),
                            "levels": (p, q_hi), "threshold": thr, "blob_center": (float(cx0), float(cy0)),
                            "r_est": r_est}

    fine = ndimage.gaussian_filter(grey, 0.5, mode="nearest")
    center = (float(cx0), float(cy0))
    best = None
    for _ in range(2):  # the second pass casts its rays from the first fit's centre
        pts = _starburst(fine, center, thr, 1.6 * r_est + 2.0)
        fit = _robust_ellipse(pts) if len(pts) >= 8 else None
        if fit is None:
            break
        (ex, ey), axes = fit
        if not (0.3 * r_est <= min(axes) and max(axes) <= 3.0 * r_est + 2.0) \
                or math.hypot(ex - cx0, ey - cy0) > r_est + 1.0:
            break
        best = fit
        center = (ex, ey)
    info["ellipse"] = best
    if best is None:  # too small or too ragged for an ellipse: soft-coverage centroid
        p0 = float(smooth[sy, sx])
        q = max(2 * thr - p0, p0 + 1e-3)
        weight = np.clip((q - grey) / (q - p0), 0.0, 1.0) * ndimage.binary_dilation(blob, iterations=2)
        if weight.sum() <= 0:
            raise ImageError("no dark pupil-like blob found in the image")
        center = (float((weight * xx).sum() / weight.sum()), float((weight * yy).sum() / weight.sum()))
    return center[0], center[1], info


def _stable_blob(img: np.ndarray, y: int, x: int, lo: float, hi: float,
                 region: np.ndarray | None, steps: int = 40) -> tuple[np.ndarray, float]:
    """The first stable dark component around ``(x, y)`` and its threshold, rising from ``lo`` to ``hi``.

    Like MSER: the pupil's area barely changes over the thresholds between
    the pupil's and the iris's levels, then grows when the iris joins.
    Thresholds are spaced by ratio, as lighting scales levels.
    """
    lo = max(lo, 0.004)
    hi = max(hi, lo * 1.05)
    ts = lo * (hi / lo) ** (np.arange(1, steps + 1) / (steps + 1))
    # all thresholds at once: one label and one hole filling on the stack of (steps, h, w) binary
    # images, with structures that never connect two of them (the same as one image at a time)
    labels, _ = ndimage.label(img[None] < ts[:, None, None], _CROSS_STACK)
    at_seed = labels[:, y, x]
    comps = (labels == at_seed[:, None, None]) & (at_seed > 0)[:, None, None]
    comps = _fill_holes_stack(comps)
    areas = comps.sum(axis=(1, 2)).astype(np.float64)
    limit = region.sum() if region is not None else img.size
    growth = np.full(steps, np.inf)
    for k in range(2, steps - 2):
        if 3 <= areas[k] <= 0.5 * limit:
            growth[k] = (areas[k + 2] - areas[k - 2]) / areas[k]
    if not np.isfinite(growth).any():
        k = int(np.argmax(areas >= 1)) if (areas >= 1).any() else 0
        comp = comps[k]
        if not comp.any():
            comp = np.zeros(img.shape, dtype=bool)
            comp[y, x] = True
        return comp, float(ts[k])
    # the first plateau (a local minimum of growth that is small), else the flattest
    for k in range(2, steps - 2):
        if growth[k] < 0.25 and growth[k] <= growth[k - 1] and growth[k] <= growth[k + 1]:
            return comps[k], float(ts[k])
    k = int(np.argmin(growth))
    return comps[k], float(ts[k])


def _fill_holes_stack(stack: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` of each image of ``(N, H, W)`` (4-connected): the pixels off
    it that no 4-connected path off it joins to the image's border are filled."""
    off, _ = ndimage.label(~stack, _CROSS_STACK)
    border = np.zeros(off.max() + 1, dtype=bool)
    for edge in (off[:, 0], off[:, -1], off[:, :, 0], off[:, :, -1]):
        border[edge] = True
    border[0] = True  # label 0: the pixels on it
    return stack | ~border[off]


def _levels(values: np.ndarray, dark: float) -> tuple[float, float]:
    """(pupil level, iris level): a 3-class Otsu split of ``values``; the darkest class is the pupil."""
    v = np.sort(values.ravel())
    if len(v) < 6:
        return dark, float(np.median(v))
    bins = 48
    hist, edges = np.histogram(v, bins=bins, range=(v[0], v[-1] + 1e-9))
    mids = 0.5 * (edges[1:] + edges[:-1])
    cw = np.cumsum(hist).astype(np.float64)
    cm = np.cumsum(hist * mids)
    total_w, total_m = cw[-1], cm[-1]
    split = (bins // 3, 2 * bins // 3)
    # every split (i, j), i < j < bins - 1, at once; the best (the first of equals, row by row)
    i, j = np.arange(bins - 2)[:, None], np.arange(bins - 1)[None, :]
    w0, m0 = cw[:bins - 2, None], cm[:bins - 2, None]
    w1, m1 = cw[None, :bins - 1] - w0, cm[None, :bins - 1] - m0
    w2, m2 = total_w - cw[None, :bins - 1], total_m - cm[None, :bins - 1]
    ok = (j > i) & (w0 > 0) & (w1 > 0) & (w2 > 0)
    if ok.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            var = m0 * m0 / w0 + (m1 * m1 / np.maximum(w1, 1) + m2 * m2 / np.maximum(w2, 1))
        k = int(np.argmax(np.where(ok, var, -np.inf)))
        split = (k // (bins - 1), k % (bins - 1))
    t0, t1 = edges[split[0] + 1], edges[split[1] + 1]
    pupil = v[v <= t0]
    iris = v[(v > t0) & (v <= t1)]
    p = float(np.median(pupil)) if len(pupil) else dark
    q = float(np.median(iris)) if len(iris) else float(np.median(v))
    return min(p, dark + 0.5 * (q - dark)), q


def _starburst(img: np.ndarray, center: tuple[float, float], thr: float, reach: float,
               n_rays: int = 72, step: float = 0.2) -> np.ndarray:
    """Where rays from ``center`` first leave the dark blob (``img`` rises above ``thr``); (N, 2) x, y."""
    ang = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    t = np.arange(0.0, reach + step, step)
    xs = center[0] + np.cos(ang)[:, None] * t[None, :]
    ys = center[1] + np.sin(ang)[:, None] * t[None, :]
    vals = ndimage.map_coordinates(img, [ys.ravel(), xs.ravel()], order=1, mode="nearest").reshape(xs.shape)
    inside = vals < thr
    # per ray at once: the first sample inside, then the first outside after it
    first_in = np.argmax(inside, axis=1)
    left = ~inside & (np.arange(len(t))[None, :] > first_in[:, None])
    rays = np.nonzero(inside[np.arange(n_rays), first_in] & left.any(axis=1))[0]
    j = np.argmax(left[rays], axis=1)
    v0, v1 = vals[rays, j - 1], vals[rays, j]
    same = v1 == v0
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(same, 0.5, (thr - v0) / np.where(same, 1.0, v1 - v0))
    tt = t[j - 1] + frac * step
    # math.cos / math.sin as before (numpy's may differ in the last bit)
    cos = np.array([math.cos(a) for a in ang[rays]])
    sin = np.array([math.sin(a) for a in ang[rays]])
    return np.stack([center[0] + cos * tt, center[1] + sin * tt], axis=1).reshape(-1, 2)


def _fit_conic(pts: np.ndarray) -> np.ndarray | None:
    """Direct least-squares ellipse fit (Fitzgibbon et al., Halir-Flusser form): conic coefficients."""
    x, y = pts[:, 0], pts[:, 1]
    d1 = np.stack([x * x, x * y, y * y], axis=1)
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        tmat = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError:
        return None
    m = s1 + s2 @ tmat
    m = np.stack([m[2] / 2.0, -m[1], m[0] / 2.0])
    try:
        _, vecs = np.linalg.eig(m)
    except np.linalg.LinAlgError:
        return None
    vecs = np.real(vecs)
    cond = 4 * vecs[0] * vecs[2] - vecs[1] ** 2
    good = np.nonzero(cond > 0)[0]
    if len(good) == 0:
        return None
    a1 = vecs[:, good[0]]
    return np.concatenate([a1, tmat @ a1])


def _robust_ellipse(pts: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Centre and semi-axes of an ellipse fitted to ``pts``, outliers (glints, lids) dropped."""
    mean = pts.mean(axis=0)
    scale = max(float(np.abs(pts - mean).max()), 1e-6)
    z = (pts - mean) / scale
    keep = np.ones(len(z), dtype=bool)
    conic = None
    for _ in range(4):
        if keep.sum() < 6:
            return None
        conic = _fit_conic(z[keep])
        if conic is None:
            return None
        a, b, c, d, e, f = conic
        x, y = z[:, 0], z[:, 1]
        val = a * x * x + b * x * y + c * y * y + d * x + e * y + f
        gx, gy = 2 * a * x + b * y + d, b * x + 2 * c * y + e
        dist = np.abs(val) / np.maximum(np.hypot(gx, gy), 1e-12) * scale  # Sampson distance, pixels
        med = float(np.median(dist[keep]))
        mad = float(np.median(np.abs(dist[keep] - med)))
        new_keep = dist <= max(0.3, med + 3.0 * 1.4826 * mad)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    a, b, c, d, e, f = conic
    den = b * b - 4 * a * c
    if den >= 0:
        return None
    x0 = (2 * c * d - b * e) / den
    y0 = (2 * a * e - b * d) / den
    # semi-axes from the conic's quadratic form at the centre
    f0 = a * x0 * x0 + b * x0 * y0 + c * y0 * y0 + d * x0 + e * y0 + f
    eig = np.linalg.eigvalsh(np.array([[a, b / 2], [b / 2, c]]))
    if f0 == 0 or np.any(-f0 / eig <= 0):
        return None
    axes = tuple(float(math.sqrt(-f0 / ev) * scale) for ev in eig)
    return (float(x0 * scale + mean[0]), float(y0 * scale + mean[1])), (max(axes), min(axes))


def looks_like_eye(image: Any, mask: Any, *, max_fraction: float = 1.0 / 3.0) -> bool:
    """Whether an image with its attention mask is an eye: a pupil inside an iris-sized region.

    True when the attention region (mask >= 0.5) covers at most
    ``max_fraction`` of the image and the pupil detector fits a dark ellipse
    in it, darker than its surround, near the region's centre (within 0.4 of
    the region's equivalent radius: a pupil sits in its iris; rendered eyes
    up to 30 degrees of yaw and 20 of pitch reach 0.34). A heuristic: a dark
    spot centred in a small region counts too. This is how ``stylize`` tells
    eye images (``subject="auto"``) from others.

    >>> from masked_gatys.eyes import render_eye
    >>> eye = render_eye(size=(36, 60), seed=1, domain="real")
    >>> looks_like_eye(eye.image, eye.mask)
    True
    >>> import numpy as np
    >>> looks_like_eye(np.full((36, 60, 3), 0.5), eye.mask)
    False
    """
    grey = _to_grey(image)
    region = _to_mask(mask, grey.shape) >= 0.5
    if not region.any() or region.mean() > max_fraction:
        return False
    try:
        x, y, info = _locate(grey, region)
    except ImageError:
        return False
    p, q = info["levels"]
    ys, xs = np.nonzero(region)
    radius = math.sqrt(region.sum() / math.pi)
    centred = math.hypot(x - xs.mean(), y - ys.mean()) <= 0.4 * radius
    return info["ellipse"] is not None and q - p >= 0.05 and centred


def pupil_shift(before: Any, after: Any, mask: Any = None) -> float:
    """Distance in pixels between the pupil centres of two images of the same eye.

    >>> import numpy as np
    >>> a = np.ones((20, 30, 3)); a[8:13, 10:15] = 0.0
    >>> b = np.ones((20, 30, 3)); b[8:13, 13:18] = 0.0
    >>> pupil_shift(a, b)
    3.0
    """
    xa, ya = pupil_center(before, mask)
    xb, yb = pupil_center(after, mask)
    return float(math.hypot(xb - xa, yb - ya))
