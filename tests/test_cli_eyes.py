"""``masked-gatys render-eyes`` and ``masked-gatys demo``."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from masked_gatys.cli import main
from masked_gatys.eyes import demo as demo_module


def _invoke(args, **kwargs):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kwargs)


# ----------------------------------------------------------------- render-eyes


def test_render_eyes_writes_files_and_truth(tmp_path):
    out = tmp_path / "eyes"
    result = _invoke(["render-eyes", str(out), "--n", "3", "--domain", "real", "--size", "36x60", "--seed", "5"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["0000.png", "0000_labels.png", "0000_mask.png", "0001.png", "0001_labels.png",
                     "0001_mask.png", "0002.png", "0002_labels.png", "0002_mask.png", "truth.jsonl"]
    lines = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert [d["index"] for d in lines] == [0, 1, 2]
    assert all(d["domain"] == "real" and d["size"] == [36, 60] for d in lines)
    image = np.asarray(Image.open(out / "0001.png"))
    assert image.shape == (36, 60, 3)
    mask = np.asarray(Image.open(out / "0001_mask.png").convert("L"))
    assert set(np.unique(mask)) <= {0, 255} and (mask == 255).any()
    labels = np.asarray(Image.open(out / "0001_labels.png").convert("RGB"))
    red = np.all(labels == [255, 0, 0], axis=-1)
    ys, xs = np.nonzero(red)
    tx, ty = lines[1]["pupil_center"]
    assert abs(xs.mean() - tx) < 0.5 and abs(ys.mean() - ty) < 0.5
    # the pupil and iris of the labels are the mask
    iris_or_pupil = red | np.all(labels == [0, 128, 255], axis=-1)
    assert ((mask == 255) == iris_or_pupil).mean() > 0.99


def test_render_eyes_is_deterministic(tmp_path):
    args = ["--n", "2", "--domain", "synthetic", "--size", "24x40", "--seed", "9"]
    for name in ("a", "b", "c"):
        seed_args = args if name != "c" else args[:-1] + ["10"]
        assert _invoke(["render-eyes", str(tmp_path / name), *seed_args]).exit_code == 0
    for f in ("0000.png", "0001_mask.png", "0001_labels.png", "truth.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "truth.jsonl").read_bytes() != (tmp_path / "c" / "truth.jsonl").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--size", "36by60"], "HxW"),
    (["--size", "8x8"], "16x16"),
    (["--domain", "cartoon"], "cartoon"),
    (["--n", "0"], "0"),
])
def test_render_eyes_bad_arguments(tmp_path, args, message):
    result = CliRunner().invoke(main, ["render-eyes", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_render_eyes_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["render-eyes", str(blocker / "eyes"), "--n", "1"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_eye_seed_and_gaze_ranges():
    from masked_gatys.eyes.datasets import eye_seed_and_gaze  # render-eyes and render_set draw the same eyes

    draws = [eye_seed_and_gaze(3, i, yaw_range=10, pitch_range=5) for i in range(50)]
    assert len({d[0] for d in draws}) == 50
    assert all(abs(y) <= 10 and abs(p) <= 5 for _, y, p in draws)


# ----------------------------------------------------------------- the sheet helper


def test_compose_sheet_layout_and_errors(tmp_path):
    from masked_gatys.errors import ImageError
    from masked_gatys.sheet import Column, compose_sheet, save_sheet

    black, white = torch.zeros(1, 3, 10, 20), torch.ones(3, 10, 20)
    sheet = compose_sheet([Column("a", [black, torch.ones(10, 20)], ["one\ntwo", "mask"]),
                           Column("b", [white, None], ["x"])], title="title", min_width=100, padding=10)
    assert sheet.mode == "RGB"
    arr = np.asarray(sheet)
    assert sheet.size[0] >= 2 * 100 + 3 * 10 and sheet.size[1] >= 2 * 50
    assert (arr == 0).all(axis=-1).sum() >= 100 * 50  # the black image, enlarged 5x, is there
    path = save_sheet(sheet, tmp_path / "s.png")
    assert Image.open(path).size == sheet.size
    with pytest.raises(ImageError):
        compose_sheet([])
    with pytest.raises(ImageError):
        compose_sheet([Column("a", [None])])
    with pytest.raises(ImageError):
        compose_sheet([Column("a", [torch.zeros(2, 2, 2, 2)])])


# ----------------------------------------------------------------- demo, heavy parts mocked


class _FakeObjective:
    def __call__(self, image):
        return types.SimpleNamespace(total=image.mean(dim=(1, 2, 3)))


def _fake_prepare(calls):
    def prepare(content, style, *, mask=None, style_mask=None, config=None, encoder=None):
        calls.append(("prepare", config))
        return types.SimpleNamespace(objective=_FakeObjective(), device=torch.device("cpu"))
    return prepare


def _fake_stylize(calls):
    def stylize(content, style, *, mask=None, style_mask=None, config=None, callback=None, encoder=None):
        calls.append(("stylize", config))
        assert mask is not None and style_mask is not None
        assert mask.shape[-2:] == content.shape[-2:] and style_mask.shape[-2:] == style.shape[-2:]
        for i in range(1, config.iterations + 1):
            if callback is not None:
                callback(types.SimpleNamespace(iteration=i, total=1.0 / i))
        weights = types.SimpleNamespace(to_dict=lambda: {"name": "fake", "sha256": "0", "format": "torchvision"})
        return types.SimpleNamespace(image=content.clone(), total=0.5, terms={"tv": 0.1}, seconds=0.01,
                                     n_iter=config.iterations, n_eval=config.iterations, stop_reason="max_iter",
                                     weights=weights)
    return stylize


@pytest.fixture
def mocked(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(demo_module, "stylize", _fake_stylize(calls))
    monkeypatch.setattr(demo_module, "prepare", _fake_prepare(calls))
    monkeypatch.delenv("MASKED_GATYS_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(demo_module, "_data_dir", lambda: data)
    return types.SimpleNamespace(calls=calls, data=data)


def test_demo_with_random_weights_notice(mocked, tmp_path):
    out = tmp_path / "demo"
    result = _invoke(["demo", "--out", str(out), "--size", "36x60", "--iterations", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "RANDOM" in result.output and "MASKED_GATYS_WEIGHTS" in result.output
    stylized = [c for kind, c in mocked.calls if kind == "stylize"]
    assert [c.preset for c in stylized] == ["gatys", "masked"]
    assert all(c.weights == "random" and c.iterations == 3 and c.device == "cpu" for c in stylized)
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"gatys", "masked"}
    for m in results["methods"].values():
        assert m["pupil_shift"] == pytest.approx(0.0, abs=1e-6)  # the fake returns the content
        assert {"objective", "objective_gatys", "objective_masked", "seconds"} <= set(m)
    assert results["weights"]["name"] == "fake" and results["size"] == [36, 60]
    assert results["weights_source"] == "random"
    sheet = Image.open(out / "sheet.png")
    assert sheet.size[0] > 4 * 60 and sheet.mode == "RGB"
    for name in ("content.png", "content_mask.png", "style.png", "style_mask.png", "gatys.png", "masked.png"):
        assert (out / name).is_file(), name


def test_demo_weights_from_environment_and_hub(mocked, tmp_path, monkeypatch):
    weights = tmp_path / "vgg.pth"
    weights.write_bytes(b"x")
    monkeypatch.setenv("MASKED_GATYS_WEIGHTS", str(weights))
    result = _invoke(["demo", "--out", str(tmp_path / "a"), "--size", "24x40", "--iterations", "1"])
    assert result.exit_code == 0 and "RANDOM" not in result.output
    assert {c.weights for kind, c in mocked.calls} == {str(weights)}

    monkeypatch.delenv("MASKED_GATYS_WEIGHTS")
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / demo_module.TORCHVISION_VGG19
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert demo_module.find_demo_weights() == (str(cached), "torch hub cache")


def test_demo_runs_shipped_networks_and_skips_broken_ones(mocked, tmp_path, monkeypatch):
    from masked_gatys.errors import CheckpointError

    (mocked.data / "johnson_eyes.pt").write_bytes(b"fake")
    (mocked.data / "purifier_eyes.pt").write_bytes(b"broken")

    def load_model(path, *, device="cpu"):
        if Path(path).name.startswith("purifier"):
            raise CheckpointError(f"{path}: checkpoint is corrupt")
        model = lambda image, mask: (image * 0.9).clamp(0, 1)  # noqa: E731
        return model

    monkeypatch.setattr(demo_module, "load_model", load_model)
    out = tmp_path / "demo"
    result = _invoke(["demo", "--out", str(out), "--size", "24x40", "--iterations", "1"])
    assert result.exit_code == 0, result.output
    assert "skipping purifier_eyes.pt" in result.output
    methods = json.loads((out / "results.json").read_text())["methods"]
    assert set(methods) == {"gatys", "masked", "johnson"}
    assert methods["johnson"]["kind"] == "network" and (out / "johnson.png").is_file()


def test_demo_library_errors_become_one_line(mocked, tmp_path, monkeypatch):
    from masked_gatys.errors import WeightsError

    def broken(*args, **kwargs):
        raise WeightsError("weights file /nope is not a VGG-19 state dict")

    monkeypatch.setattr(demo_module, "stylize", broken)
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--weights", "/nope"])
    assert result.exit_code == 1
    assert "not a VGG-19 state dict" in result.output and "Traceback" not in result.output


def test_demo_rejects_absent_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--device", "cuda"])
    assert result.exit_code != 0 and "CUDA is not available" in result.output


# ----------------------------------------------------------------- one real run


@pytest.mark.slow
def test_demo_real_tiny_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKED_GATYS_WEIGHTS", raising=False)
    out = tmp_path / "demo"
    result = _invoke(["demo", "--out", str(out), "--size", "32x48", "--iterations", "2", "--weights", "random",
                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert {"gatys", "masked"} <= set(results["methods"])
    assert results["weights"]["name"].startswith("random")
    for m in results["methods"].values():
        assert np.isfinite(m["objective"])
    assert (out / "sheet.png").is_file()


@pytest.mark.parametrize("name", ["masked_gatys.cli.eyes", "masked_gatys.sheet"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
