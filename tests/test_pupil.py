"""pupil_center and pupil_shift: accuracy against the renderer's ground truth, inputs, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from masked_gatys.errors import ImageError, MaskError
from masked_gatys.eyes import render_eye
from masked_gatys.eyes.pupil import pupil_center, pupil_shift

# (yaw, pitch, seed): a fixed spread of gazes and eyes
CASES = [(0.0, 0.0, 100), (24.0, 8.0, 101), (-28.0, -12.0, 102), (10.0, -18.0, 103),
         (-14.0, 16.0, 104), (30.0, -4.0, 105), (-6.0, 5.0, 106), (18.0, 19.0, 107)]


def _errors(domain, size, use_mask, cases=CASES):
    errs = []
    for yaw, pitch, seed in cases:
        r = render_eye(yaw=yaw, pitch=pitch, domain=domain, size=size, seed=seed)
        x, y = pupil_center(r.image, r.mask if use_mask else None)
        tx, ty = r.truth["pupil_center"]
        errs.append(math.hypot(x - tx, y - ty))
    return np.array(errs)


@pytest.mark.parametrize("size", [(36, 60), (72, 120)])
def test_accuracy_synthetic(size):
    errs = _errors("synthetic", size, use_mask=True)
    assert errs.max() < 0.3, errs
    assert np.median(errs) < 0.1, errs


@pytest.mark.parametrize("size", [(36, 60), (72, 120)])
def test_accuracy_real(size):
    errs = _errors("real", size, use_mask=True)
    assert np.median(errs) < 0.5, errs
    assert errs.mean() < 0.8, errs
    assert errs.max() < 3.5, errs  # a dark iris in dim light with a glint in the pupil: about 3 px


def test_accuracy_without_mask():
    errs = _errors("synthetic", (72, 120), use_mask=False, cases=CASES[:4])
    assert errs.max() < 0.5, errs
    errs = _errors("real", (72, 120), use_mask=False, cases=CASES[:4])
    assert np.median(errs) < 1.0, errs


def test_accepted_image_forms_agree():
    r = render_eye(yaw=12, pitch=-6, domain="synthetic", size=(36, 60), seed=3)
    ref = pupil_center(r.image)
    arr = r.image[0].permute(1, 2, 0).numpy()
    for image in (r.image[0], arr, arr.astype(np.float64)):
        assert pupil_center(image) == pytest.approx(ref, abs=1e-6)
    as_uint8 = (arr * 255 + 0.5).astype(np.uint8)
    assert pupil_center(as_uint8) == pytest.approx(ref, abs=0.1)
    # masks: soft or binary tensors, (H, W) arrays
    a = pupil_center(r.image, r.mask)
    b = pupil_center(r.image, r.binary_mask[0, 0].numpy())
    assert a == pytest.approx(b, abs=1e-9)


def test_synthetic_square_blob_is_exact():
    img = np.ones((30, 40, 3))
    img[10:17, 20:27] = 0.05  # centre (23, 13)
    assert pupil_center(img) == pytest.approx((23.0, 13.0), abs=0.05)


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (3, 2)])
def test_pupil_shift_of_a_translated_eye(dx, dy):
    r = render_eye(yaw=5, pitch=0, size=(72, 120), seed=8)
    moved = torch.roll(r.image, shifts=(dy, dx), dims=(2, 3))
    assert pupil_shift(r.image, moved) == pytest.approx(math.hypot(dx, dy), abs=0.1)
    assert pupil_shift(r.image, r.image) == pytest.approx(0.0, abs=1e-9)


def test_pupil_shift_of_a_rerendered_gaze():
    a = render_eye(yaw=0, pitch=0, size=(72, 120), seed=9)
    b = render_eye(yaw=10, pitch=0, size=(72, 120), seed=9)
    true = b.truth["pupil_center"][0] - a.truth["pupil_center"][0]
    assert pupil_shift(a.image, b.image) == pytest.approx(true, abs=0.3)


def test_errors():
    r = render_eye(size=(36, 60), seed=0)
    with pytest.raises(MaskError, match="empty"):
        pupil_center(r.image, torch.zeros(36, 60))
    with pytest.raises(MaskError, match="does not match"):
        pupil_center(r.image, torch.ones(10, 10))
    with pytest.raises(ImageError, match="no dark"):
        pupil_center(np.full((30, 40, 3), 0.5))
    with pytest.raises(ImageError):
        pupil_center(torch.rand(2, 3, 36, 60))
    with pytest.raises(ImageError):
        pupil_center(np.zeros((4, 4, 3)))
    with pytest.raises(ImageError, match="NaN"):
        pupil_center(np.full((30, 40, 3), np.nan))


def test_docstring_examples():
    import doctest

    import masked_gatys.eyes.pupil as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- the fast paths against plain versions (the detector as it was written first, one step at a time)

def _ref_blob_score(grey, region):
    from masked_gatys.eyes import pupil as P

    h, w = grey.shape
    r_max = max(1.5, min(h, w) / 7.0)
    pad = int(math.ceil(2.4 * r_max)) + 2
    padded = np.pad(grey, pad, mode="edge")
    image_fft = np.fft.rfft2(padded)

    def conv(r_in, r_out, sector):
        out = np.fft.irfft2(image_fft * P._kernel_fft(padded.shape, r_in, r_out, sector), s=padded.shape)
        return out[pad:pad + h, pad:pad + w]

    best, best_r = np.full(grey.shape, -np.inf), np.ones(grey.shape)
    for r in np.geomspace(1.0, r_max, num=6):
        r = float(r)
        disc = conv(0.0, r, -1)
        ring = np.sort(np.stack([conv(1.4 * r, 2.4 * r + 0.5, k) for k in range(8)]), axis=0)[2]
        score = (ring - disc) / (ring + disc + 0.05)
        better = score > best
        best, best_r = np.where(better, score, best), np.where(better, r, best_r)
    return (best if region is None else np.where(region, best, -np.inf)), best_r


def _ref_stable_blob(img, y, x, lo, hi, region, steps=40):
    from scipy import ndimage

    def component(binary):
        labels, _ = ndimage.label(binary)
        return labels == labels[y, x] if labels[y, x] else np.zeros_like(binary)

    lo = max(lo, 0.004)
    hi = max(hi, lo * 1.05)
    ts = lo * (hi / lo) ** (np.arange(1, steps + 1) / (steps + 1))
    comps = [ndimage.binary_fill_holes(component(img < t)) for t in ts]
    areas = np.array([c.sum() for c in comps], dtype=np.float64)
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
    for k in range(2, steps - 2):
        if growth[k] < 0.25 and growth[k] <= growth[k - 1] and growth[k] <= growth[k + 1]:
            return comps[k], float(ts[k])
    k = int(np.argmin(growth))
    return comps[k], float(ts[k])


def _ref_levels(values, dark):
    v = np.sort(values.ravel())
    if len(v) < 6:
        return dark, float(np.median(v))
    bins = 48
    hist, edges = np.histogram(v, bins=bins, range=(v[0], v[-1] + 1e-9))
    mids = 0.5 * (edges[1:] + edges[:-1])
    cw = np.cumsum(hist).astype(np.float64)
    cm = np.cumsum(hist * mids)
    best, split = -1.0, (bins // 3, 2 * bins // 3)
    for i in range(bins - 2):
        w0, m0 = cw[i], cm[i]
        if w0 == 0:
            continue
        j = np.arange(i + 1, bins - 1)
        w1, m1 = cw[j] - w0, cm[j] - m0
        w2, m2 = cw[-1] - cw[j], cm[-1] - cm[j]
        ok = (w1 > 0) & (w2 > 0)
        if not ok.any():
            continue
        var = m0 * m0 / w0 + np.where(ok, m1 * m1 / np.maximum(w1, 1) + m2 * m2 / np.maximum(w2, 1), -np.inf)
        k = int(np.argmax(var))
        if var[k] > best:
            best, split = float(var[k]), (i, int(j[k]))
    t0, t1 = edges[split[0] + 1], edges[split[1] + 1]
    pupil, iris = v[v <= t0], v[(v > t0) & (v <= t1)]
    p = float(np.median(pupil)) if len(pupil) else dark
    q = float(np.median(iris)) if len(iris) else float(np.median(v))
    return min(p, dark + 0.5 * (q - dark)), q


def _ref_starburst(img, center, thr, reach, n_rays=72, step=0.2):
    from scipy import ndimage

    ang = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    t = np.arange(0.0, reach + step, step)
    xs = center[0] + np.cos(ang)[:, None] * t[None, :]
    ys = center[1] + np.sin(ang)[:, None] * t[None, :]
    vals = ndimage.map_coordinates(img, [ys.ravel(), xs.ravel()], order=1, mode="nearest").reshape(xs.shape)
    inside = vals < thr
    pts = []
    for k in range(n_rays):
        row = inside[k]
        first_in = np.argmax(row)
        if not row[first_in]:
            continue
        out = np.nonzero(~row[first_in:])[0]
        if len(out) == 0:
            continue
        j = first_in + int(out[0])
        v0, v1 = vals[k, j - 1], vals[k, j]
        frac = (thr - v0) / (v1 - v0) if v1 != v0 else 0.5
        tt = t[j - 1] + frac * step
        pts.append((center[0] + math.cos(ang[k]) * tt, center[1] + math.sin(ang[k]) * tt))
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _fits(images, masks):
    from masked_gatys.eyes.pupil import fit_pupil

    out = []
    for i in range(len(images)):
        for m in (None, masks[i:i + 1]):
            try:
                f = fit_pupil(images[i:i + 1], m)
                out.append((f.x, f.y, f.radius, f.levels, f.ellipse))
            except ImageError as exc:
                out.append(str(exc))
    return out


def test_fast_detector_gives_exactly_what_the_plain_one_gives(monkeypatch):
    """Stacked thresholds, one inverse FFT per radius, the vectorised Otsu split and rays: the same
    centres, radii, levels and ellipses, bit for bit, on clean, real-look and noisy renders."""
    from masked_gatys.eyes import pupil as P
    from masked_gatys.eyes.datasets import render_set

    sets = [render_set(10, layout="mpiigaze", look="any", seed=14), render_set(6, size=(36, 60), domain="real", seed=11),
            render_set(3, domain="real", seed=12)]  # 72x120: the grey opening's path
    g = torch.Generator().manual_seed(0)
    images = [s.images for s in sets] + [(sets[0].images + 0.15 * torch.randn(sets[0].images.shape, generator=g))
                                         .clamp(0, 1)]
    masks = [s.masks for s in sets] + [sets[0].masks]
    fast = [_fits(x, m) for x, m in zip(images, masks)]
    for name, ref in (("_blob_score", _ref_blob_score), ("_stable_blob", _ref_stable_blob),
                      ("_levels", _ref_levels), ("_starburst", _ref_starburst)):
        monkeypatch.setattr(P, name, ref)
    plain = [_fits(x, m) for x, m in zip(images, masks)]
    assert fast == plain
    assert sum(isinstance(f[4], tuple) for group in fast for f in group) >= 20  # ellipses were fitted


def test_stacked_hole_filling_is_scipys_per_image():
    from scipy import ndimage

    from masked_gatys.eyes.pupil import _fill_holes_stack

    rng = np.random.default_rng(3)
    stack = rng.uniform(size=(20, 13, 17)) < np.linspace(0.2, 0.8, 20)[:, None, None]
    stack[3] = True
    stack[4] = False
    stack[5, 2:9, 2:9], stack[5, 4:7, 4:7] = True, False  # a ring with a hole
    want = np.stack([ndimage.binary_fill_holes(s) for s in stack])
    assert np.array_equal(_fill_holes_stack(stack), want)
    assert want[5, 5, 5] and not stack[5, 5, 5]
