"""The renderer's layouts and looks: sizes, exact labels, truth, determinism, closed eyes, and
the default layout unchanged against renders made by the code before layouts existed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from masked_gatys.eyes.datasets import render_many, render_set
from masked_gatys.eyes.layouts import LAYOUTS, LayoutError, get_layout, guess_layout
from masked_gatys.eyes.render import EyeError, render_eye, style_eye

REFERENCE = Path(__file__).parent / "data" / "render_default_before_layouts.npz"
# small sizes keep the tests fast; the nir layout's own 240x320 is rendered once below
SMALL = {"unity": (36, 60), "mpiigaze": (36, 60), "nir": (60, 80)}


def _reference_cases():
    data = np.load(REFERENCE)
    cases = json.loads(str(data["cases"]))
    truths = json.loads(str(data["truths"]))
    return data, cases, truths


@pytest.mark.parametrize("explicit", [False, True])
def test_default_layout_unchanged(explicit):
    """Renders written by the code before layouts (commit 8af5b16, tests/data/...npz) are what
    the default (and the explicit unity / default) layout still renders."""
    data, cases, truths = _reference_cases()
    for k, case in enumerate(cases):
        case["size"] = tuple(case["size"])
        extra = {"layout": "default" if k % 2 else "unity"} if explicit else {}
        r = render_eye(**case, **extra)
        # labels, truth: exact; pixels: exact here, a float32 ulp of slack for other CPUs' libm
        assert np.array_equal(r.labels.numpy(), data[f"labels{k}"])
        assert json.dumps(r.truth, sort_keys=True) == json.dumps(truths[k], sort_keys=True)
        torch.testing.assert_close(r.image, torch.from_numpy(data[f"image{k}"]), rtol=0, atol=1e-6)
        torch.testing.assert_close(r.mask, torch.from_numpy(data[f"mask{k}"]), rtol=0, atol=1e-6)


def test_default_render_set_unchanged():
    """render_set without a layout draws the eyes it drew before (eye 0 of seed 0 is render_eye
    with eye_seed_and_gaze's draw, unchanged)."""
    s = render_set(3, domain="real", seed=4)
    assert s.size == (36, 60) and s.source["kind"] == "rendered" and "layout" not in s.source
    from masked_gatys.eyes.datasets import eye_seed_and_gaze
    for i in range(3):
        eye_seed, yaw, pitch = eye_seed_and_gaze(4, i)
        r = render_eye(yaw=yaw, pitch=pitch, domain="real", size=(36, 60), seed=eye_seed)
        assert torch.equal(s.images[i:i + 1], r.image)


def _check_truth_against_labels(r):
    labels = r.labels.numpy()
    t = r.truth
    if t.get("closed"):
        assert not (labels >= 2).any()
        return
    vis = t.get("visible", {"pupil": 1.0, "iris": 1.0})
    px, py = t["pupil_center"]
    h, w = labels.shape
    i, j = int(round(py)), int(round(px))
    if vis["pupil"] >= 0.999 and 0 <= i < h and 0 <= j < w:
        # the pupil centre is on the pupil, its centroid within half a pixel, the iris around it
        assert labels[i, j] == 3
        ys, xs = np.nonzero(labels == 3)
        assert abs(xs.mean() - px) < 0.5 and abs(ys.mean() - py) < 0.5
        ring = labels[max(0, i - 1):i + 2, max(0, j - 1):j + 2]
        assert set(np.unique(ring)) <= {2, 3}
        iris_ys, iris_xs = np.nonzero(labels >= 2)
        assert iris_xs.min() < xs.min() or iris_xs.max() > xs.max()
    if (labels == 3).any():
        assert (labels == 2).any()  # a pupil is always inside an iris
    if (labels >= 2).any():
        ex, ey = t["iris_ellipse"]["center"]
        ys, xs = np.nonzero(labels >= 2)
        a = t["iris_ellipse"]["axes"][0]
        assert np.hypot(xs - ex, ys - ey).max() <= a + 1.5  # iris pixels lie within the ellipse


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("look", [None, "clean", "any", "webcam", "photo", "nir"])
def test_layouts_render_with_consistent_labels(layout, look):
    for seed in range(4):
        r = render_eye(layout=layout, look=look, seed=seed, yaw=8.0 * (seed - 1.5), pitch=-3.0 * seed,
                       size=SMALL[layout])
        assert tuple(r.image.shape) == (1, 3, *SMALL[layout])
        assert r.image.dtype == torch.float32 and 0.0 <= float(r.image.min()) <= float(r.image.max()) <= 1.0
        assert tuple(r.labels.shape) == SMALL[layout] and set(r.labels.unique().tolist()) <= {0, 1, 2, 3}
        # the attention mask is the iris + pupil labels' coverage
        assert torch.equal((r.mask[0, 0] >= 0.5), (r.labels >= 2)) or \
            float(((r.mask[0, 0] >= 0.5) != (r.labels >= 2)).float().mean()) < 0.01
        if get_layout(layout).channels == 1:
            assert torch.equal(r.image[0, 0], r.image[0, 1]) and torch.equal(r.image[0, 0], r.image[0, 2])
        _check_truth_against_labels(r)


def test_native_sizes():
    for name, lay in LAYOUTS.items():
        r = render_eye(layout=name, seed=1, domain="real", supersample=1)
        assert tuple(r.image.shape[-2:]) == lay.size
    assert get_layout("default") is LAYOUTS["unity"]


def test_looks_keep_labels_exact():
    """Every look of one eye has the same labels, mask and truth geometry: looks are photometric."""
    base = render_eye(layout="mpiigaze", look="clean", seed=5, yaw=10.0)
    for look in ("webcam", "photo", "outdoor", "nir"):
        r = render_eye(layout="mpiigaze", look=look, seed=5, yaw=10.0)
        assert torch.equal(r.labels, base.labels) and torch.equal(r.mask, base.mask)
        assert r.truth["pupil_center"] == base.truth["pupil_center"]
        assert not torch.equal(r.image, base.image)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_deterministic_by_seed(layout):
    a = render_eye(layout=layout, look="any", seed=9, size=SMALL[layout])
    b = render_eye(layout=layout, look="any", seed=9, size=SMALL[layout])
    c = render_eye(layout=layout, look="any", seed=10, size=SMALL[layout])
    assert torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels) and a.truth == b.truth
    assert not torch.equal(a.image, c.image)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_closed_eyes_have_no_iris_or_pupil(layout):
    r = render_eye(layout=layout, look="any", seed=2, closure=1.0, size=SMALL[layout])
    assert not (r.labels >= 2).any() and float(r.mask.max()) < 0.5
    assert r.truth["closed"] and r.truth["visible"]["pupil"] < 0.05


