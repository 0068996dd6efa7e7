"""Eye parts from the image: a small network labelling skin / sclera / iris / pupil.

Real eyes come without masks; purification needs one per eye. :func:`segment`
labels every pixel of eye images of any size, grey or RGB, with the four
classes ``render-eyes`` writes (0 skin, 1 sclera, 2 iris, 3 pupil), at the
input's size. The network is a tiny U-Net that sees the luminance only,
standardised per image and resized to a fixed internal size (36x60 by
default), so a webcam eye, a near-infrared frame and an RGB photo crop all
reach it in one form; its logits are resized back and post-processed:

- one eye: the iris+pupil component holding the most pupil (else the largest)
  is kept, every other iris or pupil pixel becomes skin or sclera (whichever
  the network prefers there);
- no invented iris: a kept component under ``min_iris`` of the image (a
  closed eye, a lash, a shadow) is dropped, so a closed eye has no iris;
- one pupil: the largest pupil component inside the iris; other pupil pixels
  become iris.

:func:`label_image` / :func:`mask_image` turn labels into the companions the
toolkit reads (``NAME_labels.png``, ``NAME_mask.png``), :func:`write_companions`
writes them, :func:`auto_masks` does the whole job for a list of images.

>>> import torch
>>> net = SegNet(width=4)
>>> labels = segment(torch.rand(2, 3, 40, 50), model=net)
>>> tuple(labels.shape), labels.dtype
((2, 40, 50), torch.int64)
>>> tuple(segment(torch.rand(1, 1, 36, 60), model=net).shape)
(1, 36, 60)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masked_gatys.errors import CheckpointError, ImageError, MaskedGatysError
from masked_gatys.eyes.pupil import _robust_ellipse  # the pupil detector's robust ellipse fit
from masked_gatys.eyes.render import LABEL_COLORS, labels_to_rgb
from masked_gatys.files import atomic_write, write_json_atomic
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import OUTSIDE, existing_records, list_inputs, manifest_name, select_shard, write_manifest

__all__ = ["CLASSES", "SegNet", "Segmenter", "segment", "load_segmenter", "postprocess", "prepare_input",
           "label_image", "mask_image", "write_companions", "auto_masks", "masks_for", "SHIPPED",
           "DEFAULT_SIZE", "MIN_IRIS", "part_centre", "segment_folder", "SegmentReport", "save_segmenter"]

CLASSES = ("skin", "sclera", "iris", "pupil")
#: the internal size the network works at (H, W)
DEFAULT_SIZE = (36, 60)
#: the smallest iris kept, as a share of the image's pixels (about 22 px at 36x60)
MIN_IRIS = 0.01
#: the shipped checkpoint's file name in ``masked_gatys/data``
SHIPPED = "segmenter.pt"
_LUMA = (0.299, 0.587, 0.114)


def _block(cin: int, cout: int, dilation: int = 1, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(convs):
        d = dilation if k == 0 else 1
        layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=d, dilation=d),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _fuse(block: nn.Sequential) -> nn.Sequential:
    """The block with each BatchNorm folded into its convolution (eval mode: same output, faster)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    mods = list(block)
    out: list[nn.Module] = []
    i = 0
    while i < len(mods):
        if isinstance(mods[i], nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(mods[i], mods[i + 1]))
            i += 2
        else:
            out.append(mods[i])
            i += 1
    return nn.Sequential(*out)


