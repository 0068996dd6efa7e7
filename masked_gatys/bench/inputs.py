"""The benchmark's inputs: held-out rendered real eyes and the shipped checkpoints' style eye.

>>> len(held_out_eyes((24, 40), 2))
2
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from masked_gatys.eyes.render import render_eye

__all__ = ["HELDOUT_SEEDS", "held_out_eyes", "style_eye"]

#: Seeds of the held-out eyes: training draws its render seeds with
#: ``torch.randint(0, 2**31 - 1)`` from a generator seeded by ``(seed, stream)``
#: (``masked_gatys.train``); ``tests/test_bench.py`` checks these are not among
#: the shipped checkpoints' training and validation seeds.
HELDOUT_SEEDS = 900_000
_GAZE_SEED = 20_240_601
#: Gaze range of the held-out eyes, degrees (the training range).
_YAW, _PITCH = 30.0, 20.0


def held_out_eyes(size: tuple[int, int], count: int) -> list[tuple[Tensor, Tensor, dict[str, Any]]]:
    """``count`` rendered real-domain eyes not used in training: (image, mask, info) each.

    Seeds are ``HELDOUT_SEEDS + k``; gazes are drawn from a fixed generator in
    the training range. ``info`` holds the seed, the gaze and the renderer's part
    labels (``labels``, ``(H, W)``: 0 skin, 1 sclera, 2 iris, 3 pupil).

    >>> image, mask, info = held_out_eyes((24, 40), 1)[0]
    >>> tuple(image.shape), tuple(mask.shape), info["seed"]
    ((1, 3, 24, 40), (1, 1, 24, 40), 900000)
    """
    gen = torch.Generator().manual_seed(_GAZE_SEED)
    gaze = ((torch.rand(max(count, 0), 2, generator=gen) * 2 - 1) * torch.tensor([_YAW, _PITCH])).tolist()
    out = []
    for k, (yaw, pitch) in enumerate(gaze):
        eye = render_eye(yaw=yaw, pitch=pitch, domain="real", size=size, seed=HELDOUT_SEEDS + k)
        out.append((eye.image.float(), eye.mask.float(),
                    {"seed": HELDOUT_SEEDS + k, "yaw": yaw, "pitch": pitch, "labels": eye.labels}))
    return out


def style_eye(size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The shipped checkpoints' style recipe, at ``size``: the synthetic eye of seed 0 looking ahead."""
    eye = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=size, seed=0)
    return eye.image.float(), eye.mask.float()


