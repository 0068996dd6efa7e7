"""The procedural eye renderer and the gaze conventions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes import (
    EyeError,
    EyeRender,
    angular_error,
    gaze_to_vector,
    labels_to_rgb,
    render_eye,
    vector_to_gaze,
)

SIZES = [(36, 60), (72, 120)]
GAZES = [(0.0, 0.0), (25.0, 10.0), (-30.0, -15.0), (12.0, -20.0), (-8.0, 18.0)]


# ----------------------------------------------------------------- gaze conventions


def test_gaze_vector_axes_and_signs():
    np.testing.assert_allclose(gaze_to_vector(0, 0), [0, 0, -1], atol=1e-12)
    v = gaze_to_vector(30, 0)
    assert v[0] > 0 and abs(v[1]) < 1e-12  # positive yaw: towards +x
    v = gaze_to_vector(0, 30)
    assert v[1] < 0 and abs(v[0]) < 1e-12  # positive pitch: up (y down in the image)
    np.testing.assert_allclose(np.linalg.norm(gaze_to_vector([10, -40], [5, 33]), axis=-1), 1.0)


@pytest.mark.parametrize("yaw", [-60.0, -25.5, 0.0, 13.0, 59.0])
@pytest.mark.parametrize("pitch", [-45.0, -7.0, 0.0, 21.5, 44.0])
def test_gaze_round_trip(yaw, pitch):
    np.testing.assert_allclose(vector_to_gaze(gaze_to_vector(yaw, pitch)), [yaw, pitch], atol=1e-9)


def test_vector_round_trip_and_scale_invariance():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    v[:, 2] = -np.abs(v[:, 2]) - 0.1  # facing the camera
    back = gaze_to_vector(*vector_to_gaze(v).T)
    np.testing.assert_allclose(back, v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(vector_to_gaze(3.5 * v), vector_to_gaze(v), atol=1e-9)


def test_angular_error():
    assert angular_error((10, 0), (0, 0)) == pytest.approx(10.0)
    assert angular_error((0, 0), (0, -7)) == pytest.approx(7.0)
    assert angular_error((20, 10), (20, 10)) == pytest.approx(0.0, abs=1e-6)
    # symmetric, and the same for angles and vectors
    a, b = (12.0, -5.0), (-3.0, 8.0)
    assert angular_error(a, b) == pytest.approx(angular_error(b, a))
    assert angular_error(gaze_to_vector(*a), b) == pytest.approx(angular_error(a, b))
    # swapping (yaw, pitch) is an error the function sees
    assert angular_error((20, 5), (5, 20)) > 20
    # tiny angles stay accurate
    assert angular_error((0, 0), (1e-4, 0)) == pytest.approx(1e-4, rel=1e-3)
    arr = angular_error(np.zeros((3, 2)), np.array([[1, 0], [0, 2], [3, 0]]))
    np.testing.assert_allclose(arr, [1, 2, 3])


def test_gaze_errors():
    with pytest.raises(EyeError):
        vector_to_gaze([0, 0, 0])
    with pytest.raises(EyeError):
        vector_to_gaze([1, 2])
    with pytest.raises(EyeError):
        angular_error((1, 2, 3, 4), (0, 0))


# ----------------------------------------------------------------- renders


def test_shapes_types_ranges():
    r = render_eye(yaw=5, pitch=3, domain="real", size=(36, 60), seed=1)
    assert isinstance(r, EyeRender)
    assert r.image.shape == (1, 3, 36, 60) and r.image.dtype == torch.float32
    assert r.labels.shape == (36, 60) and r.labels.dtype == torch.int64
    assert r.mask.shape == (1, 1, 36, 60) and r.mask.dtype == torch.float32
    assert 0.0 <= r.image.min() and r.image.max() <= 1.0
    assert 0.0 <= r.mask.min() and r.mask.max() <= 1.0 + 1e-6
    assert set(r.labels.unique().tolist()) == {0, 1, 2, 3}
    json.dumps(r.truth)  # serialisable as is
    with pytest.raises(Exception):
        r.image = None  # frozen


@pytest.mark.parametrize("domain", ["synthetic", "real"])
def test_deterministic_per_seed(domain):
    a = render_eye(yaw=10, pitch=-4, domain=domain, size=(36, 60), seed=11)
    b = render_eye(yaw=10, pitch=-4, domain=domain, size=(36, 60), seed=11)
    c = render_eye(yaw=10, pitch=-4, domain=domain, size=(36, 60), seed=12)
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask) and a.truth == b.truth
    assert not torch.equal(a.image, c.image)
    assert a.truth["geometry"] != c.truth["geometry"]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("gaze", GAZES)
def test_labelled_pupil_centroid_matches_truth(size, gaze):
    for seed in range(3):
        r = render_eye(yaw=gaze[0], pitch=gaze[1], size=size, seed=seed)
        ys, xs = torch.nonzero(r.labels == 3, as_tuple=True)
        cx, cy = xs.double().mean().item(), ys.double().mean().item()
        tx, ty = r.truth["pupil_center"]
        assert math.hypot(cx - tx, cy - ty) < 0.5, (seed, gaze, size)
        # the whole pupil is visible: its area is the ellipse's
        a, b = r.truth["pupil_ellipse"]["axes"]
        assert len(xs) == pytest.approx(math.pi * a * b, rel=0.25, abs=2)


def test_soft_mask_centroid_is_exact():
    r = render_eye(yaw=-17, pitch=9, size=(72, 120), seed=4, supersample=8)
    pupil = (r.labels == 3)
    assert pupil.any()
    # the attention mask is the iris ellipse's coverage, cut by the lids; its area matches the labels
    assert r.mask.sum().item() == pytest.approx(((r.labels == 2) | pupil).sum().item(), rel=0.05)
    binary = r.binary_mask[0, 0].bool()
    agree = (binary == ((r.labels == 2) | pupil)).float().mean().item()
    assert agree > 0.99


def test_gaze_moves_and_foreshortens_the_iris():
    centre = render_eye(yaw=0, pitch=0, size=(72, 120), seed=5).truth
    right = render_eye(yaw=30, pitch=0, size=(72, 120), seed=5).truth
    up = render_eye(yaw=0, pitch=20, size=(72, 120), seed=5).truth
    assert right["pupil_center"][0] > centre["pupil_center"][0] + 3
    assert up["pupil_center"][1] < centre["pupil_center"][1] - 3
    major, minor = right["iris_ellipse"]["axes"]
    assert minor / major == pytest.approx(math.cos(math.radians(30)), rel=1e-3)
    assert centre["iris_ellipse"]["axes"][0] == pytest.approx(centre["iris_ellipse"]["axes"][1])
    # the eye itself stays put: same corners, same eyeball
    assert right["corners"] == centre["corners"] and right["eyeball"] == centre["eyeball"]
    assert up["geometry"]["upper_opening"] > centre["geometry"]["upper_opening"]  # the lid follows the gaze up


def test_seeds_vary_geometry_and_appearance():
    truths = [render_eye(size=(36, 60), seed=s).truth for s in range(8)]
    for key in ("upper_opening", "pupil_ratio", "tilt"):
        values = {t["geometry"][key] for t in truths}
        assert len(values) == 8, key
    assert len({tuple(t["appearance"]["iris_color"]) for t in truths}) > 1


def test_overrides():
    small = render_eye(size=(72, 120), seed=3, pupil_ratio=0.25)
    large = render_eye(size=(72, 120), seed=3, pupil_ratio=0.6)
    assert (large.labels == 3).sum() > 3 * (small.labels == 3).sum()
    tilted = render_eye(size=(72, 120), seed=3, tilt=10.0)
    (lx, ly), (rx, ry) = tilted.truth["corners"]["left"], tilted.truth["corners"]["right"]
    assert math.degrees(math.atan2(ry - ly, rx - lx)) == pytest.approx(10.0, abs=1e-3)  # rounded truth
    assert render_eye(size=(36, 60), seed=3, iris_color=(0, 0, 1)).truth["appearance"]["iris_color"] == [0, 0, 1]


@pytest.mark.parametrize("kwargs, match", [
    ({"domain": "cartoon"}, "unknown domain"),
    ({"size": (8, 8)}, "at least 16"),
    ({"size": "big"}, "size must be"),
    ({"yaw": 80}, "gaze out of range"),
    ({"pitch": -50}, "gaze out of range"),
    ({"seed": -1}, "seed"),
    ({"wrinkles": 3}, "unknown render_eye parameter"),
    ({"pupil_ratio": 2.0}, "pupil_ratio"),
    ({"iris_color": (2, 0, 0)}, "iris_color"),
    ({"supersample": 0}, "supersample"),
])
def test_bad_arguments(kwargs, match):
    args = {"yaw": 0, "pitch": 0, "size": (36, 60), "seed": 0, **kwargs}
    with pytest.raises(EyeError, match=match) as info:
        render_eye(**args)
    assert isinstance(info.value, MaskedGatysError) and isinstance(info.value, ValueError)


# ----------------------------------------------------------------- the two domains


def _pair(seed, yaw=8.0, pitch=-3.0, size=(72, 120)):
    return (render_eye(yaw=yaw, pitch=pitch, domain="synthetic", size=size, seed=seed),
            render_eye(yaw=yaw, pitch=pitch, domain="real", size=size, seed=seed))


def test_domains_share_geometry():
    for seed in range(4):
        syn, real = _pair(seed)
        assert torch.equal(syn.labels, real.labels) and torch.equal(syn.mask, real.mask)
        for key in ("pupil_center", "iris_ellipse", "pupil_ellipse", "corners", "geometry", "gaze", "appearance"):
            assert syn.truth[key] == real.truth[key], key
        assert syn.truth["domain_params"] == {} and real.truth["domain_params"]
        assert not torch.equal(syn.image, real.image)


def test_synthetic_is_clean():
    """High-pass energy inside the sclera: sensor noise in "real", next to none in "synthetic"."""
    for seed in range(3):
        syn, real = _pair(seed)
        inner = -torch.nn.functional.max_pool2d(-(syn.labels == 1).float()[None, None], 3, 1, 1)[0, 0] > 0

        def highpass(img):
            smooth = torch.nn.functional.avg_pool2d(img, 3, 1, 1, count_include_pad=False)
            return (img - smooth)[0].mean(0)[inner].abs().median().item()

        assert inner.sum() > 50
        assert highpass(real.image) > 3 * highpass(syn.image), seed


def test_real_light_gradient_follows_the_stated_direction():
    """log(real / synthetic) over the skin rises along the stated light direction."""
    checked = 0
    for seed in range(30):
        syn, real = _pair(seed)
        p = real.truth["domain_params"]
        if p["shadow"]:
            continue
        h, w = syn.labels.shape
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
        la = math.radians(p["light_angle"])
        t = ((xs - (w - 1) / 2) * math.cos(la) + (ys - (h - 1) / 2) * math.sin(la)).flatten()
        lum = lambda img: (img[0].double().mean(0)).flatten().clamp_min(1e-3)  # noqa: E731
        ratio = (lum(real.image) / lum(syn.image)).log()
        skin = (syn.labels == 0).flatten()
        tt, rr = t[skin], ratio[skin]
        slope = ((tt - tt.mean()) * (rr - rr.mean())).sum() / ((tt - tt.mean()) ** 2).sum()
        assert slope > 0.002, (seed, float(slope))
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def test_real_colour_temperature_shifts_the_sclera():
    checked = 0
    for seed in range(40):
        syn, real = _pair(seed)
        t = real.truth["domain_params"]["color_temperature"]
        if abs(t) < 0.5:
            continue
        sclera = syn.labels == 1
        rb = lambda img: (img[0, 0][sclera].mean() / img[0, 2][sclera].mean()).log().item()  # noqa: E731
        assert math.copysign(1, rb(real.image) - rb(syn.image)) == math.copysign(1, t), seed
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def test_real_glints_are_bright_spots():
    syn, real = _pair(6, size=(72, 120))
    for glint in real.truth["domain_params"]["glints"]:
        x, y = (int(round(v)) for v in glint["center"])
        if real.labels[y, x] in (2, 3):
            assert real.image[0, :, y, x].mean() > syn.image[0, :, y, x].mean() + 0.15


def test_labels_to_rgb():
    rgb = labels_to_rgb(torch.tensor([[0, 1], [2, 3]]))
    assert rgb.shape == (3, 2, 2)
    assert rgb[:, 0, 0].tolist() == [0, 0, 0] and rgb[:, 0, 1].tolist() == [1, 1, 1]
    assert rgb[:, 1, 1].tolist() == [1, 0, 0]


def test_docstring_examples():
    import doctest

    import masked_gatys.eyes.render as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
