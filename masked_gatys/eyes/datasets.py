"""Gaze data sets: eye images with attention masks and gaze labels, from four sources.

One container, :class:`GazeSet` (images ``(N, 3, H, W)`` in [0, 1], gaze ``(N, 2)``
``(yaw, pitch)`` degrees in the project's convention (:mod:`masked_gatys.eyes.render`),
optional attention masks ``(N, 1, H, W)`` and pupil centres ``(N, 2)`` in pixels), filled by:

- :func:`render_set`: the procedural renderer; a real and a synthetic set with the same
  ``seed`` hold the same eyes (geometry, gaze, masks), only the look differs;
- :func:`load_labelled_folder`: a labels file (CSV or JSONL: ``image``, ``yaw``, ``pitch``,
  optional ``mask``, ``pupil_x``, ``pupil_y``; relative paths are relative to the file);
- :func:`load_unityeyes`: UnityEyes' own output (``N.jpg`` + ``N.json``);
- :func:`load_mpiigaze`: MPIIGaze's normalised per-day files (``pXX/dayYY.mat``).

Each dataset's own gaze convention is converted explicitly, through gaze vectors.

>>> s = render_set(4, domain="real", size=(36, 60), seed=1)
>>> len(s), s.size, s.gaze.shape, tuple(s.masks.shape)
(4, (36, 60), (4, 2), (4, 1, 36, 60))
>>> t = render_set(4, domain="synthetic", size=(36, 60), seed=1)
>>> bool((s.gaze == t.gaze).all()), bool(torch.equal(s.masks, t.masks))
(True, True)
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masked_gatys.errors import GazeError, MaskedGatysError, MaskError
from masked_gatys.eyes.labels import load_parts, resize_parts
from masked_gatys.eyes.layouts import get_layout
from masked_gatys.eyes.render import EyeRender, labels_to_rgb, render_eye, vector_to_gaze
from masked_gatys.files import atomic_write
from masked_gatys.image import load_image, resize_to, save_image
from masked_gatys.manifests import read_table

__all__ = [
    "GazeSet",
    "eye_seed_and_gaze",
    "render_set",
    "render_many",
    "load_labelled_folder",
    "load_unityeyes",
    "load_mpiigaze",
    "read_labels",
]

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class GazeSet:
    """Eye images with gaze labels (and masks and pupil centres where known).

    ``images``: ``(N, 3, H, W)`` float32 in [0, 1]. ``gaze``: ``(N, 2)`` float64 ``(yaw,
    pitch)`` degrees. ``masks``: ``(N, 1, H, W)`` float32 attention (iris + pupil) or None.
    ``pupil``: ``(N, 2)`` float64 ``(x, y)`` pixels (NaN where unknown) or None. ``ids``: one
    name per eye. ``source``: where the set came from (JSON-ready), kept in results.
    ``parts``: ``(N, H, W)`` uint8 label maps (0 skin, 1 sclera, 2 iris, 3 pupil) or None;
    the masked objective then matches the skin and the sclera apart.

    >>> s = render_set(6, size=(36, 60), seed=0)
    >>> a, b = s.split(0.5, seed=0)
    >>> len(a), len(b), sorted(a.ids + b.ids) == sorted(s.ids)
    (3, 3, True)
    """

    images: Tensor
    gaze: np.ndarray
    masks: Tensor | None = None
    pupil: np.ndarray | None = None
    ids: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    parts: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dim() != 4 or self.images.shape[1] != 3:
            shape = tuple(self.images.shape) if isinstance(self.images, Tensor) else type(self.images).__name__
            raise GazeError(f"a gaze set's images are (N, 3, H, W), got {shape}")
        n = self.images.shape[0]
        gaze = np.asarray(self.gaze, dtype=np.float64)
        if gaze.shape != (n, 2):
            raise GazeError(f"a gaze set needs one (yaw, pitch) per image: {n} images, gaze {gaze.shape}")
        if not np.isfinite(gaze).all():
            raise GazeError("gaze labels must be finite")
        object.__setattr__(self, "gaze", gaze)
        if self.masks is not None and tuple(self.masks.shape) != (n, 1, *self.images.shape[-2:]):
            raise GazeError(f"masks {tuple(self.masks.shape)} do not match images {tuple(self.images.shape)}")
        if self.pupil is not None:
            pupil = np.asarray(self.pupil, dtype=np.float64)
            if pupil.shape != (n, 2):
                raise GazeError(f"pupil centres must be (N, 2), got {pupil.shape}")
            object.__setattr__(self, "pupil", pupil)
        ids = tuple(self.ids) if self.ids else tuple(f"{i:05d}" for i in range(n))
        if len(ids) != n:
            raise GazeError(f"{len(ids)} ids for {n} images")
        object.__setattr__(self, "ids", ids)
        if self.parts is not None and tuple(self.parts.shape) != (n, *self.images.shape[-2:]):
            raise GazeError(f"part labels {tuple(self.parts.shape)} do not match images {tuple(self.images.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def subset(self, index: Sequence[int] | np.ndarray, *, name: str | None = None) -> GazeSet:
        """The eyes at ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64)
        t = torch.from_numpy(idx)
        source = dict(self.source, subset=name or f"{len(idx)} of {len(self)}")
        return GazeSet(self.images[t], self.gaze[idx],
                       None if self.masks is None else self.masks[t],
                       None if self.pupil is None else self.pupil[idx],
                       tuple(self.ids[i] for i in idx), source,
                       None if self.parts is None else self.parts[t])

    def split(self, fraction: float, *, seed: int = 0) -> tuple[GazeSet, GazeSet]:
        """A seeded random split: (the rest, ``fraction`` of the eyes), e.g. train and validation."""
        if not 0.0 < fraction < 1.0:
            raise GazeError(f"split fraction must be in (0, 1), got {fraction}")
        n = len(self)
        k = max(1, min(n - 1, int(round(n * fraction))))
        order = np.random.default_rng([seed, 1009]).permutation(n)
        return self.subset(np.sort(order[k:]), name="split rest"), self.subset(np.sort(order[:k]), name="split part")

    def with_images(self, images: Tensor, **source: Any) -> GazeSet:
        """The same eyes and labels with other images (e.g. purified), ``source`` added."""
        return GazeSet(images, self.gaze, self.masks, self.pupil, self.ids, dict(self.source, **source),
                       self.parts)

    def write(self, folder: str | os.PathLike) -> Path:
        """Write the set as PNGs plus ``manifest.jsonl`` (the labelled-folder format).

        Returns the manifest's path; :func:`load_labelled_folder` reads it back. Files are named
        after the ids (characters other than letters, digits, ``._-`` as ``_``). Rewrites
        nothing when the folder already holds this set (same ids, labels and source).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.jsonl"
        rows = []
        for i, ident in enumerate(self.ids):
            stem = _file_stem(ident)
            row: dict[str, Any] = {"id": ident, "image": f"{stem}.png",
                                   "yaw": float(self.gaze[i, 0]), "pitch": float(self.gaze[i, 1])}
            if self.masks is not None:
                row["mask"] = f"{stem}_mask.png"
            if self.parts is not None:
                row["labels"] = f"{stem}_labels.png"
            if self.pupil is not None and np.isfinite(self.pupil[i]).all():
                row["pupil_x"], row["pupil_y"] = float(self.pupil[i, 0]), float(self.pupil[i, 1])
            rows.append(row)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        stamp = folder / ".source.json"
        source_text = json.dumps(self.source, sort_keys=True, default=str)
        if (manifest.is_file() and manifest.read_text(encoding="utf-8") == text and stamp.is_file()
                and stamp.read_text(encoding="utf-8") == source_text
                and all((folder / r["image"]).is_file() for r in rows)):
            return manifest
        for i, row in enumerate(rows):
            save_image(self.images[i:i + 1], folder / row["image"])
            if self.masks is not None:
                save_image(self.masks[i:i + 1].expand(1, 3, -1, -1), folder / row["mask"])
            if self.parts is not None:
                save_image(labels_to_rgb(self.parts[i])[None], folder / row["labels"])
        atomic_write(stamp, lambda f: f.write(source_text.encode("utf-8")))
        atomic_write(manifest, lambda f: f.write(text.encode("utf-8")))
        return manifest


def _file_stem(ident: str) -> str:
    """A file name for an eye's id: MPIIGaze's ``p00/day01/right/0000`` is ``p00_day01_right_0000``.

    >>> _file_stem("p00/day01/right/0000"), _file_stem("00012")
    ('p00_day01_right_0000', '00012')
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", ident)


