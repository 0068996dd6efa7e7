"""The feed-forward networks' eye training data: rendered eyes, labelled folders, style eyes.

Everything here is a function of its arguments and seeds (never of a global
generator), so a training run and its resumes draw the same eyes. The
training loop (:mod:`masked_gatys.train`) builds on it; it imports only the
core and the eye primitives below it (render, labels, parts, datasets, styles).

>>> data = rendered_data(2, 1, (24, 32), seed=0)
>>> tuple(data.train_images.shape), tuple(data.val_masks.shape), data.val_names
((2, 3, 24, 32), (1, 1, 24, 32), ['val000'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from masked_gatys.checkpoints import attention_of
from masked_gatys.errors import ImageError, MaskError
from masked_gatys.eyes.datasets import render_set
from masked_gatys.eyes.layouts import get_layout
from masked_gatys.eyes.labels import load_parts, parts_from_labels, resize_parts
from masked_gatys.eyes.parts import eye_regions
from masked_gatys.eyes.render import render_eye
from masked_gatys.eyes.segment import segment
from masked_gatys.eyes.styles import StylePool
from masked_gatys.image import load_image, resize_to
from masked_gatys.manifests import find_companion, list_images
from masked_gatys.masks import Regions, load_mask, resize_mask
from masked_gatys.objective import ObjectiveConfig

__all__ = ["RENDER_YAW", "RENDER_PITCH", "TrainingData", "mix_seed", "rendered_eyes", "rendered_data",
           "sized_data", "segmenter_masks", "open_enough", "MIN_PART_PIXELS", "folder_data", "load_labels", "load_attention",
           "style_pool", "style_gazes", "style_eye", "eye_regions_for"]

# Gaze range of the rendered training eyes, degrees (yaw, pitch): a little
# wider than MPIIGaze's bulk (about +-25 and +-20 degrees).
RENDER_YAW = 30.0
RENDER_PITCH = 20.0


@dataclass
class TrainingData:
    """Training and held-out eyes of one size: images, attention masks, part labels where known,
    and (with a style pool) each eye's nearest pool eye."""

    train_images: Tensor  # (N, 3, H, W)
    train_masks: Tensor   # (N, 1, H, W) attention
    val_images: Tensor
    val_masks: Tensor
    val_names: list[str]
    train_parts: Tensor | None = None  # (N, H, W) uint8 part labels, where known
    val_parts: Tensor | None = None
    train_styles: Tensor | None = None  # (N,) index of each eye's style-pool eye
    val_styles: Tensor | None = None
    train_net_masks: Tensor | None = None  # (N, 1, H, W) what the network is given, where not the true masks
    val_net_masks: Tensor | None = None


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), for per-step generators.

    >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


# ---------------------------------------------------------------- files

def load_attention(path: str | os.PathLike) -> Tensor:
    """A binary mask file's attention channel ``(1, 1, H, W)``."""
    return attention_of(load_mask(path, mode="binary"))


def load_labels(path: Path, size: tuple[int, int]) -> Tensor | None:
    """``NAME_labels.png`` (the renderer's part colours) as ``(1, H, W)`` uint8 at ``size``, or None."""
    if not path.is_file():
        return None
    return resize_parts(load_parts(path), size).to(torch.uint8)


def folder_data(folder: Path, size: tuple[int, int], n_val: int) -> TrainingData:
    """A folder of ``NAME.png`` with ``NAME_mask.png`` (and ``NAME_labels.png``) at ``size``;
    the last ``n_val`` by name are held out."""
    files = list_images(folder)
    if len(files) <= n_val:
        raise ImageError(f"{folder}: {len(files)} images, but {n_val} are held out for validation; "
                         "add images or lower --val")
    images, masks, labels = [], [], []
    for path in files:
        mask_path = find_companion(path, "mask")
        if mask_path is None:
            raise MaskError(f"{path}: no mask {path.stem}_mask.png beside it")
        images.append(resize_to(load_image(path), size, mode="bilinear"))
        masks.append(resize_mask(load_attention(mask_path), size))
        labels.append(load_labels(path.with_name(f"{path.stem}_labels.png"), size))
    split = len(files) - n_val
    img, msk = torch.cat(images), torch.cat(masks)
    lab = torch.cat(labels) if all(x is not None for x in labels) else None
    return TrainingData(img[:split], msk[:split], img[split:], msk[split:], [p.stem for p in files[split:]],
                        None if lab is None else lab[:split], None if lab is None else lab[split:])


# ---------------------------------------------------------------- rendered eyes

