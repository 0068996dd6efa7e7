"""Style eyes chosen per content eye (``masked_gatys.eyes.styles``) and paired styles in the
objective, stylize, purify and the gaze experiment."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.encoder import VGGEncoder, resolve_weights
from masked_gatys.errors import MaskedGatysError, ObjectiveError
from masked_gatys.eyes import render_eye
from masked_gatys.eyes.datasets import render_set
from masked_gatys.eyes.gaze import appearance_features
from masked_gatys.eyes.styles import StylePool
from masked_gatys.image import load_image, save_image
from masked_gatys.masks import Regions
from masked_gatys.objective import Objective, preset
from masked_gatys.purify import PurifyConfig, purify

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (24, 40)


def _folder(folder, n, *, domain, seed0=0, yaw=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eye = render_eye(yaw=(12.0 * i - 18) if yaw is None else yaw, pitch=0.0, domain=domain, size=SIZE,
                         seed=seed0 + i)
        save_image(eye.image, folder / f"{i:03d}.png")
        save_image(eye.binary_mask, folder / f"{i:03d}_mask.png")
    return folder


def test_nearest_is_the_brute_force_nearest_in_appearance_features():
    pool = StylePool.from_gaze_set(render_set(12, size=SIZE, seed=0))
    eyes = render_set(5, size=SIZE, seed=3, domain="real")
    a = appearance_features(eyes.images)
    b = appearance_features(pool.images)
    want = ((a[:, None] - b[None]) ** 2).sum(-1).argmin(1)
    assert pool.nearest(eyes.images).tolist() == want.tolist()
    top = pool.nearest(eyes.images, k=3)
    assert top.shape == (5, 3) and top[:, 0].tolist() == want.tolist()


def test_a_pool_eye_finds_itself_whatever_its_exposure():
    s = render_set(8, size=SIZE, seed=0)
    pool = StylePool.from_gaze_set(s)
    brighter = (s.images * 0.6 + 0.3).clamp(0, 1)  # exposure and contrast do not count
    assert pool.nearest(brighter).tolist() == list(range(8))


def test_a_pool_folder_reads_companion_masks_and_manifests(tmp_path):
    folder = _folder(tmp_path / "pool", 3, domain="synthetic")
    pool = StylePool.from_folder(folder)
    assert len(pool) == 3 and pool.names == ("000.png", "001.png", "002.png")
    written = render_set(4, size=SIZE, seed=1)
    written.write(tmp_path / "written")
    assert len(StylePool.from_folder(tmp_path / "written")) == 4
    assert StylePool.from_folder(tmp_path / "written").fingerprint == StylePool.from_gaze_set(written).fingerprint
    (folder / "001_mask.png").unlink()
    with pytest.raises(MaskedGatysError, match="needs its mask"):
        StylePool.from_folder(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskedGatysError, match="no style eyes"):
        StylePool.from_folder(tmp_path / "empty")
    with pytest.raises(MaskedGatysError, match="no such style pool"):
        StylePool.from_folder(tmp_path / "missing")


def _objective(styles, style_regions, cfg):
    weights = resolve_weights("random", seed=0)
    enc = VGGEncoder(cfg.layers, weights)
    return Objective(enc, cfg, style=styles, style_regions=style_regions)


def test_paired_styles_give_each_content_image_its_own_target():
    cfg = preset("masked", max_layer="relu2_1")
    eyes = render_set(3, size=SIZE, seed=2, domain="real")
    styles = render_set(3, size=SIZE, seed=7)
    x = torch.rand(3, 3, *SIZE)
    paired = _objective(styles.images, Regions.from_binary(styles.masks), cfg)
    paired.set_content(eyes.images, Regions.from_binary(eyes.masks))
    together = paired(x).total
    for i in range(3):  # the reference: each image with its own style, alone
        alone = _objective(styles.images[i:i + 1], Regions.from_binary(styles.masks[i:i + 1]), cfg)
        alone.set_content(eyes.images[i:i + 1], Regions.from_binary(eyes.masks[i:i + 1]))
        assert float(together[i]) == pytest.approx(float(alone(x[i:i + 1]).total), rel=1e-5)
    with pytest.raises(ObjectiveError, match="3 paired style images for 2 content images"):
        paired.set_content(eyes.images[:2], Regions.from_binary(eyes.masks[:2]))


def test_purify_with_a_style_pool_styles_each_eye_by_its_nearest_pool_eye(tmp_path):
    src = _folder(tmp_path / "src", 3, domain="real", seed0=20)
    pool_dir = _folder(tmp_path / "pool", 4, domain="synthetic", seed0=20)
    cfg = PurifyConfig(method="masked", style_pool=str(pool_dir), weights="random", max_layer="relu2_1",
                       iterations=2, pupil_shift=False, batch_size=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = purify(src, tmp_path / "out", config=cfg)
        one = purify(src, tmp_path / "one", config=PurifyConfig(**{**cfg.__dict__, "batch_size": 1}))
    assert report.done == 3

    for a, b in zip(report.records, one.records):  # a batch pairs the styles as single runs do
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-4)
    with pytest.raises(MaskedGatysError, match="not both"):
        purify(src, tmp_path / "x", config=PurifyConfig(method="masked", style="rendered",
                                                         style_pool=str(pool_dir), weights="random"))
    with pytest.raises(MaskedGatysError, match="a network has its own style"):
        purify(src, tmp_path / "y", config=PurifyConfig(method="purifier", style_pool=str(pool_dir)))


def test_cli_purify_style_pool(tmp_path):
    src = _folder(tmp_path / "src", 2, domain="real", seed0=30)
    pool_dir = _folder(tmp_path / "pool", 3, domain="synthetic", seed0=30)
    result = CliRunner().invoke(main, ["purify", str(src), "-o", str(tmp_path / "out"), "--style-pool",
                                       str(pool_dir), "--weights", "random", "--max-layer", "relu2_1",
                                       "--iterations", "2", "-q", "--no-pupil-shift"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png") if "_mask" not in p.name) == ["000.png", "001.png"]
    result = CliRunner().invoke(main, ["purify", str(src), "-o", str(tmp_path / "o2"), "--style-pool",
                                       str(tmp_path / "nope"), "--weights", "random", "-q"])
    assert result.exit_code != 0 and "no such style pool folder" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- part labels


def test_the_masked_eye_preset_splits_the_background_when_skin_and_sclera_are_given():
    from masked_gatys.eyes.parts import EYE_PARTS, EYE_REGIONS

    split = preset("masked-eye", regions=EYE_PARTS)
    plain = preset("masked-eye", regions=EYE_REGIONS)
    regions = lambda c: sorted({t.region for t in c.terms if t.kind == "style"})
    assert regions(split) == ["iris", "pupil", "sclera", "skin"]
    assert regions(plain) == ["background", "iris", "pupil"]


def test_part_labels_survive_a_gaze_set_written_and_read_back(tmp_path):
    from masked_gatys.eyes.datasets import load_labelled_folder

    s = render_set(3, size=SIZE, seed=4, domain="real")
    assert s.parts is not None and set(torch.unique(s.parts).tolist()) <= {0, 1, 2, 3}
    back = load_labelled_folder(s.write(tmp_path / "set"))
    assert torch.equal(back.parts, s.parts)
    assert torch.equal(s.subset([2, 0]).parts, s.parts[[2, 0]])


def test_purify_matches_skin_and_sclera_apart_when_both_sides_have_labels(tmp_path):
    """The objective purify reports with NAME_labels.png equals stylize's with the part regions
    (an independent path), and differs from the run without labels."""
    from masked_gatys.eyes.parts import parts_from_labels
    from masked_gatys.stylize import StylizeConfig, stylize

    folder = tmp_path / "src"
    folder.mkdir()
    eye = render_eye(yaw=10.0, pitch=0.0, domain="real", size=(36, 60), seed=5)
    save_image(eye.image, folder / "e.png")
    save_image(eye.binary_mask, folder / "e_mask.png")
    from masked_gatys.eyes.render import labels_to_rgb

    save_image(labels_to_rgb(eye.labels)[None], folder / "e_labels.png")
    cfg = PurifyConfig(method="masked", style="rendered", weights="random", max_layer="relu2_1", iterations=0,
                       pupil_shift=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_labels = purify(folder, tmp_path / "a", config=cfg).records[0]["objective"]
        (folder / "e_labels.png").unlink()
        without = purify(folder, tmp_path / "b", config=cfg).records[0]["objective"]
        style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(36, 60), seed=0)
        direct = stylize(load_image(folder / "e.png"), style.image, mask=parts_from_labels(eye.labels),
                         style_mask=parts_from_labels(style.labels),
                         config=StylizeConfig(preset="masked", iterations=0, weights="random",
                                              max_layer="relu2_1", subject="eye"))
    assert with_labels == pytest.approx(float(direct.total), rel=1e-4)
    assert with_labels != pytest.approx(without, rel=1e-3)


def test_a_rerun_redoes_an_eye_whose_part_labels_came_or_went(tmp_path):
    """masked's output depends on NAME_labels.png: an eye done without labels is redone once
    they are there (and the other way), an unchanged eye is skipped."""
    from masked_gatys.eyes.render import labels_to_rgb

    folder = tmp_path / "src"
    folder.mkdir()
    for name, seed in (("a", 5), ("b", 6)):
        eye = render_eye(yaw=10.0, pitch=0.0, domain="real", size=(36, 60), seed=seed)
        save_image(eye.image, folder / f"{name}.png")
        save_image(eye.binary_mask, folder / f"{name}_mask.png")
        if name == "b":
            labels_b = labels_to_rgb(eye.labels)[None]
    cfg = PurifyConfig(method="masked", style="rendered", weights="random", max_layer="relu2_1", iterations=0,
                       pupil_shift=False)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = purify(folder, out, config=cfg)
        assert (first.done, first.skipped) == (2, 0)
        save_image(labels_b, folder / "b_labels.png")
        second = purify(folder, out, config=cfg)
        assert (second.done, second.skipped) == (1, 1)
        redone = {r["output"]: r for r in second.records}
        assert redone["b.png"]["parts_used"] is True and redone["a.png"]["parts_used"] is False
        assert purify(folder, out, config=cfg).skipped == 2
        (folder / "b_labels.png").unlink()
        assert purify(folder, out, config=cfg).done == 1


def test_cli_stylize_reads_eye_part_labels(tmp_path):
    from masked_gatys.eyes.render import labels_to_rgb

    for name, domain, seed in (("in", "real", 3), ("style", "synthetic", 0)):
        eye = render_eye(yaw=0.0, pitch=0.0, domain=domain, size=(36, 60), seed=seed)
        save_image(eye.image, tmp_path / f"{name}.png")
        save_image(labels_to_rgb(eye.labels)[None], tmp_path / f"{name}_labels.png")
    out = tmp_path / "out.png"
    args = ["stylize", str(tmp_path / "in.png"), "--style", str(tmp_path / "style.png"), "--mask",
            str(tmp_path / "in_labels.png"), "--style-mask", str(tmp_path / "style_labels.png"), "--mask-mode",
            "parts", "--weights", "random", "--max-layer", "relu2_1", "--iterations", "2", "-o", str(out),
            "--log", str(tmp_path / "log.json"), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert load_image(out).shape == (1, 3, 36, 60)
    terms = json.loads((tmp_path / "log.json").read_text())["objective"]["terms"]
    style_regions = {t["region"] for t in terms if t["kind"] == "style"}
    assert style_regions == {"skin", "sclera", "iris", "pupil"}  # the background matched in two parts
