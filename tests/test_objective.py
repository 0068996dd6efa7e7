"""Objectives (masked_gatys.objective): presets, config, the weighted total, targets, masks.

Numbers are checked against references computed here from the encoder's
features with numpy (float64) and against finite differences; the presets
against DESIGN.md's table, written out below.
"""

from __future__ import annotations

import dataclasses

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from masked_gatys.encoder import layer_names
from masked_gatys.errors import LayerError, MaskError, ObjectiveError
from masked_gatys.objective import Objective, ObjectiveConfig, Term, preset

ORDER = layer_names("vgg19")

# DESIGN.md, "Presets": (kind, layer, region); None = whole image
GATYS = {("content", "relu4_2", None)} | {
    ("style", f"relu{b}_1", None) for b in range(1, 6)}
MASKED = ({("content", "relu3_2", None), ("content", "relu4_2", "attention")}
          | {("style", layer, "background") for layer in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")}
          | {("style", f"relu{b}_1", "attention") for b in range(1, 6)})


def triples(config: ObjectiveConfig) -> set:
    return {(t.kind, t.layer, t.region) for t in config.terms}


def style_weight_by_region(config: ObjectiveConfig) -> dict:
    out: dict = {}
    for t in config.terms:
        if t.kind == "style":
            out[t.region] = out.get(t.region, 0.0) + t.weight
    return out


def img(b: int, size: int = 32, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# numpy references from features (float64)

def np_feat(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def np_gram(f: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    weights = np.ones((b, h * w)) if m is None else np.broadcast_to(m.reshape(m.shape[0], h * w), (b, h * w))
    return np.einsum("bcm,bdm,bm->bcd", flat, flat, weights) / weights.sum(axis=1)[:, None, None]


def np_content(f: np.ndarray, t: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    b, c, h, w = f.shape
    m = np.ones((b, 1, h, w)) if m is None else np.broadcast_to(m, (b, 1, h, w))
    return (((f - t) ** 2).sum(axis=1, keepdims=True) * m).sum(axis=(1, 2, 3)) / (c * m.sum(axis=(1, 2, 3)))


def np_style(f: np.ndarray, target: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    c = f.shape[1]
    return ((np_gram(f, m) - target) ** 2).sum(axis=(1, 2)) / c**2


def area_resize(mask: torch.Tensor, layer: str, size: int) -> np.ndarray:
    """Area averaging of a (B, 1, S, S) mask to the layer's grid (sizes divide here)."""
    factor = size // {"relu1": size, "relu2": size // 2, "relu3": size // 4}[layer[:5]]
    return np_feat(F.avg_pool2d(mask.double(), factor) if factor > 1 else mask.double())


@pytest.fixture(scope="module")
def small_config() -> ObjectiveConfig:
    """A hand-built config with uneven weights, TV on, on layers the tiny encoder covers."""
    return ObjectiveConfig(
        (Term("content", "relu3_2", weight=0.7), Term("content", "relu2_2", weight=0.4),
         Term("style", "relu1_1", weight=0.2), Term("style", "relu2_1", weight=0.5),
         Term("style", "relu3_1", weight=1.3)),
        content_weight=2.5, style_weight=40.0, tv_weight=0.3)


# ---------------------------------------------------------------- presets


def test_gatys_preset_is_the_design_table() -> None:
    cfg = preset("gatys")
    assert triples(cfg) == GATYS and len(cfg.terms) == len(GATYS)
    assert cfg.preset == "gatys" and cfg.regions == []
    assert style_weight_by_region(cfg) == pytest.approx({None: 1.0})
    assert cfg.layers == sorted({t[1] for t in GATYS}, key=ORDER.index)


def test_masked_preset_is_the_design_table() -> None:
    cfg = preset("masked")
    assert triples(cfg) == MASKED and len(cfg.terms) == len(MASKED)
    assert cfg.preset == "masked"
    assert cfg.regions == ["attention", "background"]
    assert style_weight_by_region(cfg) == pytest.approx({"background": 1.0, "attention": 1.0})
    names = {t.name for t in cfg.terms}
    assert {"content/relu3_2@whole", "content/relu4_2@attention", "style/relu5_3@background",
            "style/relu1_1@attention"} <= names


def test_preset_weights_and_errors() -> None:
    cfg = preset("masked", content_weight=3, style_weight=7, tv_weight=0.5)
    assert (cfg.content_weight, cfg.style_weight, cfg.tv_weight) == (3.0, 7.0, 0.5)
    assert triples(cfg) == MASKED
    assert preset("gatys", normalize=False).normalize is False
    with pytest.raises(ObjectiveError, match="unknown preset"):
        preset("johnson")
    with pytest.raises(ObjectiveError):
        preset("gatys", style_weight=-1)
    with pytest.raises(ObjectiveError, match="region"):
        preset("regional")
    regional = preset("regional", regions=["sky", "tree"])
    assert {t.region for t in regional.terms if t.kind == "style"} == {"sky", "tree"}
    assert style_weight_by_region(regional) == pytest.approx({"sky": 1.0, "tree": 1.0})


# ---------------------------------------------------------------- restricted


def test_masked_restricted_to_relu3_4() -> None:
    full = preset("masked")
    cfg = full.restricted("relu3_4")
    assert triples(cfg) == {
        ("content", "relu3_2", None), ("content", "relu3_2", "attention"),
        ("style", "relu1_2", "background"), ("style", "relu2_2", "background"), ("style", "relu3_3", "background"),
        ("style", "relu1_1", "attention"), ("style", "relu2_1", "attention"), ("style", "relu3_1", "attention"),
    }
    assert all(ORDER.index(t.layer) <= ORDER.index("relu3_4") for t in cfg.terms)
    # each region keeps its total style weight, shared evenly as before
    assert style_weight_by_region(cfg) == pytest.approx(style_weight_by_region(full))
    assert all(t.weight == pytest.approx(1 / 3) for t in cfg.terms if t.kind == "style")
    # content weights and group weights unchanged
    assert all(t.weight == 1.0 for t in cfg.terms if t.kind == "content")
    assert (cfg.content_weight, cfg.style_weight, cfg.tv_weight, cfg.normalize, cfg.preset) == (
        full.content_weight, full.style_weight, full.tv_weight, full.normalize, full.preset)
    assert preset("masked", max_layer="relu3_4") == cfg


def test_gatys_restricted_moves_content_to_relu3_2() -> None:
    cfg = preset("gatys").restricted("relu3_4")
    assert triples(cfg) == {("content", "relu3_2", None), ("style", "relu1_1", None),
                            ("style", "relu2_1", None), ("style", "relu3_1", None)}
    assert style_weight_by_region(cfg) == pytest.approx({None: 1.0})
    cfg2 = preset("gatys").restricted("relu2_2")
    assert triples(cfg2) == {("content", "relu2_2", None), ("style", "relu1_1", None), ("style", "relu2_1", None)}
    assert preset("gatys").restricted("relu5_4") == preset("gatys")  # nothing deeper: unchanged


def test_restricted_merges_content_terms_that_land_on_one_layer() -> None:
    cfg = ObjectiveConfig((Term("content", "relu3_2", weight=0.5), Term("content", "relu4_2", weight=2.0),
                           Term("content", "relu4_2", "attention", weight=1.5),
                           Term("style", "relu1_1", weight=0.25), Term("style", "relu4_1", weight=0.75)))
    out = cfg.restricted("relu3_4")
    by_name = {t.name: t.weight for t in out.terms}
    assert by_name == pytest.approx({"content/relu3_2@whole": 2.5, "content/relu3_2@attention": 1.5,
                                     "style/relu1_1@whole": 1.0})


def test_restricted_errors() -> None:
    with pytest.raises(ObjectiveError, match="style"):
        ObjectiveConfig((Term("content", "relu1_1"), Term("style", "relu4_1"))).restricted("relu3_4")
    with pytest.raises(LayerError, match="did you mean"):
        preset("gatys").restricted("relu3-4")


def test_restricted_content_on_a_pool_layer() -> None:
    # the content term keeps its position in its block (a pool layer) in the deepest block that
    # has that position at or above the limit: pool3 lies beyond relu3_4, so pool2
    cfg = ObjectiveConfig((Term("content", "pool4"), Term("style", "relu1_1")))
    out = cfg.restricted("relu3_4")
    assert [t.name for t in out.terms] == ["content/pool2@whole", "style/relu1_1@whole"]


# ---------------------------------------------------------------- config and terms


@pytest.mark.parametrize("name", ["gatys", "masked"])
def test_config_round_trip(name: str, small_config) -> None:
    for cfg in (preset(name, tv_weight=0.25, normalize=False), small_config,
                preset(name).restricted("relu3_4")):
        d = cfg.to_dict()
        assert ObjectiveConfig.from_dict(d) == cfg
        assert ObjectiveConfig.from_dict(json.loads(json.dumps(d))) == cfg  # survives JSON (run logs)


def test_from_dict_errors() -> None:
    d = preset("gatys").to_dict()
    for key in ("terms", "content_weight"):
        bad = dict(d)
        del bad[key]
        with pytest.raises(ObjectiveError):
            ObjectiveConfig.from_dict(bad)
    bad = dict(d, terms=[{"kind": "style", "layer": "relu1_1", "colour": "red"}])
    with pytest.raises(ObjectiveError):
        ObjectiveConfig.from_dict(bad)


def test_term_names_and_validation() -> None:
    assert Term("content", "relu4_2").name == "content/relu4_2@whole"
    assert Term("style", "relu3_1", "attention", 0.2).name == "style/relu3_1@attention"
    with pytest.raises(ObjectiveError, match="kind"):
        Term("texture", "relu1_1")
    with pytest.raises(LayerError, match="did you mean 'relu4_2'"):
        Term("content", "relu4-2")
    for weight in (-1.0, math.nan, math.inf):
        with pytest.raises(ObjectiveError, match="weight"):
            Term("style", "relu1_1", weight=weight)
    with pytest.raises(ObjectiveError, match="at least one"):
        ObjectiveConfig(())
    with pytest.raises(ObjectiveError, match="duplicate"):
        ObjectiveConfig((Term("style", "relu1_1"), Term("style", "relu1_1", weight=2.0)))
    for label in ("content_weight", "style_weight", "tv_weight"):
        with pytest.raises(ObjectiveError, match=label):
            ObjectiveConfig((Term("style", "relu1_1"),), **{label: -0.1})
        with pytest.raises(ObjectiveError, match=label):
            ObjectiveConfig((Term("style", "relu1_1"),), **{label: math.nan})
    with pytest.raises(dataclasses.FrozenInstanceError):
        Term("style", "relu1_1").weight = 2.0  # frozen


# ---------------------------------------------------------------- the objective, whole image


def test_total_is_the_weighted_sum_of_the_terms(tiny_encoder, small_config) -> None:
    obj = Objective(tiny_encoder, small_config, style=img(1, seed=1))
    obj.set_content(img(2, seed=2))
    value = obj(img(2, seed=3))
    expected_names = {t.name for t in small_config.terms} | {"tv"}
    assert set(value.terms) == expected_names
    assert value.total.shape == (2,) and all(v.shape == (2,) for v in value.terms.values())
    total = np.zeros(2)
    for t in small_config.terms:
        group = small_config.content_weight if t.kind == "content" else small_config.style_weight
        total += group * t.weight * np_feat(value.terms[t.name])
    total += small_config.tv_weight * np_feat(value.terms["tv"])
    np.testing.assert_allclose(np_feat(value.total), total, rtol=1e-5)
    # the TV term is the image's own TV, unweighted
    x = img(2, seed=3).double().numpy()
    tv = (np.diff(x, axis=3) ** 2).reshape(2, -1).mean(1) + (np.diff(x, axis=2) ** 2).reshape(2, -1).mean(1)
    np.testing.assert_allclose(np_feat(value.terms["tv"]), tv, rtol=1e-5)
    # no TV weight: no TV term
    no_tv = Objective(tiny_encoder, ObjectiveConfig(small_config.terms), style=img(1, seed=1))
    no_tv.set_content(img(1, seed=2))
    assert "tv" not in no_tv(img(1, seed=3)).terms


@pytest.mark.parametrize("normalize", [True, False])
def test_terms_against_features_by_hand(tiny_encoder, small_config, normalize: bool) -> None:
    cfg = ObjectiveConfig(small_config.terms, content_weight=1.0, style_weight=1.0, normalize=normalize)
    style, content, x = img(1, seed=4), img(2, seed=5), img(2, seed=6)
    obj = Objective(tiny_encoder, cfg, style=style)
    obj.set_content(content)
    value = obj(x)
    with torch.no_grad():
        fs, fc, fx = tiny_encoder(style), tiny_encoder(content), tiny_encoder(x)
    for t in cfg.terms:
        f = np_feat(fx[t.layer])
        if t.kind == "content":
            target = np_feat(fc[t.layer])
            raw = np_content(f, target, None)
            scale = (target**2).reshape(2, -1).mean(axis=1)  # mean square of the target features
        else:
            target = np_gram(np_feat(fs[t.layer]), None)
            raw = np_style(f, target, None)
            scale = (target**2).sum() / target.shape[-1] ** 2
        expected = raw / scale if normalize else raw
        np.testing.assert_allclose(np_feat(value.terms[t.name]), expected, rtol=2e-4, err_msg=t.name)


def test_zero_at_the_targets(tiny_encoder, small_config) -> None:
    style, content = img(1, seed=7), img(1, seed=8)
    obj = Objective(tiny_encoder, small_config, style=style)
    obj.set_content(content)
    value = obj(content.clone())
    for t in small_config.terms:
        if t.kind == "content":
            assert float(value.terms[t.name]) == 0.0, t.name
        else:
            assert float(value.terms[t.name]) > 1e-6, t.name  # a different image, a different style
    # the style image itself has no style loss
    obj.set_content(style)
    value = obj(style.clone())
    for t in small_config.terms:
        assert abs(float(value.terms[t.name])) < 1e-6, t.name


def test_one_encoder_forward_per_evaluation(tiny_encoder, small_config, monkeypatch) -> None:
    calls: list[torch.Tensor] = []
    forward = tiny_encoder.forward

    def counting(x):
        calls.append(x)
        return forward(x)

    monkeypatch.setattr(tiny_encoder, "forward", counting)
    style = img(1, seed=9)
    obj = Objective(tiny_encoder, small_config, style=style)
    assert len(calls) == 1  # style targets: once, at construction
    obj.set_content(img(1, seed=10))
    assert len(calls) == 2
    xs = [img(1, seed=11 + i) for i in range(3)]
    first = obj(xs[0]).total
    for x in xs:
        obj(x)
    assert len(calls) == 2 + 4
    assert all(c is x for c, x in zip(calls[3:], xs))  # only the evaluated images went through it
    # targets are kept, not recomputed: spoiling the style image afterwards changes nothing
    style.zero_()
    torch.testing.assert_close(obj(xs[0]).total, first)


def test_set_content_is_required_and_inputs_checked(tiny_encoder, small_config, make_encoder) -> None:
    obj = Objective(tiny_encoder, small_config, style=img(1, seed=12))
    with pytest.raises(ObjectiveError, match="set_content"):
        obj(img(1, seed=13))
    obj.set_content(img(1, seed=13))
    with pytest.raises(ObjectiveError):
        obj(img(1, size=16, seed=14))  # another size than the content
    paired = Objective(tiny_encoder, small_config, style=img(2, seed=12))  # one style per content image
    with pytest.raises(ObjectiveError, match="2 paired style images for 3 content images"):
        paired.set_content(img(3, seed=13))
    with pytest.raises(ObjectiveError):
        obj.set_content(torch.rand(1, 1, 32, 32))
    with pytest.raises(ObjectiveError, match="relu3_2"):
        Objective(make_encoder(["relu2_1"]), small_config, style=img(1, seed=12))


@pytest.mark.parametrize("b", [1, 3])
def test_batch_that_does_not_match_the_content(tiny_encoder, small_config, b: int) -> None:
    obj = Objective(tiny_encoder, small_config, style=img(1, seed=60))
    obj.set_content(img(2, seed=61))
    with pytest.raises(ObjectiveError, match="batch and size must match"):
        obj(img(b, seed=62))


def test_selected_styles_of_a_large_bank_equal_each_style_alone(tiny_encoder, small_config) -> None:
    """A bank of 18 style images (more than one chunk of the targets' forward passes), picked
    per content image, gives what an objective of that style alone gives."""
    styles = torch.cat([img(1, seed=100 + k) for k in range(18)])
    bank = Objective(tiny_encoder, small_config, style=styles)
    picked = bank.select_styles([17, 3])
    contents, xs = torch.cat([img(1, seed=30), img(1, seed=31)]), torch.cat([img(1, seed=32), img(1, seed=33)])
    picked.set_content(contents)
    both = picked(xs)
    for i, k in enumerate([17, 3]):
        alone = Objective(tiny_encoder, small_config, style=styles[k:k + 1])
        alone.set_content(contents[i:i + 1])
        torch.testing.assert_close(both.total[i:i + 1], alone(xs[i:i + 1]).total, rtol=1e-5, atol=1e-6)
    with pytest.raises(ObjectiveError, match="indices must lie in 0..17"):
        bank.select_styles([18])
    with pytest.raises(ObjectiveError, match="paired style images"):
        Objective(tiny_encoder, small_config, style=img(1, seed=1)).select_styles([0])


def test_batch_of_two_equals_each_alone(tiny_encoder, small_config) -> None:
    obj = Objective(tiny_encoder, small_config, style=img(1, seed=15))
    contents, xs = [img(1, seed=16), img(1, seed=17)], [img(1, seed=18), img(1, seed=19)]
    obj.set_content(torch.cat(contents))
    both = obj(torch.cat(xs))
    for i in range(2):
        obj.set_content(contents[i])
        alone = obj(xs[i])
        torch.testing.assert_close(both.total[i:i + 1], alone.total, rtol=1e-5, atol=1e-6)
        for name, v in alone.terms.items():
            torch.testing.assert_close(both.terms[name][i:i + 1], v, rtol=1e-5, atol=1e-6, msg=name)


def test_to_device_moves_the_targets(tiny_encoder, small_config, device) -> None:
    obj = Objective(tiny_encoder, small_config, style=img(1, seed=20))
    obj.set_content(img(1, seed=21))
    expected = obj(img(1, seed=22)).total
    moved = copy.deepcopy(obj).to(device)
    value = moved(img(1, seed=22).to(device))
    assert value.total.device.type == device.type
    torch.testing.assert_close(value.total.cpu(), expected, rtol=1e-4, atol=1e-6)


def _directional_check(fun, x: torch.Tensor, n: int = 3, eps: float = 1e-5, seed: int = 0) -> None:
    x = x.detach().clone().requires_grad_(True)
    fun(x).sum().backward()
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        d = torch.randn(x.shape, generator=g, dtype=x.dtype)
        with torch.no_grad():
            fd = (fun(x + eps * d).sum() - fun(x - eps * d).sum()) / (2 * eps)
        analytic = (x.grad * d).sum()
        assert float(abs(fd - analytic)) <= 1e-6 * float(abs(fd)) + 1e-10, (float(fd), float(analytic))


def smooth_double(encoder):
    """A float64 copy of ``encoder`` with its ReLUs made smooth (softplus) and max pools averaged.

    With random weights many units sit within a finite-difference step of a ReLU kink or a
    max-pool tie, which spoils central differences at 1e-3 relative; the objective's own maths
    (Gram matrices, masks, normalisation, weights) is what these checks are about.
    """
    enc = copy.deepcopy(encoder).double()
    for name, module in list(enc.body.items()):
        if isinstance(module, torch.nn.ReLU):
            enc.body[name] = torch.nn.Softplus(beta=4.0)
        elif isinstance(module, torch.nn.MaxPool2d):
            enc.body[name] = torch.nn.AvgPool2d(2, 2)
    return enc


def test_gradient_matches_finite_differences(tiny_encoder, small_config) -> None:
    enc = smooth_double(tiny_encoder)
    obj = Objective(enc, small_config, style=img(1, size=16, seed=23, dtype=torch.float64))
    obj.set_content(img(1, size=16, seed=24, dtype=torch.float64))
    x = img(1, size=16, seed=25, dtype=torch.float64)
    _directional_check(lambda y: obj(y).total, x, n=2)
    # and per term, so a wrong gradient cannot hide behind a large one
    for name in ("content/relu3_2@whole", "style/relu2_1@whole"):
        _directional_check(lambda y: obj(y).terms[name], x, n=1, seed=1)


# ---------------------------------------------------------------- masked objectives


@pytest.fixture(scope="module")
def masks_module():
    import masked_gatys.masks  # the package's own module: an ImportError must fail, not skip

    return masked_gatys.masks


def disc(size: int, cy: float, cx: float, r: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).to(torch.float32)[None, None]


@pytest.fixture(scope="module")
def masked_setup(masks_module, tiny_encoder):
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4")
    style, content = img(1, seed=30), img(1, seed=31)
    style_mask, content_mask = disc(32, 14, 18, 9), disc(32, 17, 15, 7)
    obj = Objective(tiny_encoder, cfg, style=style, style_regions=Regions.from_binary(style_mask))
    obj.set_content(content, Regions.from_binary(content_mask))
    return cfg, obj, style, content, style_mask, content_mask


def test_masked_terms_against_features_by_hand(masked_setup, tiny_encoder) -> None:
    cfg, obj, style, content, style_mask, content_mask = masked_setup
    x = img(1, seed=32)
    value = obj(x)
    assert set(value.terms) == {t.name for t in cfg.terms}
    with torch.no_grad():
        fs, fc, fx = tiny_encoder(style), tiny_encoder(content), tiny_encoder(x)
    region_mask = {"attention": (content_mask, style_mask), "background": (1 - content_mask, 1 - style_mask),
                   None: (None, None)}
    for t in cfg.terms:
        cm, sm = region_mask[t.region]
        mc = None if cm is None else area_resize(cm, t.layer, 32)
        f = np_feat(fx[t.layer])
        if t.kind == "content":
            target = np_feat(fc[t.layer])
            expected = np_content(f, target, mc) / np_content(target, np.zeros_like(target), mc)
        else:
            ms = None if sm is None else area_resize(sm, t.layer, 32)  # the style image's own mask
            target = np_gram(np_feat(fs[t.layer]), ms)
            expected = np_style(f, target, mc) / ((target**2).sum() / target.shape[-1] ** 2)
        np.testing.assert_allclose(np_feat(value.terms[t.name]), expected, rtol=2e-4, err_msg=t.name)


def test_masked_zero_at_the_targets(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4")
    image, mask = img(1, seed=33), disc(32, 16, 16, 8)
    obj = Objective(tiny_encoder, cfg, style=image, style_regions=Regions.from_binary(mask))
    obj.set_content(image, Regions.from_binary(mask))
    value = obj(image.clone())
    for name, v in value.terms.items():
        assert abs(float(v)) < 1e-6, name
    # judged on another region of the same (non-stationary) image, the style no longer matches
    obj.set_content(image, Regions.from_binary(disc(32, 10, 22, 6)))
    moved = obj(image.clone())
    assert float(moved.terms["style/relu1_1@attention"]) > 1e-6


def test_masked_batch_with_one_mask_per_image(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4")
    style, style_mask = img(1, seed=34), disc(32, 16, 16, 9)
    obj = Objective(tiny_encoder, cfg, style=style, style_regions=Regions.from_binary(style_mask))
    contents, masks, xs = [img(1, seed=35), img(1, seed=36)], [disc(32, 12, 12, 7), disc(32, 20, 18, 8)], \
        [img(1, seed=37), img(1, seed=38)]
    obj.set_content(torch.cat(contents), Regions.from_binary(torch.cat(masks)))
    both = obj(torch.cat(xs))
    for i in range(2):
        obj.set_content(contents[i], Regions.from_binary(masks[i]))
        alone = obj(xs[i])
        for name, v in alone.terms.items():
            torch.testing.assert_close(both.terms[name][i:i + 1], v, rtol=1e-5, atol=1e-6, msg=name)


def test_region_that_vanishes_at_depth(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4")
    tiny = torch.zeros(1, 1, 32, 32)
    tiny[..., 13:15, 13:15] = 1  # 2x2 px: mass 4 at relu1, 1 at relu2, 0.25 at relu3 (< 0.5)
    obj = Objective(tiny_encoder, cfg, style=img(1, seed=39),
                    style_regions=Regions.from_binary(disc(32, 16, 16, 9)))
    with pytest.raises(MaskError) as info:
        obj.set_content(img(1, seed=40), Regions.from_binary(tiny))
    msg = str(info.value)
    assert "attention" in msg and "content" in msg
    assert any(layer in msg for layer in ("relu3_1", "relu3_2")), msg
    # the same for the style image's mask, at construction
    with pytest.raises(MaskError) as info:
        Objective(tiny_encoder, cfg, style=img(1, seed=39), style_regions=Regions.from_binary(tiny))
    msg = str(info.value)
    assert "attention" in msg and "style" in msg and "relu3_1" in msg, msg
    # restricted to relu2_2 the same region is fine
    cfg2 = preset("masked", max_layer="relu2_2")
    obj2 = Objective(tiny_encoder, cfg2, style=img(1, seed=39), style_regions=Regions.from_binary(tiny))
    obj2.set_content(img(1, seed=40), Regions.from_binary(tiny))
    assert torch.isfinite(obj2(img(1, seed=41)).total).all()


def test_no_style_mask_uses_the_whole_style_image(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4")
    style, content, x = img(1, seed=50), img(1, seed=51), img(1, seed=52)
    content_mask = disc(32, 15, 17, 8)
    obj = Objective(tiny_encoder, cfg, style=style)  # documented: whole style image for every region
    obj.set_content(content, Regions.from_binary(content_mask))
    value = obj(x)
    with torch.no_grad():
        fs, fx = tiny_encoder(style), tiny_encoder(x)
    for t in cfg.terms:
        if t.kind != "style":
            continue
        cm = content_mask if t.region == "attention" else 1 - content_mask
        target = np_gram(np_feat(fs[t.layer]), None)
        expected = np_style(np_feat(fx[t.layer]), target, area_resize(cm, t.layer, 32))
        expected /= (target**2).sum() / target.shape[-1] ** 2
        np.testing.assert_allclose(np_feat(value.terms[t.name]), expected, rtol=2e-4, err_msg=t.name)


def test_one_content_mask_for_a_batch(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4", tv_weight=0.1)
    obj = Objective(tiny_encoder, cfg, style=img(1, seed=53),
                    style_regions=Regions.from_binary(disc(32, 16, 16, 9)))
    mask = Regions.from_binary(disc(32, 14, 14, 8))  # batch 1, shared by both images
    contents, xs = img(2, seed=54), img(2, seed=55)
    obj.set_content(contents, mask)
    both = obj(xs)
    values = both.item_terms(1)
    assert set(values) == set(both.terms) and all(isinstance(v, float) for v in values.values())
    for i in range(2):
        obj.set_content(contents[i:i + 1], mask)
        alone = obj(xs[i:i + 1])
        torch.testing.assert_close(both.total[i:i + 1], alone.total, rtol=1e-5, atol=1e-6)
        if i == 1:
            assert values == pytest.approx({k: float(v) for k, v in alone.terms.items()}, rel=1e-5)


def test_failed_set_content_leaves_a_usable_objective(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    cfg = preset("masked", max_layer="relu3_4")
    obj = Objective(tiny_encoder, cfg, style=img(1, seed=63),
                    style_regions=Regions.from_binary(disc(32, 16, 16, 9)))
    content, x = img(1, seed=64), img(1, seed=65)
    obj.set_content(content, Regions.from_binary(disc(32, 16, 16, 9)))
    before = obj(x).total
    tiny = torch.zeros(1, 1, 32, 32)
    tiny[..., 13:15, 13:15] = 1
    with pytest.raises(MaskError):
        obj.set_content(img(1, seed=66), Regions.from_binary(tiny))
    torch.testing.assert_close(obj(x).total, before)  # a refused content leaves the previous one


def test_region_terms_need_regions(masks_module, tiny_encoder) -> None:
    cfg = preset("masked", max_layer="relu3_4")
    obj = Objective(tiny_encoder, cfg, style=img(1, seed=42))  # no style mask: whole style image
    with pytest.raises(ObjectiveError, match="attention"):
        obj.set_content(img(1, seed=43))  # but the content needs one
    labels = masks_module.Regions(torch.ones(1, 2, 32, 32) / 2, ("sky", "tree"))
    with pytest.raises(ObjectiveError, match=r"no region 'attention' \(it has sky, tree\)"):
        obj.set_content(img(1, seed=43), labels)


def test_masked_gradient_matches_finite_differences(masks_module, tiny_encoder) -> None:
    Regions = masks_module.Regions
    enc = smooth_double(tiny_encoder)
    cfg = preset("masked", max_layer="relu2_2", tv_weight=0.1)
    mask = disc(16, 8, 7, 5).double()
    obj = Objective(enc, cfg, style=img(1, size=16, seed=44, dtype=torch.float64),
                    style_regions=Regions.from_binary(disc(16, 7, 9, 5).double()))
    obj.set_content(img(1, size=16, seed=45, dtype=torch.float64), Regions.from_binary(mask))
    _directional_check(lambda y: obj(y).total, img(1, size=16, seed=46, dtype=torch.float64), n=2)
