"""Grey in, grey out (issue 22 item 2): grey inputs are styled on luminance and written grey."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from masked_gatys.cli import main
from masked_gatys.colour import is_grey, keeps_grey, luminance
from masked_gatys.eyes import render_eye
from masked_gatys.image import load_image, save_image
from masked_gatys.purify import PurifyConfig, purify
from masked_gatys.stylize import StylizeConfig, stylize

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (24, 40)


def _chroma(image: torch.Tensor) -> float:
    """Mean |R-G| + |G-B| (0 for a grey image)."""
    if image.shape[1] == 1:
        return 0.0
    return float(((image[:, 0] - image[:, 1]).abs() + (image[:, 1] - image[:, 2]).abs()).mean())


def _eyes(folder, n, *, grey=True):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eye = render_eye(yaw=8.0 * i - 8, pitch=0.0, domain="real", size=SIZE, seed=i)
        image = luminance(eye.image) if grey else eye.image
        save_image(image, folder / f"{i:04d}.png")  # grey: a one-channel (mode L) PNG
        save_image(eye.binary_mask, folder / f"{i:04d}_mask.png")
    return folder


def test_is_grey_within_one_level_and_keeps_grey_by_default():
    x = torch.rand(1, 1, 5, 5).expand(1, 3, 5, 5).clone()
    x[:, 1] += 0.9 / 255
    assert is_grey(x) and not is_grey(x + torch.tensor([0.0, 0.0, 2.0 / 255]).view(1, 3, 1, 1))
    assert not is_grey(torch.rand(1, 3, 0, 4))  # empty: left to the size checks (no reduction error)
    assert keeps_grey(None, x) and keeps_grey("keep", x) and not keeps_grey("style", x)
    with pytest.raises(ValueError, match="keep or style"):
        keeps_grey("grey", x)
    with pytest.raises(ValueError, match="keep or style"):
        StylizeConfig(colour="grey")
    with pytest.raises(ValueError, match="keep or style"):
        PurifyConfig(colour="grey")


@pytest.mark.parametrize("bits", [8, 16])
def test_save_image_writes_one_channel_pngs(tmp_path, bits):
    grey = torch.linspace(0, 1, 12).reshape(1, 1, 3, 4)
    save_image(grey, tmp_path / "g.png", bits=bits)
    assert Image.open(tmp_path / "g.png").mode == ("L" if bits == 8 else "I;16")
    back = load_image(tmp_path / "g.png")
    assert is_grey(back) and torch.allclose(back[:, :1], grey, atol=1.0 / 255)


def _stylize(content, colour=None):
    g = torch.Generator().manual_seed(1)
    style = torch.rand(1, 3, 24, 24, generator=g)
    cfg = StylizeConfig(weights="random", iterations=4, max_layer="relu2_1", scales=1, colour=colour)
    return stylize(content, style, config=cfg).image


def test_stylize_keeps_a_grey_content_grey_and_style_gives_colour():
    content = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0)).expand(1, 3, 24, 24)
    assert _chroma(_stylize(content)) < 1e-6
    assert _chroma(_stylize(content, "style")) > 0.02
    rgb = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_stylize(rgb), _stylize(rgb, "style"))  # RGB inputs: unchanged by default


def test_stylize_cli_writes_a_grey_png_for_a_grey_content(tmp_path):
    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(1, 1, 24, 24, generator=g), tmp_path / "c.png")
    save_image(torch.rand(1, 3, 24, 24, generator=g), tmp_path / "s.png")
    common = ["--style", str(tmp_path / "s.png"), "--weights", "random", "--iterations", "3",
              "--max-layer", "relu2_1", "--device", "cpu", "-q"]
    for colour, mode in ((None, "L"), ("style", "RGB")):
        out = tmp_path / f"out_{colour}.png"
        args = ["stylize", str(tmp_path / "c.png"), "-o", str(out), *common]
        result = CliRunner().invoke(main, args + ([] if colour is None else ["--colour", colour]),
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert Image.open(out).mode == mode
    assert _chroma(load_image(tmp_path / "out_style.png")) > 0.02


def test_purify_optimizer_keeps_grey_eyes_grey(tmp_path):
    src = _eyes(tmp_path / "src", 2)
    cfg = dict(method="masked", style="rendered", layout="unity", weights="random", max_layer="relu2_1",
               iterations=3, pupil_shift=False)
    purify(src, tmp_path / "keep", config=PurifyConfig(**cfg))
    purify(src, tmp_path / "style", config=PurifyConfig(colour="style", **cfg))
    for i in range(2):
        assert Image.open(tmp_path / "keep" / f"{i:04d}.png").mode == "L"
        assert Image.open(tmp_path / "style" / f"{i:04d}.png").mode == "RGB"
    assert _chroma(load_image(tmp_path / "style" / "0000.png")) > 0.01


def test_purify_with_the_shipped_purifier_keeps_grey_eyes_grey_and_rgb_eyes_rgb(tmp_path):
    purify(_eyes(tmp_path / "grey", 2), tmp_path / "g", config=PurifyConfig(method="purifier", pupil_shift=False))
    purify(_eyes(tmp_path / "rgb", 1, grey=False), tmp_path / "c",
           config=PurifyConfig(method="purifier", pupil_shift=False))
    assert Image.open(tmp_path / "g" / "0000.png").mode == "L"
    assert Image.open(tmp_path / "c" / "0000.png").mode == "RGB"
    purify(tmp_path / "grey", tmp_path / "s", config=PurifyConfig(method="purifier", pupil_shift=False,
                                                                   colour="style"))
    assert _chroma(load_image(tmp_path / "s" / "0000.png")) > 0.01


def test_stylize_cli_model_keeps_a_grey_content_grey(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 1)
    out = tmp_path / "o.png"
    result = CliRunner().invoke(main, ["stylize", str(src / "0000.png"), "--model", tiny_net, "-o", str(out),
                                       "--device", "cpu", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert Image.open(out).mode == "L"


def test_colour_is_in_the_settings_only_when_named():
    from masked_gatys.purify import _settings

    assert "colour" not in _settings(PurifyConfig(method="purifier"), {})  # old output folders resume
    assert _settings(PurifyConfig(method="purifier", colour="style"), {})["colour"] == "style"
