"""Tests of masked_gatys.image: reading every mode, EXIF, 16-bit, atomic writes, metadata."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from masked_gatys import image as image_mod
from masked_gatys.errors import ImageError
from masked_gatys.image import load_image, read_metadata, resize_image, resize_to, save_image

RNG = np.random.default_rng(0)


def as_hwc(t: torch.Tensor) -> np.ndarray:
    assert t.dtype == torch.float32 and t.dim() == 4 and t.shape[:2] == (1, 3)
    return t[0].permute(1, 2, 0).numpy().astype(np.float64)


def grey3(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(a, np.float64)[..., None], 3, axis=-1)


# --------------------------------------------------------------------------- reading modes


def test_mode_1(tmp_path):
    bits = (np.indices((4, 6)).sum(0) % 2).astype(bool)
    path = tmp_path / "one.png"
    Image.fromarray(bits).convert("1").save(path)
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(as_hwc(load_image(path)), grey3(bits))


def test_mode_L(tmp_path):
    a = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    path = tmp_path / "l.png"
    Image.fromarray(a, "L").save(path)
    np.testing.assert_allclose(as_hwc(load_image(path)), grey3(a / 255), atol=1e-6)


def test_mode_LA_composited_over_white(tmp_path):
    lum = np.array([[0, 0, 100], [200, 255, 0]], np.uint8)
    alpha = np.array([[0, 255, 128], [64, 0, 255]], np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(np.stack([lum, alpha], -1), "LA").save(path)
    assert Image.open(path).mode == "LA"
    a = alpha / 255
    expected = lum / 255 * a + (1 - a)
    np.testing.assert_allclose(as_hwc(load_image(path)), grey3(expected), atol=1e-6)
    assert as_hwc(load_image(path))[0, 0, 0] == 1.0  # fully transparent -> white


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_rgb_lossless_formats(tmp_path, fmt, ext):
    a = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    path = tmp_path / f"rgb.{ext}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(a, "RGB").save(path, format=fmt, **options)
    np.testing.assert_allclose(as_hwc(load_image(path)), a / 255, atol=1e-6)


def test_jpeg_rgb_close(tmp_path):
    a = np.zeros((16, 16, 3), np.uint8)
    a[:, :8] = (200, 40, 10)
    a[:, 8:] = (20, 180, 240)
    path = tmp_path / "x.jpg"
    Image.fromarray(a).save(path, quality=98)
    out = as_hwc(load_image(path))
    np.testing.assert_allclose(out, np.asarray(Image.open(path)) / 255, atol=1e-6)
    assert np.abs(out - a / 255).mean() < 0.05


def test_mode_RGBA_composited_over_white(tmp_path):
    rgba = RNG.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    alpha = rgba[..., 3:] / 255
    expected = rgba[..., :3] / 255 * alpha + (1 - alpha)
    out = as_hwc(load_image(path))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_array_equal(out[0, 0], [1.0, 1.0, 1.0])


def test_mode_P_through_palette(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9)
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette(palette)
    path = tmp_path / "p.png"
    img.save(path)
    colours = np.array(palette[:9], np.float64).reshape(3, 3) / 255
    np.testing.assert_allclose(as_hwc(load_image(path)), colours[idx], atol=1e-6)


def test_mode_P_with_transparency_index(tmp_path):
    idx = np.array([[0, 1]], np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    path = tmp_path / "pt.png"
    img.save(path, transparency=0)
    np.testing.assert_allclose(as_hwc(load_image(path)), [[[1, 1, 1], [0, 0, 1]]], atol=1e-6)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_mode_I16_scaled_by_65535(tmp_path, ext):
    a = np.array([[0, 1, 255, 256], [1000, 32768, 65534, 65535]], np.uint16)
    path = tmp_path / f"g16.{ext}"
    Image.fromarray(a).save(path)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_allclose(as_hwc(load_image(path)), grey3(a / 65535), atol=1e-7)


def test_mode_I_scaled_and_clipped(tmp_path):
    a = np.array([[0, 65535, 32768, 100000, -5]], np.int32)
    path = tmp_path / "i.tif"
    Image.fromarray(a, "I").save(path)
    assert Image.open(path).mode == "I"
    expected = np.clip(a / 65535, 0, 1)
    np.testing.assert_allclose(as_hwc(load_image(path)), grey3(expected), atol=1e-7)


def test_mode_F_clipped(tmp_path):
    a = np.array([[0.0, 0.25, 1.0, 1.5, -0.5, np.nan]], np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(a, "F").save(path)
    assert Image.open(path).mode == "F"
    np.testing.assert_allclose(as_hwc(load_image(path)), grey3([[0, 0.25, 1, 1, 0, 0]]), atol=1e-7)


def test_mode_CMYK(tmp_path):
    cmyk = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    img = Image.fromarray(cmyk, "CMYK")
    path = tmp_path / "c.tif"
    img.save(path)
    assert Image.open(path).mode == "CMYK"
    expected = np.asarray(img.convert("RGB")) / 255
    np.testing.assert_allclose(as_hwc(load_image(path)), expected, atol=1e-6)


# --------------------------------------------------------------------------- EXIF


def test_exif_orientation_6_jpeg(tmp_path):
    a = np.zeros((8, 16, 3), np.uint8)  # wide: left half red, right half blue
    a[:, :8] = (255, 0, 0)
    a[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(a).save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (1, 3, 16, 8)  # 6: rotate 90 deg clockwise for display -> tall
    # the stored left (red) half is at the top once turned clockwise
    assert out[0, 0, :6].mean() > 0.9 and out[0, 2, :6].mean() < 0.1
    assert out[0, 2, 10:].mean() > 0.9 and out[0, 0, 10:].mean() < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    a = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(a).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")) / 255
    np.testing.assert_allclose(as_hwc(load_image(path)), expected, atol=1e-6)


# --------------------------------------------------------------------------- 16-bit PNG codec


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("filters", [0, 1, 2, 3, 4, "mixed"])
def test_png16_codec_round_trip_and_pillow_agrees(tmp_path, channels, filters):
    h, w = 5, 7
    values = RNG.integers(0, 65536, (h, w, channels), dtype=np.uint16)
    f = list(RNG.integers(0, 5, h)) if filters == "mixed" else filters
    data = image_mod._encode_png16(values, {}, filters=f)
    path = tmp_path / "c.png"
    path.write_bytes(data)
    # an independent decoder reads the same file (Pillow keeps the high byte of colour)
    pil = np.asarray(Image.open(path))
    if channels == 1:
        np.testing.assert_array_equal(pil, values[..., 0])
    elif channels == 2:  # Pillow opens 16-bit LA as RGBA
        np.testing.assert_array_equal(pil[..., 2:], values >> 8)
    else:
        np.testing.assert_array_equal(pil.reshape(h, w, channels), values >> 8)
    decoded, bands = image_mod._read_png16(data)
    assert bands == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    np.testing.assert_array_equal(np.rint(decoded * 65535).astype(np.uint16), values)


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (9, 11), (16, 5)])
def test_png16_interlaced(tmp_path, shape):
    values = RNG.integers(0, 65536, shape + (3,), dtype=np.uint16)
    data = image_mod._encode_png16(values, {}, interlace=True)
    path = tmp_path / "adam7.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), values >> 8)
    decoded, _ = image_mod._read_png16(data)
    np.testing.assert_array_equal(np.rint(decoded * 65535).astype(np.uint16), values)


def test_png16_rgba_composited_over_white(tmp_path):
    values = np.array([[[65535, 0, 0, 0], [0, 65535, 0, 65535], [0, 0, 0, 32768]]], np.uint16)
    path = tmp_path / "rgba16.png"
    path.write_bytes(image_mod._encode_png16(values, {}))
    a = 32768 / 65535
    expected = [[[1, 1, 1], [0, 1, 0], [1 - a, 1 - a, 1 - a]]]
    np.testing.assert_allclose(as_hwc(load_image(path)), expected, atol=1e-6)


# --------------------------------------------------------------------------- writing


def test_save_16bit_rgb_round_trip(tmp_path):
    x = torch.rand(1, 3, 9, 13, dtype=torch.float64)
    path = tmp_path / "deep.png"
    save_image(x, path, bits=16)
    back = load_image(path).double()
    assert (back - x).abs().max() <= 1 / 65535
    assert Image.open(path).mode == "RGB"  # a valid PNG for other readers too


def test_save_16bit_grey_round_trip(tmp_path):
    x = torch.rand(6, 4, dtype=torch.float64)
    path = tmp_path / "deep_grey.png"
    save_image(x, path, bits=16)
    assert Image.open(path).mode == "I;16"
    back = load_image(path).double()
    assert (back - x.expand(1, 3, 6, 4)).abs().max() <= 1 / 65535


def test_save_8bit_round_trip(tmp_path):
    x = torch.rand(3, 7, 5)
    path = tmp_path / "x.png"
    save_image(x, path)
    assert (load_image(path)[0] - x).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (3, 4, 5), (1, 1, 4, 5), (4, 5)])
def test_save_accepted_shapes_clamped(tmp_path, shape):
    x = torch.linspace(-1, 2, int(np.prod(shape))).reshape(shape)
    path = tmp_path / "s.png"
    save_image(x, path)
    back = load_image(path)
    assert back.shape == (1, 3, 4, 5)
    assert back.min() == 0.0 and back.max() == 1.0
    if len(shape) in (2,) or shape[-3] == 1:
        assert torch.equal(back[:, 0], back[:, 1]) and torch.equal(back[:, 0], back[:, 2])


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (4, 4, 4), (1, 2, 4, 4), (4,)])
def test_save_rejects_other_shapes(tmp_path, shape):
    with pytest.raises(ImageError, match="save_image takes one image"):
        save_image(torch.zeros(shape), tmp_path / "bad.png")


@pytest.mark.parametrize("ext,fmt", [("jpg", "JPEG"), ("bmp", "BMP"), ("tiff", "TIFF"), ("webp", "WEBP")])
def test_save_format_by_extension(tmp_path, ext, fmt):
    x = torch.full((3, 8, 8), 0.5)
    path = tmp_path / f"x.{ext}"
    save_image(x, path)
    assert Image.open(path).format == fmt
    assert (load_image(path) - 0.5).abs().max() < 0.02


def test_save_without_extension_is_png(tmp_path):
    path = tmp_path / "noext"
    save_image(torch.zeros(3, 2, 2), path)
    assert Image.open(path).format == "PNG"


def test_save_errors(tmp_path):
    with pytest.raises(ImageError, match="unknown image file extension"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.nonsense")
    with pytest.raises(ImageError, match="16-bit output needs a .png"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.jpg", bits=16)
    with pytest.raises(ImageError, match="bits must be 8 or 16"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.png", bits=12)
    missing = tmp_path / "no" / "such" / "x.png"
    with pytest.raises(ImageError, match="cannot write .*x.png"):
        save_image(torch.zeros(3, 2, 2), missing)


def test_save_metadata_on_jpeg_warns(tmp_path):
    with pytest.warns(UserWarning, match="cannot hold the metadata"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.jpg", metadata={"a": 1})


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_leaves_only_target(tmp_path):
    save_image(torch.rand(3, 4, 4), tmp_path / "a.png")
    save_image(torch.rand(3, 4, 4), tmp_path / "b.png", bits=16)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


def test_new_file_gets_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_image(torch.rand(3, 2, 2), tmp_path / "m.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.png").st_mode) == 0o644


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_target_and_removes_temp(tmp_path, monkeypatch, exc):
    target = tmp_path / "out.png"
    save_image(torch.zeros(3, 4, 4), target)
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise exc

    monkeypatch.setattr(Image.Image, "save", broken_save)
    expected = ImageError if isinstance(exc, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        save_image(torch.ones(3, 4, 4), target)
    if expected is ImageError:
        assert "out.png" in str(info.value) and "disk full" in str(info.value)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_failed_fsync_16bit_removes_temp(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(image_mod.os, "fsync", broken_fsync)
    with pytest.raises(ImageError, match="I/O error"):
        save_image(torch.ones(3, 4, 4), tmp_path / "deep.png", bits=16)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- metadata

METADATA = {
    "preset": "masked",
    "seed": 7,
    "style_weight": 1e4,
    "layers": ["relu1_1", "relu2_1"],
    "config": {"size": 256, "init": None, "resize": True},
    "note": "Gatys \u2192 Yan et al., \u03b1/\u03b2",  # not Latin-1: an iTXt chunk
}


@pytest.mark.parametrize("bits", [8, 16])
def test_metadata_round_trip(tmp_path, bits):
    path = tmp_path / "meta.png"
    save_image(torch.rand(3, 3, 3), path, metadata=METADATA, bits=bits)
    assert read_metadata(path) == METADATA
    assert Image.open(path).text["seed"] == "7"  # one chunk per key, JSON text


def test_metadata_errors(tmp_path):
    with pytest.raises(ImageError, match="JSON"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.png", metadata={"a": object()})
    with pytest.raises(ImageError, match="keys"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.png", metadata={"": 1})
    assert not (tmp_path / "x.png").exists()


def test_read_metadata_of_other_files(tmp_path):
    path = tmp_path / "x.jpg"
    save_image(torch.zeros(3, 2, 2), path)
    assert read_metadata(path) == {}
    with pytest.raises(ImageError, match="not found"):
        read_metadata(tmp_path / "nope.png")


# --------------------------------------------------------------------------- read errors


def test_missing_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ImageError, match="not found: .*missing.png"):
        load_image(path)


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="directory") as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image at all\n")
    with pytest.raises(ImageError, match="notes.png"):
        load_image(path)


@pytest.mark.parametrize("bits", [8, 16])
def test_truncated_png(tmp_path, bits):
    path = tmp_path / "cut.png"
    save_image(torch.rand(3, 32, 32), path, bits=bits)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg"):
        load_image(path)


# --------------------------------------------------------------------------- resizing


def test_load_with_size(tmp_path):
    path = tmp_path / "x.png"
    save_image(torch.rand(3, 20, 40), path)
    assert load_image(path, size=10).shape == (1, 3, 5, 10)
    assert load_image(path, size=80).shape == (1, 3, 40, 80)


def test_resize_image_longest_side_and_range():
    x = torch.rand(2, 3, 30, 12)
    y = resize_image(x, 10)
    assert y.shape == (2, 3, 10, 4)
    assert y.min() >= 0 and y.max() <= 1
    assert resize_image(torch.rand(3, 12, 30), 5).shape == (3, 2, 5)


def test_resize_antialiased():
    # a 1-px checkerboard shrunk 4x is its mean, not an aliased pattern
    board = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2
    y = resize_to(board.float().expand(1, 3, 32, 32), (8, 8))
    assert (y - 0.5).abs().max() < 0.05


def test_resize_to_same_size_is_identity():
    x = torch.rand(1, 3, 5, 6)
    assert resize_to(x, (5, 6)) is x


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_resize_image_bad_size(size):
    with pytest.raises(ImageError, match="size"):
        resize_image(torch.rand(1, 3, 4, 4), size)


def test_png16_is_decoded_by_torchvision_with_the_exact_values(tmp_path, monkeypatch):
    """16-bit PNGs are read by torchvision.io.decode_png (UNCHANGED), not a hand-written decoder."""
    import torchvision.io

    calls = []
    real = torchvision.io.decode_png

    def spy(data, mode=torchvision.io.ImageReadMode.UNCHANGED, *args, **kwargs):
        calls.append(mode)
        return real(data, mode, *args, **kwargs)

    monkeypatch.setattr(torchvision.io, "decode_png", spy)
    values = RNG.integers(0, 65536, (7, 9, 3), dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(image_mod._encode_png16(values, {}))
    image = load_image(path)
    assert calls == [torchvision.io.ImageReadMode.UNCHANGED]
    np.testing.assert_array_equal(np.rint(image[0].permute(1, 2, 0).numpy() * 65535).astype(np.uint16), values)
    assert not hasattr(image_mod, "_unfilter")  # the hand-written decoder is gone
