"""Drawing primitives of the eye renderer: value noise, box resampling, blur, and the
capture steps of its looks (histogram equalisation, JPEG, low resolution).

numpy (and PIL for JPEG) only; every function is deterministic given its inputs.

>>> a = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
>>> downsample(upsample(a[0], 2), 2).tolist() == a[0].tolist()
True
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["smooth_noise", "downsample", "upsample", "gaussian_blur", "sigmoid", "equalise_hist",
           "jpeg", "low_resolution", "to_grey"]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Value noise: a random ``cells`` grid bilinearly stretched to ``shape``; about N(0, 1)."""
    h, w = shape
    ch, cw = max(1, cells[0]), max(1, cells[1])
    grid = rng.standard_normal((ch + 1, cw + 1))
    yi = np.linspace(0.0, ch, h)
    xi = np.linspace(0.0, cw, w)
    y0 = np.minimum(yi.astype(int), ch - 1)
    x0 = np.minimum(xi.astype(int), cw - 1)
    fy = (yi - y0)[:, None]
    fx = (xi - x0)[None, :]
    # smoothstep hides the grid
    fy = fy * fy * (3 - 2 * fy)
    fx = fx * fx * (3 - 2 * fx)
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    out = (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy
    return out.astype(np.float32)


def downsample(a: np.ndarray, s: int) -> np.ndarray:
    """Mean over ``s`` x ``s`` blocks of the last two axes."""
    if s == 1:
        return a
    *lead, hs, ws = a.shape
    return a.reshape(*lead, hs // s, s, ws // s, s).mean(axis=(-3, -1))


def upsample(a: np.ndarray, s: int) -> np.ndarray:
    """Repeat each pixel of ``(H, W)`` into an ``s`` x ``s`` block."""
    return a if s == 1 else np.repeat(np.repeat(a, s, axis=0), s, axis=1)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``(C, H, W)`` with reflected borders."""
    if sigma <= 0:
        return img
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, ((0, 0), (radius, radius), (radius, radius)), mode="reflect")
    h, w = img.shape[1:]
    rows = sum(k[i] * pad[:, i:i + h, :] for i in range(2 * radius + 1))
    return sum(k[i] * rows[:, :, i:i + w] for i in range(2 * radius + 1)).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def to_grey(img: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601) of ``(3, H, W)`` as ``(1, H, W)`` float32.

    >>> to_grey(np.ones((3, 2, 2), np.float32)).shape
    (1, 2, 2)
    """
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None, None]
    return (img * w).sum(axis=0, keepdims=True).astype(np.float32)


def equalise_hist(grey: np.ndarray) -> np.ndarray:
    """Histogram equalisation of ``(H, W)`` or ``(1, H, W)`` in [0, 1], as OpenCV's
    ``equalizeHist`` does on the 8-bit image (MPIIGaze's normalisation); returns [0, 1].

    >>> e = equalise_hist(np.linspace(0.2, 0.4, 100, dtype=np.float32).reshape(10, 10))
    >>> float(e.min()), float(e.max())
    (0.0, 1.0)
    """
    q = np.clip(np.rint(grey * 255.0), 0, 255).astype(np.int64)
    hist = np.bincount(q.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    cdf_min = int(cdf[np.nonzero(hist)[0][0]])
    total = int(q.size)
    if total == cdf_min:  # one grey level: OpenCV leaves it unchanged
        return (q / 255.0).astype(np.float32)
    lut = np.clip(np.rint((cdf - cdf_min) * 255.0 / (total - cdf_min)), 0, 255)
    return (lut[q] / 255.0).astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] (C = 1 or 3) through an 8-bit JPEG round trip at ``quality``.

    >>> jpeg(np.full((3, 8, 8), 0.5, np.float32), 50).shape
    (3, 8, 8)
    """
    from PIL import Image  # deferred: PIL is needed only by the JPEG step

    arr = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
    return (out[None] if out.ndim == 2 else out.transpose(2, 0, 1)).copy()


def _resize_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear resampling of one axis to ``n`` samples (pixel centres aligned; area-like when
    shrinking because the source is blurred first by the caller)."""
    m = a.shape[axis]
    pos = (np.arange(n, dtype=np.float64) + 0.5) * m / n - 0.5
    pos = np.clip(pos, 0, m - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, m - 1)
    f = (pos - i0).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = n
    f = f.reshape(shape)
    return np.take(a, i0, axis=axis) * (1 - f) + np.take(a, i1, axis=axis) * f


def low_resolution(img: np.ndarray, factor: float) -> np.ndarray:
    """``(C, H, W)`` seen by a camera ``factor`` times coarser: blurred, shrunk and enlarged
    back to ``(H, W)``; the pixel grid (so every label) stays where it was.

    >>> low_resolution(np.ones((1, 12, 20), np.float32), 2.0).shape
    (1, 12, 20)
    """
    if factor <= 1.0:
        return img
    c, h, w = img.shape
    small = gaussian_blur(img, 0.45 * factor)
    hs, ws = max(2, int(round(h / factor))), max(2, int(round(w / factor)))
    small = _resize_axis(_resize_axis(small, hs, 1), ws, 2)
    return _resize_axis(_resize_axis(small, h, 1), w, 2).astype(np.float32)