def rendered_eyes(n: int, size: tuple[int, int], seed: int, stream: int, domain: str = "real", *,
                  layout: str | None = None, look: str = "any") -> tuple[Tensor, Tensor, Tensor]:
    """``n`` rendered eyes: images, attention masks and part labels ``(n, H, W)`` uint8.

    ``layout`` None: the original renders (unity framing, ``domain``). With a layout: eyes in
    its framing and gaze ranges, seen in ``look`` (``domain`` is then ignored); a shut eye (no
    iris, or less iris or pupil than :data:`MIN_PART_PIXELS`: the layout's ``closure`` and lids
    draw some) is replaced by the next seed's, so every eye has the objective's regions.

    >>> images, masks, labels = rendered_eyes(2, (36, 60), 0, 1, layout="mpiigaze")
    >>> tuple(images.shape), bool((masks.flatten(1).sum(1) > 0).all())
    ((2, 3, 36, 60), True)
    """
    gen = torch.Generator().manual_seed(mix_seed(seed, stream))
    yaw_range, pitch_range = RENDER_YAW, RENDER_PITCH
    if layout is not None:
        spec = get_layout(layout)
        yaw_range, pitch_range = spec.yaw_range, spec.pitch_range
    gaze = (torch.rand(n, 2, generator=gen) * 2 - 1) * torch.tensor([yaw_range, pitch_range])
    seeds = torch.randint(0, 2**31 - 1, (n,), generator=gen)
    images, masks, labels = [], [], []
    for (yaw, pitch), s in zip(gaze.tolist(), seeds.tolist()):
        if layout is None:
            eye = render_eye(yaw=yaw, pitch=pitch, domain=domain, size=size, seed=int(s))
        else:
            eye = _open_eye(yaw, pitch, size, int(s), layout, look)
        images.append(eye.image.float())
        masks.append(eye.mask.float())
        labels.append(eye.labels.to(torch.uint8))
    if not images:
        h, w = size
        return torch.zeros(0, 3, h, w), torch.zeros(0, 1, h, w), torch.zeros(0, h, w, dtype=torch.uint8)
    return torch.cat(images), torch.cat(masks), torch.stack(labels)


# Fewest pixels of iris and of pupil a training eye (content or style) may show: the
# objective's iris and pupil terms need half a position of relu3_1 (4x4 pixels); a layout's
# lids may cover most of either (MPIIGaze's iris sits under the upper lid).
MIN_PART_PIXELS = 12


def open_enough(labels: Tensor) -> Tensor:
    """Which label maps ``(N, H, W)`` show at least :data:`MIN_PART_PIXELS` of iris and of pupil.

    >>> open_enough(torch.tensor([[[2] * 12 + [3] * 12], [[2] * 24]])).tolist()
    [True, False]
    """
    flat = labels.flatten(1)
    return ((flat == 2).sum(1) >= MIN_PART_PIXELS) & ((flat == 3).sum(1) >= MIN_PART_PIXELS)


def _open_eye(yaw: float, pitch: float, size: tuple[int, int], seed: int, layout: str, look: str) -> Any:
    """The eye of ``seed`` in ``layout``, or of the next seeds while it is (nearly) shut."""
    for k in range(64):
        eye = render_eye(yaw=yaw, pitch=pitch, size=size, seed=(seed + k) % (2**31 - 1), layout=layout, look=look)
        if bool(open_enough(eye.labels[None])[0]):
            return eye
    raise ValueError(f"64 shut eyes in a row from seed {seed} in layout {layout!r}")  # pragma: no cover


def rendered_data(n_train: int, n_val: int, size: tuple[int, int], seed: int, train_stream: int = 1,
                  val_stream: int = 2, prefix: str = "val", *, layout: str | None = None,
                  look: str = "any") -> TrainingData:
    """``n_train`` training and ``n_val`` held-out rendered real-domain eyes (their own seeds),
    in ``layout`` and ``look`` when given (:func:`rendered_eyes`)."""
    if n_train < 1:
        raise ValueError("render at least one training eye (--render N) or give --content DIR")
    images, masks, labels = rendered_eyes(n_train, size, seed, train_stream, layout=layout, look=look)
    vi, vm, vl = rendered_eyes(n_val, size, seed, val_stream, layout=layout, look=look)
    return TrainingData(images, masks, vi, vm, [f"{prefix}{i:03d}" for i in range(n_val)], labels, vl)