# --------------------------------------------------------------------------- rendered sets


def eye_seed_and_gaze(seed: int, index: int, *, yaw_range: float = 30.0,
                      pitch_range: float = 20.0) -> tuple[int, float, float]:
    """The eye seed and gaze of eye ``index`` of a rendered set with ``seed``.

    Used by :func:`render_set` and ``masked-gatys render-eyes``, so both draw the same eyes.

    >>> eye_seed_and_gaze(0, 0) == eye_seed_and_gaze(0, 0)
    True
    """
    rng = np.random.default_rng([seed, index, 77])
    eye_seed = int(rng.integers(0, 2**31 - 1))
    yaw = float(rng.uniform(-yaw_range, yaw_range))
    pitch = float(rng.uniform(-pitch_range, pitch_range))
    return eye_seed, round(yaw, 4), round(pitch, 4)


def render_set(n: int, *, domain: str | None = None, size: tuple[int, int] | None = None, seed: int = 0,
               yaw_range: float | None = None, pitch_range: float | None = None,
               progress: Progress | None = None, layout: str = "unity", look: str | None = None,
               **overrides: Any) -> GazeSet:
    """``n`` rendered eyes in ``domain`` with exact masks, labels, gaze and pupil centres.

    The same ``seed`` (and ranges) in both domains gives the same eyes, so the synthetic set
    is the upper bound for the real one. Eye ``i`` is image ``i`` of
    ``masked-gatys render-eyes --seed SEED``. ``layout`` and ``look``: as in
    :func:`masked_gatys.eyes.render.render_eye` (``look`` decides the domain when given);
    ``size`` defaults to 36x60 for ``unity`` and to the layout's size otherwise, the gaze
    ranges to the layout's (30 and 20 degrees for ``unity``). ``parts`` holds the label maps.
    ``overrides``: passed to every :func:`render_eye` (e.g. ``skin_color``, ``iris_color``:
    one look for all the eyes).

    >>> s = render_set(2, size=(36, 60), seed=3, yaw_range=10, pitch_range=5)
    >>> bool((abs(s.gaze[:, 0]) <= 10).all() and (abs(s.gaze[:, 1]) <= 5).all())
    True
    >>> m = render_set(2, layout="mpiigaze", look="any", seed=3)
    >>> m.size, m.source["layout"], tuple(m.parts.shape)
    ((36, 60), 'mpiigaze', (2, 36, 60))
    """
    if n < 1:
        raise GazeError(f"a rendered set needs at least 1 eye, got {n}")
    eyes = []
    for eye in render_many(n, domain=domain, size=size, seed=seed, yaw_range=yaw_range,
                           pitch_range=pitch_range, layout=layout, look=look, **overrides):
        eyes.append(eye)
        if progress is not None:
            progress(len(eyes), n)
    lay = get_layout(layout)
    yaw_range = lay.yaw_range if yaw_range is None else yaw_range
    pitch_range = lay.pitch_range if pitch_range is None else pitch_range
    hw = tuple(eyes[0].truth["size"])
    domain = eyes[0].truth["domain"] if look is None else ("synthetic" if look == "clean" else "real")
    source: dict[str, Any] = {"kind": "rendered", "domain": domain, "n": n, "size": list(hw), "seed": seed,
                              "yaw_range": yaw_range, "pitch_range": pitch_range}
    if lay.name != "unity" or look is not None:
        source.update(layout=lay.name, look=look)
    if overrides:
        source["look" if "look" not in source else "overrides"] = {
            k: np.asarray(v).round(4).tolist() for k, v in overrides.items()}
    gaze = [(e.truth["gaze"]["yaw"], e.truth["gaze"]["pitch"]) for e in eyes]
    return GazeSet(torch.cat([e.image for e in eyes]), np.array(gaze), torch.cat([e.mask for e in eyes]),
                   np.array([e.truth["pupil_center"] for e in eyes], dtype=np.float64),
                   tuple(f"{i:05d}" for i in range(n)), source,
                   torch.stack([e.labels.to(torch.uint8) for e in eyes]))


