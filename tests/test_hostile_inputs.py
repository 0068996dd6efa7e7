"""Inputs that crashed, hung or aborted a run (issue 21: D5, D6, D7); each crash-prone case in a
subprocess, so a crash fails the test instead of ending the suite."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import pytest
import torch

from masked_gatys.eyes import render_eye
from masked_gatys.image import _encode_png16, load_image, save_image
from masked_gatys.manifests import read_manifest

pytestmark = pytest.mark.usefixtures("one_thread")


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _short_png16(path, *, crc_ok=True):
    """A 16-bit PNG whose image data inflates to half its rows (libpng: 'Not enough image data')."""
    data = _encode_png16((torch.rand(8, 12, 3) * 65535).numpy().astype("uint16"), {})
    i = data.index(b"IDAT") - 4
    n = struct.unpack(">I", data[i:i + 4])[0]
    raw = zlib.decompress(data[i + 8:i + 8 + n])
    body = zlib.compress(raw[:len(raw) // 2])
    crc = zlib.crc32(b"IDAT" + body) if crc_ok else 0
    path.write_bytes(data[:i] + struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", crc)
                     + data[i + 12 + n:])
    return path


def _eyes(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eye = render_eye(yaw=5.0 * i, pitch=0.0, domain="real", size=(24, 40), seed=i)
        save_image(eye.image, folder / f"{i:04d}.png")
    return folder


def test_a_malformed_16_bit_png_is_one_failed_image_not_a_crashed_run(tmp_path):
    # D5: SIGSEGV in torchvision's decode_png killed purify before any manifest, on every rerun
    src = _eyes(tmp_path / "src", 2)
    _short_png16(src / "0001b.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "masked_gatys", "purify", str(src), "-o", str(out), "--model", "johnson",
           "--no-pupil-shift", "-q"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    status = {r["output"]: r["status"] for r in read_manifest(out / "manifest.jsonl")}
    assert status["0000.png"] == status["0001.png"] == "done"
    assert status["0001b.png"].startswith("failed: ") and "short" in status["0001b.png"]


_SCRIPT = """
import sys, torch
from masked_gatys import stylize, StylizeConfig
from masked_gatys.image import load_image
for path in sys.argv[1:]:
    try:
        load_image(path)
        print("loaded")
    except Exception as e:
        print(type(e).__name__, e)
try:
    stylize(torch.rand(1, 3, 0, 60), torch.rand(1, 3, 36, 60), config=StylizeConfig(weights="random", iterations=1))
except Exception as e:
    print(type(e).__name__, e)
"""


def test_crash_prone_inputs_give_one_line_errors_in_a_fresh_process(tmp_path):
    # D5: malformed 16-bit PNGs (short image data; with and without a good CRC) reached libpng,
    # whose error ended the process. D6: stylize() with a 0-high image never returned
    # (encoder.check_image_size searched for a size forever).
    paths = [str(_short_png16(tmp_path / f"{k}.png", crc_ok=k)) for k in (True, False)]
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", _SCRIPT, *paths], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-1000:])
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("ImageError") for line in lines), lines
    assert "has no pixels" in lines[2]


def test_a_whole_16_bit_png_still_reads(tmp_path):
    values = (torch.rand(5, 7, 3) * 65535).round()
    (tmp_path / "x.png").write_bytes(_encode_png16(values.numpy().astype("uint16"), {}))
    assert torch.allclose(load_image(tmp_path / "x.png")[0].permute(1, 2, 0), values / 65535)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="file names there are always Unicode")
def test_a_file_name_that_is_not_utf8_is_purified_and_the_rest_too(tmp_path):
    # D7: the save aborted purify on every rerun; the images after it were never done
    from masked_gatys.purify import PurifyConfig, purify

    src = _eyes(tmp_path / "src", 3)
    os.rename(src / "0001.png", os.path.join(os.fsencode(src), b"\xff\xfe01.png"))
    cfg = PurifyConfig(method="johnson", pupil_shift=False)
    report = purify(src, tmp_path / "out", config=cfg)
    assert (report.done, report.failed) == (3, 0)
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "out"), b"\xff\xfe01.png"))
    assert purify(src, tmp_path / "out", config=cfg).skipped == 3


def test_an_eye_with_a_mask_and_no_style_mask_runs_as_documented():
    # D9 (regression): "--mask m.png without --style-mask" on an eye warned that the whole style
    # image is used, then failed: "region 'background' ... covers 0.00 positions"
    import warnings

    from masked_gatys import StylizeConfig, stylize

    content = render_eye(yaw=5.0, pitch=0.0, domain="real", size=(36, 60), seed=1)
    style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(36, 60), seed=2)
    cfg = StylizeConfig(preset="masked", subject="eye", weights="random", iterations=1, max_layer="relu2_1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stylize(content.image, style.image, mask=content.binary_mask, config=cfg)
    assert result.image.shape == content.image.shape and torch.isfinite(result.image).all()
    assert any("no style mask" in str(w.message) for w in caught)
