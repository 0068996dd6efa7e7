"""``mask="auto"`` / ``--mask auto|none|PATH``: the eye-part segmenter makes the content's masks."""

from __future__ import annotations

import importlib

import pytest
import torch
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.errors import MaskError
from masked_gatys.eyes.render import render_eye
from masked_gatys.eyes.segment import SegNet, Segmenter, segment
from masked_gatys.image import load_image, read_metadata, save_image
from masked_gatys.stylize import StylizeConfig, content_masks, stylize
from tests.test_stylize import _run  # stylize with its warnings silenced

H, W = 32, 32
STYLIZE = importlib.import_module("masked_gatys.stylize")
STYLIZE_MASKS = importlib.import_module("masked_gatys.stylize_masks")  # where the content mask is decided


class _Fixed(SegNet):
    """A "network" whose logits are given (at its 36x60 working size): iris where ``iris``,
    pupil where ``pupil``, sclera beside the iris, else skin."""

    def __init__(self, iris: torch.Tensor, pupil: torch.Tensor | None = None) -> None:
        super().__init__(width=1)
        self.iris, self.pupil = iris.float(), (pupil if pupil is not None else torch.zeros_like(iris)).float()

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 4, *x.shape[-2:])
        logits[:, 0] = 1.0
        logits[:, 1, 10:26, 10:50] = 1.5
        logits[:, 2] = 2.0 * self.iris
        logits[:, 3] = 3.0 * self.pupil
        return logits


def _segmenter(iris: bool = True) -> Segmenter:
    region = torch.zeros(36, 60)
    pupil = torch.zeros(36, 60)
    if iris:
        region[10:26, 20:40] = 1
        pupil[15:21, 27:33] = 1
    return Segmenter(_Fixed(region, pupil))


def _images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, H, W, generator=g), torch.rand(1, 3, H, W, generator=g)


def _config(**kw) -> StylizeConfig:
    base = dict(weights="random", iterations=2, max_layer="relu2_1", device="cpu", subject="general")
    base.update(kw)
    return StylizeConfig(**base)


def test_auto_uses_the_segmenters_attention_mask():
    content, style = _images()
    seg = _segmenter()
    labels = segment(content, model=seg)
    assert 0 < int((labels >= 2).sum()) < H * W  # the fixed network's iris, at the content's size
    auto = _run(content, style, mask="auto", config=_config(), segmenter=seg)
    style_mask = (segment(style, model=seg) >= 2).float()[:, None]  # the style eye's, by the same segmenter
    given = _run(content, style, mask=(labels >= 2).float()[:, None], style_mask=style_mask, config=_config())
    assert auto.mask_source == "segmenter" and given.mask_source == "given"
    assert torch.equal(auto.labels, labels)
    assert auto.objective.preset == "masked" and any(k.endswith("@attention") for k in auto.terms)
    assert torch.equal(auto.image, given.image) and auto.total == given.total
    assert auto.to_dict()["mask"] == {"source": "segmenter", "segmenter": "given"}


def test_auto_with_parts_uses_the_part_labels():
    content, style = _images()
    seg = _segmenter()
    labels = segment(content, model=seg)
    auto = _run(content, style, mask="auto", config=_config(mask_mode="parts", subject="eye"), segmenter=seg)
    given = _run(content, style, mask=labels, style_mask=segment(style, model=seg),
                 config=_config(mask_mode="parts", subject="eye"))
    assert auto.objective.preset == "masked-eye"
    assert any(k.endswith("@pupil") for k in auto.terms) and any(k.endswith("@sclera") or k.endswith("@skin")
                                                                  for k in auto.terms)
    assert torch.equal(auto.image, given.image) and auto.total == given.total


def test_auto_segments_the_style_eye_too_and_keeps_the_whole_style_where_it_finds_no_iris(monkeypatch):
    """Without a style mask, the style eye's regions are the segmenter's (each region matched
    with the style's own iris, pupil, ...), not the whole style image; a style in which it finds
    no iris (not an eye) is the whole image's target, as before, with the warning."""
    content, _ = _images()
    style = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(1))
    seg = _segmenter()
    with_style = _run(content, style, mask="auto", config=_config(), segmenter=seg)
    explicit = _run(content, style, mask="auto", style_mask=(segment(style, model=seg) >= 2).float()[:, None],
                    config=_config(), segmenter=seg)
    assert torch.equal(with_style.image, explicit.image)
    real_segment = STYLIZE_MASKS._segment

    def no_iris_in_the_style(image, segmenter):  # the style (24x40) shows no iris: not an eye
        labels = real_segment(image, segmenter)
        return labels if tuple(image.shape[-2:]) == (H, W) else torch.zeros_like(labels)

    monkeypatch.setattr(STYLIZE_MASKS, "_segment", no_iris_in_the_style)
    with pytest.warns(UserWarning, match="no style mask: the whole style image"):
        whole = stylize(content, style, mask="auto", config=_config(), segmenter=seg)
    assert not torch.equal(whole.image, with_style.image)


