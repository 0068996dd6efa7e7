"""``masked_gatys.purify``: inputs, outputs, failures, resume, shards, the optimizer and networks."""

from __future__ import annotations

import json
import random
import warnings

import pytest
import torch

from masked_gatys.errors import ImageError, MaskedGatysError
from masked_gatys.eyes import render_eye
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import Item, list_inputs, merge_manifests, read_manifest, select_shard, shard_of
from masked_gatys.purify import PurifyConfig, purify

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (24, 40)


def _eyes(folder, n, *, start=0, size=SIZE, labels=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        eye = render_eye(yaw=8.0 * (i % 5) - 16, pitch=0.0, domain="real", size=size, seed=i)
        save_image(eye.image, folder / f"{i:04d}.png")
        save_image(eye.binary_mask, folder / f"{i:04d}_mask.png")
        if labels:
            save_image(eye.binary_mask, folder / f"{i:04d}_labels.png")
    return folder


def _net(tiny_net, **kw):
    return PurifyConfig(method=tiny_net, pupil_shift=False, **kw)


def _optimizer(**kw):
    kw.setdefault("iterations", 3)
    return PurifyConfig(method="masked", style="rendered", weights="random", max_layer="relu2_1",
                        pupil_shift=False, **kw)


# ---------------------------------------------------------------- inputs


def test_folder_listing_skips_companions_hidden_files_and_the_output_folder(tmp_path):
    src = _eyes(tmp_path / "src", 2, labels=True)
    (src / ".0000.png.abcd.png").write_bytes(b"half a png")  # left by a killed atomic write
    (src / ".hidden").mkdir()
    save_image(torch.rand(1, 3, 8, 8), src / ".hidden" / "x.png")
    _eyes(src / "sub", 1, start=5)
    _eyes(src / "out", 1, start=7)  # the output folder inside the input is not read
    (src / "truth.jsonl").write_text(json.dumps({"files": {"image": "0001.png"}, "gaze": [1, 2]}) + "\n")
    items = list_inputs(src, exclude=[src / "out"])
    assert [i.rel for i in items] == ["0000.png", "0001.png", "sub/0005.png"]
    assert items[0].labels is not None and items[0].mask.name == "0000_mask.png"
    assert items[1].columns["gaze"] == [1, 2] and "gaze" not in items[0].columns


def test_manifest_inputs_carry_columns_and_resolve_paths_beside_the_manifest(tmp_path, tiny_net):
    src = _eyes(tmp_path / "data" / "imgs", 2)
    csv_path = tmp_path / "data" / "list.csv"
    csv_path.write_text("image,mask,yaw\nimgs/0001.png,imgs/0001_mask.png,3.5\nimgs/0000.png,,-1\n")
    report = purify(csv_path, tmp_path / "out", config=_net(tiny_net))
    assert [r["image"] for r in report.records] == ["imgs/0000.png", "imgs/0001.png"]
    assert [r["yaw"] for r in report.records] == ["-1", "3.5"]
    assert (tmp_path / "out" / "imgs" / "0001.png").is_file()
    assert (tmp_path / "out" / "imgs" / "0001_mask.png").read_bytes() == (src / "0001_mask.png").read_bytes()
    assert not (tmp_path / "out" / "imgs" / "0000_mask.png").exists()
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert rows == report.records
    jsonl = tmp_path / "data" / "list.jsonl"
    jsonl.write_text(json.dumps({"image": "imgs/0000.png", "label": {"yaw": 1}}) + "\n")
    report = purify(jsonl, tmp_path / "out2", config=_net(tiny_net))
    assert report.records[0]["label"] == {"yaw": 1} and report.done == 1


def test_a_list_of_dicts_is_an_input(tmp_path, tiny_net, monkeypatch):
    _eyes(tmp_path / "src", 1)
    monkeypatch.chdir(tmp_path)
    report = purify([{"image": "src/0000.png", "mask": "src/0000_mask.png", "id": 7}], tmp_path / "out",
                    config=_net(tiny_net))
    assert report.records[0]["id"] == 7 and (tmp_path / "out" / "src" / "0000.png").is_file()


def test_two_inputs_with_one_output_are_refused_before_any_work(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 1)
    save_image(load_image(src / "0000.png"), src / "0000.jpg")
    with pytest.raises(ImageError, match="0000.jpg and 0000.png|0000.png and 0000.jpg"):
        purify(src, tmp_path / "out", config=_net(tiny_net))
    assert not (tmp_path / "out").exists()


def test_outputs_over_inputs_are_refused_before_any_work(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 1)
    with pytest.raises(MaskedGatysError, match="output folder is the input folder"):
        purify(src, src, config=_net(tiny_net))
    manifest = tmp_path / "list.jsonl"  # the output folder holds the inputs
    manifest.write_text(json.dumps({"image": "src/0000.png", "mask": "src/0000_mask.png"}) + "\n")
    before = sorted(p.name for p in src.iterdir())
    with pytest.raises(ImageError, match="would overwrite an input"):
        purify(manifest, tmp_path, config=_net(tiny_net))
    assert sorted(p.name for p in src.iterdir()) == before


# ---------------------------------------------------------------- failures and resume


def test_bad_inputs_are_recorded_and_skipped_and_a_rerun_redoes_only_them(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 3)
    (src / "0001.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    report = purify(src, out, config=_net(tiny_net))
    assert (report.done, report.failed, report.skipped) == (2, 1, 0)
    bad = report.records[1]
    assert bad["status"].startswith("failed: ") and "0001.png" in bad["status"]
    first = (out / "0000.png").stat().st_mtime_ns
    _eyes(src, 1, start=1)  # repaired
    report = purify(src, out, config=_net(tiny_net))
    assert (report.done, report.failed, report.skipped) == (1, 0, 2)
    assert (out / "0000.png").stat().st_mtime_ns == first  # not written twice
    assert all(r["status"] == "done" for r in read_manifest(out / "manifest.jsonl"))
    (src / "0002.png").write_bytes(b"broken again")
    (out / "0002.png").unlink()
    with pytest.raises(ImageError, match="0002.png"):
        purify(src, out, config=_net(tiny_net, fail_fast=True))


def test_a_rerun_checks_the_file_not_only_the_manifest(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 3)
    out = tmp_path / "out"
    purify(src, out, config=_net(tiny_net))
    (out / "0000.png").unlink()
    (out / "0001.png").write_bytes((out / "0001.png").read_bytes()[:20])  # cut off
    report = purify(src, out, config=_net(tiny_net))
    assert (report.done, report.skipped) == (2, 1)
    assert load_image(out / "0001.png").shape == (1, 3) + SIZE


def test_a_rerun_with_other_settings_is_refused(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 1)
    purify(src, tmp_path / "out", config=_optimizer(iterations=1))
    (tmp_path / "out" / "0000.png").unlink()
    with pytest.raises(MaskedGatysError, match="other settings.*iterations"):
        purify(src, tmp_path / "out", config=_optimizer(iterations=2))


def test_an_interrupt_finishes_the_writes_records_progress_and_resumes(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 4)
    out = tmp_path / "out"

    def stop_after_two(p):
        if p.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        purify(src, out, config=_net(tiny_net, batch_size=1), progress=stop_after_two)
    records = read_manifest(out / "manifest.jsonl")
    done = [r["output"] for r in records if r["status"] == "done"]
    assert len(done) >= 2 and all((out / name).is_file() for name in done)
    assert not [p for p in out.rglob(".*") if p.name != ".manifest.lock"]  # no temporary files left
    report = purify(src, out, config=_net(tiny_net))
    assert report.skipped == len(done) and report.done == 4 - len(done)


def test_progress_returning_true_stops_after_the_batch_under_way(tmp_path, tiny_net):
    # the first record comes when the first batch's writes are collected: after the first batch
    # or, when the writer thread is slower (a loaded machine), after the second batch ran
    src = _eyes(tmp_path / "src", 4)
    report = purify(src, tmp_path / "out", config=_net(tiny_net, batch_size=1), progress=lambda p: True)
    assert report.interrupted and report.done in (1, 2)
    assert len(read_manifest(tmp_path / "out" / "manifest.jsonl")) == report.done


# ---------------------------------------------------------------- shards


def test_shards_are_stable_and_independent_of_listing_order():
    items = [Item(f"d/{i:03d}.png", None) for i in range(40)]  # type: ignore[arg-type]
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    for n in (1, 3):
        parts = [select_shard(items, (i, n)) for i in range(n)]
        assert sorted(x.rel for p in parts for x in p) == sorted(x.rel for x in items)
        assert [sorted(x.rel for x in select_shard(shuffled, (i, n))) for i in range(n)] == \
            [sorted(x.rel for x in p) for p in parts]
    assert shard_of("d/000.png", 3) == shard_of("d/000.png", 3)
    assert 0 < len(select_shard(items, (0, 3))) < 40


def test_shards_together_give_the_one_run_set_and_merge(tmp_path, tiny_net):
    src = _eyes(tmp_path / "src", 6)
    whole = purify(src, tmp_path / "whole", config=_net(tiny_net))
    out = tmp_path / "sharded"
    reports = [purify(src, out, config=_net(tiny_net, shard=(i, 3))) for i in range(3)]
    assert sum(r.done for r in reports) == 6
    assert not (out / "manifest.jsonl").exists()
    merged = merge_manifests(out)
    assert [r["output"] for r in merged] == [r["output"] for r in whole.records]
    assert (out / "manifest.jsonl").is_file() and not list(out.glob("manifest.shard-*"))
    for r in whole.records:
        assert torch.equal(load_image(out / r["output"]), load_image(tmp_path / "whole" / r["output"]))
    # the same command without a shard skips everything and joins the manifests
    again = purify(src, out, config=_net(tiny_net))
    assert again.skipped == 6


# ---------------------------------------------------------------- methods


def test_optimizer_batches_give_the_images_solved_alone(tmp_path):
    src = _eyes(tmp_path / "src", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = purify(src, tmp_path / "one", config=_optimizer(batch_size=1))
        three = purify(src, tmp_path / "three", config=_optimizer(batch_size=3))
    assert three.done == 3
    for a, b in zip(one.records, three.records):
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-4)
        assert a["objective"] < 1e6
        diff = (load_image(tmp_path / "one" / a["output"]) - load_image(tmp_path / "three" / b["output"]))
        assert diff.abs().max() <= 2 / 255


def test_optimizer_records_the_objective_and_pupil_shift(tmp_path):
    src = _eyes(tmp_path / "src", 1, size=(36, 60))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = purify(src, tmp_path / "out", config=PurifyConfig(
            method="masked", style="rendered", weights="random", max_layer="relu2_1", iterations=2))
    record = report.records[0]
    assert record["status"] == "done" and record["objective"] > 0 and record["seconds"] > 0
    assert record["pupil_shift"] is not None and 0 <= record["pupil_shift"] < 5
    with pytest.raises(MaskedGatysError, match="needs a style image"):
        purify(src, tmp_path / "out2", config=PurifyConfig(method="masked", weights="random"))


def test_the_purifier_network_needs_masks_and_takes_the_segmenters_where_none_is_given(tmp_path):
    src = _eyes(tmp_path / "src", 2)
    (src / "0001_mask.png").unlink()
    report = purify(src, tmp_path / "out", config=PurifyConfig(method="purifier", pupil_shift=False))
    assert [(r["status"], r["mask_source"]) for r in report.records] == [("done", "given"), ("done", "segmenter")]
    with pytest.raises(MaskedGatysError, match="--mask none: purifier needs masks"):
        purify(src, tmp_path / "none", config=PurifyConfig(method="purifier", mask="none"))


def test_stylize_and_purify_warn_of_random_weights_in_the_encoders_words(tmp_path):
    """One random-weights warning (encoder.warn_if_random): stylize and purify had their own copy."""
    from masked_gatys.encoder import resolve_weights, warn_if_random
    from masked_gatys.stylize import StylizeConfig, prepare

    with pytest.warns(UserWarning) as expected:
        warn_if_random(resolve_weights("random"))
    text = str(expected[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare(torch.rand(1, 3, 24, 40), torch.rand(1, 3, 24, 40),
                config=StylizeConfig(weights="random", max_layer="relu1_1", subject="general"))
    assert text in {str(w.message) for w in caught}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        purify(_eyes(tmp_path / "in", 1), tmp_path / "out", config=_optimizer(iterations=1))
    assert text in {str(w.message) for w in caught}
