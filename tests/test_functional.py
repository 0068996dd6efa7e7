"""The loss maths (masked_gatys.functional) against independent references.

References are float64 numpy loops written from DESIGN.md's formulas, hand
computations on tiny tensors, and finite differences (``gradcheck``); never
outputs of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from masked_gatys.functional import content_loss, gram_matrix, masked_mean_square, style_loss, tv_loss

# ---------------------------------------------------------------- references (numpy, float64)


def np_gram(f: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """sum_j m_j f_j f_j^T / sum_j m_j, one batch element at a time, by an explicit loop."""
    b, c, h, w = f.shape
    out = np.zeros((b, c, c))
    for i in range(b):
        num, mass = np.zeros((c, c)), 0.0
        for y in range(h):
            for x in range(w):
                mj = 1.0 if m is None else float(m[i if m.shape[0] > 1 else 0, 0, y, x])
                fj = f[i, :, y, x].astype(np.float64)
                num += mj * np.outer(fj, fj)
                mass += mj
        out[i] = num / mass
    return out


def np_content(f: np.ndarray, t: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """sum_j m_j ||f_j - t_j||^2 / (N sum_j m_j)."""
    b, c, h, w = f.shape
    m = np.ones((b, 1, h, w)) if m is None else np.broadcast_to(m, (b, 1, h, w))
    sq = ((f.astype(np.float64) - t) ** 2).sum(axis=1, keepdims=True)
    return (sq * m).sum(axis=(1, 2, 3)) / (c * m.sum(axis=(1, 2, 3)))


def np_style(f: np.ndarray, target: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """||G(f, m) - T||_F^2 / N^2."""
    c = f.shape[1]
    g = np_gram(f, m)
    return ((g - target) ** 2).sum(axis=(1, 2)) / c**2


def np_tv(x: np.ndarray) -> np.ndarray:
    """tv_loss's documented definition: mean of squared horizontal neighbour differences plus
    mean of squared vertical neighbour differences (each over C and positions)."""
    b, c, h, w = x.shape
    out = np.zeros(b)
    for i in range(b):
        if w > 1:
            out[i] += np.mean([(x[i, k, y, j + 1] - x[i, k, y, j]) ** 2
                               for k in range(c) for y in range(h) for j in range(w - 1)])
        if h > 1:
            out[i] += np.mean([(x[i, k, y + 1, j] - x[i, k, y, j]) ** 2
                               for k in range(c) for y in range(h - 1) for j in range(w)])
    return out


def tol(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


# ---------------------------------------------------------------- gram_matrix


@pytest.mark.parametrize("masked", [False, True])
def test_gram_matches_numpy_loop(device, dtype, masked: bool) -> None:
    f = _rand(2, 3, 4, 5, seed=1, dtype=dtype, device=device) * 2 - 1
    m = _rand(2, 1, 4, 5, seed=2, dtype=dtype, device=device) if masked else None
    g = gram_matrix(f, m)
    assert g.shape == (2, 3, 3) and g.dtype == dtype and g.device.type == device.type
    ref = np_gram(f.cpu().double().numpy(), None if m is None else m.cpu().double().numpy())
    np.testing.assert_allclose(g.cpu().double().numpy(), ref, **tol(dtype))
    torch.testing.assert_close(g, g.transpose(1, 2))  # symmetric


def test_gram_hand_computed() -> None:
    # two channels, two positions: f_0 = (1, 3), f_1 = (2, 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]], dtype=torch.float64)
    # plain: (f0 f0^T + f1 f1^T) / 2 = ([[1, 3], [3, 9]] + [[4, 8], [8, 16]]) / 2
    torch.testing.assert_close(gram_matrix(f), torch.tensor([[[2.5, 5.5], [5.5, 12.5]]], dtype=torch.float64))
    # hard mask on position 0 only: f0 f0^T / 1
    m = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    torch.testing.assert_close(gram_matrix(f, m), torch.tensor([[[1.0, 3.0], [3.0, 9.0]]], dtype=torch.float64))
    # soft mask (0.5, 1): (0.5 [[1,3],[3,9]] + [[4,8],[8,16]]) / 1.5
    m = torch.tensor([[[[0.5, 1.0]]]], dtype=torch.float64)
    expected = torch.tensor([[[4.5, 9.5], [9.5, 20.5]]], dtype=torch.float64) / 1.5
    torch.testing.assert_close(gram_matrix(f, m), expected)


def test_gram_all_ones_mask_is_plain_gram_over_hw(dtype) -> None:
    f = _rand(2, 4, 6, 7, seed=3, dtype=dtype)
    flat = f.double().numpy().reshape(2, 4, 42)
    plain = np.einsum("bcm,bdm->bcd", flat, flat) / (6 * 7)
    for mask in (None, torch.ones(2, 1, 6, 7, dtype=dtype), torch.ones(1, 1, 6, 7, dtype=dtype)):
        np.testing.assert_allclose(gram_matrix(f, mask).double().numpy(), plain, **tol(dtype))


def test_gram_scale_invariant_in_mask() -> None:
    # only the mask's shape matters, not its scale: m and 0.3 m give the same Gram
    f, m = _rand(1, 3, 5, 5, seed=4), _rand(1, 1, 5, 5, seed=5)
    torch.testing.assert_close(gram_matrix(f, m), gram_matrix(f, 0.3 * m))


def _tiled_texture(c: int, h: int, w: int, period: int, seed: int) -> torch.Tensor:
    tile = _rand(1, c, period, period, seed=seed) * 2 - 1
    return tile.repeat(1, 1, h // period, w // period)


def test_region_gram_does_not_depend_on_area() -> None:
    # a stationary texture (a tiled random 4x4 pattern); each region holds whole tiles
    period = 4
    f = _tiled_texture(5, 32, 32, period, seed=6)
    small = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    small[..., 8:16, 12:20] = 1  # 8x8: 4 tiles
    large = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    large[..., 4:28, 0:32] = 1  # 24x32: 48 tiles
    g_small, g_large = gram_matrix(f, small), gram_matrix(f, large)
    tile_gram = np_gram(f[..., :period, :period].numpy())  # the texture's own statistics
    np.testing.assert_allclose(g_small.numpy(), tile_gram, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g_large.numpy(), tile_gram, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gram_matrix(f).numpy(), tile_gram, rtol=1e-12, atol=1e-12)
    # the same with the two regions of one mask in one batch, and with soft region edges
    soft = small * 0.25
    np.testing.assert_allclose(gram_matrix(f, soft).numpy(), tile_gram, rtol=1e-12, atol=1e-12)


def test_gram_ignores_features_outside_the_mask() -> None:
    f = _rand(1, 3, 6, 6, seed=7)
    m = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    m[..., :3, :] = 1
    g = f.clone()
    g[..., 3:, :] = 100.0 * torch.randn(1, 3, 3, 6, dtype=torch.float64)
    torch.testing.assert_close(gram_matrix(f, m), gram_matrix(g, m))
    # ... and the gradient there is exactly zero
    fr = f.clone().requires_grad_(True)
    gram_matrix(fr, m).sum().backward()
    assert torch.all(fr.grad[..., 3:, :] == 0)
    assert torch.any(fr.grad[..., :3, :] != 0)


def test_gram_of_an_empty_region_is_zero_not_nan() -> None:
    # documented: a region with zero mass gives the zero matrix (callers check coverage)
    g = gram_matrix(_rand(2, 3, 4, 4, seed=8), torch.zeros(1, 1, 4, 4, dtype=torch.float64))
    assert torch.isfinite(g).all()
    assert torch.all(g == 0)


def test_mask_broadcast_over_batch(dtype) -> None:
    f = _rand(3, 4, 5, 6, seed=9, dtype=dtype)
    t = _rand(3, 4, 5, 6, seed=10, dtype=dtype)
    m1 = _rand(1, 1, 5, 6, seed=11, dtype=dtype)
    mb = m1.expand(3, 1, 5, 6).clone()
    target_gram = gram_matrix(t)
    torch.testing.assert_close(gram_matrix(f, m1), gram_matrix(f, mb))
    torch.testing.assert_close(content_loss(f, t, m1), content_loss(f, t, mb))
    torch.testing.assert_close(style_loss(f, target_gram, m1), style_loss(f, target_gram, mb))
    torch.testing.assert_close(masked_mean_square(f, m1), masked_mean_square(f, mb))


def test_mask_of_another_dtype_is_accepted() -> None:
    f = _rand(2, 3, 4, 4, seed=12, dtype=torch.float32)
    m = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    m[..., 1:3, :] = True
    g = gram_matrix(f, m)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, gram_matrix(f, m.float()))


# ---------------------------------------------------------------- shape errors


@pytest.mark.parametrize(
    "features, mask, match",
    [
        ((2, 3, 4), None, r"\(B, C, H, W\)"),
        ((3, 4), None, r"\(B, C, H, W\)"),
        ((2, 3, 4, 5), (2, 2, 4, 5), r"mask"),
        ((2, 3, 4, 5), (1, 4, 5), r"mask"),
        ((2, 3, 4, 5), (4, 5), r"mask"),
    ],
)
def test_gram_shape_errors(features, mask, match) -> None:
    with pytest.raises(ValueError, match=match):
        gram_matrix(torch.zeros(*features), None if mask is None else torch.ones(*mask))


@pytest.mark.parametrize("mask", [(2, 1, 5, 5), (2, 1, 4, 4), (3, 1, 4, 5)])
def test_mask_of_wrong_size_is_a_value_error(mask) -> None:
    f = torch.zeros(2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"mask"):
        gram_matrix(f, torch.ones(*mask))


def test_content_loss_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"differ"):
        content_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match=r"differ"):
        content_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


def test_content_loss_needs_4d_features() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        content_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))


def test_content_loss_batch_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        content_loss(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))


def test_style_and_tv_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"3 channels"):
        style_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        style_loss(torch.zeros(3, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        tv_loss(torch.zeros(3, 4, 4))


# ---------------------------------------------------------------- content_loss


def test_content_loss_hand_computed() -> None:
    f = torch.zeros(1, 2, 1, 2, dtype=torch.float64)
    t = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]], dtype=torch.float64)
    # (1 + 4 + 9 + 16) / (N=2 * M=2)
    torch.testing.assert_close(content_loss(f, t), torch.tensor([7.5], dtype=torch.float64))
    # position 0 only: (1 + 9) / (2 * 1)
    m = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    torch.testing.assert_close(content_loss(f, t, m), torch.tensor([5.0], dtype=torch.float64))
    # weights (0.5, 1): (0.5 * 10 + 20) / (2 * 1.5)
    m = torch.tensor([[[[0.5, 1.0]]]], dtype=torch.float64)
    torch.testing.assert_close(content_loss(f, t, m), torch.tensor([25.0 / 3.0], dtype=torch.float64))


def test_content_loss_all_ones_mask_is_mse(device, dtype) -> None:
    f = _rand(2, 4, 5, 6, seed=13, dtype=dtype, device=device)
    t = _rand(2, 4, 5, 6, seed=14, dtype=dtype, device=device)
    mse = ((f.cpu().double().numpy() - t.cpu().double().numpy()) ** 2).reshape(2, -1).mean(axis=1)
    for mask in (None, torch.ones(2, 1, 5, 6, dtype=dtype, device=device)):
        out = content_loss(f, t, mask)
        assert out.shape == (2,) and out.dtype == dtype and out.device.type == device.type
        np.testing.assert_allclose(out.cpu().double().numpy(), mse, **tol(dtype))
    torch.testing.assert_close(content_loss(f, t), torch.nn.functional.mse_loss(f, t, reduction="none")
                               .reshape(2, -1).mean(dim=1))


def test_content_loss_masked_matches_numpy(dtype) -> None:
    f, t = _rand(2, 3, 5, 4, seed=15, dtype=dtype), _rand(2, 3, 5, 4, seed=16, dtype=dtype)
    m = _rand(2, 1, 5, 4, seed=17, dtype=dtype)
    ref = np_content(f.double().numpy(), t.double().numpy(), m.double().numpy())
    np.testing.assert_allclose(content_loss(f, t, m).double().numpy(), ref, **tol(dtype))


def test_content_loss_target_of_batch_one_broadcasts() -> None:
    f, t = _rand(3, 2, 4, 4, seed=18), _rand(1, 2, 4, 4, seed=19)
    out = content_loss(f, t)
    assert out.shape == (3,)
    for i in range(3):
        torch.testing.assert_close(out[i:i + 1], content_loss(f[i:i + 1], t))


def test_content_loss_of_identical_features_is_zero() -> None:
    f = _rand(2, 3, 4, 4, seed=20)
    assert torch.all(content_loss(f, f.clone(), _rand(2, 1, 4, 4, seed=21)) == 0)


def test_masked_mean_square_matches_numpy() -> None:
    f, m = _rand(2, 3, 4, 5, seed=22) - 0.5, _rand(2, 1, 4, 5, seed=23)
    ref = np_content(f.numpy(), np.zeros(f.shape), m.numpy())
    np.testing.assert_allclose(masked_mean_square(f, m).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(masked_mean_square(f).numpy(), (f.numpy() ** 2).reshape(2, -1).mean(1),
                               rtol=1e-12)


# ---------------------------------------------------------------- style_loss


def test_style_loss_hand_computed() -> None:
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]], dtype=torch.float64)
    # G = [[2.5, 5.5], [5.5, 12.5]] against 0: (6.25 + 2 * 30.25 + 156.25) / 2^2
    torch.testing.assert_close(style_loss(f, torch.zeros(1, 2, 2, dtype=torch.float64)),
                               torch.tensor([55.75], dtype=torch.float64))
    # masked to position 0: G = [[1, 3], [3, 9]] against the identity: (0 + 9 + 9 + 64) / 4
    m = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    torch.testing.assert_close(style_loss(f, torch.eye(2, dtype=torch.float64)[None], m),
                               torch.tensor([20.5], dtype=torch.float64))


@pytest.mark.parametrize("masked", [False, True])
def test_style_loss_matches_numpy(device, dtype, masked: bool) -> None:
    f = _rand(2, 4, 5, 3, seed=24, dtype=dtype, device=device)
    target = gram_matrix(_rand(1, 4, 6, 6, seed=25, dtype=dtype, device=device))
    m = _rand(2, 1, 5, 3, seed=26, dtype=dtype, device=device) if masked else None
    out = style_loss(f, target, m)
    assert out.shape == (2,) and out.dtype == dtype and out.device.type == device.type
    ref = np_style(f.cpu().double().numpy(), target.cpu().double().numpy(),
                   None if m is None else m.cpu().double().numpy())
    np.testing.assert_allclose(out.cpu().double().numpy(), ref, **tol(dtype))


def test_style_loss_zero_for_the_same_texture_in_another_region() -> None:
    # the same stationary texture, target from a large region, output judged on a small one
    f = _tiled_texture(3, 24, 24, 4, seed=27)
    big = torch.zeros(1, 1, 24, 24, dtype=torch.float64)
    big[..., :, :16] = 1
    small = torch.zeros(1, 1, 24, 24, dtype=torch.float64)
    small[..., 16:20, 16:24] = 1
    out = style_loss(f, gram_matrix(f, big), small)
    assert float(out) < 1e-20


# ---------------------------------------------------------------- tv_loss


def test_tv_loss_hand_computed() -> None:
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]], dtype=torch.float64)
    # horizontal: (1-0)^2, (4-2)^2 -> mean 2.5; vertical: (2-0)^2, (4-1)^2 -> mean 6.5
    torch.testing.assert_close(tv_loss(x), torch.tensor([9.0], dtype=torch.float64))
    assert torch.all(tv_loss(torch.full((2, 3, 5, 4), 0.7)) == 0)  # constant image


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 3, 1, 6), (1, 1, 6, 1), (1, 3, 1, 1)])
def test_tv_loss_matches_numpy(device, dtype, shape) -> None:
    x = _rand(*shape, seed=28, dtype=dtype, device=device)
    out = tv_loss(x)
    assert out.shape == (shape[0],) and out.dtype == dtype and out.device.type == device.type
    np.testing.assert_allclose(out.cpu().double().numpy(), np_tv(x.cpu().double().numpy()), **tol(dtype))


# ---------------------------------------------------------------- per-batch independence


def test_losses_are_independent_across_the_batch() -> None:
    f, t, m = _rand(3, 4, 5, 5, seed=29), _rand(3, 4, 5, 5, seed=30), _rand(3, 1, 5, 5, seed=31)
    target_gram = gram_matrix(_rand(3, 4, 5, 5, seed=32))
    x = _rand(3, 3, 6, 6, seed=33)
    fns = {
        "gram": lambda f_, t_, m_, g_, x_: gram_matrix(f_, m_),
        "content": lambda f_, t_, m_, g_, x_: content_loss(f_, t_, m_),
        "style": lambda f_, t_, m_, g_, x_: style_loss(f_, g_, m_),
        "tv": lambda f_, t_, m_, g_, x_: tv_loss(x_),
    }
    for name, fn in fns.items():
        batched = fn(f, t, m, target_gram, x)
        assert batched.shape[0] == 3, name
        for i in range(3):
            s = slice(i, i + 1)
            torch.testing.assert_close(batched[s], fn(f[s], t[s], m[s], target_gram[s], x[s]), msg=name)
        # changing element 2 leaves elements 0 and 1 alone
        f2, x2 = f.clone(), x.clone()
        f2[2] += 1.0
        x2[2] = 1 - x2[2] ** 2
        changed = fn(f2, t, m, target_gram, x2)
        torch.testing.assert_close(changed[:2], batched[:2], msg=name)
        assert not torch.allclose(changed[2], batched[2]), name


# ---------------------------------------------------------------- gradcheck (float64)


def _req(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def test_gradcheck_gram() -> None:
    f = _req(_rand(2, 3, 3, 4, seed=34) - 0.5)
    assert gradcheck(gram_matrix, (f,))
    m = _req(_rand(2, 1, 3, 4, seed=35) * 0.9 + 0.1)  # w.r.t. the mask as well (soft masks)
    assert gradcheck(gram_matrix, (f, m))
    m1 = _req(_rand(1, 1, 3, 4, seed=36) * 0.9 + 0.1)  # broadcast mask
    assert gradcheck(gram_matrix, (f, m1))


def test_gradcheck_content_loss() -> None:
    f, t = _req(_rand(2, 3, 3, 4, seed=37)), _req(_rand(2, 3, 3, 4, seed=38))
    assert gradcheck(content_loss, (f, t))
    m = _req(_rand(2, 1, 3, 4, seed=39) * 0.9 + 0.1)
    assert gradcheck(content_loss, (f, t, m))


def test_gradcheck_style_loss() -> None:
    f = _req(_rand(2, 3, 3, 4, seed=40) - 0.5)
    target = _req(gram_matrix(_rand(1, 3, 4, 4, seed=41)))
    assert gradcheck(style_loss, (f, target))
    m = _req(_rand(2, 1, 3, 4, seed=42) * 0.9 + 0.1)
    assert gradcheck(style_loss, (f, target, m))


def test_gradcheck_tv_loss() -> None:
    assert gradcheck(tv_loss, (_req(_rand(2, 3, 4, 5, seed=43)),))
    assert gradcheck(tv_loss, (_req(_rand(1, 2, 1, 5, seed=44)),))


# ---------------------------------------------------------------- fused style-loss backward

@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("target_batch", [1, 3])
def test_fused_style_loss_matches_the_plain_composition(masked: bool, target_batch: int) -> None:
    g = torch.Generator().manual_seed(11)
    f = torch.randn(3, 4, 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(target_batch, 4, 4, dtype=torch.float64, generator=g)
    t = t @ t.transpose(1, 2)
    mask = torch.rand(3, 1, 3, 5, dtype=torch.float64, generator=g) if masked else None
    weights = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    fused = style_loss(f, t, mask)
    (grad_fused,) = torch.autograd.grad((fused * weights).sum(), f)
    plain = (gram_matrix(f, mask) - t).square().sum(dim=(1, 2)) / 16  # the definition, composed by hand
    (grad_plain,) = torch.autograd.grad((plain * weights).sum(), f)
    assert torch.allclose(fused, plain, rtol=1e-12, atol=0)
    assert torch.allclose(grad_fused, grad_plain, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: style_loss(x, t, mask), (f,))


def test_style_loss_gives_mask_gradients_when_asked() -> None:
    g = torch.Generator().manual_seed(12)
    f = torch.randn(1, 3, 4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    assert torch.autograd.gradcheck(lambda x, m: style_loss(x, t, m), (f, mask))


def test_style_loss_over_the_mask_window_is_exact() -> None:
    from masked_gatys.functional import mask_box

    g = torch.Generator().manual_seed(13)
    f = torch.randn(2, 4, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.zeros(2, 1, 6, 5, dtype=torch.float64)
    mask[0, :, 1:3, 1:4] = torch.rand(2, 3, dtype=torch.float64, generator=g) + 0.1
    mask[1, :, 3:4, 0:2] = 1.0
    t = torch.randn(1, 4, 4, dtype=torch.float64, generator=g)  # not symmetric: the backward must not assume it
    box = mask_box(mask)
    assert box == (1, 4, 0, 4)  # rows 1..3, columns 0..3: the union over the batch
    full = style_loss(f, t, mask)
    (grad_full,) = torch.autograd.grad(full.sum(), f)
    restricted = style_loss(f, t, mask, box=box)
    (grad_restricted,) = torch.autograd.grad(restricted.sum(), f)
    assert torch.allclose(full, restricted, rtol=1e-12, atol=0)
    assert torch.allclose(grad_full, grad_restricted, rtol=1e-12, atol=1e-15)
    assert torch.autograd.gradcheck(lambda x: style_loss(x, t, mask, box=box), (f,))
    assert torch.autograd.gradcheck(lambda x: style_loss(x, t, mask), (f,))
    assert mask_box(torch.ones(1, 1, 4, 4)) is None  # a full window gains nothing from slicing
    assert mask_box(torch.zeros(1, 1, 4, 4)) is None
