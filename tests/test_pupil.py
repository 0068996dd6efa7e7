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