def test_an_eye_without_an_iris_is_a_one_line_error():
    content, style = _images()
    with pytest.raises(MaskError, match=r"the segmenter finds no iris in the content image \(a closed eye\?\); "
                                        r"give --mask PATH or --mask none"):
        _run(content, style, mask="auto", config=_config(), segmenter=_segmenter(iris=False))


def test_mask_none_gives_no_mask_and_refuses_a_preset_that_needs_one():
    content, style = _images()
    result = _run(content, style, mask="none", config=_config())
    assert result.objective.preset == "gatys" and result.mask_source == "none" and result.labels is None
    for preset in ("masked", "masked-eye"):
        with pytest.raises(MaskError, match=f"the {preset} preset needs a mask"):
            _run(content, style, mask="none", config=_config(preset=preset))


def test_no_mask_keeps_a_general_image_as_it_was(monkeypatch):
    content, style = _images()

    def no_segmenter(*a, **k):
        raise AssertionError("the segmenter ran for a general image")

    monkeypatch.setattr(STYLIZE_MASKS, "_segment", no_segmenter)
    for cfg in (_config(), _config(subject="auto", preset="gatys")):
        result = _run(content, style, config=cfg)
        assert result.objective.preset == "gatys" and result.mask_source == "none"


def test_no_mask_means_auto_where_the_preset_needs_a_mask():
    content, style = _images()
    result = _run(content, style, config=_config(preset="masked"), segmenter=_segmenter())
    assert result.mask_source == "segmenter" and result.objective.preset == "masked"
    with pytest.raises(MaskError, match="masked preset needs a binary mask .* finds no iris"):
        _run(content, style, config=_config(preset="masked"), segmenter=_segmenter(iris=False))


def test_no_mask_on_an_eye_means_auto_with_the_shipped_segmenter():
    eye = render_eye(yaw=5.0, pitch=0.0, domain="real", size=(36, 60), seed=0)
    cfg = StylizeConfig(subject="auto")
    made, source, labels = content_masks(eye.image, None, cfg)
    assert source == "segmenter" and made.shape == (1, 1, 36, 60)
    truth = eye.binary_mask[0, 0] > 0.5
    found = made[0, 0] > 0.5
    assert (truth & found).sum() / (truth | found).sum() > 0.8  # the segmenter's iris is the eye's
    noise = torch.rand(1, 3, 36, 60, generator=torch.Generator().manual_seed(3))
    assert content_masks(noise, None, cfg) == (None, "none", None)  # not an eye: as before
    given = torch.ones(1, 1, 36, 60)
    assert content_masks(eye.image, given, cfg)[1] == "given"


@pytest.fixture()
def eye_files(tmp_path):
    eye = render_eye(yaw=5.0, pitch=0.0, domain="real", size=(36, 60), seed=0)
    style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(36, 60), seed=2)
    paths = {"eye": tmp_path / "eye.png", "style": tmp_path / "unity.png", "flat": tmp_path / "flat.png",
             "mask": tmp_path / "given_mask.png"}
    save_image(eye.image, paths["eye"])
    save_image(style.image, paths["style"])
    save_image(torch.full((1, 3, 36, 60), 0.5), paths["flat"])
    save_image(eye.binary_mask, paths["mask"])
    return paths


_FAST = ["--weights", "random", "--iterations", "2", "--max-layer", "relu2_1", "--device", "cpu", "-q"]


def _stylize(*args):
    return CliRunner().invoke(main, ["stylize", *map(str, args), *_FAST])