def render_many(n: int, *, domain: str | None = None, size: tuple[int, int] | None = None, seed: int = 0,
                yaw_range: float | None = None, pitch_range: float | None = None, layout: str = "unity",
                look: str | None = None, start: int = 0, **overrides: Any) -> Iterator[EyeRender]:
    """Eyes ``start .. start + n - 1`` of the rendered set ``seed``, one :class:`EyeRender`
    at a time (image, labels, mask and the whole truth): what :func:`render_set` and
    ``render-eyes`` draw, for training a segmenter on any slice of an endless set.

    >>> [e.truth["layout"] for e in render_many(2, layout="nir", size=(48, 64), look="nir")]
    ['nir', 'nir']
    """
    lay = get_layout(layout)
    if size is None:
        size = (36, 60) if lay.name == "unity" else lay.size
    yaw_range = lay.yaw_range if yaw_range is None else yaw_range
    pitch_range = lay.pitch_range if pitch_range is None else pitch_range
    for i in range(start, start + n):
        eye_seed, yaw, pitch = eye_seed_and_gaze(seed, i, yaw_range=yaw_range, pitch_range=pitch_range)
        yield render_eye(yaw=yaw, pitch=pitch, domain=domain, size=size, seed=eye_seed, layout=layout,
                         look=look, **overrides)


