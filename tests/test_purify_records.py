"""``purify``'s folder and its records (issue 21): nothing outside -o, the manifest a union of every
source, the settings checked first, duplicates, companions, byte-order marks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from masked_gatys import nets
from masked_gatys.errors import ImageError, MaskedGatysError
from masked_gatys.eyes import render_eye
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import read_manifest, read_table
from masked_gatys.purify import SETTINGS_FILE, PurifyConfig, purify
from masked_gatys.train import CHECKPOINT_FORMAT, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (24, 40)


def _eyes(folder, n, *, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eye = render_eye(yaw=6.0 * i - 9, pitch=0.0, domain="real", size=SIZE, seed=seed + i)
        save_image(eye.image, folder / f"{i:04d}.png")
        save_image(eye.binary_mask, folder / f"{i:04d}_mask.png")
    return folder


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    net = nets.build("johnson", width=2, blocks=1)
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": net.state_dict(),
                           "objective": {}, "weights": {}})
    return str(path)


@pytest.fixture(scope="module")
def nets_(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    return _checkpoint(folder / "a.pt", 0), _checkpoint(folder / "b.pt", 1)


def _cfg(net, **kw):
    return PurifyConfig(method=net, pupil_shift=False, **kw)


def test_a_row_whose_output_escapes_the_output_folder_is_recorded_failed_and_nothing_is_written(tmp_path, nets_):
    # D1: "../../keep.png" wrote (and replaced) a file outside -o that is no input
    base = tmp_path / "a" / "b"
    _eyes(base, 1)
    keep = tmp_path / "keep.png"
    _eyes(tmp_path / "k", 1)
    (tmp_path / "k" / "0000.png").rename(keep)
    (tmp_path / "k" / "0000_mask.png").rename(tmp_path / "keep_mask.png")
    manifest = base / "list.csv"
    manifest.write_text("image,mask\n../../keep.png,../../keep_mask.png\n0000.png,0000_mask.png\n")
    out = base / "x" / "out"  # out/../../keep.png is tmp_path/a/keep.png: outside -o, not an input
    report = purify(manifest, out, config=_cfg(nets_[0]))
    assert (report.done, report.failed) == (1, 1)
    bad = [r for r in report.records if r["status"] != "done"]
    assert bad[0]["status"] == "failed: path outside the output folder"
    assert not (tmp_path / "a" / "keep.png").exists() and not (tmp_path / "a" / "keep_mask.png").exists()
    assert sorted(p.name for p in tmp_path.joinpath("a").iterdir()) == ["b"]


def test_absolute_input_paths_are_named_inside_the_output_folder(tmp_path, nets_):
    src = _eyes(tmp_path / "src", 1)
    rows = [{"image": str((src / "0000.png").resolve()), "mask": str((src / "0000_mask.png").resolve())}]
    report = purify(rows, tmp_path / "out", config=_cfg(nets_[0]))
    assert report.done == 1
    assert (tmp_path / "out").resolve() in (tmp_path / "out" / report.records[0]["output"]).resolve().parents


def test_two_sources_into_one_folder_keep_both_sources_records(tmp_path, nets_):
    # D14: the second run's manifest held only its own inputs; a rerun of the first redid all of it
    one, two = _eyes(tmp_path / "one", 2), _eyes(tmp_path / "two" / "sub", 2, seed=10).parent
    (tmp_path / "one" / "truth.jsonl").write_text("".join(
        json.dumps({"files": {"image": f"{i:04d}.png"}, "yaw": i}) + "\n" for i in range(2)))
    out = tmp_path / "out"
    purify(one, out, config=_cfg(nets_[0]))
    purify(two, out, config=_cfg(nets_[0]))
    records = read_manifest(out / "manifest.jsonl")
    assert sorted(r["output"] for r in records) == ["0000.png", "0001.png", "sub/0000.png", "sub/0001.png"]
    assert sorted(r["yaw"] for r in records if "yaw" in r) == [0, 1]  # the first source's columns stay
    again = purify(one, out, config=_cfg(nets_[0]))
    assert (again.done, again.skipped) == (0, 2)


def test_a_run_that_starts_and_ends_inside_another_keeps_both_runs_records(tmp_path, nets_):
    # the second run is made inside the first one's progress callback: it writes its records
    # while the first one is under way, and the first one's later writes must keep them
    one, two = _eyes(tmp_path / "one" / "a", 3).parent, _eyes(tmp_path / "two" / "b", 2, seed=10).parent
    out = tmp_path / "out"

    def second_run_once(p):
        if p.done == 1 and not second:
            second.append(purify(two, out, config=_cfg(nets_[0])))

    second: list = []
    purify(one, out, config=_cfg(nets_[0], batch_size=1, write_workers=1), progress=second_run_once)
    assert second and second[0].done == 2
    records = read_manifest(out / "manifest.jsonl")
    assert sorted(r["output"] for r in records) == ["a/0000.png", "a/0001.png", "a/0002.png",
                                                     "b/0000.png", "b/0001.png"]


@pytest.mark.slow
def test_runs_into_one_folder_at_once_keep_each_others_records(tmp_path, nets_):
    # three processes at once, each flushing its manifest after every image
    sources = [_eyes(tmp_path / f"s{k}" / f"part{k}", 3, seed=10 * k).parent for k in range(3)]
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import sys\nfrom masked_gatys.purify import PurifyConfig, purify\n"
            "purify(sys.argv[1], sys.argv[2], config=PurifyConfig(method=sys.argv[3], pupil_shift=False, "
            "batch_size=1, write_workers=1))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(src), str(out), nets_[0]], env=env,
                              stderr=subprocess.PIPE, text=True) for src in sources]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == 9 and all(r["status"] == "done" for r in records)


def test_a_second_source_with_the_same_names_is_not_taken_for_done(tmp_path, nets_):
    # D19: "0 purified, 4 already done", the outputs being the first folder's eyes
    one, two = _eyes(tmp_path / "one", 2), _eyes(tmp_path / "two", 2, seed=10)
    out = tmp_path / "out"
    purify(one, out, config=_cfg(nets_[0]))
    first = load_image(out / "0000.png")
    report = purify(two, out, config=_cfg(nets_[0]))
    assert (report.done, report.skipped, report.failed) == (0, 0, 2)
    assert all("another input" in r["status"] and "own output folder" in r["status"] for r in report.records)
    assert torch.equal(load_image(out / "0000.png"), first)  # the first source's outputs stay
    assert purify(one, out, config=_cfg(nets_[0])).skipped == 2  # and its records


def test_a_changed_input_is_redone_and_a_moved_source_is_still_done(tmp_path, nets_):
    src, out = _eyes(tmp_path / "src", 2), tmp_path / "out"
    purify(src, out, config=_cfg(nets_[0]))
    eye = render_eye(yaw=20.0, pitch=0.0, domain="real", size=SIZE, seed=99)
    save_image(eye.image, src / "0001.png")
    report = purify(src, out, config=_cfg(nets_[0]))
    assert (report.done, report.skipped) == (1, 1)
    moved = src.rename(tmp_path / "moved")  # the same content elsewhere: the same inputs
    assert purify(moved, out, config=_cfg(nets_[0])).skipped == 2


def test_other_settings_are_refused_on_a_finished_folder(tmp_path, nets_):
    # D2: "already done" instead of refused, since the check ran only when work was left
    src, out = _eyes(tmp_path / "src", 2), tmp_path / "out"
    purify(src, out, config=_cfg(nets_[0]))
    with pytest.raises(MaskedGatysError, match="other settings"):
        purify(src, out, config=_cfg(nets_[1]))


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_other_settings_are_refused_when_the_settings_file_is_gone(tmp_path, nets_, damage):
    # D3: with purify.json missing or damaged, another model mixed two networks' outputs
    src, out = _eyes(tmp_path / "src", 2), tmp_path / "out"
    purify(src, out, config=_cfg(nets_[0]))
    (out / "0001.png").unlink()  # work left, so the old code reached its check
    if damage == "missing":
        (out / SETTINGS_FILE).unlink()
    else:
        (out / SETTINGS_FILE).write_text("{not json")
    with pytest.raises(MaskedGatysError, match="other settings"):
        purify(src, out, config=_cfg(nets_[1]))
    report = purify(src, out, config=_cfg(nets_[0]))  # the same settings: resumes, and writes it again
    assert (report.done, report.skipped) == (1, 1)
    assert json.loads((out / SETTINGS_FILE).read_text())["settings"]["method"] == "a.pt"


def test_a_manifest_naming_one_image_twice_is_never_dropped_silently(tmp_path, nets_):
    # D4: two rows for one image: the first was dropped without a word
    src = _eyes(tmp_path / "src", 1)
    manifest = src / "list.csv"
    manifest.write_text("image,mask,id\n0000.png,0000_mask.png,1\n0000.png,0000_mask.png,2\n")
    with pytest.raises(ImageError, match="rows 1 and 2 both name the image 0000.png"):
        purify(manifest, tmp_path / "out", config=_cfg(nets_[0]))
    manifest.write_text("image,mask,id\n0000.png,0000_mask.png,1\n0000.png,0000_mask.png,1\n")
    with pytest.warns(UserWarning, match="row 2 repeats row 1"):
        report = purify(manifest, tmp_path / "out", config=_cfg(nets_[0]))
    assert report.done == 1


def test_a_deleted_mask_copy_is_restored_on_rerun(tmp_path, nets_):
    # D16
    src, out = _eyes(tmp_path / "src", 2), tmp_path / "out"
    purify(src, out, config=_cfg(nets_[0]))
    (out / "0001_mask.png").unlink()
    report = purify(src, out, config=_cfg(nets_[0]))
    assert (report.done, report.skipped) == (1, 1) and (out / "0001_mask.png").is_file()


def test_a_csv_manifest_with_a_byte_order_mark_is_read(tmp_path, nets_):
    # D11: Excel's "UTF-8 CSV" begins with a BOM: "row 1 has no 'image'"
    src = _eyes(tmp_path / "src", 1)
    manifest = src / "list.csv"
    manifest.write_bytes(b"\xef\xbb\xbfimage,mask\r\n0000.png,0000_mask.png\r\n")
    assert purify(manifest, tmp_path / "out", config=_cfg(nets_[0])).done == 1
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(b"\xef\xbb\xbf" + json.dumps({"image": "a.png", "yaw": 1}).encode() + b"\n")
    assert read_table(labels) == [{"image": "a.png", "yaw": 1}]


def test_a_style_mask_of_another_size_is_refused_before_any_work(tmp_path):
    # D10 (second case): a wrong-size --style-mask failed every image, naming --resize-masks
    src = _eyes(tmp_path / "src", 1)
    style = tmp_path / "style.png"
    save_image(torch.rand(3, 24, 40), style)
    save_image(torch.ones(1, 1, 12, 20), tmp_path / "style_mask.png")
    cfg = PurifyConfig(method="masked", style=str(style), weights="random", max_layer="relu1_1",
                       iterations=1, pupil_shift=False)
    with pytest.raises(MaskedGatysError, match="style mask style_mask.png is 20x12 px but the style image"):
        purify(src, tmp_path / "out", config=cfg)


def test_a_relative_manifest_row_that_climbs_out_writes_nothing_outside(tmp_path, nets_, monkeypatch):
    # D1 as reported: the manifest named relative to the working folder, the output beside it
    work = tmp_path / "w" / "x"
    _eyes(work, 1)
    _eyes(tmp_path / "k", 1)
    (tmp_path / "k" / "0000.png").rename(tmp_path / "keep.png")
    (tmp_path / "k" / "0000_mask.png").rename(tmp_path / "keep_mask.png")
    (work / "list.csv").write_text("image,mask\n../../keep.png,../../keep_mask.png\n")
    monkeypatch.chdir(work)
    before = (tmp_path / "keep.png").read_bytes()
    report = purify("list.csv", "out", config=_cfg(nets_[0]))
    assert report.records[0]["status"] == "failed: path outside the output folder"
    assert (tmp_path / "keep.png").read_bytes() == before and not (tmp_path / "w" / "keep.png").exists()


def test_an_unknown_method_is_named_before_the_style_pool_is_judged(tmp_path):
    # D17: gaze --purify bogus answered "--style-pool chooses the optimizer's style eyes"
    src = _eyes(tmp_path / "src", 1)
    with pytest.raises(MaskedGatysError, match="unknown method 'bogus'"):
        purify(src, tmp_path / "out", config=PurifyConfig(method="bogus", style_pool=str(src)))