class SegNet(nn.Module):
    """A three-level U-Net on 2x2 pixel blocks: ``(B, 1, h, w)`` standardised luminance ->
    ``(B, 4, h, w)`` logits (``h``, ``w`` even).

    The input is folded into 4 channels at half size (pixel unshuffle), worked on at
    half, quarter and eighth size (``width``, 2x, 4x channels; a dilated convolution for
    context) and unfolded back to one logit per pixel: few full-size activations, so it
    is fast on a CPU. About 107k parameters at width 16.

    >>> SegNet(width=8)(torch.zeros(1, 1, 36, 60)).shape
    torch.Size([1, 4, 36, 60])
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = int(width)
        if w < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.width = w
        self.enc1 = _block(4, w)
        self.enc2 = _block(w, 2 * w)
        self.enc3 = _block(2 * w, 4 * w, dilation=2)
        self.dec2 = _block(4 * w + 2 * w, 2 * w, convs=1)
        self.dec1 = _block(2 * w + w, w, convs=1)
        self.head = nn.Conv2d(w, 4 * len(CLASSES), 1)
        self.fused = False

    def fuse(self) -> "SegNet":
        """Fold the BatchNorms into the convolutions for inference (in place; eval mode)."""
        if not self.fused:
            self.eval()
            for name in ("enc1", "enc2", "enc3", "dec2", "dec1"):
                setattr(self, name, _fuse(getattr(self, name)))
            self.fused = True
        return self

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(F.pixel_unshuffle(x, 2))
        e2 = self.enc2(F.max_pool2d(e1, 2, ceil_mode=True))
        e3 = self.enc3(F.max_pool2d(e2, 2, ceil_mode=True))
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False),
                                  e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False),
                                  e1], 1))
        return F.pixel_shuffle(self.head(d1), 2)


def prepare_input(images: Tensor, size: tuple[int, int] = DEFAULT_SIZE) -> Tensor:
    """What the network sees: ``(B, 1, *size)`` luminance, standardised per image.

    ``images``: ``(B, 1 or 3, H, W)`` (or ``(1 or 3, H, W)``, ``(H, W)``),
    float in [0, 1] or uint8. Three equal channels and one channel give the
    same result.

    >>> x = torch.rand(1, 1, 20, 30)
    >>> bool(torch.equal(prepare_input(x), prepare_input(x.expand(1, 3, 20, 30))))
    True
    """
    x = _as_batch(images)
    if x.shape[1] == 3:
        if bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()):
            x = x[:, :1]  # grey given as three equal channels: exactly the one-channel input
        else:
            x = (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 0.02)


def _as_batch(images: Any) -> Tensor:
    if not isinstance(images, Tensor):
        images = torch.as_tensor(np.asarray(images))
    x = images
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ImageError(f"eye images must be (B, 1 or 3, H, W), got {tuple(images.shape)}")
    if x.shape[-2] < 4 or x.shape[-1] < 4:
        raise ImageError(f"eye images must be at least 4x4 pixels, got {tuple(x.shape[-2:])}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x.float()


def _one_per_image(comps: np.ndarray, n: int, score: np.ndarray) -> np.ndarray:
    """Which of the ``n`` components of a batch ``(B, H, W)`` to keep: the best-scoring one of each
    image (the lowest-numbered of equals). Returns a boolean per component number (0 = none)."""
    b = comps.shape[0]
    owner = np.zeros(n + 1, np.int64)
    owner[comps.reshape(b, -1)] = np.arange(b)[:, None]
    score = score.astype(np.int64).copy()
    score[0] = -1
    best = np.full(b, -1, np.int64)
    np.maximum.at(best, owner[1:], score[1:])
    ids = np.nonzero(score == best[owner])[0]
    ids = ids[ids > 0]
    chosen = np.full(b, n + 1, np.int64)
    np.minimum.at(chosen, owner[ids], ids)
    keep = np.zeros(n + 2, bool)
    keep[chosen] = True
    return keep[:n + 1]


def _open_irises(out: np.ndarray, fb: np.ndarray, fraction: float) -> None:
    """Cut thin spurs off each image's iris (a morphological opening with a disc of ``fraction``
    of the iris's equivalent radius; the pupil is never cut), in place; one opening per radius."""
    from scipy import ndimage  # deferred: see postprocess

    eye = out >= 2
    radii = np.rint(fraction * np.sqrt(eye.sum((1, 2)) / np.pi)).astype(int)
    for r in sorted(set(radii.tolist()) - {0}):
        idx = np.nonzero(radii == r)[0]
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disc = np.zeros((3, 2 * r + 1, 2 * r + 1), bool)
        disc[1] = (yy * yy + xx * xx) <= r * r  # never across images
        opened = ndimage.binary_opening(eye[idx], structure=disc) | (out[idx] == 3)
        cut = eye[idx] & ~opened
        sub = out[idx]
        sub[cut] = fb[idx][cut]
        out[idx] = sub


