"""Tests of masked_gatys.masks: regions, reading, resizing, pair checks, coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from masked_gatys.errors import MaskError
from masked_gatys.masks import Regions, check_coverage, load_mask, load_mask_pair, resize_mask

RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def write_rgb(path, pixels) -> str:
    Image.fromarray(np.asarray(pixels, np.uint8), "RGB").save(path)
    return str(path)


def write_grey(path, grey) -> str:
    Image.fromarray(np.asarray(grey, np.uint8), "L").save(path)
    return str(path)


def half_mask(h=8, w=8) -> np.ndarray:
    g = np.zeros((h, w), np.uint8)
    g[:, : w // 2] = 255
    return g


# --------------------------------------------------------------------------- Regions


def test_from_binary_shapes_and_values():
    m = torch.tensor([[0.0, 0.25], [1.0, 2.0]])
    for x in (m, m[None], m[None, None]):
        r = Regions.from_binary(x)
        assert r.names == ("background", "attention") and r.masks.shape == (1, 2, 2, 2)
        assert torch.equal(r.region("attention")[0, 0], m.clamp(0, 1))
        assert torch.equal(r.region("background")[0, 0], 1 - m.clamp(0, 1))
    batch = Regions.from_binary(torch.rand(3, 1, 4, 5))
    assert batch.masks.shape == (3, 2, 4, 5) and len(batch) == 2
    with pytest.raises(MaskError, match=r"\(H, W\)"):
        Regions.from_binary(torch.zeros(1, 2, 3, 3))


def test_region_unknown_lists_names():
    r = Regions.from_binary(torch.zeros(2, 2))
    with pytest.raises(MaskError, match="no region 'pupil'; the regions are background, attention"):
        r.region("pupil")


def test_regions_validation():
    with pytest.raises(MaskError, match="3 mask channels but 2"):
        Regions(torch.zeros(1, 3, 2, 2), ("a", "b"))
    with pytest.raises(MaskError, match="unique"):
        Regions(torch.zeros(1, 2, 2, 2), ("a", "a"))
    with pytest.raises(MaskError, match=r"\(B, R, H, W\)"):
        Regions(torch.zeros(2, 2, 2), ("a", "b"))


def test_whole_expand_to_mass():
    r = Regions.whole(1, 3, 4)
    assert r.names == ("whole",) and torch.equal(r.mass(), torch.tensor([[12.0]]))
    e = r.expand(5)
    assert e.masks.shape == (5, 1, 3, 4) and e.names == r.names
    assert r.expand(1) is r
    with pytest.raises(MaskError, match="batch of 2"):
        Regions.whole(2, 3, 4).expand(3)
    named = Regions.whole(2, 3, 4, names=("a", "b"), dtype=torch.float64)
    assert named.masks.dtype == torch.float64 and named.masks.shape == (2, 2, 3, 4)
    moved = r.to(torch.float64)
    assert moved.masks.dtype == torch.float64 and moved.names == r.names


@pytest.mark.parametrize("shape,size", [((8, 12), (2, 3)), ((16, 16), (4, 8)), ((6, 9), (3, 3))])
def test_resize_preserves_mass_fraction(shape, size):
    m = torch.rand(shape)
    r = Regions.from_binary(m).resized(size)
    assert r.size == size
    assert torch.allclose(r.masks.mean(dim=(-2, -1)), Regions.from_binary(m).masks.mean(dim=(-2, -1)), atol=1e-6)
    # background + attention still sums to one everywhere
    assert torch.allclose(r.masks.sum(1), torch.ones(1, *size), atol=1e-6)


def test_resize_mask_dims_and_area_values():
    m = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert torch.equal(resize_mask(m, (1, 2)), torch.tensor([[0.75, 0.0]]))
    assert resize_mask(torch.zeros(3, 4, 4), (2, 2)).shape == (3, 2, 2)
    assert resize_mask(torch.zeros(2, 3, 4, 4), (1, 1)).shape == (2, 3, 1, 1)
    assert resize_mask(m, (2, 4)) is m
    with pytest.raises(MaskError, match="positive"):
        resize_mask(m, (0, 2))


# --------------------------------------------------------------------------- load_mask


def test_load_binary_values(tmp_path):
    grey = np.array([[0, 64, 128, 255]], np.uint8)
    r = load_mask(write_grey(tmp_path / "m.png", grey))
    assert r.names == ("background", "attention")
    np.testing.assert_allclose(r.region("attention")[0, 0].numpy(), grey / 255, atol=1e-6)
    np.testing.assert_allclose(r.region("background")[0, 0].numpy(), 1 - grey / 255, atol=1e-6)


def test_load_binary_from_rgb_1bit_16bit_and_alpha(tmp_path):
    rgb = write_rgb(tmp_path / "rgb.png", [[BLACK, (255, 255, 255), RED]])
    np.testing.assert_allclose(load_mask(rgb).region("attention").flatten().numpy(), [0, 1, 0.299], atol=1e-6)
    one = tmp_path / "one.png"
    Image.fromarray(np.array([[True, False]])).convert("1").save(one)
    assert load_mask(one).region("attention").flatten().tolist() == [1.0, 0.0]
    g16 = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 1, 65535]], np.uint16)).save(g16)
    np.testing.assert_allclose(load_mask(g16).region("attention").flatten().numpy(), [0, 1 / 65535, 1], atol=1e-9)
    la = tmp_path / "la.png"  # white, but transparent: not attention
    Image.fromarray(np.array([[[255, 0], [255, 255]]], np.uint8), "LA").save(la)
    assert load_mask(la).region("attention").flatten().tolist() == [0.0, 1.0]


def test_load_binary_size_area(tmp_path):
    path = write_grey(tmp_path / "m.png", half_mask(8, 8))
    r = load_mask(path, size=(2, 4))
    assert r.masks.shape == (1, 2, 2, 4)
    assert r.region("attention")[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def test_load_labels(tmp_path):
    path = write_rgb(tmp_path / "l.png", [[RED, GREEN], [BLUE, RED]])
    r = load_mask(path, mode="labels")
    assert r.names == ("#0000ff", "#00ff00", "#ff0000")
    assert r.region("#ff0000")[0, 0].tolist() == [[1, 0], [0, 1]]
    assert torch.equal(r.masks.sum(1), torch.ones(1, 2, 2))


def test_labels_order_agrees_between_masks(tmp_path):
    a = write_rgb(tmp_path / "a.png", [[RED, GREEN, BLUE]])
    b = write_rgb(tmp_path / "b.png", [[BLUE], [RED], [GREEN]])  # other layout, other order of appearance
    ra, rb = load_mask(a, mode="labels"), load_mask(b, mode="labels")
    assert ra.names == rb.names == ("#0000ff", "#00ff00", "#ff0000")
    assert rb.region("#ff0000").flatten().tolist() == [0, 1, 0]
    assert ra.region("#ff0000").flatten().tolist() == [1, 0, 0]
    assert ra.region("#0000ff").flatten().tolist() == [0, 0, 1]


def test_labels_palette(tmp_path):
    path = write_rgb(tmp_path / "l.png", [[RED, GREEN]])
    r = load_mask(path, mode="labels", palette=["#00FF00", (255, 0, 0), "#0000ff"])
    assert r.names == ("#00ff00", "#ff0000", "#0000ff")
    assert r.mass().tolist() == [[1.0, 1.0, 0.0]]
    with pytest.raises(MaskError, match=r"l.png has colours not in the palette: #00ff00"):
        load_mask(path, mode="labels", palette=["#ff0000"])
    with pytest.raises(MaskError, match="palette colour"):
        load_mask(path, mode="labels", palette=["red"])


def test_labels_size_nearest_keeps_colours(tmp_path):
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, :4] = RED
    pixels[:, 4:] = BLUE
    r = load_mask(write_rgb(tmp_path / "l.png", pixels), mode="labels", size=(3, 5))
    assert r.masks.shape == (1, 2, 3, 5)
    assert set(r.masks.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(r.masks.sum(1), torch.ones(1, 3, 5))


def test_labels_too_many_colours(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3))
    with pytest.raises(MaskError, match="noise.png has .* distinct colours"):
        load_mask(write_rgb(tmp_path / "noise.png", noise), mode="labels")


def test_load_mask_errors_name_file(tmp_path):
    with pytest.raises(MaskError, match="not found: .*nope.png"):
        load_mask(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    with pytest.raises(MaskError, match="bad.png"):
        load_mask(bad)
    with pytest.raises(MaskError, match="directory"):
        load_mask(tmp_path)
    with pytest.raises(MaskError, match="mode"):
        load_mask(bad, mode="soft")


# --------------------------------------------------------------------------- load_mask_pair


def test_pair_binary_ok(tmp_path):
    c = write_grey(tmp_path / "c.png", half_mask(8, 6))
    s = write_grey(tmp_path / "s.png", half_mask(4, 4))
    rc, rs = load_mask_pair(c, s, content_size=(8, 6), style_size=(4, 4))
    assert rc.names == rs.names == ("background", "attention")
    assert rc.size == (8, 6) and rs.size == (4, 4)


def test_pair_size_mismatch(tmp_path):
    c = write_grey(tmp_path / "c.png", half_mask(8, 6))
    s = write_grey(tmp_path / "s.png", half_mask(4, 4))
    with pytest.raises(MaskError, match=r"content mask .*c.png is 6x8 px but the content image is 12x16 px"):
        load_mask_pair(c, s, content_size=(16, 12), style_size=(4, 4))
    with pytest.raises(MaskError, match=r"style mask .*s.png is 4x4 px but the style image is 5x4 px.*--resize-masks"):
        load_mask_pair(c, s, content_size=(8, 6), style_size=(4, 5))
    rc, rs = load_mask_pair(c, s, content_size=(16, 12), style_size=(8, 8), resize=True)
    assert rc.size == (16, 12) and rs.size == (8, 8)
    assert torch.allclose(rc.mass() / (16 * 12), torch.tensor([[0.5, 0.5]]))


def test_pair_labels_resize_stays_one_hot(tmp_path):
    c = write_rgb(tmp_path / "c.png", [[RED, BLUE], [BLUE, RED]])
    rc, _ = load_mask_pair(c, c, mode="labels", content_size=(4, 4), style_size=(2, 2), resize=True)
    assert set(rc.masks.unique().tolist()) == {0.0, 1.0} and rc.size == (4, 4)


def test_pair_labels_region_missing_in_style(tmp_path):
    c = write_rgb(tmp_path / "c.png", [[RED, GREEN], [BLUE, BLUE]])
    s = write_rgb(tmp_path / "s.png", [[GREEN, BLUE], [BLUE, GREEN]])
    msg = r"region #ff0000 is present in content mask .*c.png and empty in style mask .*s.png"
    with pytest.raises(MaskError, match=msg):
        load_mask_pair(c, s, mode="labels", content_size=(2, 2), style_size=(2, 2))
    msg = r"region #ff0000 is present in style mask .*c.png and empty in content mask .*s.png"
    with pytest.raises(MaskError, match=msg):
        load_mask_pair(s, c, mode="labels", content_size=(2, 2), style_size=(2, 2))
    with pytest.raises(MaskError, match=r"region #ff0000 is present in content mask .*c.png and empty in style"):
        load_mask_pair(c, s, mode="labels", content_size=(2, 2), style_size=(2, 2), palette=[RED, GREEN, BLUE])


def test_pair_labels_agree(tmp_path):
    c = write_rgb(tmp_path / "c.png", [[RED, GREEN, BLUE]])
    s = write_rgb(tmp_path / "s.png", [[BLUE], [GREEN], [RED]])
    rc, rs = load_mask_pair(c, s, mode="labels", content_size=(1, 3), style_size=(3, 1))
    assert rc.names == rs.names
    for name in rc.names:
        assert rc.region(name).sum() == rs.region(name).sum() == 1


@pytest.mark.parametrize("value,region,hint", [(0, "attention", "all black"), (255, "background", "all white")])
@pytest.mark.parametrize("which", ["content", "style"])
def test_pair_binary_empty_region(tmp_path, value, region, hint, which):
    flat = write_grey(tmp_path / "flat.png", np.full((4, 4), value))
    good = write_grey(tmp_path / "good.png", half_mask(4, 4))
    c, s = (flat, good) if which == "content" else (good, flat)
    with pytest.raises(MaskError, match=rf"region '{region}' is empty in {which} mask .*flat.png \(the mask is {hint}\)"):
        load_mask_pair(c, s, content_size=(4, 4), style_size=(4, 4))


def test_pair_without_style_mask_warns_and_uses_whole(tmp_path):
    c = write_grey(tmp_path / "c.png", half_mask(4, 4))
    with pytest.warns(UserWarning, match="whole style image is the target of every region"):
        rc, rs = load_mask_pair(c, None, content_size=(4, 4), style_size=(3, 5))
    assert rs.names == rc.names and rs.masks.shape == (1, 2, 3, 5)
    assert torch.equal(rs.masks, torch.ones(1, 2, 3, 5))


def test_pair_tensors_and_regions():
    m = torch.zeros(4, 4)
    m[:2] = 1
    rc, rs = load_mask_pair(m, Regions.from_binary(m), content_size=(4, 4), style_size=None)
    assert rc.names == rs.names
    with pytest.raises(MaskError, match=r"content mask \(given as a Tensor\) is 4x4 px"):
        load_mask_pair(m, m, content_size=(5, 5), style_size=None)


def test_pair_reorders_style_regions_with_same_names():
    a = torch.zeros(1, 2, 2, 2)
    a[:, 0, 0] = 1
    a[:, 1, 1] = 1
    c = Regions(a, ("x", "y"))
    s = Regions(a.flip(1), ("y", "x"))
    rc, rs = load_mask_pair(c, s, mode="labels", content_size=None, style_size=None)
    assert rs.names == ("x", "y") and torch.equal(rs.masks, rc.masks)


# --------------------------------------------------------------------------- check_coverage


def corner_regions(h=16, w=16, frac_rows=1) -> Regions:
    m = torch.zeros(h, w)
    m[:frac_rows] = 1
    return Regions.from_binary(m)


def test_check_coverage_threshold():
    # attention: 2 of 16 rows -> 1/8 of the image; at an 2x2 grid that is 0.5 positions
    r = corner_regions(frac_rows=2)
    check_coverage(r, {"relu4_1": (2, 2)}, {"attention": {"relu4_1"}})  # exactly 0.5: passes
    msg = (r"region 'attention' of the content mask covers 0.12 positions at relu5_1 \(1x1 grid\), "
           r"fewer than 0.5: use a larger --size or drop that layer")
    with pytest.raises(MaskError, match=msg):
        check_coverage(r, {"relu4_1": (2, 2), "relu5_1": (1, 1)}, {"attention": {"relu4_1", "relu5_1"}})
    check_coverage(r, {"relu5_1": (1, 1)}, {"attention": {"relu5_1"}}, min_mass=0.125)
    check_coverage(r, {"relu5_1": (1, 1)}, {"background": {"relu5_1"}})  # 0.875


def test_check_coverage_first_offender_label_and_batch():
    m = torch.ones(2, 1, 8, 8)
    m[1, :, :7] = 0  # element 1: attention on one row of 8
    r = Regions.from_binary(m)
    layers = {"relu1_1": (8, 8), "relu3_1": (2, 2), "relu5_1": (1, 1)}
    with pytest.raises(MaskError, match=r"region 'background' of the style mask \(batch element 0\) covers 0.00"):
        check_coverage(r, layers, {"attention": {"relu5_1"}, "background": {"relu1_1"}}, label="style mask")
    # element 1 has exactly 0.5 positions at relu3_1 (passes), 0.125 at relu5_1
    with pytest.raises(MaskError, match=r"'attention' .*\(batch element 1\) covers 0.12 positions at relu5_1"):
        check_coverage(r, layers, {"attention": {"relu3_1", "relu5_1"}})


def test_check_coverage_unknown_names():
    r = corner_regions()
    with pytest.raises(MaskError, match="no region 'pupil'"):
        check_coverage(r, {"relu1_1": (4, 4)}, {"pupil": {"relu1_1"}})
    with pytest.raises(MaskError, match="no grid size given for layer relu2_1"):
        check_coverage(r, {"relu1_1": (4, 4)}, {"attention": {"relu2_1"}})
    check_coverage(r, {"relu1_1": (1, 1)}, {"whole": {"relu1_1"}})  # the whole image always covers


# --------------------------------------------------------------------------- VGG's grid


def _pooled_reference(mask: torch.Tensor, levels: int) -> torch.Tensor:
    """Float64 loop over the pooling windows: position (i, j) after k floor 2x2 poolings
    is the mean of pixels [2^k i, 2^k (i+1)) x [2^k j, 2^k (j+1))."""
    m = mask.double()
    s = 2 ** levels
    h, w = m.shape[-2] // s, m.shape[-1] // s
    out = torch.zeros(m.shape[:-2] + (h, w), dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = m[..., i * s:(i + 1) * s, j * s:(j + 1) * s].mean(dim=(-2, -1))
    return out


@pytest.mark.parametrize("size", [(37, 61), (30, 50), (36, 60), (48, 72)])
def test_pool_mask_matches_the_window_loop(size):
    from masked_gatys.masks import grid_mask, pool_mask

    m = torch.rand((2, 3) + size, generator=torch.Generator().manual_seed(1))
    for levels in range(4):
        ref = _pooled_reference(m, levels)
        got = pool_mask(m, levels)
        assert got.shape == ref.shape
        assert torch.allclose(got.double(), ref, atol=1e-6)
        assert torch.equal(grid_mask(m, tuple(ref.shape[-2:])), got)
    assert pool_mask(m[0, 0], 2).shape == _pooled_reference(m, 2).shape[-2:]


def test_grid_mask_errors():
    from masked_gatys.masks import grid_mask, pool_levels, pool_mask

    assert pool_levels((37, 61), (4, 7)) == 3
    with pytest.raises(MaskError, match="not reached"):
        grid_mask(torch.ones(37, 61), (9, 16))
    with pytest.raises(MaskError, match="no grid"):
        pool_mask(torch.ones(3, 40), 2)


@pytest.mark.parametrize("size", [(37, 61), (30, 50)])
def test_objective_masks_lie_on_vggs_grid(size):
    """Failed with the old area resizing, which spreads a layer's mask over pixels its
    features never pool (the trailing rows and columns) at sizes that do not divide."""
    import warnings

    from masked_gatys.encoder import layer_scale, load_encoder
    from masked_gatys.objective import Objective, preset

    cfg = preset("masked", max_layer="relu3_4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = load_encoder(weights="random", layers=cfg.layers)
    h, w = size
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    # a soft disc near the bottom-right corner, where the unseen rows and columns are
    mask = torch.sigmoid(3.0 - ((yy - h + 6) ** 2 + (xx - w + 7) ** 2).float().sqrt())[None, None]
    regions = Regions.from_binary(mask)
    obj = Objective(enc, cfg, style=torch.rand(1, 3, h, w), style_regions=regions)
    obj.set_content(torch.rand(1, 3, h, w), regions)
    for (layer, region), got in obj._masks.items():
        if region is None:
            continue
        levels = {1: 0, 2: 1, 4: 2}[layer_scale(layer)]
        ref = _pooled_reference(regions.region(region), levels)
        assert torch.allclose(got.double(), ref, atol=1e-6), (layer, region)


def test_check_coverage_counts_only_what_vgg_sees():
    m = torch.zeros(17, 16)
    m[16] = 1  # the one row VGG's first pooling drops (the old area resizing counted it)
    r = Regions.from_binary(m)
    check_coverage(r, {"relu1_1": (17, 16)}, {"attention": {"relu1_1"}})
    with pytest.raises(MaskError, match=r"covers 0.00 positions at relu2_1 \(8x8 grid\)"):
        check_coverage(r, {"relu2_1": (8, 8)}, {"attention": {"relu2_1"}})
