"""Hostile but realistic command lines (issue 11): every error one line with the README's exit
code, nothing lost or overwritten, signals, defaults and help a new user can trust."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.image import save_image

SIZE = 32


@pytest.fixture()
def files(tmp_path):
    g = torch.Generator().manual_seed(0)
    paths = {name: tmp_path / f"{name}.png" for name in ("content", "style", "mask", "style_mask")}
    save_image(torch.rand(1, 3, SIZE, SIZE, generator=g), paths["content"])
    save_image(torch.rand(1, 3, SIZE, SIZE, generator=g), paths["style"])
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 8:24, 8:24] = 1
    save_image(mask, paths["mask"])
    save_image(mask, paths["style_mask"])
    return paths


@pytest.fixture()
def no_work(monkeypatch):
    """stylize, mocked: records whether it was reached."""
    calls = {}

    def fake(*args, **kwargs):
        calls["called"] = True
        raise AssertionError("the heavy work was reached")

    monkeypatch.setattr(importlib.import_module("masked_gatys.stylize"), "stylize", fake)
    return calls


def _one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output  # warnings come on their own lines
    assert "Traceback" not in result.output
    return lines[0]


# --- item 5: click's usage errors are one line too (exit 2, as the README states) ---------------

@pytest.mark.parametrize("args", [
    ["stylize", "c.png", "--style", "s.png", "--size", "big"],
    ["stylize", "c.png", "--bogus"],
    ["render-eyes", "never-written", "--n", "0"],
    ["train", "--iterations", "-3", "-o", "never-written.pt"],
    ["bench", "--sizes", "8"],
    ["nosuchcommand"],
])
def test_usage_errors_are_one_line_with_exit_2(args):
    line = _one_line_error(CliRunner().invoke(main, args), 2)
    assert "--help" in line  # where to look next, in the same line


def test_readme_states_the_usage_error_exit_code():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "exit code 2" in readme


# --- item 10: ranges ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, word", [
    (["--save-every", "-1"], "--save-every"),
    (["--seed", str(2**64)], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--iterations", "-1"], "--iterations"),
])
def test_stylize_out_of_range_values_are_refused(files, tmp_path, no_work, args, word):
    result = CliRunner().invoke(main, ["stylize", str(files["content"]), "--style", str(files["style"]),
                                       "-o", str(tmp_path / "o.png"), *args])
    line = _one_line_error(result, 2)
    assert word in line and "range" in line
    assert not no_work


@pytest.mark.parametrize("command", [["render-eyes", "{tmp}/out"], ["train", "-o", "{tmp}/x.pt"]])
def test_seeds_beyond_64_bits_are_refused_everywhere(command, tmp_path):
    command = [c.format(tmp=tmp_path) for c in command]
    line = _one_line_error(CliRunner().invoke(main, [*command, "--seed", str(2**64)]), 2)
    assert "--seed" in line and "range" in line


def test_config_refuses_a_seed_beyond_64_bits():
    from masked_gatys.stylize import StylizeConfig

    with pytest.raises(ValueError, match="seed"):
        StylizeConfig(seed=2**64)


# --- item 17: licence, help texts, units ----------------------------------------------------------

def test_licence_file_is_the_mit_licence_the_package_declares():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert (root / "LICENSE").read_text().startswith("MIT License")
    cfg = (root / "setup.cfg").read_text()
    assert "license = MIT" in cfg and "license_files = LICENSE" in cfg


def _commands():
    from masked_gatys.cli import _COMMANDS

    for name, (module, attr, _) in sorted(_COMMANDS.items()):
        try:
            yield name, getattr(importlib.import_module(module), attr)
        except ImportError:  # a command another developer has not finished
            continue


def test_help_texts_state_defaults_one_way():
    """Defaults are click's ``[default: ...]``, never also written into the help sentence."""
    bad = []
    for name, command in _commands():
        for param in command.params:
            text = re.sub(r"\s*\[default: [^\]]*\]$", "", getattr(param, "help", None) or "")  # click's form
            if "default" in text.lower():
                bad.append(f"{name} {param.opts[0]}: {text}")
    assert not bad, "\n".join(bad)


