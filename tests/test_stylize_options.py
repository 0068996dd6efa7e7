"""stylize's peer options: several styles, style scale, chosen layers (issue 12)."""

from __future__ import annotations

import importlib

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from masked_gatys.errors import ObjectiveError, WeightsError
from masked_gatys.image import save_image
from masked_gatys.masks import Regions
from masked_gatys.objective import Objective, preset, with_layers
from masked_gatys.stylize import StylizeConfig, prepare, stylize

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32


def _images(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, SIZE, SIZE, generator=g) for _ in range(3)]


def _mask(h: int = SIZE, w: int = SIZE) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w)
    m[..., h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1.0
    return m


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _config(**kw) -> StylizeConfig:
    base = dict(weights="random", iterations=3, device="cpu", max_layer="relu2_2")
    base.update(kw)
    return StylizeConfig(**base)


# ----------------------------------------------------------------------------- several styles


def _reference_gram(encoder, image: torch.Tensor, layer: str, mask: torch.Tensor | None) -> np.ndarray:
    """Masked Gram in float64 numpy: sum_j m_j f_j f_j^T / sum_j m_j, mask area-averaged to the grid."""
    with torch.no_grad():
        f = encoder(image)[layer][0].double().numpy()
    c, h, w = f.shape
    flat = f.reshape(c, h * w)
    if mask is None:
        m = np.ones(h * w)
    else:
        m = F.interpolate(mask.double(), size=(h, w), mode="area")[0, 0].numpy().reshape(-1)
    return (flat * m) @ flat.T / m.sum()


def test_blended_style_target_is_the_weighted_mean_of_the_separate_targets(tiny_encoder):
    content, a, b = _images()
    cfg = preset("masked", max_layer="relu2_2")
    mask = _mask()
    b_mask = torch.zeros(1, 1, 40, 24)  # another size, another layout
    b_mask[..., 5:30, 2:20] = 1.0
    b = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(5))
    blended = Objective(tiny_encoder, cfg, style=[a, b], style_regions=[Regions.from_binary(mask),
                                                                        Regions.from_binary(b_mask)],
                        style_weights=[0.7, 0.3])
    for term in (t for t in cfg.terms if t.kind == "style"):
        pick = (lambda m: m) if term.region == "attention" else (lambda m: 1 - m)
        want = (0.7 * _reference_gram(tiny_encoder, a, term.layer, pick(mask))
                + 0.3 * _reference_gram(tiny_encoder, b, term.layer, pick(b_mask)))
        got = blended._style_targets[term.name][0].double().numpy()
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6 * np.abs(want).max())
    # and the loss uses it: the style term against the reference target, in float64
    blended.set_content(content, Regions.from_binary(mask))
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
    value = blended(x)
    name = "style/relu2_1@attention"
    g_x = _reference_gram(tiny_encoder, x, "relu2_1", mask)
    target = 0.7 * _reference_gram(tiny_encoder, a, "relu2_1", mask) + 0.3 * _reference_gram(
        tiny_encoder, b, "relu2_1", b_mask)
    c = target.shape[0]
    raw = ((g_x - target) ** 2).sum() / c**2
    scale = (target**2).sum() / c**2
    assert float(value.terms[name]) == pytest.approx(raw / scale, rel=1e-4)


def test_style_weights_are_relative_and_default_to_equal(tiny_encoder):
    _, a, b = _images()
    cfg = preset("gatys", max_layer="relu2_2")
    equal = Objective(tiny_encoder, cfg, style=[a, b])
    scaled = Objective(tiny_encoder, cfg, style=[a, b], style_weights=[2.0, 2.0])
    for name, t in equal._style_targets.items():
        assert torch.allclose(t, scaled._style_targets[name])
    single = Objective(tiny_encoder, cfg, style=a)
    only_a = Objective(tiny_encoder, cfg, style=[a, b], style_weights=[1.0, 0.0])
    for name, t in single._style_targets.items():
        assert torch.allclose(t, only_a._style_targets[name])
    with pytest.raises(ObjectiveError, match="2 style weights for 3"):
        Objective(tiny_encoder, cfg, style=[a, b, a], style_weights=[1, 1])
    with pytest.raises(ObjectiveError, match="not all 0"):
        Objective(tiny_encoder, cfg, style=[a, b], style_weights=[0, 0])


def test_stylize_with_two_styles_differs_from_each_alone():
    content, a, b = _images()
    both = _quiet(stylize, content, [a, b], config=_config(iterations=0))
    one = _quiet(stylize, content, a, config=_config(iterations=0))
    other = _quiet(stylize, content, b, config=_config(iterations=0))
    assert len({round(both.total, 6), round(one.total, 6), round(other.total, 6)}) == 3
    with pytest.raises(ValueError, match="1 style weights for 2"):
        _quiet(stylize, content, [a, b], config=_config(style_weights=(1.0,)))
    with pytest.raises(ValueError, match="1 style masks for 2"):
        _quiet(stylize, content, [a, b], mask=_mask(), style_mask=[_mask()], config=_config())