def test_half_closed_lid_covers_part_of_the_pupil():
    r = render_eye(layout="nir", look="nir", seed=3, size=(60, 80), closure=0.6, pitch=-10.0)
    assert 0.0 < r.truth["visible"]["iris"] < 1.0


def test_closed_and_half_closed_share_in_sets():
    """The mpiigaze and nir layouts draw closed and half-closed eyes by themselves."""
    truths = [e.truth for e in render_many(60, layout="mpiigaze", look="webcam", seed=0)]
    closures = np.array([t["closure"] for t in truths])
    assert (closures > 0.85).any() and ((closures > 0.3) & (closures < 0.85)).any()
    assert any(t["closed"] for t in truths)


def test_render_set_layout():
    s = render_set(3, layout="nir", look="nir", size=(48, 64), seed=1)
    assert tuple(s.images.shape) == (3, 3, 48, 64) and tuple(s.parts.shape) == (3, 48, 64)
    assert s.source["layout"] == "nir" and s.source["domain"] == "real"
    again = list(render_many(1, layout="nir", look="nir", size=(48, 64), seed=1, start=2))[0]
    assert torch.equal(again.image, s.images[2:3])


def test_bad_layout_and_look():
    with pytest.raises(EyeError, match="unknown layout"):
        render_eye(layout="ovals")
    with pytest.raises(EyeError, match="unknown look"):
        render_eye(look="sepia")
    with pytest.raises(EyeError, match="real domain"):
        render_eye(look="webcam", domain="synthetic")
    with pytest.raises(EyeError, match="closure"):
        render_eye(closure=1.5)
    with pytest.raises(LayoutError):
        get_layout("ovals")


def test_style_eye():
    assert torch.equal(style_eye("unity", size=(36, 60)).image,
                       render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(36, 60), seed=0).image)
    e = style_eye("nir", size=(60, 80))
    assert not e.truth["closed"] and e.truth["visible"]["pupil"] > 0.5


def test_guess_layout():
    assert guess_layout(torch.zeros(1, 1, 36, 60))[0] == "mpiigaze"
    assert guess_layout(torch.zeros(1, 3, 36, 60))[0] == "mpiigaze"  # three equal channels are grey
    rgb = torch.zeros(1, 3, 36, 60)
    rgb[0, 0] = 1.0
    assert guess_layout(rgb)[0] == "unity"
    assert guess_layout(np.zeros((240, 320)))[0] == "nir"
    assert guess_layout(np.zeros((480, 640)))[0] == "nir"
    assert guess_layout((1, 72, 120))[0] == "mpiigaze"
    assert guess_layout((1, 100, 100))[0] == "unity"
    name, reason = guess_layout((3, 240, 320))
    assert name == "unity" and "matches no" in reason


# ---------------------------------------------------------------- where the layouts are used