# --------------------------------------------------------------------------- labelled folders


def read_labels(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a CSV (header line) or JSONL (one object per line) labels file.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = p.write_text("image,yaw,pitch\\na.png,1.5,-2\\n")
    >>> read_labels(p)
    [{'image': 'a.png', 'yaw': '1.5', 'pitch': '-2'}]
    """
    p = Path(path)
    if not p.is_file():
        raise GazeError(f"{p}: no such labels file")
    if p.suffix.lower() not in (".jsonl", ".json", ".ndjson", ".csv", ".tsv"):
        raise GazeError(f"{p}: labels must be .csv, .tsv or .jsonl")
    return read_table(p, error=GazeError)  # the manifests' reader: a byte-order mark is fine


def _number(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> float:
    value = row.get(key)
    if value in (None, ""):
        if required:
            raise GazeError(f"{where}: missing column {key!r}")
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise GazeError(f"{where}: {key}={value!r} is not a number") from None
    if required and not math.isfinite(out):
        raise GazeError(f"{where}: {key}={value!r} is not finite")
    return out


def _angle(row: dict[str, Any], key: str, where: str) -> float:
    """A gaze angle in degrees: an eye looks at most 90 degrees off straight ahead."""
    value = _number(row, key, where)
    if not -90.0 <= value <= 90.0:
        raise GazeError(f"{where}: {key}={row[key]!r} is outside [-90, 90] degrees")
    return value


def _load_sized(path: Path, size: tuple[int, int] | None, what: str, where: str) -> Tensor:
    try:
        image = load_image(path)
    except MaskedGatysError as exc:
        raise GazeError(f"{where}: {what}: {exc}") from None
    return image if size is None else resize_to(image, size)


def load_labelled_folder(labels: str | os.PathLike, *, size: tuple[int, int] | None = None,
                         limit: int | None = None) -> GazeSet:
    """A gaze set from a labels file (or a folder holding ``manifest.jsonl`` / ``labels.csv``).

    Columns: ``image`` (path), ``yaw``, ``pitch`` (degrees, this project's convention: positive
    yaw = the pupil moves right in the image, positive pitch = up), optional ``mask`` (white =
    iris + pupil), ``pupil_x``, ``pupil_y`` (pixels of the image as stored) and ``id``. All
    images must share one size unless ``size = (H, W)`` resizes them (pupil centres scaled).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = render_set(3, size=(36, 60), seed=2).write(d)
    >>> s = load_labelled_folder(d)
    >>> len(s), s.size, s.masks is not None
    (3, (36, 60), True)
    """
    path = Path(labels)
    if path.is_dir():
        for name in ("manifest.jsonl", "labels.jsonl", "labels.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise GazeError(f"{path}: no manifest.jsonl, labels.jsonl or labels.csv in this folder")
    rows = read_labels(path)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise GazeError(f"{path}: no labelled images")
    root = path.parent
    images, masks, gaze, pupil, ids, parts = [], [], [], [], [], []
    has_masks = all(r.get("mask") not in (None, "") for r in rows)
    has_parts = all(r.get("labels") not in (None, "") for r in rows)
    for n, row in enumerate(rows, 1):
        where = f"{path}:{n}"
        if row.get("image") in (None, ""):
            raise GazeError(f"{where}: missing column 'image'")
        image_path = root / str(row["image"])
        image = _load_sized(image_path, size, "image", where)
        if images and image.shape != images[0].shape:
            raise GazeError(f"{where}: {image_path.name} is {image.shape[-2]}x{image.shape[-1]}, the first image "
                            f"{images[0].shape[-2]}x{images[0].shape[-1]}; give a size to resize them")
        scale = (1.0, 1.0)
        if size is not None:
            h0, w0 = load_image(image_path).shape[-2:]  # original size, for the pupil's scale
            scale = (size[1] / w0, size[0] / h0)
        images.append(image)
        if has_masks:
            mask = _load_sized(root / str(row["mask"]), image.shape[-2:], "mask", where).mean(1, keepdim=True)
            masks.append(mask)
        if has_parts:
            parts.append(_load_parts_sized(root / str(row["labels"]), image.shape[-2:], where))
        gaze.append((_angle(row, "yaw", where), _angle(row, "pitch", where)))
        px, py = _number(row, "pupil_x", where, required=False), _number(row, "pupil_y", where, required=False)
        pupil.append(((px + 0.5) * scale[0] - 0.5, (py + 0.5) * scale[1] - 0.5))
        ids.append(str(row.get("id") or Path(str(row["image"])).stem))
    pupil_arr = np.array(pupil, dtype=np.float64)
    return GazeSet(torch.cat(images), np.array(gaze), torch.cat(masks) if has_masks else None,
                   None if np.isnan(pupil_arr).all() else pupil_arr, tuple(ids),
                   {"kind": "labelled", "labels": path.name, "n": len(rows)},
                   torch.cat(parts) if has_parts else None)


def _load_parts_sized(path: Path, size: Any, where: str) -> Tensor:
    try:
        parts = load_parts(path)
    except MaskError as exc:
        raise GazeError(f"{where}: {exc}") from None
    return resize_parts(parts, size).to(torch.uint8)


# --------------------------------------------------------------------------- UnityEyes

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _tuple(text: Any) -> tuple[float, ...]:
    """UnityEyes writes vectors as strings: ``"(x, y, z)"``."""
    if isinstance(text, (list, tuple)):
        return tuple(float(v) for v in text)
    return tuple(float(v) for v in _NUMBER.findall(str(text)))


def unityeyes_gaze(look_vec: Any) -> tuple[float, float]:
    """``(yaw, pitch)`` in this project's convention from UnityEyes' ``eye_details.look_vec``.

    UnityEyes gives the look vector in Unity's camera frame (x right, y **up**, z into the
    scene; looking at the camera is about ``(0, 0, -1)``); ours has y down, so y flips.

    >>> [round(v, 6) for v in unityeyes_gaze("(0.0, 0.0, -1.0, 0.0)")]
    [0.0, 0.0]
    >>> [round(v, 1) for v in unityeyes_gaze("(0.1736, 0.0, -0.9848, 0.0)")]  # turned to image right
    [10.0, 0.0]
    >>> round(unityeyes_gaze("(0.0, 0.1736, -0.9848, 0.0)")[1], 1)  # looking up
    10.0
    """
    v = _tuple(look_vec)[:3]
    if len(v) != 3:
        raise GazeError(f"look_vec {look_vec!r} is not a 3-vector")
    yaw, pitch = vector_to_gaze(np.array([v[0], -v[1], v[2]]))
    return float(yaw), float(pitch)


def _unity_points(data: dict[str, Any], key: str, height: int, where: str) -> np.ndarray:
    try:
        pts = [_tuple(p)[:2] for p in data[key]]
    except (KeyError, TypeError):
        raise GazeError(f"{where}: missing {key!r}") from None
    if len(pts) < 3 or any(len(p) != 2 for p in pts):
        raise GazeError(f"{where}: {key!r} needs at least 3 (x, y) points")
    arr = np.array(pts, dtype=np.float64)
    arr[:, 1] = height - arr[:, 1]  # UnityEyes' image y grows upwards
    return arr


def _polygon_mask(points: Sequence[np.ndarray], shape: tuple[int, int]) -> Tensor:
    """Intersection of the polygons, drawn at ``shape = (H, W)`` (4x supersampled)."""
    from PIL import Image, ImageDraw

    s = 4
    h, w = shape
    out = np.ones((h * s, w * s), dtype=bool)
    for pts in points:
        img = Image.new("L", (w * s, h * s), 0)
        ImageDraw.Draw(img).polygon([((x + 0.5) * s, (y + 0.5) * s) for x, y in pts], fill=255)
        out &= np.asarray(img) > 127
    cover = out.reshape(h, s, w, s).mean(axis=(1, 3))
    return torch.from_numpy(cover.astype(np.float32))[None, None]


def _crop(image: Tensor, center: np.ndarray, crop_w: float, size: tuple[int, int]) -> Tensor:
    """The ``crop_w``-wide window around ``center`` at ``size`` (antialiased, bilinear)."""
    h, w = size
    _, _, ih, iw = image.shape
    step = crop_w / w  # source pixels per output pixel
    if step > 1.0:  # prefilter so the sampling does not alias
        image = F.interpolate(image, size=(max(1, round(ih / step)), max(1, round(iw / step))),
                              mode="bilinear", antialias=True, align_corners=False)
        scale_y, scale_x = image.shape[-2] / ih, image.shape[-1] / iw
    else:
        scale_y = scale_x = 1.0
    xs = center[0] + (np.arange(w) + 0.5 - w / 2) * step
    ys = center[1] + (np.arange(h) + 0.5 - h / 2) * step
    gx = ((xs + 0.5) * scale_x) / image.shape[-1] * 2 - 1
    gy = ((ys + 0.5) * scale_y) / image.shape[-2] * 2 - 1
    grid = torch.from_numpy(np.stack(np.meshgrid(gx, gy), axis=-1)).float()[None]
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp(0, 1)


def _unityeyes_one(json_path: Path, size: tuple[int, int], width_scale: float) -> tuple[Tensor, Tensor, tuple[float, float], tuple[float, float]]:
    where = str(json_path)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GazeError(f"{where}: cannot read UnityEyes JSON ({exc})") from None
    image_path = json_path.with_suffix(".jpg")
    if not image_path.is_file():
        image_path = json_path.with_suffix(".png")
    try:
        image = load_image(image_path)
    except MaskedGatysError as exc:
        raise GazeError(f"{where}: {exc}") from None
    ih, iw = image.shape[-2:]
    try:
        gaze = unityeyes_gaze(data["eye_details"]["look_vec"])
    except (KeyError, TypeError):
        raise GazeError(f"{where}: missing eye_details.look_vec") from None
    margin = _unity_points(data, "interior_margin_2d", ih, where)
    iris = _unity_points(data, "iris_2d", ih, where)
    center = margin.mean(axis=0)
    crop_w = width_scale * float(margin[:, 0].max() - margin[:, 0].min())
    if not crop_w > 0:
        raise GazeError(f"{where}: the eye margin has no width")
    full_mask = _polygon_mask([iris, margin], (ih, iw))
    crop = _crop(image, center, crop_w, size)
    mask = _crop(full_mask, center, crop_w, size)
    step = crop_w / size[1]
    pupil = iris.mean(axis=0)  # the iris outline's centre: the pupil centre, up to the cornea
    px = (pupil[0] - center[0]) / step + size[1] / 2 - 0.5
    py = (pupil[1] - center[1]) / step + size[0] / 2 - 0.5
    return crop, mask, gaze, (float(px), float(py))


def load_unityeyes(folder: str | os.PathLike, *, size: tuple[int, int] = (36, 60), width_scale: float = 1.5,
                   limit: int | None = None, progress: Progress | None = None) -> GazeSet:
    """UnityEyes' output (``N.jpg`` + ``N.json``) as eye crops at ``size``.

    As UnityEyes users crop: centred on the mean of ``interior_margin_2d``, ``width_scale``
    times the eye's width (corner to corner) wide, with the aspect of ``size``. Gaze from
    ``eye_details.look_vec`` (:func:`unityeyes_gaze`); the attention mask is the iris outline
    (``iris_2d``) inside the lids (``interior_margin_2d``); the pupil centre is the iris
    outline's centre. Landmark y is measured upwards in UnityEyes and flipped here.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GazeError(f"{root}: no such UnityEyes folder")
    files = sorted((p for p in root.glob("*.json") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if limit is not None:
        files = files[:limit]
    if not files:
        raise GazeError(f"{root}: no UnityEyes N.json files")
    images, masks, gaze, pupil = [], [], [], []
    for i, path in enumerate(files):
        crop, mask, g, p = _unityeyes_one(path, size, width_scale)
        images.append(crop)
        masks.append(mask)
        gaze.append(g)
        pupil.append(p)
        if progress is not None:
            progress(i + 1, len(files))
    return GazeSet(torch.cat(images), np.array(gaze), torch.cat(masks), np.array(pupil),
                   tuple(p.stem for p in files),
                   {"kind": "unityeyes", "n": len(files), "size": list(size), "width_scale": width_scale})


# --------------------------------------------------------------------------- MPIIGaze


def mpiigaze_gaze(vector: Any) -> np.ndarray:
    """``(yaw, pitch)`` in this project's convention from MPIIGaze gaze vectors ``(..., 3)``.

    MPIIGaze's normalised gaze vectors are in the normalised camera frame (x right, y down,
    z forward), the frame of our vectors; its own angles are ``pitch = asin(-y)``,
    ``yaw = atan2(-x, -z)``, so its yaw is the negative of ours. Going through the vector
    makes the conversion explicit.

    >>> g = np.array([-np.sin(np.radians(10.0)), 0.0, -np.cos(np.radians(10.0))])  # its yaw +10
    >>> (mpiigaze_gaze(g).round(6) + 0.0).tolist()
    [-10.0, 0.0]
    """
    return vector_to_gaze(np.asarray(vector, dtype=np.float64))


def _mat_field(struct: Any, name: str, where: str) -> Any:
    try:
        value = struct[name]
    except (KeyError, ValueError, IndexError, TypeError):
        raise GazeError(f"{where}: no field {name!r} (expected MPIIGaze's data.right/left.image/gaze)") from None
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.ndarray) and value.dtype.names is not None and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _mpiigaze_file(path: Path, eyes: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    import scipy.io

    where = str(path)
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise GazeError(f"{where}: a MATLAB v7.3 (HDF5) file; this reader reads the MATLAB 5 .mat files "
                        f"of MPIIGaze's Data/Normalized (save as '-v7' to convert)") from None
    except Exception as exc:  # scipy raises many kinds on a corrupt file
        raise GazeError(f"{where}: not a readable .mat file ({exc})") from None
    if "data" not in mat:
        raise GazeError(f"{where}: no 'data' variable (expected MPIIGaze's Normalized pXX/dayYY.mat)")
    data = _mat_field(mat, "data", where)
    images, gazes, ids = [], [], []
    for eye in eyes:
        side = _mat_field(data, eye, where)
        img = np.asarray(_mat_field(side, "image", where))
        gaze = np.asarray(_mat_field(side, "gaze", where), dtype=np.float64).reshape(-1, 3)
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3 or img.shape[0] != gaze.shape[0]:
            raise GazeError(f"{where}: {eye} eye: {img.shape} images for {gaze.shape[0]} gaze vectors")
        images.append(img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0))
        gazes.append(gaze)
        ids.extend(f"{path.parent.name}/{path.stem}/{eye}/{i:04d}" for i in range(img.shape[0]))
    return images, gazes, ids


def load_mpiigaze(path: str | os.PathLike, *, eyes: Sequence[str] = ("right", "left"),
                  limit: int | None = None) -> GazeSet:
    """MPIIGaze's normalised eyes (``Data/Normalized/pXX/dayYY.mat``): grey 36x60 with gaze.

    ``path`` is one ``.mat`` file or a folder searched for ``day*.mat`` (e.g. ``Normalized``
    or one ``pXX``). Reads the MATLAB 5 files MPIIGaze ships (scipy.io); gaze through
    :func:`mpiigaze_gaze`. Left and right eyes are kept as stored (not mirrored). MPIIGaze has
    no iris masks or pupil centres, so ``masks`` and ``pupil`` are None.
    """
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(root.rglob("day*.mat"))
    else:
        raise GazeError(f"{root}: no such MPIIGaze file or folder")
    if not files:
        raise GazeError(f"{root}: no day*.mat files")
    images, gazes, ids = [], [], []
    for f in files:
        im, gz, names = _mpiigaze_file(f, eyes)
        images.extend(im)
        gazes.extend(gz)
        ids.extend(names)
        if limit is not None and len(ids) >= limit:
            break
    grey = torch.from_numpy(np.concatenate(images))[:, None]
    gaze = mpiigaze_gaze(np.concatenate(gazes))
    if limit is not None:
        grey, gaze, ids = grey[:limit], gaze[:limit], ids[:limit]
    return GazeSet(grey.expand(-1, 3, -1, -1).contiguous(), gaze, None, None, tuple(ids),
                   {"kind": "mpiigaze", "files": len(files), "eyes": list(eyes), "n": len(ids)})