def test_style_scale_sizes_the_style_relative_to_the_content():
    content, a, _ = _images()
    style = torch.rand(1, 3, 60, 90)
    p = _quiet(prepare, content, style, config=_config(style_scale=0.5))
    assert tuple(p.style.shape[-2:]) == (11, 16)  # longest side 0.5 * 32, aspect kept
    with pytest.raises(ValueError, match="style_scale"):
        StylizeConfig(style_scale=0)


# ----------------------------------------------------------------------------- layers


def test_with_layers_replaces_terms_and_keeps_the_regions():
    cfg = with_layers(preset("masked"), content_layers=["relu3_1", "relu2_2@attention"],
                      content_layer_weights=[1.0, 0.5], style_layers=["relu1_1", "relu2_1@attention"])
    names = {t.name: t.weight for t in cfg.terms}
    assert names == {"content/relu3_1@whole": 1.0, "content/relu2_2@attention": 0.5,
                     "style/relu1_1@background": 1.0, "style/relu1_1@attention": 0.5,
                     "style/relu2_1@attention": 0.5}
    gatys = with_layers(preset("gatys"), style_layers=["relu1_1", "relu3_1"], style_layer_weights=[1, 3])
    assert {t.name: t.weight for t in gatys.terms if t.kind == "style"} == {
        "style/relu1_1@whole": 0.25, "style/relu3_1@whole": 0.75}
    assert [t.name for t in gatys.terms if t.kind == "content"] == ["content/relu4_2@whole"]
    with pytest.raises(Exception, match="did you mean 'relu3_1'"):
        with_layers(preset("gatys"), style_layers=["relu3-1"])
    with pytest.raises(ObjectiveError, match="2 style layer weights for 1"):
        with_layers(preset("gatys"), style_layers=["relu1_1"], style_layer_weights=[1, 2])


def test_chosen_layers_reach_the_objective_and_deeper_than_the_weights_is_the_encoder_error(tmp_path):
    content, a, _ = _images()
    p = _quiet(prepare, content, a, config=_config(max_layer="auto", content_layers=("relu2_1",),
                                                   style_layers=("relu1_1", "relu1_2")))
    assert [t.name for t in p.objective_config.terms] == [
        "content/relu2_1@whole", "style/relu1_1@whole", "style/relu1_2@whole"]
    from masked_gatys.encoder import _random_state

    state = {k: v for k, v in _random_state("vgg19", 0).items() if int(k.split(".")[0]) <= 7}  # to conv2_2
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="relu3_1 is deeper than the weights partial.pth cover: the deepest available"):
        _quiet(prepare, content, a, config=_config(weights=str(path), max_layer="auto",
                                                   style_layers=("relu1_1", "relu3_1")))
    with pytest.raises(ValueError, match="layer weights need"):
        _quiet(prepare, content, a, config=_config(style_layer_weights=(1.0,)))


# ----------------------------------------------------------------------------- command line


@pytest.fixture()
def files(tmp_path):
    content, a, b = _images()
    paths = {n: tmp_path / f"{n}.png" for n in ("content", "a", "b")}
    for name, image in zip(paths, (content, a, b)):
        save_image(image, paths[name])
    return paths


@pytest.fixture()
def captured(monkeypatch):
    from test_cli_stylize import _fake_result

    calls = {}

    def fake(content, style, *, mask=None, style_mask=None, config=None, callback=None, encoder=None):
        calls.update(style=style, style_mask=style_mask, config=config)
        return _fake_result(config)

    monkeypatch.setattr(importlib.import_module("masked_gatys.stylize"), "stylize", fake)
    return calls


def _cli(args):
    from masked_gatys.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_repeated_style_reaches_stylize_with_its_weights(files, tmp_path, captured):
    out = tmp_path / "o.png"
    result = _cli(["stylize", files["content"], "--style", files["a"], "--style", files["b"],
                   "--style-weights", "0.7,0.3", "--style-scale", "0.5", "--content-layers", "relu2_1",
                   "--style-layers", "relu1_1,relu2_1@attention", "--style-layer-weights", "1,2",
                   "-o", out, "-q"])
    assert result.exit_code == 0, result.output
    assert [str(p) for p in captured["style"]] == [str(files["a"]), str(files["b"])]
    cfg = captured["config"]
    assert cfg.style_weights == (0.7, 0.3) and cfg.style_scale == 0.5
    assert cfg.content_layers == ("relu2_1",) and cfg.style_layers == ("relu1_1", "relu2_1@attention")
    assert cfg.style_layer_weights == (1.0, 2.0)


@pytest.mark.parametrize("extra, message", [
    (["--style-weights", "1"], "--style-weights has 1 values for 2 --style"),
    (["--style-weights", "1,x"], "numbers separated by commas"),
])
def test_style_option_mistakes_are_one_line(files, tmp_path, captured, extra, message):
    result = _cli(["stylize", files["content"], "--style", files["a"], "--style", files["b"], "-o",
                   tmp_path / "o.png", "-q", *extra])
    assert result.exit_code != 0 and message in result.output


def test_two_styles_end_to_end(files, tmp_path):
    out = tmp_path / "o.png"
    result = _cli(["stylize", files["content"], "--style", files["a"], "--style", files["b"], "-o", out,
                   "--weights", "random", "--iterations", "2", "--max-layer", "relu2_2", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    from masked_gatys.image import read_metadata

    assert read_metadata(out)["style"] == [str(files["a"]), str(files["b"])]
