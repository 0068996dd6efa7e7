"""Style eyes chosen per content eye from a pool of synthetic eyes.

One style eye for every content eye makes the per-region Gram statistics
trade area between parts: a style eye looking elsewhere, or opened wider,
shows more or less sclera and skin, and the optimizer moves the lids and the
iris to match (measured in docs/gaze.md, "Matched style eyes"). A pool of
synthetic eyes (the gaze estimator's own training renders do) gives each
content eye the pool eye that looks most like it: nearest in the
appearance features the classic gaze estimators use (grey, standardised per
image, area-resized to 15x25, so exposure, contrast and colour do not count).
Only the content image is used, never its labels.

>>> from masked_gatys.eyes.datasets import render_set
>>> pool = StylePool.from_gaze_set(render_set(6, size=(36, 60), seed=0))
>>> eyes = render_set(2, size=(36, 60), seed=0, domain="real")
>>> pool.nearest(eyes.images).shape        # the nearest pool eye of each
torch.Size([2])
>>> styles, masks, parts = pool.styles_for(eyes.images, (36, 60))
>>> tuple(styles.shape), tuple(masks.shape), tuple(parts.shape)
((2, 3, 36, 60), (2, 1, 36, 60), (2, 36, 60))
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes.datasets import GazeSet
from masked_gatys.eyes.features import appearance_features
from masked_gatys.eyes.labels import load_parts, resize_parts
from masked_gatys.image import load_image, resize_to
from masked_gatys.manifests import list_inputs
from masked_gatys.masks import load_mask, resize_mask

__all__ = ["StylePool", "POOL_FEATURE_SIZE"]

POOL_FEATURE_SIZE = (15, 25)


@dataclass(frozen=True)
class StylePool:
    """Synthetic style eyes ``images (N, 3, H, W)`` with attention masks ``masks (N, 1, H, W)``
    and, where known, part labels ``parts (N, H, W)`` (0 skin, 1 sclera, 2 iris, 3 pupil)."""

    images: Tensor
    masks: Tensor
    names: tuple[str, ...]
    parts: Tensor | None = None
    fingerprint: str = ""
    _features: Tensor = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[1] != 3 or self.images.shape[0] < 1:
            raise MaskedGatysError(f"a style pool needs (N, 3, H, W) images, got {tuple(self.images.shape)}")
        if self.masks.shape[0] != self.images.shape[0] or self.masks.shape[-2:] != self.images.shape[-2:]:
            raise MaskedGatysError(f"style pool: {self.masks.shape[0]} masks of {tuple(self.masks.shape[-2:])} "
                                   f"for {self.images.shape[0]} images of {tuple(self.images.shape[-2:])}")
        if not bool(((self.masks >= 0.5).sum((1, 2, 3)) > 0).all()):
            raise MaskedGatysError("style pool: an eye's attention mask is empty")
        feats = torch.from_numpy(appearance_features(self.images, POOL_FEATURE_SIZE)).float()
        object.__setattr__(self, "_features", feats)
        if not self.fingerprint:
            h = hashlib.sha256()
            h.update((self.images * 255).round().to(torch.uint8).numpy().tobytes())
            h.update((self.masks >= 0.5).numpy().tobytes())
            if self.parts is not None:
                h.update(self.parts.to(torch.uint8).numpy().tobytes())
            object.__setattr__(self, "fingerprint", h.hexdigest())

    def __len__(self) -> int:
        return self.images.shape[0]

    @classmethod
    def from_gaze_set(cls, s: GazeSet) -> StylePool:
        """The eyes of a :class:`~masked_gatys.eyes.datasets.GazeSet` (needs its masks)."""
        if s.masks is None:
            raise MaskedGatysError("a style pool needs attention masks: this gaze set has none")
        return cls(s.images.float(), s.masks.float(), tuple(s.ids), s.parts)

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> StylePool:
        """A folder of style eyes: ``manifest.jsonl`` (``image``, ``mask``, as
        ``GazeSet.write`` and ``render-eyes`` write it), or images with
        ``NAME_mask.png`` (and ``NAME_labels.png``: part labels in the renderer's
        colours) beside them. All are brought to the first eye's size."""
        folder = Path(path)
        if not folder.is_dir():
            raise MaskedGatysError(f"{folder}: no such style pool folder")
        manifest = folder / "manifest.jsonl"
        try:
            items = list_inputs(manifest if manifest.is_file() else folder)  # purify's own reading
        except MaskedGatysError:
            items = []
        pairs = [(item.image, item.mask, item.labels) for item in items]
        if not pairs:
            raise MaskedGatysError(f"{folder}: no style eyes (images with NAME_mask.png, or a manifest.jsonl)")
        images, masks, names, parts = [], [], [], []
        size = None
        with_parts = all(lab is not None for _, _, lab in pairs)
        for image_path, mask_path, labels_path in pairs:
            if mask_path is None or not mask_path.is_file():
                raise MaskedGatysError(f"{image_path}: a style eye needs its mask ({image_path.stem}_mask.png)")
            img = load_image(image_path)
            m = load_mask(mask_path).region("attention")
            if m.shape[-2:] != img.shape[-2:]:
                raise MaskedGatysError(f"{mask_path}: mask is {tuple(m.shape[-2:])} but its image is "
                                       f"{tuple(img.shape[-2:])}")
            size = size or tuple(img.shape[-2:])
            if tuple(img.shape[-2:]) != size:
                img, m = resize_to(img, size), resize_mask(m, size)
            images.append(img)
            masks.append(m)
            names.append(image_path.name)
            if with_parts:
                parts.append(resize_parts(load_parts(labels_path), size).to(torch.uint8))
        return cls(torch.cat(images), torch.cat(masks), tuple(names), torch.cat(parts) if with_parts else None)

    def nearest(self, images: Tensor, k: int = 1) -> Tensor:
        """Indices ``(B,)`` (``(B, k)`` for ``k > 1``) of the pool eyes nearest to each of ``images``."""
        k = max(1, min(int(k), len(self)))
        q = torch.from_numpy(appearance_features(images.detach().cpu(), POOL_FEATURE_SIZE)).float()
        d = torch.cdist(q, self._features)
        idx = d.topk(k, dim=1, largest=False).indices
        return idx[:, 0] if k == 1 else idx

    def styles_for(self, images: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor | None]:
        """One style eye per image, ``(B, 3, *size)``, its attention mask ``(B, 1, *size)`` and
        its part labels ``(B, *size)`` (None where the pool has none)."""
        idx = self.nearest(images)
        styles, masks = self.images[idx], self.masks[idx]
        parts = None if self.parts is None else self.parts[idx].long()
        if tuple(styles.shape[-2:]) != tuple(size):
            styles, masks = resize_to(styles, size), resize_mask(masks, size)
            if parts is not None:
                parts = resize_parts(parts, size)
        return styles, (masks >= 0.5).float(), parts
