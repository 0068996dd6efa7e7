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


# ----------------------------------------------------------------------------- time limit, stopping


def test_time_limit_stops_with_the_best_image_at_the_working_size():
    content, a, _ = _images()
    result = _quiet(stylize, content, a, config=_config(iterations=50, time_limit=1e-6))
    assert result.stop_reason == "time_limit" and result.n_iter == 1
    # spent during the coarse pass: no further pass runs, the image still has the working size
    result = _quiet(stylize, content, a, config=_config(iterations=50, time_limit=1e-6, scales=2, min_size=16))
    assert result.stop_reason == "time_limit" and result.n_iter == 1
    assert result.image.shape == content.shape and result.history[-1]["scale"] == 0
    with pytest.raises(ValueError, match="time_limit"):
        StylizeConfig(time_limit=0)


def test_relative_decrease_stop_ends_a_pass_not_the_run():
    content, a, _ = _images()
    # a 99% decrease per iteration is never reached: the rule fires as soon as it can look back
    result = _quiet(stylize, content, a, config=_config(iterations=50, stop_tol=0.99, stop_window=1))
    assert result.stop_reason == "stalled" and result.n_iter == 2
    result = _quiet(stylize, content, a, config=_config(iterations=50, stop_tol=0.99, stop_window=1, scales=2,
                                                        min_size=16))
    assert [r["scale"] for r in result.history] == [0, 0, 1, 1] and result.stop_reason == "stalled"
    off = _quiet(stylize, content, a, config=_config(iterations=6, stop_tol=0.0))
    assert off.n_iter == 6


def test_the_help_shows_the_config_defaults():
    """The CLI's defaults are StylizeConfig's, read without torch, and --help shows them."""
    from masked_gatys.cli import stylize as cli
    from masked_gatys.stylize import MIN_SIZE, STOP_TOL, STOP_WINDOW

    assert (StylizeConfig().stop_tol, StylizeConfig().stop_window, StylizeConfig().min_size) == (
        STOP_TOL, STOP_WINDOW, MIN_SIZE)
    params = {p.name: p for p in cli.stylize_command.params}
    for name in ("iterations", "optimizer", "max_layer", "history_size", "lr", "seed", "init", "stop_tol",
                 "stop_window", "min_size", "mask_mode", "subject", "arch", "pooling", "weights_format"):
        assert params[name].default == getattr(StylizeConfig(), name), name
    out = " ".join(_cli(["stylize", "--help"]).output.split())
    assert "default: (1e-4)" in out and f"default: {STOP_WINDOW}" in out and f"default: {MIN_SIZE}" in out
    assert f"default: {StylizeConfig().iterations}" in out and "--time-limit" in out


# ----------------------------------------------------------------------------- coarse-to-fine


def test_coarse_to_fine_builds_every_pass_through_prepare_s_path(monkeypatch):
    import importlib

    st = importlib.import_module("masked_gatys.stylize")

    built = []
    real = st._build

    def spy(inputs, hw, cfg, encoder, weights=None):
        built.append(real(inputs, hw, cfg, encoder, weights))
        return built[-1]

    monkeypatch.setattr(st, "_build", spy)
    content, a, _ = _images()
    mask = _mask()
    seen = []
    cfg = _config(scales=2, min_size=16, scale_iterations=(3, 2))
    result = _quiet(stylize, content, a, mask=mask, style_mask=mask, config=cfg,
                    callback=lambda p: seen.append((p.scale, p.n_scales, p.size, p.step, p.total_steps)))
    assert [tuple(p.x0.shape[-2:]) for p in built] == [(16, 16), (32, 32)]
    assert [s[0] for s in seen] == [0, 0, 0, 1, 1] and seen[0][1:3] == (2, (16, 16))
    assert [s[3] for s in seen] == [1, 2, 3, 4, 5] and seen[0][4] == 5
    assert result.image.shape == (1, 3, SIZE, SIZE) and result.n_iter == 5
    # the coarse pass's masks and targets are those prepare builds at that size
    coarse = _quiet(prepare, content, a, mask=mask, style_mask=mask, config=_config(size=16))
    for key, m in coarse.objective._masks.items():
        if m is not None:
            assert torch.equal(built[0].objective._masks[key], m)
    for name, t in coarse.objective._style_targets.items():
        assert torch.allclose(built[0].objective._style_targets[name], t)


def test_scale_sizes_and_iteration_split():
    from masked_gatys.stylize import scale_sizes, split_iterations

    assert scale_sizes((72, 120), StylizeConfig()) == [(72, 120)]  # eye sizes: one pass by default
    assert scale_sizes((144, 240), StylizeConfig()) == [(144, 240)]
    assert scale_sizes((256, 256), StylizeConfig()) == [(128, 128), (256, 256)]
    assert scale_sizes((300, 512), StylizeConfig()) == [(75, 128), (150, 256), (300, 512)]
    assert scale_sizes((512, 512), StylizeConfig(scales=3, min_size=128)) == [(128, 128), (256, 256), (512, 512)]
    assert split_iterations(StylizeConfig(scale_iterations=(50, 20)), 3) == [50, 20, 20]
    assert split_iterations(StylizeConfig(scale_iterations=(50, 20)), 1) == [20]
    # the default: the working size gets the whole budget, each coarser pass a 1/N share more
    # (an equal split left the 512 px pass too short to reach the baseline's objective)
    assert split_iterations(StylizeConfig(iterations=300), 3) == [100, 100, 300]
    assert split_iterations(StylizeConfig(iterations=300), 1) == [300]


