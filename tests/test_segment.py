"""The eye-part segmenter: shapes, post-processing, companions, checkpoint, CLI, shipped net."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from masked_gatys.errors import CheckpointError, ImageError
from masked_gatys.eyes.render import render_eye
from masked_gatys.eyes.segment import (SegNet, Segmenter, label_image, load_segmenter, mask_image, masks_for,
                                       postprocess, prepare_input, save_segmenter, segment, segment_folder,
                                       write_companions)
from masked_gatys.image import save_image


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SegNet(width=4).eval()


class _Fixed(SegNet):
    """A "network" whose logits are given: iris where ``iris``, pupil where ``pupil``, else skin."""

    def __init__(self, iris: torch.Tensor, pupil: torch.Tensor | None = None) -> None:
        super().__init__(width=1)
        self.iris, self.pupil = iris.float(), (pupil if pupil is not None else torch.zeros_like(iris)).float()

    def forward(self, x):
        b = x.shape[0]
        logits = torch.zeros(b, 4, *x.shape[-2:])
        logits[:, 0] = 1.0
        logits[:, 2] = 2.0 * self.iris
        logits[:, 3] = 3.0 * self.pupil
        return logits


@pytest.mark.parametrize("size", [(36, 60), (37, 61), (20, 20), (240, 320), (9, 200)])
def test_labels_come_at_the_input_size(net, size):
    labels = segment(torch.rand(2, 3, *size), model=net)
    assert labels.shape == (2, *size) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) <= 3


def test_grey_one_channel_three_equal_channels_and_uint8_agree(net):
    grey = torch.rand(3, 1, 36, 60)
    a = segment(grey, model=net)
    b = segment(grey.expand(3, 3, 36, 60), model=net)
    c = segment((grey * 255).round().to(torch.uint8), model=net)
    assert torch.equal(a, b)
    assert (a == c).float().mean() > 0.95  # 8-bit rounding may flip a boundary pixel
    assert segment(grey[0, 0], model=net).shape == (1, 36, 60)  # one (H, W) image


def test_rgb_is_read_as_luminance(net):
    rgb = torch.rand(1, 3, 36, 60)
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(prepare_input(rgb), prepare_input(luma), atol=1e-5)


def test_bad_images_are_one_line_errors(net):
    with pytest.raises(ImageError, match="B, 1 or 3"):
        segment(torch.rand(1, 2, 36, 60), model=net)
    with pytest.raises(ImageError, match="at least 4x4"):
        segment(torch.rand(1, 1, 3, 60), model=net)


def test_postprocess_keeps_the_iris_holding_the_pupil():
    lab = np.zeros((36, 60), np.int64)
    lab[5:25, 5:25] = 2  # the larger blob, no pupil
    lab[10:20, 40:50] = 2  # the eye: it holds the pupil
    lab[13:16, 43:46] = 3
    lab[30, 30] = 3  # a stray pupil pixel in the skin
    out = postprocess(lab, np.ones_like(lab))
    assert (out[5:25, 5:25] == 1).all()  # dropped blob -> the fallback class (sclera here)
    assert (out[10:20, 40:50] >= 2).all() and (out[13:16, 43:46] == 3).all()
    assert out[30, 30] == 1


def test_postprocess_keeps_one_pupil_and_drops_a_tiny_iris():
    lab = np.zeros((36, 60), np.int64)
    lab[5:25, 5:30] = 2
    lab[10:16, 10:16] = 3
    lab[20:22, 25:27] = 3  # a second, smaller pupil inside the iris becomes iris
    out = postprocess(lab, np.zeros_like(lab))
    assert (out == 3).sum() == 36 and out[20, 25] == 2
    tiny = np.zeros((36, 60), np.int64)
    tiny[3:5, 3:5] = 2  # 4 px: under MIN_IRIS of 2160 px
    assert (postprocess(tiny, np.zeros_like(tiny)) < 2).all()


def test_a_network_that_sees_a_speck_of_iris_gives_no_iris():
    """The closed-eye rule through segment(): what the network calls iris but is too small is dropped."""
    iris = torch.zeros(36, 60)
    iris[17:19, 29:31] = 1  # 4 px of "iris" on a closed lid
    labels = segment(torch.rand(1, 1, 36, 60), model=Segmenter(_Fixed(iris)))
    assert (labels < 2).all()
    big = torch.zeros(36, 60)
    big[10:26, 20:40] = 1
    labels = segment(torch.rand(1, 1, 36, 60), model=Segmenter(_Fixed(big)))
    assert (labels == 2).sum() == 16 * 20


def test_companions_read_back_by_the_toolkit(tmp_path):
    from masked_gatys.eyes.parts import load_parts
    from masked_gatys.masks import load_mask

    eye = render_eye(size=(36, 60), seed=2)
    lab_path, mask_path = write_companions(eye.labels, tmp_path / "eye.png")
    assert lab_path.name == "eye_labels.png" and mask_path.name == "eye_mask.png"
    assert torch.equal(load_parts(lab_path)[0], eye.labels)
    attention = load_mask(mask_path).region("attention")[0, 0]
    assert torch.equal(attention > 0.5, eye.labels >= 2)
    assert label_image(eye.labels).shape == (3, 36, 60) and mask_image(eye.labels).shape == (1, 1, 36, 60)


def test_masks_for_one_eye(net):
    labels, mask = masks_for(torch.rand(1, 3, 36, 60), model=net)
    assert labels.shape == (1, 36, 60) and mask.shape == (1, 1, 36, 60)
    assert torch.equal(mask[0, 0] > 0, labels[0] >= 2)


def test_checkpoint_round_trip_and_fusion(tmp_path, net):
    seg = Segmenter(net, identity={"name": "test"})
    path = tmp_path / "seg.pt"
    save_segmenter(seg, path)
    loaded = load_segmenter(path)
    assert loaded.net.fused and loaded.identity["name"] == "test" and len(loaded.identity["sha256"]) == 64
    x = torch.rand(2, 1, 36, 60)
    assert torch.allclose(seg.logits(x), loaded.logits(x), atol=1e-4)
    with pytest.raises(CheckpointError):
        save_segmenter(loaded, tmp_path / "again.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a segmenter checkpoint"):
        load_segmenter(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="no segmenter checkpoint"):
        load_segmenter(tmp_path / "missing.pt")


def _renders(folder, n=3, size=(36, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eye = render_eye(size=size, seed=i, domain="real", yaw=5.0 * i)
        save_image(eye.image, folder / f"{i:04d}.png")
    return folder


def test_segment_folder_writes_companions_and_resumes(tmp_path, net):
    src = _renders(tmp_path / "eyes")
    out = tmp_path / "masks"
    report = segment_folder(src, out, model=net)
    assert (report.done, report.failed, report.skipped) == (3, 0, 0)
    for i in range(3):
        assert (out / f"{i:04d}_labels.png").is_file() and (out / f"{i:04d}_mask.png").is_file()
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".png") == ["manifest.jsonl", "segment.json"]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done"] * 3 and all("iris" in r for r in rows)
    again = segment_folder(src, out, model=net)
    assert (again.done, again.skipped) == (0, 3)
    (out / "0001_mask.png").unlink()  # a lost output is made again
    assert segment_folder(src, out, model=net).done == 1


def test_segment_folder_refuses_its_input_folder_and_another_segmenter(tmp_path, net):
    src = _renders(tmp_path / "eyes", n=1)
    with pytest.raises(ImageError, match="output folder is the input folder"):
        segment_folder(src, src, model=net)
    out = tmp_path / "m"
    save_segmenter(Segmenter(net), tmp_path / "a.pt")
    segment_folder(src, out, model=load_segmenter(tmp_path / "a.pt"))
    torch.manual_seed(1)
    save_segmenter(Segmenter(SegNet(width=4)), tmp_path / "b.pt")
    with pytest.raises(ImageError, match="another segmenter"):
        segment_folder(src, out, model=load_segmenter(tmp_path / "b.pt"))


def test_cli_end_to_end(tmp_path, net):
    from masked_gatys.cli import main

    src = _renders(tmp_path / "eyes")
    (src / "0003.png").write_bytes(b"not an image")
    ck = tmp_path / "seg.pt"
    save_segmenter(Segmenter(net), ck)
    out = tmp_path / "out"
    runner = CliRunner()
    r = runner.invoke(main, ["segment", str(src), "-o", str(out), "--model", str(ck), "-q"])
    assert r.exit_code == 0, r.output
    assert (out / "0002_labels.png").is_file() and (out / "0002_mask.png").is_file()
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "0003.png" in failed[0]
    r = runner.invoke(main, ["segment", str(src), "-o", str(out), "--model", str(ck)])
    assert r.exit_code == 0 and "0 segmented, 3 already done" in r.output
    assert not any(p.parent != out for p in out.rglob("*"))  # nothing outside -o (and no temporary files)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    r = runner.invoke(main, ["segment", str(tmp_path / "nowhere"), "-o", str(out)])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "not found" in r.output


# ---------------------------------------------------------------------------- the shipped checkpoint


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(1.0, float((a | b).sum()))


def _layout_renders():
    """Two small renders of every layout, in its looks (seeds no training used)."""
    from masked_gatys.eyes.datasets import render_set
    from masked_gatys.eyes.layouts import LAYOUTS

    sizes = {"unity": (36, 60), "mpiigaze": (36, 60), "nir": (96, 128)}
    return [(name, render_set(2, layout=name, look="any", seed=31, size=sizes.get(name)))
            for name in LAYOUTS]


def test_shipped_segmenter_loads_and_finds_the_pupil_of_each_layout():
    seg = load_segmenter()
    assert seg.identity["file"] == "segmenter.pt" and seg.net.fused
    for name, eyes in _layout_renders():
        labels = segment(eyes.images, model=seg)
        truth = eyes.parts.long()
        for i in range(labels.shape[0]):
            if not (truth[i] >= 2).any():  # a closed eye drawn by the layout
                assert not (labels[i] >= 2).any(), name
                continue
            assert _iou(labels[i] == 3, truth[i] == 3) > 0.5, name
            assert _iou(labels[i] >= 2, truth[i] >= 2) > 0.6, name


def test_shipped_segmenter_gives_no_iris_on_a_closed_eye():
    from masked_gatys.eyes.datasets import render_set

    eyes = render_set(8, layout="mpiigaze", look="any", seed=5, closure=1.0)
    assert (eyes.parts < 2).all()
    no_iris = (segment(eyes.images) < 2).flatten(1).all(1)
    assert int(no_iris.sum()) >= 6  # a loose floor: the benchmark measures the share


def _reference_postprocess(lab, fb, min_iris):
    """One eye, written plainly: the component with the most pupil (then the largest, then the
    first) if big enough, the others to the fallback; then the largest pupil (then the first)."""
    from scipy import ndimage

    out = lab.copy()
    comps, n = ndimage.label(out >= 2)
    best = None
    for k in range(1, n + 1):
        key = (int(((comps == k) & (out == 3)).sum()), int((comps == k).sum()), -k)
        best = key if best is None or key > best else best
    keep = -best[2] if best is not None and best[1] >= max(1.0, min_iris * out.size) else -1
    drop = (out >= 2) & (comps != keep)
    out[drop] = fb[drop]
    pcomps, pn = ndimage.label(out == 3)
    if pn > 1:
        sizes = [int((pcomps == k).sum()) for k in range(1, pn + 1)]
        big = 1 + int(np.argmax(sizes))
        out[(out == 3) & (pcomps != big)] = 2
    return out


def test_postprocess_of_a_batch_matches_a_plain_one_eye_version():
    rng = np.random.default_rng(0)
    lab = np.zeros((12, 36, 60), np.int64)
    for i in range(12):  # blobs of iris with specks and patches of pupil, some touching the edges
        for _ in range(5):
            y, x, r = rng.integers(0, 36), rng.integers(0, 60), rng.integers(1, 9)
            lab[i, max(0, y - r):y + r, max(0, x - r):x + r] = 2
            if rng.uniform() < 0.6:
                q = rng.integers(0, 3)
                lab[i, max(0, y - q):y + q + 1, max(0, x - q):x + q + 1] = 3
    lab[5] = 0  # an image without any iris beside the others
    fb = rng.integers(0, 2, lab.shape)
    batch = postprocess(lab, fb, min_iris=0.01)
    for i in range(12):
        assert np.array_equal(batch[i], _reference_postprocess(lab[i], fb[i], 0.01)), i


def test_segment_folder_reads_a_manifest_and_keeps_its_columns(tmp_path, net):
    src = _renders(tmp_path / "eyes", n=2)
    (tmp_path / "list.csv").write_text("image,yaw\neyes/0000.png,1.5\neyes/0001.png,-2\n")
    report = segment_folder(tmp_path / "list.csv", tmp_path / "out", model=net)
    assert report.done == 2 and [r["yaw"] for r in report.records] == ["1.5", "-2"]
    assert (tmp_path / "out" / "eyes" / "0001_mask.png").is_file()
    assert src.is_dir()


def test_open_iris_cuts_a_thin_spur_and_keeps_the_disc():
    yy, xx = np.mgrid[:36, :60]
    lab = np.zeros((36, 60), np.int64)
    disc = (yy - 18) ** 2 + (xx - 20) ** 2 <= 8 ** 2
    lab[disc] = 2
    lab[(yy - 18) ** 2 + (xx - 20) ** 2 <= 3 ** 2] = 3
    lab[10:12, 20:55] = 2  # a spur two pixels thick along the lid
    out = postprocess(lab, np.ones_like(lab), open_iris=0.35)
    assert (out[10:12, 32:55] == 1).all()  # the spur is gone
    assert ((out >= 2) == disc).mean() > 0.99 and (out == 3).sum() == (lab == 3).sum()
    assert np.array_equal(postprocess(lab, np.ones_like(lab)), lab)  # off by default
    batch = np.stack([lab, np.roll(lab, 3, axis=1), np.zeros_like(lab)])
    fb = np.ones_like(batch)
    both = postprocess(batch, fb, open_iris=0.35)
    for i in range(3):
        assert np.array_equal(both[i], postprocess(batch[i], fb[i], open_iris=0.35))


def test_a_manifest_row_that_climbs_out_of_the_output_folder_is_recorded_and_never_written(tmp_path, net):
    """Issue 21's D1 for segment: ``../`` in a manifest row must not put labels outside -o."""
    work = tmp_path / "work"
    src = _renders(work / "eyes", n=2)
    keep = tmp_path / "keep.png"
    keep.write_bytes((src / "0000.png").read_bytes())
    manifest = work / "rows.csv"
    manifest.write_text("image\neyes/0001.png\n../keep.png\n")
    out = work / "out"
    report = segment_folder(manifest, out, model=net)
    assert (report.done, report.failed) == (1, 1)
    escaped = [p for p in tmp_path.rglob("keep_*.png") if out.resolve() not in p.resolve().parents]
    assert escaped == []
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert any(r["status"] == "failed: path outside the output folder" for r in rows)


