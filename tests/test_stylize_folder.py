"""``stylize FOLDER --model``: purify's machinery with one network (batched, resumable, a manifest).

The folder problems issue 10 found, and issue 21's D12: it stopped at the first unreadable image,
on every rerun.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from masked_gatys import nets
from masked_gatys.cli import main
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import read_manifest
from masked_gatys.train import CHECKPOINT_FORMAT, apply_model, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (12, 16)


def _checkpoint(tmp_path, name):
    torch.manual_seed(0)
    net = nets.build(name, width=2) if name == "purifier" else nets.build(name, width=2, blocks=1)
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": net.state_dict(),
                           "objective": {}, "weights": {}})
    return net, str(path)


def _folder(tmp_path, names=("0000.png",), masks=True):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for name in names:
        save_image(torch.rand(1, 3, *SIZE, generator=g), src / name)
        if masks:
            mask = torch.zeros(1, 1, *SIZE)
            mask[..., 3:9, 4:12] = 1
            save_image(mask, src / f"{name.rsplit('.', 1)[0]}_mask.png")
    return src


def _run(*args):
    return CliRunner().invoke(main, ["stylize", *map(str, args), "-q"])


def test_outputs_equal_the_network_applied_to_each_image_with_its_mask(tmp_path):
    net, ckpt = _checkpoint(tmp_path, "purifier")
    src, out = _folder(tmp_path, ("eye0.png", "eye1.png")), tmp_path / "out"
    result = _run(src, "--model", ckpt, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "eye0.png", "eye0_mask.png", "eye1.png", "eye1_mask.png", "manifest.jsonl", "purify.json"]
    for i in range(2):
        mask = load_image(src / f"eye{i}_mask.png")[:, :1]
        expected = apply_model(net, load_image(src / f"eye{i}.png"), mask)
        assert (load_image(out / f"eye{i}.png") - expected).abs().max() <= 1 / 255 + 1e-6


def test_companions_and_hidden_files_are_not_images(tmp_path):
    _, ckpt = _checkpoint(tmp_path, "johnson")
    src = _folder(tmp_path)
    save_image(torch.rand(1, 3, *SIZE), src / "0000_labels.png")
    save_image(torch.rand(1, 3, *SIZE), src / ".0000.png.ab12.png")
    result = _run(src, "--model", ckpt, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [r["output"] for r in read_manifest(tmp_path / "out" / "manifest.jsonl")] == ["0000.png"]


def test_an_unreadable_image_is_recorded_and_the_rest_go_on_and_a_rerun_resumes(tmp_path):
    # D12: the first unreadable image stopped the folder, on every rerun
    _, ckpt = _checkpoint(tmp_path, "johnson")
    src, out = _folder(tmp_path, ("a.png", "b.png", "c.png")), tmp_path / "out"
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    result = _run(src, "--model", ckpt, "-o", out)
    assert result.exit_code == 0, result.output
    status = {r["output"]: r["status"] for r in read_manifest(out / "manifest.jsonl")}
    assert status["a.png"] == status["c.png"] == "done" and status["b.png"].startswith("failed: ")
    save_image(torch.rand(1, 3, *SIZE), src / "b.png")
    result = CliRunner().invoke(main, ["stylize", str(src), "--model", ckpt, "-o", str(out)])
    assert result.exit_code == 0 and "wrote 1 images" in result.output and "2 already done" in result.output


def test_a_mask_folder_gives_each_image_its_mask(tmp_path):
    net, ckpt = _checkpoint(tmp_path, "purifier")
    src, masks, out = _folder(tmp_path, ("a.png", "b.png"), masks=False), tmp_path / "masks", tmp_path / "out"
    masks.mkdir()
    mask = torch.zeros(1, 1, *SIZE)
    mask[..., 2:8, 2:10] = 1
    save_image(mask, masks / "a_mask.png")
    save_image(mask, masks / "b.png")  # NAME.png in a mask folder is a mask too
    result = _run(src, "--model", ckpt, "--mask", masks, "-o", out)
    assert result.exit_code == 0, result.output
    expected = apply_model(net, load_image(src / "b.png"), load_image(masks / "b.png")[:, :1])
    assert (load_image(out / "b.png") - expected).abs().max() <= 1 / 255 + 1e-6


def test_the_purifier_without_masks_fails_each_image_and_johnson_runs(tmp_path):
    src = _folder(tmp_path, ("a.png",), masks=False)
    _, purifier = _checkpoint(tmp_path, "purifier")
    result = _run(src, "--model", purifier, "-o", tmp_path / "out")
    # purify's mask="auto": a mask-less eye takes the segmenter's mask; in noise it finds no iris
    assert result.exit_code == 1 and "every image failed (1)" in result.output and "finds no iris" in result.output
    _, johnson = _checkpoint(tmp_path, "johnson")
    result = _run(src, "--model", johnson, "-o", tmp_path / "out2")
    assert result.exit_code == 0 and (tmp_path / "out2" / "a.png").is_file()


def test_collisions_and_outputs_over_inputs_are_refused_before_any_work(tmp_path):
    _, ckpt = _checkpoint(tmp_path, "johnson")
    src = _folder(tmp_path)
    save_image(torch.rand(1, 3, *SIZE), src / "0000.jpg")
    result = _run(src, "--model", ckpt, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "would both be written" in result.output
    assert not (tmp_path / "out").exists()
    (src / "0000.jpg").unlink()
    masks = tmp_path / "masks"
    masks.mkdir()
    save_image(torch.ones(1, 1, *SIZE), masks / "0000.png")
    result = _run(src, "--model", ckpt, "--mask", masks, "-o", masks)
    assert result.exit_code == 1 and "the --mask folder" in result.output
