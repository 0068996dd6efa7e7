"""``masked-gatys stylize``: one real run, argument handling with the heavy call mocked, errors."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.image import load_image, read_metadata, save_image
from masked_gatys.stylize import StylizeConfig, StylizeResult
from masked_gatys.objective import preset
from masked_gatys.encoder import WeightsIdentity

SIZE = 32


@pytest.fixture()
def files(tmp_path):
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, SIZE, SIZE, generator=g), torch.rand(1, 3, SIZE, SIZE, generator=g)
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 8:24, 8:24] = 1
    paths = {name: tmp_path / f"{name}.png" for name in ("content", "style", "mask", "style_mask")}
    save_image(content, paths["content"])
    save_image(style, paths["style"])
    save_image(mask, paths["mask"])
    save_image(mask, paths["style_mask"])
    return paths


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_real_end_to_end_run_writes_image_metadata_and_log(files, tmp_path):
    out, log = tmp_path / "out" / "result.png", tmp_path / "run.json"
    result = _invoke(["stylize", str(files["content"]), "--style", str(files["style"]), "--mask", str(files["mask"]),
                      "--style-mask", str(files["style_mask"]), "-o", str(out), "--weights", "random",
                      "--iterations", "3", "--max-layer", "relu2_2", "--log", str(log), "--device", "cpu",
                      "--save-every", "2"])
    assert result.exit_code == 0, result.output
    image = load_image(out)
    assert image.shape == (1, 3, SIZE, SIZE)
    meta = read_metadata(out)
    assert meta["parameters"]["iterations"] == 3 and meta["weights"]["name"] == "random(seed=0)"
    data = json.loads(log.read_text())
    assert 1 <= len(data["history"]) <= 3 and "terms" in data["history"][0]
    assert data["objective"]["preset"] == "masked"
    assert (tmp_path / "out" / "result_0002.png").exists()
    assert "warning: using random VGG weights" in result.output
    # no temporary files are left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.png", "result_0002.png"]


def _fake_result(config: StylizeConfig, interrupted: bool = False) -> StylizeResult:
    return StylizeResult(image=torch.full((1, 3, SIZE, SIZE), 0.5), total=1.0, terms={"tv": 0.0}, history=[],
                         weights=WeightsIdentity("fake", "0" * 64, "torchvision"), seconds=0.1, n_iter=2,
                         n_eval=3, interrupted=interrupted, stop_reason="interrupted" if interrupted else "max_iter",
                         config=config, objective=preset("gatys"))


@pytest.fixture()
def captured(monkeypatch):
    calls = {}

    def fake_stylize(content, style, *, mask=None, style_mask=None, config=None, callback=None, encoder=None):
        calls.update(content=content, style=style, mask=mask, style_mask=style_mask, config=config)
        return _fake_result(config, interrupted=calls.get("interrupt", False))

    monkeypatch.setattr(importlib.import_module("masked_gatys.stylize"), "stylize", fake_stylize)
    return calls


def test_options_reach_the_config(files, tmp_path, captured):
    out = tmp_path / "o.png"
    result = _invoke(["stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(out),
                      "--style-weight", "5", "--content-weight", "2", "--tv-weight", "0.1", "--optimizer", "adam",
                      "--size", "64", "--iterations", "7", "--seed", "9", "--init", "noise", "--preset", "gatys",
                      "--pooling", "avg", "--weights", "random", "--max-layer", "relu3_4", "--arch", "vgg16",
                      "--history-size", "4", "--lr", "0.5", "-q"])
    assert result.exit_code == 0, result.output
    cfg = captured["config"]
    assert (cfg.style_weight, cfg.content_weight, cfg.tv_weight) == (5.0, 2.0, 0.1)
    assert (cfg.optimizer, cfg.size, cfg.iterations, cfg.seed, cfg.init) == ("adam", 64, 7, 9, "noise")
    assert (cfg.preset, cfg.pooling, cfg.weights, cfg.max_layer, cfg.device) == ("gatys", "avg", "random",
                                                                                  "relu3_4", "cpu")
    assert (cfg.arch, cfg.history_size, cfg.lr) == ("vgg16", 4, 0.5)
    assert out.exists()


def test_defaults_come_from_the_config_dataclass(files, tmp_path, captured):
    result = _invoke(["stylize", str(files["content"]), "--style", str(files["style"]), "-o",
                      str(tmp_path / "o.png"), "-q"])
    assert result.exit_code == 0, result.output
    defaults = StylizeConfig()
    cfg = captured["config"]
    for field in ("iterations", "optimizer", "size", "seed", "init", "mask_mode", "preset", "weights"):
        assert getattr(cfg, field) == getattr(defaults, field), field


def test_interrupt_writes_the_image_and_exits_130(files, tmp_path, captured):
    captured["interrupt"] = True
    out = tmp_path / "o.png"
    result = _invoke(["stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(out), "-q"])
    assert result.exit_code == 130
    assert out.exists() and "best image so far" in result.output


@pytest.mark.parametrize("case, message", [
    ("missing_content", "content not found"),
    ("missing_style", "style not found"),
    ("no_style", "--style is required"),
    ("cuda", "CUDA is not available"),
    ("overwrite", "would overwrite the input"),
    ("bad_init", "--init image not found"),
])
def test_errors_are_one_line_and_nonzero_before_any_work(files, tmp_path, captured, case, message):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    args = {
        "missing_content": ["stylize", str(tmp_path / "nope.png"), "--style", str(files["style"])],
        "missing_style": ["stylize", str(files["content"]), "--style", str(tmp_path / "nope.png")],
        "no_style": ["stylize", str(files["content"])],
        "cuda": ["stylize", str(files["content"]), "--style", str(files["style"]), "--device", "cuda",
                 "-o", str(tmp_path / "o.png")],
        "overwrite": ["stylize", str(files["content"]), "--style", str(files["style"]), "-o", str(files["content"])],
        "bad_init": ["stylize", str(files["content"]), "--style", str(files["style"]), "--init",
                     str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")],
    }[case]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert "config" not in captured  # failed before the heavy work


def test_unwritable_output_folder_fails_before_work(files, tmp_path, captured):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["stylize", str(files["content"]), "--style", str(files["style"]),
                                       "-o", str(blocker / "sub" / "o.png")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "config" not in captured


def test_library_errors_become_one_line(files, tmp_path):
    bad_mask = tmp_path / "bad_mask.png"
    save_image(torch.ones(1, 1, 16, 16), bad_mask)
    result = CliRunner().invoke(main, ["stylize", str(files["content"]), "--style", str(files["style"]),
                                       "--mask", str(bad_mask), "-o", str(tmp_path / "o.png"), "--weights",
                                       "random", "-q"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert "bad_mask.png" in result.output


def test_corrupt_content_file_is_named(files, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = CliRunner().invoke(main, ["stylize", str(corrupt), "--style", str(files["style"]), "-o",
                                       str(tmp_path / "o.png"), "--weights", "random", "-q"])
    assert result.exit_code == 1 and "corrupt.png" in result.output and "Traceback" not in result.output


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "masked_gatys", "--help"], capture_output=True, text=True, check=True)
    assert "stylize" in out.stdout and "bench" in out.stdout


def test_help_does_not_import_torch():
    code = "import sys; from masked_gatys.cli import main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stylize_options_mirror_the_config_fields():
    from masked_gatys.cli.stylize import stylize_command

    names = {p.name for p in stylize_command.params}
    fields = {f.name for f in dataclasses.fields(StylizeConfig)}
    missing = fields - names - {"normalize"}  # normalize: Python API only
    assert not missing, f"config fields without a CLI option: {missing}"


def test_model_inference_single_image_and_folder(tmp_path):
    from masked_gatys.eyes import render_eye
    from masked_gatys.train import shipped_checkpoint

    folder, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    folder.mkdir()
    masks.mkdir()
    for i in range(2):
        eye = render_eye(yaw=5.0 * i, pitch=0.0, domain="real", size=(36, 60), seed=900 + i)
        save_image(eye.image, folder / f"eye{i}.png")
        save_image(eye.mask, masks / f"eye{i}_mask.png")
    ckpt = shipped_checkpoint("purifier")
    single = tmp_path / "single.png"
    result = CliRunner().invoke(main, ["stylize", str(folder / "eye0.png"), "--model", str(ckpt), "--mask",
                                       str(masks / "eye0_mask.png"), "-o", str(single), "-q"])
    assert result.exit_code == 0, result.output
    image = load_image(single)
    assert image.shape == (1, 3, 36, 60)
    assert not torch.allclose(image, load_image(folder / "eye0.png"), atol=0.02)  # the net changed it
    result = CliRunner().invoke(main, ["stylize", str(folder), "--model", str(ckpt), "--mask", str(masks), "-o",
                                       str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("eye?.png")) == ["eye0.png", "eye1.png"]
    # the same network gives the same image through both paths
    assert torch.allclose(load_image(out / "eye0.png"), image, atol=1 / 255)


def test_model_with_a_corrupt_checkpoint_is_one_line(files, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["stylize", str(files["content"]), "--model", str(bad), "-o",
                                       str(tmp_path / "o.png")])
    assert result.exit_code == 1 and "bad.pt" in result.output and "Traceback" not in result.output


def test_real_ctrl_c_writes_the_best_image_and_exits_130(files, tmp_path):
    import signal
    import time

    out = tmp_path / "o.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "masked_gatys", "stylize", str(files["content"]), "--style", str(files["style"]),
         "-o", str(out), "--weights", "random", "--iterations", "100000", "--max-layer", "relu2_2",
         "--save-every", "1", "-q", "--device", "cpu", "--stop-tol", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "o_0001.png").exists():  # the optimisation is under way
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no iteration within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "best image so far" in err and "Traceback" not in err
    assert load_image(out).shape == (1, 3, SIZE, SIZE)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_style_companion_mask_is_taken_when_no_style_mask_is_named(files, tmp_path, captured):
    """As purify does: ``STYLE_mask.png`` beside the style is its mask when a content mask is in use."""
    companion = files["style"].with_name("style_mask.png")  # the fixture's style mask is this companion
    assert companion == files["style_mask"]
    result = CliRunner().invoke(main, ["stylize", str(files["content"]), "--style", str(files["style"]),
                                       "--mask", str(files["mask"]), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 0, result.output
    assert Path(captured["style_mask"]) == companion
    assert "style mask:" in result.output and "beside the style" in result.output
    # no content mask, or --mask none: no style mask either (a style mask alone is refused)
    for extra in ([], ["--mask", "none", "--preset", "gatys"]):
        result = _invoke(["stylize", str(files["content"]), "--style", str(files["style"]), *extra,
                          "-o", str(tmp_path / "p.png"), "-q"])
        assert result.exit_code == 0, result.output
        assert captured["style_mask"] is None
    # a named --style-mask wins
    other = tmp_path / "other_mask.png"
    other.write_bytes(files["style_mask"].read_bytes())
    result = _invoke(["stylize", str(files["content"]), "--style", str(files["style"]), "--mask", str(files["mask"]),
                      "--style-mask", str(other), "-o", str(tmp_path / "q.png"), "-q"])
    assert result.exit_code == 0, result.output
    assert Path(captured["style_mask"]) == other