def test_segmenter_labels_match_torch_argmax_and_a_per_image_postprocess():
    """The fast path (numpy argmax, one labelling per batch) gives exactly what the plain one gives:
    torch's argmax of the logits, then each image post-processed alone."""
    from masked_gatys.eyes.datasets import render_set

    x = render_set(24, layout="mpiigaze", look="any", seed=5).images
    segs = []
    for seed, open_iris in ((0, 0.0), (1, 0.35), (2, 0.35)):
        torch.manual_seed(seed)
        segs.append(Segmenter(SegNet(width=4).eval(), min_iris=0.0, open_iris=open_iris))
    changed = []
    for seg in segs + [load_segmenter()]:
        open_iris = seg.open_iris
        logits = seg.logits(x)
        lab, fb = logits.argmax(1).numpy(), logits[:, :2].argmax(1).numpy()
        assert torch.equal(seg(x, post=False), torch.from_numpy(lab))
        want = np.stack([postprocess(lab[i], fb[i], min_iris=seg.min_iris, open_iris=open_iris)
                         for i in range(len(x))])
        got = seg(x)
        assert got.dtype == torch.int64 and np.array_equal(got.numpy(), want), seg
        changed.append(not np.array_equal(want, lab))
    assert all(changed[1:])  # not vacuous: the post-processing had work to do (on all but the grid net)
    assert (got >= 2).any() and (got == 3).any()  # the shipped one finds irises and pupils


def test_two_class_argmax_matches_torch_on_ties_and_nan():
    from masked_gatys.eyes.segment import _argmax2

    nan = float("nan")
    a = torch.tensor([0.0, 1.0, 2.0, nan, 1.0, nan, -1.0])
    b = torch.tensor([1.0, 1.0, 1.0, 0.0, nan, nan, -0.5])
    want = torch.stack([a, b], 0).argmax(0).numpy()
    assert np.array_equal(_argmax2(a.numpy(), b.numpy()), want)
    assert _argmax2(a.numpy(), b.numpy()).tolist() == [1, 0, 0, 0, 1, 0, 1]
