"""``purify``'s speed-ups (issue 22) give what the plain code gave: the folded, channels-last
network in inference mode, and the listing that skips looking for companions that are not there."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from masked_gatys import nets
from masked_gatys.checkpoints import LoadedModel, fold_batchnorm, load_model
from masked_gatys.eyes import render_eye
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import find_companion, list_inputs
from masked_gatys.purify import PurifyConfig, purify

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from the identity, so folding them matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return net.eval()


@pytest.mark.parametrize("name", ["purifier", "johnson"])
def test_folded_network_equals_the_unfolded_one(name):
    torch.manual_seed(0)
    net = _randomise_batchnorm(nets.build(name, width=4, blocks=2))
    model = LoadedModel(net, {})
    fast = model.for_inference()
    x, m = torch.rand(3, 3, 18, 30), (torch.rand(3, 1, 18, 30) > 0.5).float()
    assert torch.allclose(fast(x, m), model(x, m), atol=1e-5, rtol=0)
    assert fast.inference and not any(isinstance(k, (nn.BatchNorm2d, nn.Dropout2d)) for k in fast.net.modules())
    # the model it came from is untouched: its batch norm (the purifier's) still there, trainable
    assert (name == "purifier") == any(isinstance(k, nn.BatchNorm2d) for k in model.net.modules())
    assert not model.inference and all(p.requires_grad for p in model.net.parameters())


def test_fold_batchnorm_keeps_a_relu_off_its_input():
    """A ReLU is made in-place only right after a folded convolution (its own fresh output)."""
    seq = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU())
    _randomise_batchnorm(seq)
    x = torch.randn(1, 2, 4, 4)
    keep = x.clone()
    with torch.no_grad():
        before = seq(x)
        after = fold_batchnorm(seq)(x)
    assert torch.equal(x, keep) and torch.allclose(before, after, atol=1e-6)
    assert [type(k).__name__ for k in seq] == ["ReLU", "Conv2d", "ReLU"] and not seq[0].inplace and seq[2].inplace


def test_shipped_purifier_fast_path_at_36x60():
    model = load_model("purifier")
    fast = model.for_inference()
    g = torch.Generator().manual_seed(1)
    x, m = torch.rand(4, 3, 36, 60, generator=g), (torch.rand(4, 1, 36, 60, generator=g) > 0.7).float()
    y = fast(x, m)
    assert y.is_contiguous() and not y.requires_grad
    assert torch.allclose(y, model(x, m), atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:masks of")
def test_purify_outputs_as_before(tmp_path, monkeypatch):
    """The shipped purifier with automatic masks: the same records, the same companions, the same
    images (8-bit PNGs: at most one level apart where the 1e-6 rounding crosses a half level)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        eye = render_eye(layout="mpiigaze", look="webcam", seed=i)
        save_image(eye.image[:, :1], src / f"{i:02d}.png")
    save_image(render_eye(layout="mpiigaze", seed=9).binary_mask, src / "03_mask.png")  # one given mask
    cfg = PurifyConfig(pupil_shift=True, batch_size=4)
    new = purify(src, tmp_path / "new", config=cfg)
    monkeypatch.setattr(LoadedModel, "for_inference", lambda self: self)  # the plain network, as before
    old = purify(src, tmp_path / "old", config=cfg)

    def strip(records):
        return [{k: v for k, v in r.items() if k not in ("seconds", "finished", "output_bytes", "pupil_shift")}
                for r in records]

    assert strip(new.records) == strip(old.records) and new.done == old.done >= 5
    for a, b in zip(new.records, old.records):
        assert (a["pupil_shift"] is None) == (b["pupil_shift"] is None)
        if a["pupil_shift"] is not None:
            assert abs(a["pupil_shift"] - b["pupil_shift"]) < 0.05
    names = sorted(p.name for p in (tmp_path / "old").iterdir() if p.suffix == ".png")
    assert names == sorted(p.name for p in (tmp_path / "new").iterdir() if p.suffix == ".png")
    for name in names:
        a, b = (load_image(tmp_path / d / name) for d in ("new", "old"))
        if name.endswith(("_mask.png", "_labels.png")):
            assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes()
        else:
            diff = (a - b).abs()
            assert diff.max().item() <= 1.5 / 255 and (diff > 0).float().mean().item() < 0.01
    lines = [json.loads(s) for s in (tmp_path / "new" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == len(new.records)


def _plain_companions(folder):
    """What the listing found before: every image's companions looked up with stat calls."""
    return {item.rel: (find_companion(item.image, "mask"), find_companion(item.image, "labels"))
            for item in list_inputs(folder)}


def test_listing_finds_the_same_companions(tmp_path):
    (tmp_path / "sub").mkdir()
    img = torch.rand(1, 3, 8, 8)
    for name in ("a.png", "b.png", "c.jpg", "sub/d.png", "e.PNG", "f.png", "g.png"):
        save_image(img, tmp_path / name)
    for name in ("a_mask.png", "b_labels.png", "b_mask.JPG", "c_mask.tif", "sub/d_mask.png", "e_MASK.png"):
        save_image(img, tmp_path / name)
    (tmp_path / "f_mask.png").mkdir()  # a folder by that name is no companion
    os.symlink(tmp_path / "missing.png", tmp_path / "g_mask.png")  # nor a broken link
    items = {item.rel: (item.mask, item.labels) for item in list_inputs(tmp_path)}
    assert items == _plain_companions(tmp_path)
    assert items["a.png"][0].name == "a_mask.png" and items["b.png"] == (tmp_path / "b_mask.JPG",
                                                                        tmp_path / "b_labels.png")
    assert items["f.png"] == (None, None) and items["g.png"] == (None, None)


def test_channels_last_segmenter_gives_the_same_labels():
    """The shipped segmenter, channels-last (as loaded), against its plain layout on rendered eyes."""
    import copy

    from masked_gatys.eyes.segment import Segmenter, load_segmenter

    seg = load_segmenter()
    assert seg.channels_last
    plain = Segmenter(copy.deepcopy(seg.net).to(memory_format=torch.contiguous_format), seg.size, seg.identity,
                      seg.min_iris, seg.open_iris)
    eyes = torch.cat([render_eye(layout=layout, look=look, size=(36, 60), seed=i).image
                      for i, (layout, look) in enumerate([("mpiigaze", "webcam"), ("mpiigaze", "photo"),
                                                          ("unity", "outdoor"), ("unity", "clean")] * 4)])
    assert torch.allclose(seg.logits(eyes), plain.logits(eyes), atol=1e-4, rtol=0)
    assert torch.equal(seg(eyes), plain(eyes))
