"""The pupil-geometry term: soft dark-blob moments against a float64 loop, gradcheck, the objective."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from masked_gatys.functional import blob_moments, darkness, geometry_loss, luma
from masked_gatys.masks import Regions
from masked_gatys.objective import Objective, ObjectiveConfig, preset

pytestmark = pytest.mark.usefixtures("one_thread")


def np_moments(w: np.ndarray) -> np.ndarray:
    """Weighted centroid and covariances by explicit loops over pixels, float64."""
    h, wd = w.shape
    mass = sx = sy = 0.0
    for i in range(h):
        for j in range(wd):
            mass += w[i, j]
            sx += w[i, j] * j
            sy += w[i, j] * i
    cx, cy = sx / mass, sy / mass
    xx = yy = xy = 0.0
    for i in range(h):
        for j in range(wd):
            xx += w[i, j] * (j - cx) ** 2
            yy += w[i, j] * (i - cy) ** 2
            xy += w[i, j] * (j - cx) * (i - cy)
    return np.array([cx, cy, xx / mass, yy / mass, xy / mass])


def test_blob_moments_match_a_loop():
    w = torch.rand(2, 1, 7, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = blob_moments(w)
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), np_moments(w[b, 0].numpy()), rtol=1e-12, atol=1e-12)


def test_darkness_and_luma():
    img = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    img[..., 0, 0] = 1.0
    assert torch.allclose(luma(img)[0, 0, 0, 0], torch.tensor(1.0, dtype=torch.float64))
    d = darkness(img, torch.tensor([0.5]), torch.tensor([0.1]))
    assert d.shape == (1, 1, 2, 2) and d[0, 0, 0, 0] < 0.01 and d[0, 0, 1, 1] > 0.99


def _disc(h, w, cx, cy, r, dtype=torch.float64):
    yy, xx = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    inside = torch.sigmoid(2.0 * (r - ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()))
    return (0.8 - 0.7 * inside).expand(1, 3, h, w).clone()


def test_geometry_loss_sees_a_move_and_a_growth():
    t, s = torch.tensor([0.45]), torch.tensor([0.05])
    ref = _disc(16, 24, 11.0, 8.0, 3.0)
    target = blob_moments(darkness(ref, t, s))
    scale = target[:, 2] + target[:, 3]
    mask = torch.ones(1, 1, 16, 24, dtype=torch.float64)
    same = geometry_loss(ref, target, mask, t, s, scale)
    moved = geometry_loss(_disc(16, 24, 12.0, 8.0, 3.0), target, mask, t, s, scale)
    grown = geometry_loss(_disc(16, 24, 11.0, 8.0, 4.0), target, mask, t, s, scale)
    assert float(same) < 1e-12
    # one pixel of shift costs 1 / (xx + yy) of the reference
    assert float(moved) == pytest.approx(1.0 / float(scale), rel=0.05)
    assert float(grown) > 0.05


def test_geometry_loss_gradcheck():
    g = torch.Generator().manual_seed(3)
    x = (0.3 + 0.4 * torch.rand(2, 3, 6, 8, generator=g, dtype=torch.float64)).requires_grad_(True)
    target = torch.tensor([[3.5, 2.5, 4.0, 2.0, 0.3], [4.0, 2.0, 3.0, 3.0, -0.2]], dtype=torch.float64)
    mask = torch.rand(2, 1, 6, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0.5, 0.45], dtype=torch.float64)
    s = torch.tensor([0.1, 0.2], dtype=torch.float64)
    scale = torch.tensor([6.0, 5.0], dtype=torch.float64)
    assert gradcheck(lambda im: geometry_loss(im, target, mask, t, s, scale), (x,), eps=1e-6, atol=1e-7)


def test_objective_geometry_term(tiny_encoder):
    from masked_gatys.eyes import render_eye

    cfg = dataclasses.replace(preset("masked", max_layer="relu3_4"), geometry_weight=10.0)
    assert cfg.regions == ["attention", "background"]
    assert ObjectiveConfig.from_dict(cfg.to_dict()) == cfg
    assert "geometry_weight" not in preset("masked").to_dict()  # older checkpoints still compare
    content = render_eye(yaw=10, pitch=5, domain="real", size=(36, 60), seed=3)
    style = render_eye(yaw=0, pitch=0, domain="synthetic", size=(36, 60), seed=0)
    obj = Objective(tiny_encoder, cfg, style=style.image, style_regions=Regions.from_binary(style.mask))
    obj.set_content(content.image, Regions.from_binary(content.mask))
    value = obj(content.image)
    assert "geometry@attention" in value.terms
    plain = Objective(tiny_encoder, preset("masked", max_layer="relu3_4"), style=style.image,
                      style_regions=Regions.from_binary(style.mask))
    plain.set_content(content.image, Regions.from_binary(content.mask))
    other = plain(content.image)
    assert torch.allclose(value.total, other.total + 10.0 * value.terms["geometry@attention"])
    # moving the pupil (the image shifted by two pixels) costs more than leaving it
    shifted = torch.roll(content.image, shifts=2, dims=-1)
    assert float(obj(shifted).terms["geometry@attention"]) > float(value.terms["geometry@attention"])
