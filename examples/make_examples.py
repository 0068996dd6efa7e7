"""Regenerate the example images in this folder (see README.md).

    python examples/make_examples.py [--astronaut PATH/TO/astronaut.png]

The rendered eyes need only this package. The photograph crop needs
scikit-image's ``astronaut.png`` (public domain, NASA); without it that part
is skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from masked_gatys.eyes import labels_to_rgb, render_eye
from masked_gatys.image import save_image
from masked_gatys.eyes.pupil import pupil_center

HERE = Path(__file__).resolve().parent

RENDERS = {
    # name: render_eye arguments
    "synthetic_eye": dict(yaw=0.0, pitch=0.0, domain="synthetic", size=(72, 120), seed=0),
    "real_eye": dict(yaw=18.0, pitch=-8.0, domain="real", size=(72, 120), seed=7),
    "real_eye_small": dict(yaw=-22.0, pitch=10.0, domain="real", size=(36, 60), seed=21),
    "synthetic_eye_small": dict(yaw=-22.0, pitch=10.0, domain="synthetic", size=(36, 60), seed=21),
}

# The astronaut crop: a 30x18 px box around the subject's right eye, enlarged 2x, and the
# iris (with pupil) placed by hand in the photograph's pixel coordinates.
ASTRONAUT_BOX = (188, 91, 218, 109)
ASTRONAUT_SCALE = 2
ASTRONAUT_IRIS = (203.0, 100.5, 4.1)  # centre x, centre y, radius


def _astronaut_lids(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid edges y(x), placed by hand."""
    return 97.2 + 0.020 * (x - 203.5) ** 2, 103.8 - 0.018 * (x - 203.5) ** 2


def render_examples() -> None:
    truth = {}
    for name, args in RENDERS.items():
        eye = render_eye(**args)
        save_image(eye.image, HERE / f"{name}.png")
        save_image(eye.binary_mask, HERE / f"{name}_mask.png")
        save_image(labels_to_rgb(eye.labels), HERE / f"{name}_labels.png")
        truth[name] = {"render_eye": args, **eye.truth}
    (HERE / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def astronaut_example(path: Path) -> None:
    photo = Image.open(path).convert("RGB")
    box, s = ASTRONAUT_BOX, ASTRONAUT_SCALE
    w, h = (box[2] - box[0]) * s, (box[3] - box[1]) * s
    crop = photo.crop(box).resize((w, h), Image.LANCZOS)
    # the mask: iris circle between the lids, coverage by 8x8 supersampling, thresholded at 0.5
    ss = 8
    ys = (np.arange(h * ss) + 0.5) / ss / s + box[1] - 0.5
    xs = (np.arange(w * ss) + 0.5) / ss / s + box[0] - 0.5
    x, y = np.meshgrid(xs, ys)
    cx, cy, r = ASTRONAUT_IRIS
    upper, lower = _astronaut_lids(x)
    inside = ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) & (y > upper) & (y < lower)
    mask = inside.reshape(h, ss, w, ss).mean(axis=(1, 3)) >= 0.5
    image = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)
    save_image(image, HERE / "astronaut_eye.png")
    save_image(torch.from_numpy(mask.astype(np.float32)), HERE / "astronaut_eye_mask.png")
    print("astronaut_eye: pupil_center inside the mask:", pupil_center(image, mask))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--astronaut", type=Path, default=None, help="scikit-image's astronaut.png")
    args = parser.parse_args()
    render_examples()
    if args.astronaut is not None:
        astronaut_example(args.astronaut)


if __name__ == "__main__":
    main()