def _purify_objective(folder, out, **kw):
    import warnings

    from masked_gatys.purify import PurifyConfig, purify

    cfg = PurifyConfig(method="masked", style="rendered", weights="random", max_layer="relu2_1", iterations=0,
                       pupil_shift=False, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = purify(folder, out, config=cfg).records[0]
    return record["objective"], [str(w.message) for w in caught]


def _direct_objective(folder, style):
    from masked_gatys.image import load_image
    from masked_gatys.masks import load_mask
    from masked_gatys.stylize import StylizeConfig, stylize

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stylize(load_image(folder / "e.png"), style.image, mask=load_mask(folder / "e_mask.png"),
                             style_mask=style.mask,
                             config=StylizeConfig(preset="masked", iterations=0, weights="random",
                                                  max_layer="relu2_1")).total)


def test_purify_style_rendered_follows_the_inputs_layout(tmp_path):
    """A grey 36x60 eye gets the mpiigaze style eye (and a warning saying so); --layout unity
    brings back the original style eye; an RGB eye keeps the original without a word."""
    from masked_gatys.image import save_image

    grey = tmp_path / "grey"
    grey.mkdir()
    eye = render_eye(layout="mpiigaze", look="webcam", seed=5, closure=0.0)
    save_image(eye.image[:, :1], grey / "e.png")
    save_image(eye.binary_mask, grey / "e_mask.png")
    guessed, said = _purify_objective(grey, tmp_path / "a")
    assert guessed == pytest.approx(_direct_objective(grey, style_eye("mpiigaze", size=(36, 60))), rel=1e-4)
    assert any("mpiigaze layout" in m for m in said)
    named, said = _purify_objective(grey, tmp_path / "b", layout="unity")
    assert named == pytest.approx(_direct_objective(grey, style_eye("unity", size=(36, 60))), rel=1e-4)
    assert not any("layout" in m for m in said) and named != pytest.approx(guessed, rel=1e-3)

    rgb = tmp_path / "rgb"
    rgb.mkdir()
    eye = render_eye(domain="real", size=(36, 60), seed=5)
    save_image(eye.image, rgb / "e.png")
    save_image(eye.binary_mask, rgb / "e_mask.png")
    kept, said = _purify_objective(rgb, tmp_path / "c")
    assert kept == pytest.approx(_direct_objective(rgb, style_eye("unity", size=(36, 60))), rel=1e-4)
    assert not any("layout" in m for m in said)


def test_gaze_experiment_renders_in_its_layout(tmp_path):
    from masked_gatys.eyes.experiment import ExperimentConfig, _rendered, _style_files
    from masked_gatys.image import load_image

    cfg = ExperimentConfig(out=str(tmp_path), layout="mpiigaze")
    s = _rendered(cfg, 3, "synthetic", 0, None)
    direct = render_set(3, domain="synthetic", size=(36, 60), seed=0, layout="mpiigaze",
                        yaw_range=cfg.yaw_range, pitch_range=cfg.pitch_range)
    assert torch.equal(s.images, (direct.images * 255).round() / 255)
    assert torch.equal(s.images[:, 0], s.images[:, 1])  # grey
    unity = _rendered(ExperimentConfig(out=str(tmp_path)), 3, "synthetic", 0, None)
    assert not torch.equal(unity.images, s.images)  # its own cache, not the unity set's
    image, _ = _style_files(cfg)
    style = load_image(image)
    assert torch.equal(style[0, 0], style[0, 1]) and "style-mpiigaze" in image


def test_render_eyes_command_layouts(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from masked_gatys.cli.eyes import render_eyes_command

    out = tmp_path / "m"
    result = CliRunner().invoke(render_eyes_command, [str(out), "--n", "2", "--layout", "mpiigaze", "--look", "any"])
    assert result.exit_code == 0, result.output
    im = Image.open(out / "0001.png")
    assert im.mode == "L" and im.size == (60, 36)
    truth = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert [t["layout"] for t in truth] == ["mpiigaze", "mpiigaze"]
    eye = next(iter(render_many(1, layout="mpiigaze", look="any", seed=0, start=1)))
    labels = np.asarray(Image.open(out / "0001_labels.png").convert("RGB"))
    assert np.array_equal(labels[..., 2] == 255, (eye.labels.numpy() == 1) | (eye.labels.numpy() == 2))
    # the default is the original: RGB 72x120 in the real domain
    result = CliRunner().invoke(render_eyes_command, [str(tmp_path / "u"), "--n", "1"])
    assert result.exit_code == 0 and Image.open(tmp_path / "u" / "0000.png").size == (120, 72)
    assert "layout" not in json.loads((tmp_path / "u" / "truth.jsonl").read_text())
    result = CliRunner().invoke(render_eyes_command, [str(tmp_path / "x"), "--look", "webcam", "--domain", "synthetic"])
    assert result.exit_code != 0 and "real domain" in result.output


@pytest.mark.parametrize("name", ["layouts", "looks", "drawing", "scene", "datasets"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"masked_gatys.eyes.{name}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
