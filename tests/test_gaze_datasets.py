"""Gaze data sets: rendered, labelled folders, UnityEyes and MPIIGaze fixtures written here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from masked_gatys.errors import GazeError
from masked_gatys.eyes.datasets import (
    GazeSet,
    load_labelled_folder,
    load_mpiigaze,
    load_unityeyes,
    render_set,
    unityeyes_gaze,
)
from masked_gatys.eyes.render import render_eye
from masked_gatys.image import save_image

pytestmark = pytest.mark.usefixtures("one_thread")


def test_render_set_real_and_synthetic_share_the_eyes():
    real = render_set(5, domain="real", size=(36, 60), seed=4)
    syn = render_set(5, domain="synthetic", size=(36, 60), seed=4)
    assert np.array_equal(real.gaze, syn.gaze) and np.array_equal(real.pupil, syn.pupil)
    assert torch.equal(real.masks, syn.masks)
    assert not torch.equal(real.images, syn.images)
    other = render_set(5, domain="synthetic", size=(36, 60), seed=5)
    assert not np.array_equal(other.gaze, syn.gaze)


def test_render_set_matches_render_eyes_cli(tmp_path):
    from click.testing import CliRunner

    from masked_gatys.cli.eyes import render_eyes_command

    result = CliRunner().invoke(render_eyes_command, [str(tmp_path), "--n", "3", "--size", "36x60",
                                                      "--seed", "2", "--domain", "synthetic"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    s = render_set(3, domain="synthetic", size=(36, 60), seed=2)
    assert [(r["gaze"]["yaw"], r["gaze"]["pitch"]) for r in rows] == [tuple(g) for g in s.gaze]


def test_write_and_read_back(tmp_path):
    s = render_set(4, domain="real", size=(36, 60), seed=1)
    manifest = s.write(tmp_path / "set")
    back = load_labelled_folder(manifest)
    assert back.ids == s.ids and np.allclose(back.gaze, s.gaze) and np.allclose(back.pupil, s.pupil)
    assert (back.images - s.images).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit PNGs
    assert (back.masks - s.masks).abs().max() <= 0.5 / 255 + 1e-6
    mtime = manifest.stat().st_mtime_ns
    s.write(tmp_path / "set")  # the same set again: nothing rewritten
    assert manifest.stat().st_mtime_ns == mtime


def test_labelled_csv_with_resize_scales_the_pupil(tmp_path):
    eye = render_eye(yaw=5.0, pitch=2.0, size=(72, 120), seed=3)
    save_image(eye.image, tmp_path / "a.png")
    px, py = eye.truth["pupil_center"]
    (tmp_path / "labels.csv").write_text(f"image,yaw,pitch,pupil_x,pupil_y\na.png,5,2,{px},{py}\n")
    s = load_labelled_folder(tmp_path / "labels.csv", size=(36, 60))
    assert s.size == (36, 60) and s.masks is None
    assert s.pupil[0] == pytest.approx([(px + 0.5) / 2 - 0.5, (py + 0.5) / 2 - 0.5])
    assert s.gaze.tolist() == [[5.0, 2.0]]


@pytest.mark.parametrize("text, message", [
    ("image,yaw\na.png,1\n", "missing column 'pitch'"),
    ("image,yaw,pitch\na.png,x,1\n", "is not a number"),
    ("image,yaw,pitch\nmissing.png,1,1\n", "missing.png"),
    ("yaw,pitch\n1,1\n", "missing column 'image'"),
    ("image,yaw,pitch\na.png,500,-3\n", r"yaw=.500. is outside \[-90, 90\] degrees"),  # D18
    ("image,yaw,pitch\na.png,5,-300\n", r"pitch=.-300. is outside"),
])
def test_labelled_errors_are_one_line(tmp_path, text, message):
    save_image(torch.rand(1, 3, 36, 60), tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(GazeError, match=message):
        load_labelled_folder(tmp_path / "labels.csv")


def test_labelled_images_of_different_sizes_need_a_size(tmp_path):
    save_image(torch.rand(1, 3, 36, 60), tmp_path / "a.png")
    save_image(torch.rand(1, 3, 30, 50), tmp_path / "b.png")
    (tmp_path / "l.jsonl").write_text('{"image": "a.png", "yaw": 0, "pitch": 0}\n{"image": "b.png", "yaw": 0, "pitch": 0}\n')
    with pytest.raises(GazeError, match="give a size"):
        load_labelled_folder(tmp_path / "l.jsonl")
    assert load_labelled_folder(tmp_path / "l.jsonl", size=(36, 60)).size == (36, 60)


def test_gaze_set_checks_shapes():
    with pytest.raises(GazeError, match="one \\(yaw, pitch\\) per image"):
        GazeSet(torch.rand(2, 3, 8, 8), np.zeros((3, 2)))
    with pytest.raises(GazeError, match="finite"):
        GazeSet(torch.rand(1, 3, 8, 8), np.array([[np.nan, 0.0]]))


# --------------------------------------------------------------------------- UnityEyes


def _unity_fixture(folder, index, *, iris_center, iris_radius, look_vec, size=(480, 640)):
    """A UnityEyes-like sample: a dark iris disc on a light face, landmarks with y measured upwards."""
    from PIL import Image, ImageDraw

    h, w = size
    img = Image.new("RGB", (w, h), (200, 170, 150))
    draw = ImageDraw.Draw(img)
    cx, cy = iris_center
    draw.ellipse([cx - 120, cy - 50, cx + 120, cy + 50], fill=(240, 240, 240))  # sclera
    draw.ellipse([cx - iris_radius, cy - iris_radius, cx + iris_radius, cy + iris_radius], fill=(40, 30, 20))
    img.save(folder / f"{index}.jpg", quality=95)
    ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    iris = [f"({cx + iris_radius * np.cos(a):.3f}, {h - (cy + iris_radius * np.sin(a)):.3f}, 7.0)" for a in ang]
    ecx = 320.0  # the eye's margin is centred at (320, 240) in image coordinates
    margin = [f"({ecx + 110 * np.cos(a):.3f}, {h - (240 + 45 * np.sin(a)):.3f}, 7.0)" for a in ang[::2]]
    data = {"interior_margin_2d": margin, "iris_2d": iris, "caruncle_2d": [],
            "eye_details": {"look_vec": look_vec, "pupil_size": "0.1", "iris_size": "0.9"},
            "head_pose": "(350.0, 10.0, 0.0)"}
    (folder / f"{index}.json").write_text(json.dumps(data))


def test_unityeyes_crop_mask_pupil_and_gaze(tmp_path):
    yaw = math.radians(15.0)
    _unity_fixture(tmp_path, 1, iris_center=(350.0, 230.0), iris_radius=30,
                   look_vec=f"({math.sin(yaw):.6f}, 0.0, {-math.cos(yaw):.6f}, 0.0)")
    _unity_fixture(tmp_path, 2, iris_center=(300.0, 250.0), iris_radius=30, look_vec="(0.0, 0.0, -1.0, 0.0)")
    s = load_unityeyes(tmp_path, size=(36, 60))
    assert s.ids == ("1", "2") and s.size == (36, 60)
    assert s.gaze[0] == pytest.approx([15.0, 0.0], abs=1e-4) and s.gaze[1] == pytest.approx([0.0, 0.0], abs=1e-6)
    # crop: 1.5 x 220 px wide around (320, 240) -> 5.5 source px per output px
    step = 1.5 * 220 / 60
    expect = [(350 - 320) / step + 30 - 0.5, (230 - 240) / step + 18 - 0.5]
    assert s.pupil[0] == pytest.approx(expect, abs=0.05)
    # the mask covers the dark iris in the crop: its centroid is the pupil centre
    m = s.masks[0, 0].numpy()
    ys, xs = np.mgrid[0:36, 0:60]
    assert (xs * m).sum() / m.sum() == pytest.approx(expect[0], abs=0.3)
    assert (ys * m).sum() / m.sum() == pytest.approx(expect[1], abs=0.3)
    grey = s.images[0].mean(0).numpy()
    assert grey[m > 0.9].mean() < 0.3 < grey[m < 0.01].mean()


def test_unityeyes_gaze_signs():
    assert unityeyes_gaze("(0.5, 0.0, -0.866, 0.0)")[0] > 0  # towards image right
    assert unityeyes_gaze("(0.0, 0.5, -0.866, 0.0)")[1] > 0  # up (Unity's y is up)


def test_unityeyes_errors(tmp_path):
    with pytest.raises(GazeError, match="no UnityEyes"):
        load_unityeyes(tmp_path)
    (tmp_path / "3.json").write_text("{not json")
    with pytest.raises(GazeError, match="3.json"):
        load_unityeyes(tmp_path)


# --------------------------------------------------------------------------- MPIIGaze


def _mpii_fixture(path, n, seed, *, eyes=False):
    """An MPIIGaze ``pXX/dayYY.mat`` as scipy writes MATLAB 5 files: ``data.right/left.image``
    (n, 36, 60) uint8, ``.gaze`` (n, 3) unit vectors, ``.pose``. Images: noise, or with
    ``eyes`` grey eyes rendered in the mpiigaze layout looking where the gaze says."""
    import scipy.io

    rng = np.random.default_rng(seed)
    sides = {}
    for side in ("right", "left"):
        yaw = rng.uniform(-0.3, 0.3, n)  # MPIIGaze's own angles
        pitch = rng.uniform(-0.2, 0.2, n)
        gaze = np.stack([-np.cos(pitch) * np.sin(yaw), -np.sin(pitch), -np.cos(pitch) * np.cos(yaw)], 1)
        if eyes:  # ours: the opposite yaw, the same pitch (test_mpiigaze_reads_both_eyes_and_converts_gaze)
            images = np.stack([
                (render_eye(yaw=-math.degrees(a), pitch=math.degrees(b), layout="mpiigaze", look="webcam",
                            seed=int(rng.integers(1 << 30))).image[0, 0].numpy() * 255).round().astype(np.uint8)
                for a, b in zip(yaw, pitch)])
        else:
            images = rng.integers(0, 256, (n, 36, 60), dtype=np.uint8)
        sides[side] = {"image": images, "gaze": gaze, "pose": np.zeros((n, 3))}
        sides[side + "_angles"] = (yaw, pitch)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"data": {"right": sides["right"], "left": sides["left"]},
                                 "filenames": np.array(["a"] * n, dtype=object)})
    return sides


def test_mpiigaze_reads_both_eyes_and_converts_gaze(tmp_path):
    sides = _mpii_fixture(tmp_path / "p00" / "day01.mat", 3, 0)
    s = load_mpiigaze(tmp_path)
    assert len(s) == 6 and s.size == (36, 60) and s.masks is None
    yaw, pitch = sides["right_angles"]
    # theirs: pitch = asin(-y), yaw = atan2(-x, -z); ours: the same pitch, the opposite yaw
    assert s.gaze[:3, 0] == pytest.approx(-np.degrees(yaw)) and s.gaze[:3, 1] == pytest.approx(np.degrees(pitch))
    assert s.images[0, 0].numpy() == pytest.approx(sides["right"]["image"][0] / 255.0)
    assert len(load_mpiigaze(tmp_path, eyes=("left",), limit=2)) == 2


def test_mpiigaze_errors(tmp_path):
    bad = tmp_path / "day01.mat"
    bad.write_bytes(b"MATLAB 7.3 MAT-file junk" * 10)
    with pytest.raises(GazeError, match="day01.mat"):
        load_mpiigaze(bad)
    with pytest.raises(GazeError, match="no such MPIIGaze"):
        load_mpiigaze(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GazeError, match="no day"):
        load_mpiigaze(tmp_path / "empty")