@pytest.mark.parametrize("mask", [["--mask", "auto"], []])
def test_cli_auto_writes_the_companions_beside_the_output_with_one_notice(eye_files, tmp_path, mask):
    out = tmp_path / "out" / "purified.png"
    result = _stylize(eye_files["eye"], "--style", eye_files["style"], *mask, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["purified.png", "purified_labels.png",
                                                            "purified_mask.png"]
    notices = [line for line in result.output.splitlines() if "segmenter" in line]
    assert len(notices) == 1 and str(out.parent / "purified_mask.png") in notices[0]
    labels = segment(load_image(eye_files["eye"]))[0]
    written = load_image(out.parent / "purified_mask.png")[0, 0] > 0.5
    assert torch.equal(written, labels >= 2)
    assert read_metadata(out)["mask"]["source"] == "segmenter"


def test_cli_given_mask_and_none_write_no_companions(eye_files, tmp_path):
    for args in (["--mask", eye_files["mask"]], ["--mask", "none"]):
        out = tmp_path / "o.png"
        result = _stylize(eye_files["eye"], "--style", eye_files["style"], *args, "-o", out)
        assert result.exit_code == 0, result.output
        assert "segmenter" not in result.output
        assert not (tmp_path / "o_labels.png").exists() and not (tmp_path / "o_mask.png").exists()
        assert read_metadata(out)["mask"]["source"] == ("given" if args[1] != "none" else "none")


@pytest.mark.parametrize("case, message", [
    ("closed", "the segmenter finds no iris in {flat} (a closed eye?); give --mask PATH or --mask none"),
    ("none_masked", "the masked preset needs a mask"),
    ("over_input", "would overwrite the input"),
])
def test_cli_errors_are_one_line(eye_files, tmp_path, case, message):
    args = {
        "closed": [eye_files["flat"], "--style", eye_files["style"], "--mask", "auto", "-o", tmp_path / "o.png"],
        "none_masked": [eye_files["eye"], "--style", eye_files["style"], "--mask", "none", "--preset", "masked",
                        "-o", tmp_path / "o.png"],
        # the companion o_mask.png would replace the style image
        "over_input": [eye_files["eye"], "--style", tmp_path / "o_mask.png", "--mask", "auto", "-o",
                       tmp_path / "o.png"],
    }[case]
    if case == "over_input":
        save_image(torch.rand(1, 3, 36, 60), tmp_path / "o_mask.png")
    result = _stylize(*args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message.format(**eye_files) in lines[0]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("word", ["auto", "none"])
def test_cli_folder_with_model_passes_the_word_to_purify(eye_files, tmp_path, monkeypatch, word):
    purify_module = importlib.import_module("masked_gatys.purify")
    seen = {}

    def fake_purify(source, out, *, config):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(purify_module, "purify", fake_purify)
    folder = tmp_path / "eyes"
    folder.mkdir()
    save_image(load_image(eye_files["eye"]), folder / "a.png")
    result = CliRunner().invoke(main, ["stylize", str(folder), "--model", "purifier", "--mask", word,
                                       "-o", str(tmp_path / "purified"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert seen["config"].mask == word


def test_no_mask_with_subject_eye_trusts_the_segmenter_alone():
    noise = torch.rand(1, 3, 36, 60, generator=torch.Generator().manual_seed(3))
    made, source, labels = content_masks(noise, None, StylizeConfig(subject="eye"), segmenter=_segmenter())
    assert source == "segmenter" and torch.equal(made[0, 0] > 0.5, labels[0] >= 2)
    # subject auto asks the pupil detector too: noise is no eye, whatever the segmenter says
    assert content_masks(noise, None, StylizeConfig(), segmenter=_segmenter())[1] == "none"
    # an eye whose iris the segmenter misses runs without a mask, as before
    assert content_masks(noise, None, StylizeConfig(subject="eye"), segmenter=_segmenter(iris=False))[1] == "none"


def test_a_large_eye_is_told_on_a_small_copy_and_masked_at_its_own_size():
    eye = render_eye(yaw=5.0, pitch=0.0, domain="real", size=(180, 300), seed=0)
    made, source, labels = content_masks(eye.image, None, StylizeConfig())
    assert source == "segmenter" and made.shape == (1, 1, 180, 300) and labels.shape == (1, 180, 300)


def test_auto_segments_each_style_eye_once(monkeypatch):
    """The style's masks and masked-eye's pupil split come from one segmentation of the style."""
    content, _ = _images()
    style = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(1))
    real_segment, calls = STYLIZE_MASKS._segment, []

    def counting(image, segmenter):
        calls.append(tuple(image.shape[-2:]))
        return real_segment(image, segmenter)

    monkeypatch.setattr(STYLIZE_MASKS, "_segment", counting)
    result = _run(content, style, mask="auto", config=_config(preset="masked-eye", subject="eye"),
                  segmenter=_segmenter())
    assert any(k.endswith("@pupil") for k in result.terms)
    assert calls.count((24, 40)) == 1, calls
