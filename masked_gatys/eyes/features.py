"""Appearance features of eye images: grey, standardised, small (the classic estimators' and
the style pools' view of an eye). A leaf of the eye domain: torch and numpy only.

>>> appearance_features(torch.rand(2, 3, 36, 60), (3, 5)).shape
(2, 15)
"""

from __future__ import annotations

import numpy as np
import torch  # noqa: F401  (the doctests use it from the module)
import torch.nn.functional as F
from torch import Tensor

from masked_gatys.errors import GazeError

__all__ = ["grey_standardised", "appearance_features"]


def grey_standardised(images: Tensor) -> Tensor:
    """``(N, 1, H, W)`` grey (ITU-R 601 luma) with zero mean and unit spread per image.

    The paper's estimators see grey eyes; standardising each image removes exposure and
    contrast, which no gaze label depends on.

    >>> g = grey_standardised(torch.rand(2, 3, 8, 8))
    >>> g.shape, bool(g.mean((1, 2, 3)).abs().max() < 1e-5)
    (torch.Size([2, 1, 8, 8]), True)
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise GazeError(f"expected images (N, 3, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 3:
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    mean = x.mean((1, 2, 3), keepdim=True)
    std = x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
    return (x - mean) / std


def appearance_features(images: Tensor, size: tuple[int, int] = (15, 25)) -> np.ndarray:
    """Appearance vectors for the classic estimators: grey, area-resized to ``size``, standardised.

    >>> appearance_features(torch.rand(3, 3, 36, 60)).shape
    (3, 375)
    """
    x = grey_standardised(images)
    x = F.interpolate(x, size=size, mode="area")
    x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
    return x.flatten(1).numpy().astype(np.float64)
