"""Hostile but realistic command lines (issue 11): every error one line with the README's exit
code, nothing lost or overwritten, signals, defaults and help a new user can trust."""

from __future__ import annotations

import importlib
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
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


# --- item 5: click's usage errors are one line too (exit 2, as the README states) ---------------

@pytest.mark.parametrize("args", [
    ["stylize", "c.png", "--style", "s.png", "--size", "big"],
    ["stylize", "c.png", "--bogus"],
    ["render-eyes", "out", "--n", "0"],
    ["train", "--iterations", "-3", "-o", "x.pt"],
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


@pytest.mark.parametrize("command", [["render-eyes", "out"], ["train", "-o", "x.pt"]])
def test_seeds_beyond_64_bits_are_refused_everywhere(command):
    line = _one_line_error(CliRunner().invoke(main, [*command, "--seed", str(2**64)]), 2)
    assert "--seed" in line and "range" in line


def test_config_refuses_a_seed_beyond_64_bits():
    from masked_gatys.stylize import StylizeConfig

    with pytest.raises(ValueError, match="seed"):
        StylizeConfig(seed=2**64)
