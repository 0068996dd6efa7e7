"""The package's own import surface: lazy names, and no submodule shadowing a function."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", [
    "import masked_gatys.stylize",
    "from masked_gatys.stylize import prepare",
    pytest.param("import masked_gatys.cli.stylize", marks=pytest.mark.slow),
    pytest.param("pass", marks=pytest.mark.slow),
])
def test_stylize_is_the_function_whatever_was_imported_before(first):
    code = (f"{first}\nimport inspect\nfrom masked_gatys import stylize\n"
            "import masked_gatys\n"
            "print(inspect.isfunction(stylize), stylize is masked_gatys.stylize, stylize.__name__)\n"
            "from masked_gatys.stylize import StylizeConfig, stylize as s2\nprint(s2 is stylize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "stylize", "True"]


def test_the_stylize_module_is_still_importable():
    import importlib

    module = importlib.import_module("masked_gatys.stylize")
    assert module.__name__ == "masked_gatys.stylize" and callable(module.prepare)