def postprocess(labels: np.ndarray, fallback: np.ndarray, *, min_iris: float = MIN_IRIS,
                open_iris: float = 0.0) -> np.ndarray:
    """Labels ``(H, W)`` or ``(B, H, W)`` with, per eye, one iris holding one pupil, or no iris.

    The iris+pupil component holding the most pupil (the largest of equals) is kept if it
    covers at least ``min_iris`` of the image; every other iris or pupil pixel becomes its
    ``fallback`` class (same shape: 0 skin or 1 sclera); then the largest pupil component is
    kept and other pupil pixels become iris. ``open_iris`` > 0 first cuts spurs thinner than
    that fraction of the iris's radius off the iris (a dark lash line or lid taken for iris).

    >>> lab = np.zeros((10, 10), int); lab[2:7, 2:7] = 2; lab[4, 4] = 3; lab[9, 9] = 2
    >>> out = postprocess(lab, np.ones((10, 10), int), min_iris=0.05)
    >>> int((out >= 2).sum()), int(out[9, 9]), int(out[4, 4])
    (25, 1, 3)
    >>> int((postprocess(lab, np.zeros((10, 10), int), min_iris=0.5) >= 2).sum())
    0
    """
    from scipy import ndimage  # deferred: scipy.ndimage is slow to import and only needed here

    single = labels.ndim == 2
    out = (labels[None] if single else labels).copy()
    fb = fallback[None] if single else fallback
    b, h, w = out.shape
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # 4-connected, never across images
    if open_iris > 0 and (out >= 2).any():
        _open_irises(out, fb, open_iris)
    eye = out >= 2
    if eye.any():
        comps, n = ndimage.label(eye, structure)
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
        pupil_in = np.bincount(comps[out == 3], minlength=n + 1)
        keep = _one_per_image(comps, n, pupil_in * (h * w + 1) + sizes)
        keep &= sizes >= max(1.0, min_iris * h * w)
        keep[0] = False
        drop = eye & ~keep[comps]
        out[drop] = fb[drop]
    pupil = out == 3
    if pupil.any():
        pcomps, pn = ndimage.label(pupil, structure)
        if pn > 1:
            pkeep = _one_per_image(pcomps, pn, np.bincount(pcomps.ravel(), minlength=pn + 1))
            out[pupil & ~pkeep[pcomps]] = 2
    return out[0] if single else out


@dataclass
class Segmenter:
    """A segmentation network with its working size and identity; call it on images.

    ``segmenter(images) -> (B, H, W)`` int64 labels at the input's size.
    """

    net: SegNet
    size: tuple[int, int] = DEFAULT_SIZE
    identity: dict[str, Any] | None = None
    min_iris: float = MIN_IRIS
    open_iris: float = 0.0
    channels_last: bool = False
    """The net's weights are channels-last (:func:`load_segmenter`'s): the input is made so too,
    oneDNN's fast layout (about 1.8x faster at 36x60 on a CPU; the same labels)."""

    def logits(self, images: Tensor) -> Tensor:
        """Raw logits ``(B, 4, H, W)`` at the input's size (no post-processing)."""
        x = _as_batch(images)
        h, w = x.shape[-2:]
        device = next(self.net.parameters()).device
        self.net.eval()
        with torch.inference_mode():
            inp = prepare_input(x.to(device), self.size)
            if self.channels_last:
                inp = inp.contiguous(memory_format=torch.channels_last)
            out = self.net(inp).contiguous()
            if tuple(out.shape[-2:]) != (h, w):
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out.float().cpu()

    def __call__(self, images: Tensor, *, post: bool = True) -> Tensor:
        lg = self.logits(images).numpy()
        # numpy's argmax over the class axis: the same answer as torch's (first of equals, NaN
        # wins), about 7x faster on a CPU for (B, 4, H, W) (torch's reduces across a strided axis)
        lab = lg.argmax(1)
        if not post:
            return torch.from_numpy(lab.astype(np.int64, copy=False))
        fallback = _argmax2(lg[:, 0], lg[:, 1])
        return torch.from_numpy(postprocess(lab, fallback, min_iris=self.min_iris, open_iris=self.open_iris).astype(np.int64, copy=False))