def test_stylize_help_explains_the_progress_bar_labels():
    from masked_gatys.cli.stylize import _short
    from masked_gatys.objective import preset

    text = " ".join(CliRunner().invoke(main, ["stylize", "--help"]).output.split())
    for phrase in ("c = content", "s = style", "3_1 = relu3_1", "a = attention region", "b = background", "tv"):
        assert phrase in text, phrase
    labels = {_short(t.name) for p in ("gatys", "masked") for t in preset(p).terms}
    assert labels <= {"tv"} | {lab for lab in labels if lab[0] in "cs" and lab[-1] in "0123456789ab"}


def test_quiet_does_what_its_help_says(files, tmp_path):
    help_text = " ".join(CliRunner().invoke(main, ["stylize", "--help"]).output.split())
    assert "-q, --quiet No progress bar and no closing 'wrote ...' line (warnings and errors still print)" \
        in help_text
    result = CliRunner().invoke(main, ["stylize", str(files["content"]), "--style", str(files["style"]), "-o",
                                       str(tmp_path / "o.png"), "--weights", "random", "--iterations", "2",
                                       "--max-layer", "relu1_2", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines), result.output


def test_bench_tables_write_milliseconds_as_ms():
    from masked_gatys.bench.report import _s

    assert (_s(0.0123), _s(4.5e-5), _s(2.5)) == ("12.3 ms", "45 us", "2.50")


def test_demo_help_names_every_file_it_writes_in_a_real_run(tmp_path, monkeypatch):
    """The one unmocked demo (tiny, random weights): it runs, and --help names what it wrote."""
    monkeypatch.delenv("MASKED_GATYS_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--size", "24x40", "--iterations", "1",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert {"sheet.png", "results.json", "gatys.png", "masked.png"} <= set(written)
    help_text = CliRunner().invoke(main, ["demo", "--help"]).output
    assert [name for name in written if name not in help_text] == []


# --- item 13: a missing extra is named before the work ----------------------------------------------

def test_bench_plot_without_matplotlib_fails_before_the_benchmark(tmp_path, monkeypatch):
    import masked_gatys.bench as bench_module

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setattr(bench_module, "run_bench", lambda *a, **k: pytest.fail("the benchmark ran"))
    result = CliRunner().invoke(main, ["bench", "--quick", "--plot", str(tmp_path / "b.png"), "--device", "cpu"])
    line = _one_line_error(result, 1)
    assert "masked-gatys[bench]" in line and not (tmp_path / "b.png").exists()


def test_readme_install_line_brings_what_its_commands_need():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    install = next(line for line in readme.splitlines() if "pip install -e" in line)
    # bench --plot and gaze's plot (matplotlib) and gaze's SVR and random forest (scikit-learn) are
    # among the README's commands: the install line brings what the Makefile does
    assert ".[dev,bench,gaze]" in install


# --- item 3: signals --------------------------------------------------------------------------------

def _long_run(files, out, *extra):
    return [sys.executable, "-c", SLOW_SAVE, "stylize", str(files["content"]), "--style", str(files["style"]),
            "-o", str(out), "--weights", "random", "--iterations", "100000", "--max-layer", "relu1_2",
            "--save-every", "1", "-q", "--device", "cpu", "--stop-tol", "0", *extra]


# The CLI with a save_image that, for the final output, leaves a marker and takes a second:
# a window in which a second signal arrives while the best image is being written.
SLOW_SAVE = """
import sys, time, pathlib
import masked_gatys.image as image
original = image.save_image
def slow(img, path, *a, **k):
    path = pathlib.Path(path)
    if not path.stem[-4:].isdigit():
        (path.parent / "saving").touch()
        time.sleep(1.0)
    return original(img, path, *a, **k)
image.save_image = slow
from masked_gatys.cli import main
main(sys.argv[1:], prog_name="masked-gatys")
"""


def _wait_for(path, proc, seconds=120.0):
    import time

    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} did not appear within {seconds} s"
        time.sleep(0.02)


# The CLI with an atomic write whose first temporary file, once made, takes a second to be
# handed back: a signal in that window arrives before the write itself has started.
SLOW_CREATE = """
import sys, time, pathlib
import masked_gatys.files as files
real = files._create
def slow(path):
    fd = real(path)
    marker = pathlib.Path(path).parent / "mkstemp"
    if not marker.exists():
        marker.touch()
        time.sleep(1.0)
    return fd
files._create = slow
from masked_gatys.cli import main
main(sys.argv[1:], prog_name="masked-gatys")
"""


def test_a_signal_while_an_intermediate_image_is_written_leaves_no_temporary_file(files, tmp_path):
    import signal

    from masked_gatys.image import load_image

    out = tmp_path / "o.png"
    cmd = [sys.executable, "-c", SLOW_CREATE, *_long_run(files, out)[3:]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(tmp_path / "mkstemp", proc)  # inside the first --save-every write
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert load_image(out).shape == (1, 3, SIZE, SIZE) and (tmp_path / "o_0001.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("signum, code", [("SIGTERM", 143),
                                          pytest.param("SIGINT", 130, marks=pytest.mark.slow)])
def test_a_signal_during_the_run_writes_the_best_image_even_if_repeated_during_the_write(files, tmp_path,
                                                                                           signum, code):
    import signal

    from masked_gatys.image import load_image

    out = tmp_path / "o.png"
    proc = subprocess.Popen(_long_run(files, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(tmp_path / "o_0001.png", proc)
        proc.send_signal(getattr(signal, signum))
        _wait_for(tmp_path / "saving", proc)
        proc.send_signal(signal.SIGINT)  # a second, impatient Ctrl-C while the image is written
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "best image so far" in err and "Traceback" not in err
    assert load_image(out).shape == (1, 3, SIZE, SIZE)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_signal_inside_a_deferred_block_waits_for_its_end():
    import os
    import signal

    from masked_gatys.cli._common import deferred_interrupts, handle_signals, was_interrupted

    done = []
    before = signal.getsignal(signal.SIGINT)
    with handle_signals():
        with pytest.raises(KeyboardInterrupt):
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("written")  # still runs: the signal waits
        assert done == ["written"] and was_interrupted()
        os.kill(os.getpid(), signal.SIGINT)  # a later one is not raised at all
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_ctrl_c_during_start_up_exits_130_not_aborted(monkeypatch):
    import click

    def interrupted(self, value, param, ctx):
        raise KeyboardInterrupt  # as if Ctrl-C landed while the options are read

    monkeypatch.setattr(click.IntRange, "convert", interrupted)
    result = CliRunner().invoke(main, ["stylize", "c.png", "--style", "s.png"])
    assert result.exit_code == 130 and "Aborted" not in result.output and "interrupted" in result.output


# --- items 1, 2: no output replaces an input, another output, or a non-regular file --------------

def _stylize(files, *args):
    return CliRunner().invoke(main, ["stylize", str(files["content"]), "--style", str(files["style"]), *args])


def test_save_every_file_named_like_an_input_is_refused(files, tmp_path, no_work):
    style = tmp_path / "o_0002.png"
    files["style"].rename(style)
    files["style"] = style
    before = style.read_bytes()
    line = _one_line_error(_stylize(files, "-o", str(tmp_path / "o.png"), "--save-every", "2",
                                    "--iterations", "4"), 1)
    assert "--save-every" in line and "o_0002.png" in line and "--style" in line
    assert style.read_bytes() == before and not no_work


def test_init_file_as_output_is_refused(files, tmp_path, no_work):
    line = _one_line_error(_stylize(files, "--init", str(files["mask"]), "-o", str(files["mask"])), 1)
    assert "--init" in line and str(files["mask"]) in line and not no_work


def test_log_equal_to_output_is_refused(files, tmp_path, no_work):
    out = tmp_path / "o.png"
    line = _one_line_error(_stylize(files, "-o", str(out), "--log", str(out)), 1)
    assert "-o" in line and "--log" in line and "same file" in line and not no_work


def test_style_as_output_is_refused_naming_both(files, tmp_path, no_work):
    line = _one_line_error(_stylize(files, "-o", str(files["style"])), 1)
    assert "would overwrite the input" in line and "--style" in line and not no_work


@pytest.mark.parametrize("target", ["fifo", "/dev/null", "/dev/full"])
def test_an_existing_output_that_is_not_a_regular_file_is_refused(files, tmp_path, no_work, target):
    import os
    import stat

    if target == "fifo":
        target = str(tmp_path / "o.png")
        os.mkfifo(target)
    elif not os.path.exists(target):
        pytest.skip(f"no {target} here")
    line = _one_line_error(_stylize(files, "-o", target), 1)
    assert "not a regular file" in line and not no_work
    assert not stat.S_ISREG(os.stat(target).st_mode)  # still what it was


def test_atomic_write_refuses_to_replace_a_fifo(tmp_path):
    import os

    from masked_gatys.errors import OutputError
    from masked_gatys.files import write_json_atomic

    fifo = tmp_path / "log.json"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        write_json_atomic({"a": 1}, fifo)
    assert not fifo.is_file() and fifo.exists()


@pytest.fixture()
def folder_case(tmp_path):
    from masked_gatys.train import shipped_checkpoint

    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    g = torch.Generator().manual_seed(1)
    for name in ("a.png", "b.png"):
        save_image(torch.rand(1, 3, 24, 40, generator=g), images / name)
        mask = torch.zeros(1, 1, 24, 40)
        mask[..., 8:16, 16:24] = 1
        save_image(mask, masks / f"{Path(name).stem}_mask.png")
    return images, masks, shipped_checkpoint("purifier")


def test_folder_mode_refuses_the_mask_folder_as_output(folder_case):
    images, masks, ckpt = folder_case
    before = sorted(p.name for p in masks.iterdir())
    result = CliRunner().invoke(main, ["stylize", str(images), "--model", str(ckpt), "--mask", str(masks),
                                       "-o", str(masks), "-q"])
    line = _one_line_error(result, 1)
    assert "mask" in line and str(masks) in line
    assert sorted(p.name for p in masks.iterdir()) == before


def test_folder_mode_refuses_two_inputs_with_one_output(folder_case, tmp_path):
    images, masks, ckpt = folder_case
    save_image(torch.rand(1, 3, 24, 40), images / "a.jpg")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["stylize", str(images), "--model", str(ckpt), "--mask", str(masks),
                                       "-o", str(out), "-q"])
    line = _one_line_error(result, 1)
    assert "a.jpg" in line and "a.png" in line
    assert not out.exists() or not list(out.iterdir())  # refused before any work


def test_bench_json_and_plot_on_one_file_are_refused(tmp_path, monkeypatch):
    import masked_gatys.bench as bench_module

    monkeypatch.setattr(bench_module, "run_bench", lambda *a, **k: pytest.fail("the benchmark ran"))
    same = str(tmp_path / "b.json")
    line = _one_line_error(CliRunner().invoke(main, ["bench", "--quick", "--json", same, "--plot", same,
                                                     "--device", "cpu"]), 1)
    assert "same file" in line


# --- item 4: render-eyes never mixes two sets -------------------------------------------------------

def test_render_eyes_into_a_non_empty_folder_refuses_or_replaces_the_set_with_force(tmp_path):
    import json

    out = tmp_path / "eyes"
    args = ["render-eyes", str(out), "--size", "24x40"]
    assert CliRunner().invoke(main, [*args, "--n", "3"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    line = _one_line_error(CliRunner().invoke(main, [*args, "--n", "2", "--seed", "5"]), 1)
    assert "not empty" in line and "--force" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    result = CliRunner().invoke(main, [*args, "--n", "2", "--seed", "5", "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["0000.png", "0000_labels.png", "0000_mask.png", "0001.png",
                                                      "0001_labels.png", "0001_mask.png", "truth.jsonl"]
    truth = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert [t["index"] for t in truth] == [0, 1]


def test_render_eyes_force_never_removes_files_it_did_not_write(tmp_path):
    out = tmp_path / "eyes"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = _one_line_error(CliRunner().invoke(main, ["render-eyes", str(out), "--n", "1", "--force"]), 1)
    assert "notes.txt" in line and (out / "notes.txt").read_text() == "mine"


# --- item 6: an image too small for a layer ----------------------------------------------------------

def test_an_image_too_small_for_a_layer_is_named_before_any_work(files, tmp_path, monkeypatch):
    import masked_gatys.encoder as encoder_module

    monkeypatch.setattr(encoder_module.VGGEncoder, "__init__", lambda *a, **k: pytest.fail("VGG was built"))
    wide = tmp_path / "wide.png"
    save_image(torch.rand(1, 3, 20, 32), wide)
    result = CliRunner().invoke(main, ["stylize", str(wide), "--style", str(files["style"]), "--size", "16",
                                       "--weights", "random", "--preset", "gatys", "-o", str(tmp_path / "o.png")])
    line = _one_line_error(result, 1)
    assert "image 10x16 vanishes at relu5_1; use --size >= 25 or --max-layer relu4_4" in line
    assert "Output size is too small" not in result.output


# --- items 7, 8: non-finite objectives and network outputs --------------------------------------------

def _nan_weights(path):
    g = torch.Generator().manual_seed(0)
    state = {"0.weight": torch.randn(64, 3, 3, 3, generator=g), "0.bias": torch.zeros(64),
             "2.weight": torch.full((64, 64, 3, 3), float("nan")), "2.bias": torch.zeros(64)}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("case, words", [
    ("nan_weights", ["not finite at the start", "non-finite terms", "weights file"]),
    ("huge_tv", ["not finite at the start", "tv x 1e+300", "weight too large"]),
])
def test_a_non_finite_start_is_explained_at_the_stylize_level(files, tmp_path, case, words):
    args = ["--weights", str(_nan_weights(tmp_path / "nan.pth")), "--max-layer", "relu1_2"] \
        if case == "nan_weights" else ["--weights", "random", "--max-layer", "relu1_2", "--tv-weight", "1e300"]
    result = _stylize(files, "-o", str(tmp_path / "o.png"), "--iterations", "3", "--device", "cpu", *args)
    line = _one_line_error(result, 1)
    for word in words:
        assert word in line, line
    assert "problems [0]" not in line and not (tmp_path / "o.png").exists()


def _johnson_checkpoint(path, *, nan=False):
    from masked_gatys import nets
    from masked_gatys.train import CHECKPOINT_FORMAT, save_checkpoint

    net = nets.build("johnson", width=2, blocks=1)
    state = net.state_dict()
    if nan:
        key = next(k for k in state if k.endswith("weight"))
        state[key] = torch.full_like(state[key], float("nan"))
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": state, "objective": {},
                           "weights": {}})
    return path


def test_a_network_that_outputs_nan_is_an_error_not_a_black_image(files, tmp_path):
    ckpt = _johnson_checkpoint(tmp_path / "nan.pt", nan=True)
    out = tmp_path / "o.png"
    line = _one_line_error(CliRunner().invoke(main, ["stylize", str(files["content"]), "--model", str(ckpt),
                                                     "-o", str(out), "--device", "cpu"]), 1)
    assert "NaN" in line and "weights" in line and not out.exists()


def test_a_nan_input_to_a_network_is_refused(tmp_path):
    from masked_gatys.errors import ImageError
    from masked_gatys.train import load_model

    model = load_model(_johnson_checkpoint(tmp_path / "ok.pt"))
    image = torch.rand(1, 3, 16, 16)
    image[0, 0, 0, 0] = float("nan")
    with pytest.raises(ImageError, match="NaN"):
        model(image)


# --- item 11: integer and out-of-range tensors --------------------------------------------------------

def test_uint8_tensors_are_scaled_by_stylize_and_by_networks(tmp_path):
    import warnings

    from masked_gatys.stylize import StylizeConfig, prepare
    from masked_gatys.train import load_model

    g = torch.Generator().manual_seed(0)
    as_float = torch.rand(1, 3, 16, 16, generator=g)
    as_uint8 = (as_float * 255).round().to(torch.uint8)
    cfg = StylizeConfig(weights="random", max_layer="relu1_2", device="cpu", iterations=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = prepare(as_uint8, as_uint8, config=cfg)
    assert torch.allclose(problem.content, as_uint8.float() / 255)
    model = load_model(_johnson_checkpoint(tmp_path / "ok.pt"))
    assert torch.allclose(model(as_uint8), model(as_uint8.float() / 255))


def test_other_integer_tensors_are_refused_with_a_clear_message():
    from masked_gatys.errors import ImageError
    from masked_gatys.stylize import StylizeConfig, prepare

    with pytest.raises(ImageError, match="int64 tensor: give float values in \\[0, 1\\]"):
        prepare(torch.zeros(1, 3, 16, 16, dtype=torch.int64), torch.rand(1, 3, 16, 16),
                config=StylizeConfig(weights="random", max_layer="relu1_2", device="cpu"))


def test_float_data_outside_0_1_warns(tmp_path):
    import numpy as np
    from PIL import Image

    from masked_gatys.image import as_unit_float, load_image

    with pytest.warns(UserWarning, match="outside"):
        assert float(as_unit_float(torch.full((1, 3, 4, 4), 200.0)).max()) == 1.0
    tiff = tmp_path / "f.tif"
    Image.fromarray(np.full((8, 8), 128.0, np.float32), mode="F").save(tiff)
    with pytest.warns(UserWarning, match="outside"):
        load_image(tiff)


def test_masks_given_to_a_network_are_clamped_as_stylize_clamps(tmp_path):
    from masked_gatys import nets
    from masked_gatys.train import apply_model

    net = nets.build("purifier", width=2)
    image = torch.rand(1, 3, 16, 16)
    mask = torch.rand(1, 1, 16, 16) * 3 - 1
    assert torch.allclose(apply_model(net, image, mask), apply_model(net, image, mask.clamp(0, 1)))


# --- item 9: train --resume with a damaged checkpoint ----------------------------------------------

@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    import warnings

    from masked_gatys.train import TrainConfig, train

    path = tmp_path_factory.mktemp("ckpt") / "net.pt"
    cfg = TrainConfig(net="johnson", width=2, blocks=1, render=2, val=1, size=(24, 32), iterations=1,
                      batch_size=2, weights="random", max_layer="relu1_2", output=str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(cfg)
    return path


@pytest.mark.parametrize("damage, words", [
    (lambda c: c.pop("step"), ["lacks 'step'"]),
    (lambda c: c.pop("optimizer"), ["no optimizer state"]),
    (lambda c: c["train_config"].update(iterations="many"), ["'iterations'", "int", "'many'"]),
    (lambda c: c["train_config"].update(size="big"), ["'size'"]),
    (lambda c: c["train_config"].update(lr=None), ["'lr'", "float"]),
    (lambda c: c.update(step="3"), ["'step'", "str"]),
])
def test_resume_from_a_damaged_checkpoint_is_one_line_naming_the_field(resumable, tmp_path, damage, words):
    checkpoint = torch.load(resumable, weights_only=True)
    damage(checkpoint)
    damaged = tmp_path / "damaged.pt"
    torch.save(checkpoint, damaged)
    result = CliRunner().invoke(main, ["train", "--resume", str(damaged), "--iterations", "2"])
    line = _one_line_error(result, 1)
    for word in words:
        assert word in line, line


# --- item 12: warnings are one line, and come before the run -------------------------------------------

def test_run_warnings_are_one_line_and_printed_before_the_optimisation(files, tmp_path):
    files["style_mask"].unlink()  # else stylize takes it as the style's companion mask: no "no style mask" warning
    result = _stylize(files, "-o", str(tmp_path / "o.jpg"), "--weights", "random", "--iterations", "2",
                      "--max-layer", "relu1_2", "--device", "cpu", "--mask", str(files["mask"]))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "UserWarning" not in out and "warnings.warn" not in out
    assert "Warning" not in out  # no "UserWarning: ..." with a source line
    assert any(line.startswith("warning: ") and "JPEG" in line for line in out.splitlines())
    bar = out.index("stylize:")
    assert out.index("warning: using random VGG weights") < bar  # before the optimisation
    assert out.index("warning: no style mask") < bar


def test_train_warnings_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["train", "--render", "2", "--val", "1", "--size", "24x32", "--iterations",
                                       "1", "--batch-size", "2", "--net", "johnson", "--width", "2", "--blocks",
                                       "1", "--weights", "random", "--max-layer", "relu1_2", "-o",
                                       str(tmp_path / "n.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "UserWarning" not in result.output and "warning: using random VGG weights" in result.output


# --- item 14: defaults a new user can trust ---------------------------------------------------------

def test_a_partial_weights_file_works_without_a_max_layer_flag(files, tmp_path):
    g = torch.Generator().manual_seed(0)
    partial = tmp_path / "partial.pth"  # conv1_1 and conv1_2 only
    torch.save({"0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1, "0.bias": torch.zeros(64),
                "2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05, "2.bias": torch.zeros(64)}, partial)
    result = _stylize(files, "-o", str(tmp_path / "o.png"), "--weights", str(partial), "--weights-format",
                      "torchvision", "--iterations", "1", "--device", "cpu", "--preset", "gatys")
    assert result.exit_code == 0, result.output


def test_default_weights_follow_one_rule(tmp_path, monkeypatch):
    from masked_gatys.eyes.demo import find_demo_weights
    from masked_gatys.encoder import default_weights, resolve_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("MASKED_GATYS_WEIGHTS", str(tmp_path / "w.pth"))
    assert default_weights()[0] == str(tmp_path / "w.pth") == find_demo_weights()[0]
    monkeypatch.delenv("MASKED_GATYS_WEIGHTS")
    assert default_weights()[0] == "random" == find_demo_weights()[0]
    with pytest.warns(UserWarning, match="RANDOM"):
        assert resolve_weights(None).state is None  # stylize, train and purify: the same rule, loudly
    cached = tmp_path / "hub" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert default_weights()[0] == "imagenet" and find_demo_weights()[0] == str(cached)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert readme.count("**The one rule for default weights and layers, for every command") == 1
    # and for the layers: max_layer "auto" in every command the rule names as following it
    from masked_gatys.bench import BenchConfig
    from masked_gatys.purify import PurifyConfig
    from masked_gatys.stylize import StylizeConfig
    from masked_gatys.train import TrainConfig

    assert {c().max_layer for c in (StylizeConfig, PurifyConfig, TrainConfig, BenchConfig)} == {"auto"}


def test_the_working_size_is_capped_at_512_unless_the_content_size_is_asked_for():
    from masked_gatys.stylize import StylizeConfig, _working_size

    assert _working_size((600, 1200), StylizeConfig().size) == (256, 512)
    assert _working_size((300, 400), StylizeConfig().size) == (300, 400)
    assert _working_size((600, 1200), 0) == (600, 1200)
    assert StylizeConfig().max_layer == "auto"