def test_default_coarse_to_fine_runs_the_full_budget_at_the_working_size():
    # 2 passes of which the last runs all 4 iterations: 2 + 4 = 6 in all (an equal split: 4)
    content, a, _ = _images()
    cfg = _config(scales=2, min_size=16, iterations=4, stop_tol=0.0)
    seen = []
    result = _quiet(stylize, content, a, config=cfg, callback=lambda p: seen.append((p.scale, p.iteration)))
    assert result.n_iter == 6
    assert [it for scale, it in seen if scale == 1] == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- colour


def _ycbcr_pil(image: torch.Tensor) -> np.ndarray:
    """Y, Cb, Cr of an image as Pillow computes them (the independent reference), in [0, 1]."""
    from PIL import Image

    arr = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return np.asarray(Image.fromarray(arr).convert("YCbCr"), dtype=np.float64) / 255


def test_luminance_mode_keeps_the_content_chroma_on_the_examples():
    from pathlib import Path

    from masked_gatys.image import load_image

    ex = Path(__file__).resolve().parent.parent / "examples"
    content, style = load_image(ex / "real_eye.png"), load_image(ex / "synthetic_eye.png")
    kw = dict(mask=str(ex / "real_eye_mask.png"), style_mask=str(ex / "synthetic_eye_mask.png"))
    cfg = _config(iterations=8, original_colors="luminance", style_weight=1e4)
    lum = _quiet(stylize, content, style, config=cfg, **kw).image
    plain = _quiet(stylize, content, style, config=_config(iterations=8, style_weight=1e4), **kw).image
    ref = _ycbcr_pil(content)
    got, other = _ycbcr_pil(lum), _ycbcr_pil(plain)
    d_lum = np.abs(got - ref).mean(axis=(0, 1))
    d_plain = np.abs(other - ref).mean(axis=(0, 1))
    assert d_lum[1] < 1 / 255 and d_lum[2] < 1 / 255, d_lum * 255
    assert d_lum[0] > 1 / 255  # the luminance was transferred
    assert max(d_plain[1], d_plain[2]) > 1 / 255  # without the mode the colours move


def _weighted_stats(x: torch.Tensor, w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    pixels = x[0].reshape(3, -1).double().numpy()
    weights = w.reshape(-1).double().numpy()
    return np.average(pixels, axis=1, weights=weights), np.cov(pixels, aweights=weights, bias=True)


def test_histogram_mode_gives_the_style_the_content_colour_statistics_per_region():
    from masked_gatys.colour import match_colours

    g = torch.Generator().manual_seed(3)
    content = 0.35 + 0.3 * torch.rand(1, 3, 24, 24, generator=g)
    content[:, 2] *= 0.6  # a colour cast
    style = 0.4 + 0.2 * torch.rand(1, 3, 20, 28, generator=g)
    c_mask, s_mask = _mask(24, 24), torch.zeros(1, 1, 20, 28)
    s_mask[..., :10, :] = 1.0
    cr, sr = Regions.from_binary(c_mask), Regions.from_binary(s_mask)
    out = match_colours(style, content, sr.masks, cr.masks)
    for r in range(2):
        want_mean, want_cov = _weighted_stats(content, cr.masks[:, r])
        got_mean, got_cov = _weighted_stats(out, sr.masks[:, r])
        np.testing.assert_allclose(got_mean, want_mean, atol=2e-3)
        np.testing.assert_allclose(got_cov, want_cov, atol=2e-4)


def test_run_control_options_reach_the_config(files, tmp_path, captured):
    result = _cli(["stylize", files["content"], "--style", files["a"], "-o", tmp_path / "o.png", "-q",
                   "--time-limit", "30", "--stop-tol", "0", "--stop-window", "5", "--scales", "3",
                   "--min-size", "64", "--scale-iterations", "50,50,100", "--original-colors", "luminance"])
    assert result.exit_code == 0, result.output
    cfg = captured["config"]
    assert (cfg.time_limit, cfg.stop_tol, cfg.stop_window) == (30.0, 0.0, 5)
    assert (cfg.scales, cfg.min_size, cfg.scale_iterations, cfg.original_colors) == (3, 64, (50, 50, 100),
                                                                                     "luminance")


def test_a_region_vanishing_at_a_coarse_pass_names_the_pass():
    from masked_gatys.errors import MaskError

    content, a, _ = _images()
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 14:16, 14:16] = 1.0  # 2x2 px: a quarter position at relu2_x of a 16 px pass
    with pytest.raises(MaskError, match="coarse-to-fine pass 1 of 2 .16x16 px.: raise --min-size"):
        _quiet(stylize, content, a, mask=mask, style_mask=mask, config=_config(scales=2, min_size=16))
