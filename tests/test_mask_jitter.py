"""Perturbed masks (masked_gatys.mask_jitter): each perturbation does what it says.

Tiny synthetic masks only; the training side is in tests/test_train.py.
"""

from __future__ import annotations

import pytest
import torch

from masked_gatys.mask_jitter import KINDS, jitter_masks, perturb_masks

H, W = 24, 32


def _disc_masks(n: int, radius: float = 6.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    disc = ((yy - 11.5) ** 2 + (xx - 15.5) ** 2 <= radius ** 2).float()
    return disc.expand(n, 1, H, W).clone()


def _one(kind: str, amount: int = 1, direction: int = 0, centre=(11.0, 15.0), radius: float = 2.0,
         masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    m = _disc_masks(1) if masks is None else masks
    out = perturb_masks(m, torch.tensor([KINDS.index(kind)]), torch.tensor([amount]), torch.tensor([direction]),
                        torch.tensor([centre], dtype=torch.float32), torch.tensor([radius]))
    return m, out


def _centroid(m: torch.Tensor) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    m = m[0, 0]
    return torch.stack([(m * yy).sum(), (m * xx).sum()]) / m.sum()


def _binary(m: torch.Tensor) -> bool:
    return bool(((m == 0) | (m == 1)).all())


@pytest.mark.parametrize("amount", [1, 2])
def test_dilation_grows_the_mask_by_its_amount(amount: int) -> None:
    m, out = _one("dilate", amount)
    assert _binary(out) and out.sum() > m.sum()
    assert bool((out >= m).all())  # it contains the mask
    # every new pixel is within `amount` px (Chebyshev) of the mask, and the ring is that wide
    assert torch.equal(out, torch.nn.functional.max_pool2d(m, 2 * amount + 1, 1, amount))
    rows = out[0, 0].sum(dim=1).nonzero().flatten()
    m_rows = m[0, 0].sum(dim=1).nonzero().flatten()
    assert int(rows[0]) == int(m_rows[0]) - amount and int(rows[-1]) == int(m_rows[-1]) + amount


@pytest.mark.parametrize("amount", [1, 2])
def test_erosion_shrinks_the_mask_by_its_amount(amount: int) -> None:
    m, out = _one("erode", amount)
    assert _binary(out) and 0 < out.sum() < m.sum()
    assert bool((out <= m).all())
    rows = out[0, 0].sum(dim=1).nonzero().flatten()
    m_rows = m[0, 0].sum(dim=1).nonzero().flatten()
    assert int(rows[0]) >= int(m_rows[0]) + amount and int(rows[-1]) <= int(m_rows[-1]) - amount
    # opening (erode, then dilate) never grows the mask
    assert erode_then_dilate_within(m, amount)


def erode_then_dilate_within(m: torch.Tensor, amount: int) -> bool:
    _, eroded = _one("erode", amount, masks=m)
    _, opened = _one("dilate", amount, masks=eroded)
    return bool((opened <= m).all())


@pytest.mark.parametrize("direction", range(8))
@pytest.mark.parametrize("amount", [1, 2])
def test_a_shift_moves_the_centroid_by_one_or_two_pixels(direction: int, amount: int) -> None:
    m, out = _one("shift", amount, direction)
    assert _binary(out) and out.sum() == m.sum()  # the disc is away from the border: nothing lost
    move = _centroid(out) - _centroid(m)
    assert float(move.abs().max()) == pytest.approx(amount, abs=1e-4)
    assert float(move.abs().min()) in (pytest.approx(0, abs=1e-4), pytest.approx(amount, abs=1e-4))


def test_the_eight_shifts_go_eight_ways() -> None:
    m = _disc_masks(1)
    moves = {tuple(torch.round(_centroid(_one("shift", 1, d)[1]) - _centroid(m)).int().tolist()) for d in range(8)}
    assert len(moves) == 8 and (0, 0) not in moves


def test_a_hole_removes_pixels_inside_the_mask_and_nothing_else() -> None:
    m, out = _one("hole", centre=(11.0, 15.0), radius=2.0)
    assert _binary(out)
    removed = m - out
    assert bool((removed >= 0).all()) and 9 <= int(removed.sum()) <= 13  # a radius-2 disc: 13 pixels
    ys, xs = removed[0, 0].nonzero(as_tuple=True)
    assert bool((((ys - 11.0) ** 2 + (xs - 15.0) ** 2) <= 4.0).all())


def test_jitter_zero_is_the_identity_and_one_changes_every_mask() -> None:
    m = _disc_masks(6)
    assert torch.equal(jitter_masks(m, 0.0, torch.Generator().manual_seed(3)), m)
    out = jitter_masks(m, 1.0, torch.Generator().manual_seed(3))
    assert all(not torch.equal(out[i], m[i]) for i in range(6))


def test_the_output_stays_binary_in_0_1_and_is_a_copy() -> None:
    m = _disc_masks(32)
    out = jitter_masks(m, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == m.shape and out.dtype == m.dtype and _binary(out)
    out[0] = 0.5
    assert _binary(m)  # the input was not written to
    soft = m * 0.7
    assert 0 <= float(jitter_masks(soft, 1.0, torch.Generator().manual_seed(0)).min())
    assert float(jitter_masks(soft, 1.0, torch.Generator().manual_seed(0)).max()) <= 0.7


def test_the_same_seed_gives_the_same_masks_and_another_seed_others() -> None:
    m = _disc_masks(16)
    a = jitter_masks(m, 0.5, torch.Generator().manual_seed(7))
    b = jitter_masks(m, 0.5, torch.Generator().manual_seed(7))
    c = jitter_masks(m, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_every_kind_is_drawn_and_about_the_share_asked_for_is_perturbed() -> None:
    m = _disc_masks(400)
    out = jitter_masks(m, 0.5, torch.Generator().manual_seed(0))
    changed = (out != m).flatten(1).any(dim=1)
    assert 150 < int(changed.sum()) < 250
    area = out.flatten(1).sum(dim=1)
    a0 = float(m[0].sum())
    grown, shrunk = area > a0, area < a0
    moved = changed & (area == a0)
    assert grown.any() and shrunk.any() and moved.any()
    # a hole: fewer pixels, yet the outline (bounding box) unchanged
    def rows(t: torch.Tensor) -> torch.Tensor:
        return t[0].sum(dim=1).nonzero().flatten()

    holed = [i for i in range(400) if shrunk[i] and torch.equal(rows(out[i]), rows(m[i]))]
    assert holed


def test_an_empty_mask_gets_no_hole_and_a_bad_probability_is_refused() -> None:
    empty = torch.zeros(4, 1, H, W)
    assert torch.equal(jitter_masks(empty, 1.0, torch.Generator().manual_seed(0)), empty)
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="probability"):
            jitter_masks(empty, p, torch.Generator())