def sized_data(render: int, val: int, size: tuple[int, int], sizes: Sequence[tuple[int, int]],
               seed: int, *, layout: str | None = None, look: str = "any") -> list[TrainingData]:
    """One data set per training size (a single one for ``size`` alone when ``sizes`` is empty):
    the ``render`` eyes are split among the sizes, each with ``val`` held-out eyes."""
    if not sizes:
        return [rendered_data(render, val, size, seed, layout=layout, look=look)]
    n = max(1, -(-render // len(sizes)))
    return [rendered_data(n, val, hw, seed, 10 + b, 100 + b, f"val{hw[0]}x{hw[1]}_", layout=layout, look=look)
            for b, hw in enumerate(sizes)]


def segmenter_masks(images: Tensor, model: Any = None) -> Tensor:
    """The attention masks ``(N, 1, H, W)`` (iris + pupil) the segmenter finds in ``images``:
    what ``purify --mask auto`` gives a network in use (``TrainConfig.net_masks="segmenter"``).

    >>> segmenter_masks(torch.rand(2, 3, 36, 60)).shape
    torch.Size([2, 1, 36, 60])
    """
    if images.shape[0] == 0:
        return torch.zeros(0, 1, *images.shape[-2:])
    return (segment(images, model=model) >= 2).float()[:, None]


# ---------------------------------------------------------------- style eyes

def style_pool(n: int, size: tuple[int, int], seed: int, layout: str | None = None) -> StylePool:
    """The training style pool at ``size``: the same ``n`` synthetic eyes at every size, each of
    its own shape, gaze and pupil but all in the skin and iris colours of the style eye (the
    synthetic eye of seed ``seed``).

    Unlike the optimizer's pool (``purify --style-pool``: each eye its own colours), a network
    cannot see which pool eye judges an output, so pool eyes of many colours would ask it for
    colours it cannot know: the look is held to one eye's, and the pool varies the geometry.
    """
    if layout is not None:  # the layout's clean look, gaze in its ranges; shut eyes left out
        spec = get_layout(layout)
        look = render_eye(yaw=0.0, pitch=0.0, look="clean", size=size, seed=seed, layout=layout).truth["appearance"]
        eyes = render_set(2 * n, look="clean", size=size, seed=mix_seed(seed, 9) % (2**31 - 1), layout=layout,
                          yaw_range=spec.yaw_range, pitch_range=spec.pitch_range,
                          skin_color=look["skin_color"], iris_color=look["iris_color"])
        open_eyes = torch.nonzero(open_enough(eyes.parts)).flatten().tolist()[:n]
        return StylePool.from_gaze_set(eyes.subset(open_eyes))
    look = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=size, seed=seed).truth["appearance"]
    return StylePool.from_gaze_set(render_set(
        n, domain="synthetic", size=size, seed=mix_seed(seed, 9) % (2**31 - 1),
        yaw_range=RENDER_YAW, pitch_range=RENDER_PITCH,
        skin_color=look["skin_color"], iris_color=look["iris_color"]))


def style_gazes(styles: int, seed: int) -> list[tuple[float, float, float | None]]:
    """(yaw, pitch, pupil ratio or None for the seed's own) of each of ``styles`` rendered style eyes.

    >>> style_gazes(2, 0)[0]
    (0.0, 0.0, None)
    """
    gen = torch.Generator().manual_seed(mix_seed(seed, 7))
    rest = torch.rand(styles - 1, 3, generator=gen).tolist()
    return [(0.0, 0.0, None)] + [((2 * a - 1) * 20.0, (2 * b - 1) * 10.0, 0.3 + 0.25 * c) for a, b, c in rest]


def style_eye(style: str, size: tuple[int, int], *, seed: int, style_mask: str | None = None,
              gaze: tuple[float, float, float | None] = (0.0, 0.0, None),
              layout: str | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The style image (1, 3, H, W), its attention mask (1, 1, H, W) and its part labels
    (1, H, W) or None, at a training size ``size``.

    ``style="rendered"``: the synthetic eye of ``seed`` at ``gaze`` (yaw, pitch, pupil ratio
    or None), in ``layout``'s clean look when given; else an image file with its mask (``style_mask``, or ``NAME_mask.png`` beside
    it) brought to the training scale (its longest side to ``size``'s).
    """
    h, w = size
    if style == "rendered":
        yaw, pitch, ratio = gaze
        extra = {} if ratio is None else {"pupil_ratio": ratio}
        if layout is not None:  # the layout's clean look
            extra.update(layout=layout, look="clean")
        else:
            extra["domain"] = "synthetic"
        eye = render_eye(yaw=yaw, pitch=pitch, size=(h, w), seed=seed, **extra)
        return eye.image.float(), eye.mask.float(), eye.labels[None].to(torch.uint8)
    path = Path(style)
    image = load_image(path)
    mask_path = Path(style_mask) if style_mask is not None else find_companion(path, "mask")
    if mask_path == path:
        mask_path = None
    if mask_path is None:
        raise MaskError(f"{path}: the style image needs a mask (--style-mask, or {path.stem}_mask.png beside it)")
    mask = load_attention(mask_path)
    if mask.shape[-2:] != image.shape[-2:]:
        raise MaskError(f"{mask_path}: mask is {tuple(mask.shape[-2:])} but the style image {path} is "
                        f"{tuple(image.shape[-2:])}")
    scale = max(h, w) / max(image.shape[-2:])
    target = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
    labels = load_labels(path.with_name(f"{path.stem}_labels.png"), target)
    return resize_to(image, target, mode="bilinear"), resize_mask(mask, target), labels


# ---------------------------------------------------------------- regions

def eye_regions_for(mask: Tensor, image: Tensor | None = None, cfg: ObjectiveConfig | None = None,
                    parts: Tensor | None = None) -> Regions:
    """The regions an objective config needs of eyes (content or style): background/attention,
    or their parts for masked-eye (from the part labels when it matches skin and sclera apart,
    else the pupil found in the image).

    >>> eye_regions_for(torch.ones(1, 1, 4, 4)).names
    ('background', 'attention')
    """
    if cfg is not None and "skin" in cfg.regions:
        if parts is None:
            raise MaskError("this objective matches skin and sclera apart: the eyes need part labels")
        return parts_from_labels(parts.long()).to(mask.device)
    if image is not None and cfg is not None and "pupil" in cfg.regions:
        return eye_regions(image, mask)
    return Regions.from_binary(mask)
