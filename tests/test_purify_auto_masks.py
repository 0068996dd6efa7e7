"""``purify --mask auto|none`` (issues 20 and 22): eyes without masks take the segmenter's."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes import render_eye
from masked_gatys.eyes.labels import load_parts
from masked_gatys.eyes import segment as segment_module
from masked_gatys.eyes.segment import SegNet, Segmenter, save_segmenter
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import list_inputs
from masked_gatys.masks import load_mask
from masked_gatys.purify import NO_IRIS, SETTINGS_FILE, PurifyConfig, purify

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (36, 60)


def _eyes(folder, n, *, masks=(), seed=0):
    """``n`` rendered real eyes; those numbered in ``masks`` with their NAME_mask.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eye = render_eye(yaw=6.0 * i - 6, pitch=0.0, domain="real", size=SIZE, seed=seed + i)
        save_image(eye.image, folder / f"{i:04d}.png")
        if i in masks:
            save_image(eye.binary_mask, folder / f"{i:04d}_mask.png")
    return folder


def _fixed_segmenter(path, label):
    """A segmenter checkpoint that calls every pixel ``label`` (2: all iris; 0: all skin, a closed eye)."""
    net = SegNet(width=2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
        net.head.bias[4 * label:4 * label + 4] = 5.0  # pixel_shuffle: channels 4c..4c+3 are class c
    save_segmenter(Segmenter(net, identity={"name": f"all-{label}"}), path)
    return str(path)


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segmenters")
    return {"iris": _fixed_segmenter(folder / "iris.pt", 2), "skin": _fixed_segmenter(folder / "skin.pt", 0)}


def _cfg(**kw):
    kw.setdefault("pupil_shift", False)
    return PurifyConfig(**kw)


def _run(src, out, cfg):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = purify(src, out, config=cfg)
    return report, [str(w.message) for w in caught if "segmenter" in str(w.message)]


def test_a_folder_without_masks_is_purified_with_the_shipped_segmenters_masks_written_beside_the_outputs(tmp_path):
    src = _eyes(tmp_path / "eyes", 3)
    out = src / "purified"  # inside the input folder: its companions must never become inputs
    report, notices = _run(src, out, _cfg())  # the defaults: purifier, mask auto, the shipped segmenter
    assert (report.done, report.failed) == (3, 0)
    assert notices == [f"masks of 3 eyes made by the segmenter (segmenter.pt), written beside the outputs in {out}"]
    for record in report.records:
        assert record["mask_source"] == "segmenter" and len(record["segmenter_sha256"]) == 64
        stem = record["output"][:-4]
        assert (record["output_mask"], record["output_labels"]) == (f"{stem}_mask.png", f"{stem}_labels.png")
        mask = load_mask(out / record["output_mask"]).region("attention")
        labels = load_parts(out / record["output_labels"])
        assert mask.shape[-2:] == SIZE and bool(mask.any())
        assert torch.equal(mask[0, 0] > 0.5, labels[0] >= 2)  # the mask is the labels' iris + pupil
    assert json.loads((out / SETTINGS_FILE).read_text())["segmenter"] == report.records[0]["segmenter_sha256"]
    # a rerun: nothing redone, no notice, and the folder's companions are no inputs
    again, notices = _run(src, out, _cfg())
    assert (again.done, again.failed, again.skipped, again.total) == (0, 0, 3, 3) and notices == []
    assert [i.rel for i in list_inputs(src, exclude=[out])] == ["0000.png", "0001.png", "0002.png"]
    assert [i.mask is not None for i in list_inputs(out)] == [True, True, True]  # the outputs, with masks


def test_given_masks_are_used_and_only_the_missing_ones_segmented_in_one_call(tmp_path, segmenters, monkeypatch):
    src = _eyes(tmp_path / "eyes", 4, masks=(1,))
    calls = []
    real_call = segment_module.Segmenter.__call__
    monkeypatch.setattr(segment_module.Segmenter, "__call__",
                        lambda self, images, **kw: calls.append(images.shape[0]) or real_call(self, images, **kw))
    report, notices = _run(src, tmp_path / "out", _cfg(segmenter=segmenters["iris"]))
    assert calls == [3]  # the three mask-less eyes of the batch, segmented together
    assert [r["mask_source"] for r in report.records] == ["segmenter", "given", "segmenter", "segmenter"]
    assert notices == [f"masks of 3 eyes made by the segmenter (iris.pt), written beside the outputs in "
                       f"{tmp_path / 'out'}"]
    given = load_image(src / "0001_mask.png")
    assert torch.equal(load_image(tmp_path / "out" / "0001_mask.png"), given)  # the given mask, copied
    assert not (tmp_path / "out" / "0001_labels.png").exists()
    assert bool((load_image(tmp_path / "out" / "0000_mask.png") > 0.5).all())  # the all-iris segmenter's


def test_an_eye_where_the_segmenter_finds_no_iris_fails_and_a_given_mask_still_runs(tmp_path, segmenters):
    src = _eyes(tmp_path / "eyes", 2, masks=(0,))
    report, notices = _run(src, tmp_path / "out", _cfg(segmenter=segmenters["skin"]))
    assert [r["status"] for r in report.records] == ["done", f"failed: {NO_IRIS}"]
    assert NO_IRIS == "the segmenter finds no iris (a closed eye?)"
    assert notices == [] and not (tmp_path / "out" / "0001.png").exists()
    assert not (tmp_path / "out" / "0001_mask.png").exists()
    with pytest.raises(MaskedGatysError, match="no iris"):
        purify(src, tmp_path / "fast", config=_cfg(segmenter=segmenters["skin"], fail_fast=True))


def test_mask_none_refuses_methods_that_need_masks_before_any_work_and_runs_gatys_without(tmp_path):
    src = _eyes(tmp_path / "eyes", 2, masks=(0,))
    for method in ("purifier", "masked"):
        with pytest.raises(MaskedGatysError) as err:
            purify(src, tmp_path / "out", config=_cfg(method=method, mask="none", style="rendered"))
        assert str(err.value) == f"--mask none: {method} needs masks; use --mask auto or give NAME_mask.png"
        assert not (tmp_path / "out").exists()
    cfg = _cfg(method="gatys", mask="none", style="rendered", weights="random", max_layer="relu1_1", iterations=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = purify(src, tmp_path / "out", config=cfg)
    assert report.done == 2 and [r["mask_source"] for r in report.records] == [None, None]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0000.png", "0001.png"]  # no masks
    with pytest.raises(ValueError, match="unknown mask"):
        PurifyConfig(mask="given")


def test_the_masked_preset_takes_the_segmenters_part_labels_and_resumes(tmp_path):
    src = _eyes(tmp_path / "eyes", 2)
    cfg = _cfg(method="masked", style="rendered", weights="random", max_layer="relu1_1", iterations=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = purify(src, tmp_path / "out", config=cfg)
        assert [(r["status"], r["parts_used"]) for r in report.records] == [("done", True)] * 2
        assert purify(src, tmp_path / "out", config=cfg).skipped == 2  # parts_used agrees: nothing redone


def test_a_folder_made_with_given_masks_takes_mask_less_eyes_later_but_not_another_segmenter(tmp_path, segmenters):
    src = _eyes(tmp_path / "eyes", 2, masks=(0, 1))
    out = tmp_path / "out"
    purify(src, out, config=_cfg())
    settings = json.loads((out / SETTINGS_FILE).read_text())
    # as before --mask: nothing of masks or segmenters in the settings (older folders resume)
    assert "segmenter" not in settings and "mask" not in settings["settings"]
    _eyes(tmp_path / "more", 3)
    (tmp_path / "more" / "0002.png").rename(src / "0002.png")
    report, _ = _run(src, out, _cfg(segmenter=segmenters["iris"]))
    assert (report.done, report.skipped) == (1, 2)
    with pytest.raises(MaskedGatysError, match="differ in segmenter"):
        purify(src, out, config=_cfg(segmenter=segmenters["skin"]))
    with pytest.raises(MaskedGatysError, match="other settings"):
        purify(src, out, config=_cfg(mask="none", method="gatys", style="rendered"))


def test_cli_purifies_a_folder_without_masks_with_no_option_and_says_so_once(tmp_path, segmenters):
    src = _eyes(tmp_path / "eyes", 3)
    out = tmp_path / "out"
    args = ["purify", str(src), "-o", str(out), "--no-pupil-shift", "--segmenter", segmenters["iris"], "--batch-size", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("made by the segmenter") == 1  # one notice, though two batches
    assert "3 purified" in result.output
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["mask_source"] for r in records} == {"segmenter"}
    assert json.loads((out / SETTINGS_FILE).read_text())["settings"]["method"] == "purifier"
    again = CliRunner().invoke(main, args)
    assert "0 purified, 3 already done" in again.output
    refused = CliRunner().invoke(main, ["purify", str(src), "-o", str(tmp_path / "none"), "--mask", "none", "-q"])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == ("Error: --mask none: purifier needs masks; "
                                                      "use --mask auto or give NAME_mask.png")