def _argmax2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.stack([a, b], 1).argmax(1)`` without the stack: 1 where ``b`` wins (ties go to ``a``; a NaN
    wins, the first of two NaNs)."""
    out = b > a
    if np.isnan(b).any():
        out |= np.isnan(b) & ~np.isnan(a)
    return out.astype(np.int64)


def _data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_segmenter(path: str | os.PathLike | None = None, *, device: str = "cpu") -> Segmenter:
    """The shipped segmenter (``path`` None or ``"shipped"``), or one saved by the training script.

    A checkpoint is a dict: ``state`` (the net's state dict), ``config``
    (``width``, ``size``, ``min_iris``) and ``identity``. Raises
    :class:`~masked_gatys.errors.CheckpointError` when it is missing or not one.
    """
    p = _data_dir() / SHIPPED if path in (None, "shipped") else Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no segmenter checkpoint there")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
        cfg = ck["config"]
        net = SegNet(width=int(cfg["width"]))
        net.load_state_dict(ck["state"])
        size = tuple(int(v) for v in cfg.get("size", DEFAULT_SIZE))
        if len(size) != 2 or size[0] % 2 or size[1] % 2:
            raise ValueError(f"size {size} is not two even numbers")
    except (KeyError, TypeError, RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{p}: not a segmenter checkpoint ({str(exc).splitlines()[0][:120]})") from None
    net.fuse().to(device).to(memory_format=torch.channels_last)
    identity = dict(ck.get("identity") or {}, file=p.name, sha256=_sha256(p))
    return Segmenter(net, size, identity, float(cfg.get("min_iris", MIN_IRIS)), float(cfg.get("open_iris", 0.0)),
                     channels_last=True)


def save_segmenter(seg: Segmenter, path: str | os.PathLike, **extra: Any) -> None:
    """Write a checkpoint :func:`load_segmenter` reads, atomically (``extra``: more top-level keys)."""
    if seg.net.fused:
        raise CheckpointError("a fused segmenter cannot be saved; save the network as trained")
    state = {k: v.detach().cpu().clone() for k, v in seg.net.state_dict().items()}
    ck = {"state": state, "config": {"width": seg.net.width, "size": list(seg.size), "min_iris": seg.min_iris,
                                     "open_iris": seg.open_iris},
          "identity": dict(seg.identity or {}), **extra}
    buf = io.BytesIO()
    torch.save(ck, buf)
    data = buf.getvalue()
    atomic_write(path, lambda fh: fh.write(data))


_CACHE: dict[str, Segmenter] = {}


def _resolve(model: Any) -> Segmenter:
    if isinstance(model, Segmenter):
        return model
    if isinstance(model, SegNet):
        return Segmenter(model)
    key = str(model)
    if key not in _CACHE:
        _CACHE[key] = load_segmenter(model)
    return _CACHE[key]


def segment(images: Any, *, model: Any = None, batch_size: int = 256) -> Tensor:
    """Labels ``(B, H, W)`` int64 (0 skin, 1 sclera, 2 iris, 3 pupil) of eye images.

    ``images``: ``(B, 1 or 3, H, W)`` (or one image ``(C, H, W)`` / ``(H, W)``),
    float in [0, 1] or uint8, any size. ``model``: None (the shipped
    checkpoint), a checkpoint path, a :class:`Segmenter` or a :class:`SegNet`.
    """
    seg = _resolve(model)
    x = _as_batch(images)
    return torch.cat([seg(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def label_image(labels: Tensor) -> Tensor:
    """``(3, H, W)`` colour-coded labels (``NAME_labels.png``: black skin, white sclera,
    blue iris, red pupil) of one label map ``(H, W)``.

    >>> label_image(torch.tensor([[0, 3]]))[:, 0, 1].tolist()
    [1.0, 0.0, 0.0]
    """
    return labels_to_rgb(labels)


def mask_image(labels: Tensor) -> Tensor:
    """``(1, 1, H, W)`` binary attention mask (iris + pupil, white): ``NAME_mask.png``.

    >>> mask_image(torch.tensor([[0, 1, 2, 3]])).flatten().tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    return (labels >= 2).float().reshape(1, 1, *labels.shape[-2:])


def write_companions(labels: Tensor, image_path: str | os.PathLike,
                     out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``NAME_labels.png`` and ``NAME_mask.png`` for the image at ``image_path`` (beside it,
    or in ``out_dir``), atomically; returns their paths (labels, mask)."""
    image_path = Path(image_path)
    folder = Path(out_dir) if out_dir is not None else image_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    lab_path = folder / f"{image_path.stem}_labels.png"
    mask_path = folder / f"{image_path.stem}_mask.png"
    save_image(label_image(labels), lab_path)
    save_image(mask_image(labels), mask_path)
    return lab_path, mask_path


def masks_for(image: Tensor, *, model: Any = None) -> tuple[Tensor, Tensor]:
    """One eye's labels ``(1, H, W)`` and attention mask ``(1, 1, H, W)`` (iris + pupil).

    What a pipeline calls for an eye that came without a mask (``mask="auto"``);
    an eye with no iris (closed) gives an all-zero mask.
    """
    labels = segment(image, model=model)[:1]
    return labels, mask_image(labels[0])


def auto_masks(images: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, model: Any = None,
               batch_size: int = 256, progress: Callable[[int, int], Any] | None = None) -> list[tuple[Path, Path]]:
    """Segment image files and write their companions into ``out_dir`` (same stems); returns
    ``(labels path, mask path)`` per image, in order. ``progress(done, total)`` after each batch.

    Images are read with :func:`masked_gatys.image.load_image` and batched by size.
    """
    seg = _resolve(model)
    paths = [Path(p) for p in images]
    out: list[tuple[Path, Path] | None] = [None] * len(paths)
    by_size: dict[tuple[int, int], list[int]] = {}
    loaded: dict[int, Tensor] = {}
    for i, p in enumerate(paths):
        loaded[i] = load_image(p)
        by_size.setdefault(tuple(loaded[i].shape[-2:]), []).append(i)
    done = 0
    for idx in by_size.values():
        for k in range(0, len(idx), batch_size):
            chunk = idx[k:k + batch_size]
            labels = seg(torch.cat([loaded[i] for i in chunk]))
            for j, i in enumerate(chunk):
                out[i] = write_companions(labels[j], paths[i], out_dir)
            done += len(chunk)
            if progress is not None:
                progress(done, len(paths))
    return [o for o in out if o is not None]


def part_centre(labels: Tensor, part: str = "pupil") -> tuple[float, float] | None:
    """Centre ``(x, y)`` in pixels of the pupil (or the ``iris``: iris + pupil) of one label map
    ``(H, W)``; None where there is none.

    An ellipse is fitted to the part's edge where it borders the eye (the pupil's edge on the
    iris, the iris's on the sclera), so a part partly under a lid has the centre of its whole
    outline, not of what shows; where that edge is too short, the centroid of what shows.

    >>> yy, xx = torch.meshgrid(torch.arange(40.), torch.arange(60.), indexing="ij")
    >>> lab = torch.where((xx - 30.3) ** 2 + (yy - 20.0) ** 2 <= 100, 2, 1)
    >>> lab[(xx - 30.3) ** 2 + (yy - 20.0) ** 2 <= 25] = 3
    >>> lab[:18] = 0  # an upper lid over the top of the iris and the pupil
    >>> [round(v) for v in part_centre(lab, "pupil")]
    [30, 20]
    """
    lab = np.asarray(labels)
    inside = lab == 3 if part == "pupil" else lab >= 2
    border_class = (lambda v: v == 2) if part == "pupil" else (lambda v: v == 1)
    if not inside.any():
        return None
    pad = np.pad(lab, 1, mode="edge")
    near = np.zeros_like(inside)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        near |= border_class(pad[dy:dy + lab.shape[0], dx:dx + lab.shape[1]])
    ys, xs = np.nonzero(inside & near)
    cy, cx = np.nonzero(inside)
    centroid = (float(cx.mean()), float(cy.mean()))
    if len(xs) >= 12:
        fit = _robust_ellipse(np.stack([xs, ys], 1).astype(np.float64))
        if fit is not None:
            (x0, y0), (major, _) = fit
            radius = float(np.sqrt(inside.sum() / np.pi))
            if np.hypot(x0 - centroid[0], y0 - centroid[1]) <= radius and major <= 3 * radius:
                return float(x0), float(y0)
    return centroid


@dataclass(frozen=True)
class SegmentReport:
    """What :func:`segment_folder` did: records (one per input), counts, the manifest's path."""

    records: list[dict[str, Any]]
    done: int
    failed: int
    skipped: int
    manifest: Path


SETTINGS_FILE = "segment.json"


def _outputs(rel: str) -> tuple[str, str]:
    p = PurePosixPath(rel)
    return str(p.with_name(f"{p.stem}_labels.png")), str(p.with_name(f"{p.stem}_mask.png"))


def _check_model(out_dir: Path, identity: dict[str, Any]) -> None:
    """Outputs of one folder come from one segmenter: record it, refuse another."""
    path = out_dir / SETTINGS_FILE
    mine = {"software": "masked-gatys", "segmenter": identity.get("sha256", "unsaved network")}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("segmenter") not in (None, mine["segmenter"]):
            raise ImageError(f"{out_dir} holds masks made by another segmenter; use another output folder, "
                             "or remove it to start again")
        return
    write_json_atomic(mine, path)


def _checked_targets(items: list[Any], out_dir: Path) -> tuple[list[Any], list[Any]]:
    """(items to segment, items whose outputs would lie outside ``out_dir``); raises ImageError
    before any work when an output would overwrite an input or two inputs share an output."""
    root = out_dir.resolve()
    outside = [it for it in items if any(root not in (out_dir / rel).resolve().parents for rel in _outputs(it.rel))]
    items = [it for it in items if it not in outside]
    inputs = {p.resolve() for it in items for p in (it.image, it.mask, it.labels) if p is not None}
    seen: dict[str, str] = {}
    for it in items:
        for rel in _outputs(it.rel):
            if (out_dir / rel).resolve() in inputs:
                raise ImageError(f"the output {out_dir / rel} (for {it.rel}) would overwrite an input; "
                                 "choose another output folder")
            if seen.setdefault(rel, it.rel) != it.rel:
                raise ImageError(f"{seen[rel]} and {it.rel} would both be written to {out_dir / rel}; "
                                 "rename one of them")
    return items, outside


def segment_folder(source: Any, out_dir: str | os.PathLike, *, model: Any = None, batch_size: int = 256,
                   shard: tuple[int, int] | None = None,
                   progress: Callable[[int, int, int, int], Any] | None = None) -> SegmentReport:
    """Segment every image of a folder or manifest (as ``purify`` reads them) into ``out_dir``.

    Writes ``NAME_labels.png`` and ``NAME_mask.png`` at each input's relative path under
    ``out_dir`` (nothing outside it, each file atomically) and a JSON-lines manifest
    (``manifest.jsonl``, or ``manifest.shard-I-of-N.jsonl`` for a shard): the input's columns
    plus ``labels``, ``mask`` (relative to ``out_dir``), ``iris`` (False: no iris found, e.g. a
    closed eye; the mask is empty) and ``status``. An input whose two files are there is
    skipped; a bad image is recorded as ``failed: reason``. ``progress(done, failed, skipped,
    total)`` after each batch; returning True stops after it.
    """
    out_dir = Path(out_dir)
    src = None if isinstance(source, (list, tuple)) else Path(source)
    if src is not None and src.is_dir() and src.resolve() == out_dir.resolve():
        raise ImageError(f"{out_dir}: the output folder is the input folder; choose another")
    items, outside = _checked_targets(select_shard(list_inputs(source, exclude=[out_dir]), shard), out_dir)
    seg = _resolve(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_model(out_dir, seg.identity or {})
    manifest = out_dir / manifest_name(shard)
    # by output: a segmented folder's records carry no input identity (manifests.record_key: 'output:...')
    previous = {str(r.get("output")): r for r in existing_records(out_dir).values()}
    records: dict[str, dict[str, Any]] = {}
    counts = {"done": 0, "failed": 0, "skipped": 0}
    todo = []
    for it in items:
        lab_rel, mask_rel = _outputs(it.rel)
        old = previous.get(lab_rel)
        if (out_dir / lab_rel).is_file() and (out_dir / mask_rel).is_file() and old and old.get("status") == "done":
            records[lab_rel] = old
            counts["skipped"] += 1
        else:
            todo.append(it)

    def now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    def fail(it: Any, exc: BaseException) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        records[_outputs(it.rel)[0]] = {**it.columns, "output": _outputs(it.rel)[0], "status": f"failed: {reason}",
                                       "finished": now()}
        counts["failed"] += 1

    for it in outside:  # a manifest row that climbs out of -o (issue 21's D1): recorded, never written
        fail(it, ImageError(OUTSIDE))

    try:
        for k in range(0, len(todo), batch_size):
            by_size: dict[tuple[int, int], list[tuple[Any, Tensor]]] = {}
            for it in todo[k:k + batch_size]:
                try:
                    img = load_image(it.image)
                except (MaskedGatysError, OSError) as exc:
                    fail(it, exc)
                    continue
                by_size.setdefault(tuple(img.shape[-2:]), []).append((it, img))
            for group in by_size.values():
                labels = seg(torch.cat([img for _, img in group]))
                for (it, _), lab in zip(group, labels):
                    lab_rel, mask_rel = _outputs(it.rel)
                    (out_dir / lab_rel).parent.mkdir(parents=True, exist_ok=True)
                    save_image(label_image(lab), out_dir / lab_rel)
                    save_image(mask_image(lab), out_dir / mask_rel)
                    records[lab_rel] = {**it.columns, "output": lab_rel, "labels": lab_rel, "mask": mask_rel,
                                        "iris": bool((lab >= 2).any()), "status": "done", "finished": now()}
                    counts["done"] += 1
            write_manifest(records.values(), manifest)
            if progress is not None and progress(counts["done"], counts["failed"], counts["skipped"],
                                                 len(items)) is True:
                break
    finally:
        write_manifest(records.values(), manifest)
    return SegmentReport(sorted(records.values(), key=lambda r: str(r["output"])), counts["done"],
                         counts["failed"], counts["skipped"], manifest)


def label_colours() -> dict[int, tuple[int, int, int]]:
    """The companion file's colours per class (the renderer's)."""
    return dict(LABEL_COLORS)
