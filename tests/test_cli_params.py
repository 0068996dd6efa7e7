"""The command line's sizes and lists are parsed by one set of click types (cli/_common.py): the
same message and the same rules in every command."""

import pytest
from click.testing import CliRunner

from masked_gatys.cli import main


def _usage_error(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output  # click's usage error: nothing ran
    return result.output


@pytest.mark.parametrize("args", [
    ["render-eyes", "OUT", "--size", "36by60"],
    ["train", "--size", "64by96", "-o", "x.pt"],
    ["train", "--sizes", "64x96,64by96", "-o", "x.pt"],
    ["gaze", "--size", "36by60"],
])
def test_a_size_that_is_not_hxw_gets_one_message_everywhere(args):
    assert "give HEIGHTxWIDTH (HxW), e.g. 64x96" in _usage_error(args)


@pytest.mark.parametrize(("args", "least"), [
    (["render-eyes", "OUT", "--size", "8x8"], 16),
    (["demo", "--size", "15x72"], 16),
    (["gaze", "--size", "19x60"], 20),
    (["train", "--size", "0x96", "-o", "x.pt"], 1),
    (["train", "--sizes", "64x96,0x1", "-o", "x.pt"], 1),
])
def test_a_size_below_its_minimum_names_the_minimum(args, least):
    assert f"each side at least {least} px ({least}x{least})" in _usage_error(args)


@pytest.mark.parametrize(("args", "said"), [
    (["stylize", "c.png", "--style", "s.png", "--style-weights", "1,x"], "give numbers separated by commas"),
    (["stylize", "c.png", "--style", "s.png", "--scale-iterations", "100,1.5"], "give whole numbers separated"),
    (["bench", "--sizes", "256,x"], "give whole numbers separated by commas"),
    (["bench", "--sizes", "256,8"], "each at least 16"),
    (["bench", "--nets", "johnson,,purifier"], "empty entry in 'johnson,,purifier'"),
    (["stylize", "c.png", "--style", "s.png", "--style-layers", "relu1_1,"], "empty entry in 'relu1_1,'"),
    (["gaze", "--estimators", ","], "empty entry"),
])
def test_lists_are_parsed_alike(args, said):
    assert said in _usage_error(args)


def test_good_values_reach_the_command():
    from masked_gatys.cli._common import CommaList, Size

    assert CommaList(Size(min=1)).convert("64x96, 32X48", None, None) == ((64, 96), (32, 48))
    assert CommaList().convert(" knn ,svr", None, None) == ("knn", "svr")
    assert Size(min=20).convert((36, 60), None, None) == (36, 60)  # a default already converted
