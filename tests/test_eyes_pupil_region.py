"""Issue 22, item 4: the pupil region the masked-eye objective uses is the image's pupil, not the mask's.

A user's mask for a real eye is often a disc drawn around a (possibly misplaced) pupil centre.
The objective's ``pupil`` region (``eyes.parts.eye_regions``) must sit on the dark blob of the
image whatever the disc's offset, and have about its size -- so a four-lobed pupil cannot come
from a pupil region placed where the mask says (docs/tuning.md, "Four-lobed pupils").
"""

import pytest
import torch

from masked_gatys.eyes import render_eye
from masked_gatys.eyes.parts import eye_regions


def _disc(hw, x, y, r):
    yy, xx = torch.meshgrid(torch.arange(hw[0], dtype=torch.float32), torch.arange(hw[1], dtype=torch.float32),
                            indexing="ij")
    return (((xx - x) ** 2 + (yy - y) ** 2).sqrt() <= r).float()[None, None]


@pytest.mark.parametrize("seed", [0, 2, 4])
@pytest.mark.parametrize("dx, dy", [(0, 0), (3, 0), (-3, 1)])
def test_pupil_region_follows_the_image_not_the_disc(seed, dx, dy):
    eye = render_eye(size=(36, 60), seed=seed, domain="real")
    cx, cy = eye.truth["pupil_center"]
    disc = _disc((36, 60), cx + dx, cy + dy, 11.0)  # iris-sized disc, centre off by (dx, dy)
    pupil = eye_regions(eye.image, disc).region("pupil")[0, 0]
    yy, xx = torch.meshgrid(torch.arange(36.0), torch.arange(60.0), indexing="ij")
    area = float(pupil.sum())
    px, py = float((pupil * xx).sum()) / area, float((pupil * yy).sum()) / area
    assert abs(px - cx) < 0.5 and abs(py - cy) < 0.5, (px, py, cx, cy)  # on the image's pupil
    labelled = int((eye.labels == 3).sum())
    assert 0.6 * labelled <= area <= 1.6 * labelled, (area, labelled)  # about its size, not the disc's
