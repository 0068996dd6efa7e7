"""Segmentation masks: reading, regions, resizing to layer grids, checks.

A mask is a float tensor ``(B, R, H, W)`` in ``[0, 1]``, one channel per
region, held with the regions' names in :class:`Regions`.

- A binary or grey mask gives two regions, ``("background", "attention")``:
  attention = the grey value (a soft weight), background = 1 - it.
- A colour-coded label mask (``mode="labels"``) gives one region per distinct
  colour, named ``"#rrggbb"`` and ordered by colour (or by a given palette),
  so a content and a style mask with the same colours agree.

Transparency in a mask file is composited over **black**: a transparent pixel
belongs to no attention region (binary) or to the ``#000000`` label.

Masks are brought to a layer's grid by the chain of floor 2x2 poolings the
VGG encoder applies (:func:`pool_mask`: average pooling of the mask, the
trailing row or column a pooling never sees dropped), so that mask position
``j`` of a layer averages exactly the pixels its feature position pools over,
at every image size. :func:`resize_mask` (area averaging down, bilinear up) is for fitting a
mask to its image, not to a layer.

>>> import torch
>>> r = Regions.from_binary(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
>>> r.names, tuple(r.masks.shape)
(('background', 'attention'), (1, 2, 2, 2))
>>> r.mass()
tensor([[1., 3.]])
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import MaskError
from .image import read_float

__all__ = ["Regions", "load_mask", "load_mask_pair", "resize_mask", "pool_mask", "grid_mask",
           "pool_levels", "check_coverage"]

PathLike = Union[str, "os.PathLike[str]"]
Colour = Union[str, Sequence[int]]
MaskLike = Union[PathLike, Tensor, "Regions"]

BINARY_NAMES = ("background", "attention")
MAX_LABELS = 64  # more distinct colours than this is a photo or a JPEG, not a label mask
_EMPTY = 1e-6  # a region with less mass than this (in pixels) is empty


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a mask to ``size = (h, w)``: the package's one rule for resizing masks.

    Area averaging when both sides shrink, so each output value is the mean
    of its block and the mask's coverage is kept (soft edges stay soft, a
    one-pixel region is not lost or thickened); bilinear otherwise, because
    growing by area is nearest-neighbour (blocky edges). Training, the
    networks, the style pools and coarse-to-fine ``stylize`` all resize masks
    here; images use :func:`masked_gatys.image.resize_to`.

    Accepts ``(H, W)``, ``(R, H, W)`` or ``(B, R, H, W)`` and returns the same
    number of dimensions.

    >>> import torch
    >>> resize_mask(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), (1, 1))
    tensor([[0.7500]])
    >>> resize_mask(torch.tensor([[0.0, 1.0]]), (1, 4))
    tensor([[0.0000, 0.2500, 0.7500, 1.0000]])
    """
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise MaskError(f"cannot resize a mask to {h}x{w}: sizes must be positive")
    if mask.dim() not in (2, 3, 4):
        raise MaskError(f"a mask must have 2 to 4 dimensions, got shape {tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) == (h, w):
        return mask
    x = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    if not x.is_floating_point():
        x = x.float()
    if x.shape[-2] >= h and x.shape[-1] >= w:
        out = F.interpolate(x, size=(h, w), mode="area")
    else:
        out = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return out.reshape(tuple(mask.shape[:-2]) + (h, w))


def _as_4d(mask: Tensor) -> Tensor:
    if mask.dim() not in (2, 3, 4):
        raise MaskError(f"a mask must have 2 to 4 dimensions, got shape {tuple(mask.shape)}")
    x = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    return x if x.is_floating_point() else x.float()


def pool_mask(mask: Tensor, levels: int) -> Tensor:
    """The mask after ``levels`` floor 2x2 average poolings (VGG's grid chain).

    Each pooling averages 2x2 blocks and drops a trailing odd row or column,
    as VGG's ``MaxPool2d(2, 2)`` does with the features, so after ``k``
    poolings position ``(i, j)`` is the mean of pixels ``[2^k i, 2^k (i+1))
    x [2^k j, 2^k (j+1))`` and the grid is ``floor(H / 2^k) x floor(W / 2^k)``.
    Accepts ``(H, W)``, ``(R, H, W)`` or ``(B, R, H, W)``.

    >>> import torch
    >>> pool_mask(torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), 1)
    tensor([[0.7500]])
    """
    levels = int(levels)
    if levels < 0:
        raise MaskError(f"pooling levels must be >= 0, got {levels}")
    x = _as_4d(mask)
    h, w = x.shape[-2:]
    if levels and (h >> levels < 1 or w >> levels < 1):
        raise MaskError(f"a {h}x{w} mask has no grid after {levels} 2x2 poolings")
    for _ in range(levels):
        x = torch.nn.functional.avg_pool2d(x, 2)  # floor: the trailing row/column is dropped
    return x.reshape(tuple(mask.shape[:-2]) + tuple(x.shape[-2:]))


def pool_levels(image_size: tuple[int, int], grid: tuple[int, int]) -> int:
    """How many floor 2x2 poolings take ``image_size`` to ``grid``.

    Raises :class:`MaskError` when no number of poolings gives that grid.

    >>> pool_levels((37, 61), (9, 15))
    2
    """
    h, w = (int(s) for s in image_size)
    gh, gw = (int(s) for s in grid)
    k = 0
    while (h >> k, w >> k) != (gh, gw):
        if h >> k <= gh or w >> k <= gw:
            raise MaskError(f"a {gh}x{gw} grid is not reached from {h}x{w} by 2x2 poolings")
        k += 1
    return k


def grid_mask(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """The mask on a layer's ``grid = (h, w)`` by VGG's pooling chain (:func:`pool_mask`).

    >>> import torch
    >>> tuple(grid_mask(torch.ones(1, 2, 30, 50), (7, 12)).shape)
    (1, 2, 7, 12)
    """
    return pool_mask(mask, pool_levels(tuple(mask.shape[-2:]), grid))


@dataclass(frozen=True, eq=False)
class Regions:
    """Named region masks ``(B, R, H, W)`` in ``[0, 1]``, one channel per name.

    >>> import torch
    >>> r = Regions.whole(2, 3, 4)
    >>> len(r), r.names, tuple(r.region("whole").shape)
    (1, ('whole',), (2, 1, 3, 4))
    """

    masks: Tensor
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        if not isinstance(self.masks, Tensor) or self.masks.dim() != 4:
            shape = tuple(self.masks.shape) if isinstance(self.masks, Tensor) else type(self.masks).__name__
            raise MaskError(f"region masks must be a (B, R, H, W) tensor, got {shape}")
        if self.masks.shape[1] != len(names):
            raise MaskError(f"{self.masks.shape[1]} mask channels but {len(names)} region names {names}")
        if len(set(names)) != len(names):
            raise MaskError(f"region names must be unique, got {names}")
        if not self.masks.is_floating_point():
            object.__setattr__(self, "masks", self.masks.float())

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        b, _, h, w = self.masks.shape
        return f"Regions(names={self.names}, batch={b}, size=({h}, {w}))"

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the masks."""
        return int(self.masks.shape[-2]), int(self.masks.shape[-1])

    def to(self, *args, **kwargs) -> "Regions":
        """The same regions with the masks moved (``Tensor.to`` arguments)."""
        return Regions(self.masks.to(*args, **kwargs), self.names)

    def resized(self, size: tuple[int, int]) -> "Regions":
        """The regions resized to ``size = (h, w)`` by :func:`resize_mask` (area down, bilinear up).

        >>> import torch
        >>> Regions.from_binary(torch.ones(4, 6)).resized((2, 3)).size
        (2, 3)
        """
        return Regions(resize_mask(self.masks, size), self.names)

    def region(self, name: str) -> Tensor:
        """Region ``name``'s mask, ``(B, 1, H, W)``.

        >>> import torch
        >>> Regions.from_binary(torch.ones(2, 2)).region("attention").sum().item()
        4.0
        """
        try:
            i = self.names.index(name)
        except ValueError:
            raise MaskError(f"no region {name!r}; the regions are {', '.join(self.names)}") from None
        return self.masks[:, i : i + 1]

    def mass(self) -> Tensor:
        """Each region's mass in pixels, ``(B, R)``."""
        return self.masks.sum(dim=(-2, -1))

    def expand(self, b: int) -> "Regions":
        """The regions for a batch of ``b`` (a batch of 1 is repeated)."""
        batch = self.masks.shape[0]
        if batch == b:
            return self
        if batch != 1:
            raise MaskError(f"cannot use masks for a batch of {batch} with a batch of {b}")
        return Regions(self.masks.expand(b, -1, -1, -1), self.names)

    @classmethod
    def from_binary(cls, mask: Tensor) -> "Regions":
        """Regions ``("background", "attention")`` from a grey mask.

        ``mask``: ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)``, clamped to
        ``[0, 1]``; attention = mask, background = 1 - mask.

        >>> import torch
        >>> Regions.from_binary(torch.tensor([[0.25]])).masks.flatten().tolist()
        [0.75, 0.25]
        """
        if not isinstance(mask, Tensor):
            raise MaskError(f"a binary mask must be a tensor, got {type(mask).__name__}")
        m = mask.float() if not mask.is_floating_point() else mask
        if m.dim() == 2:
            m = m[None, None]
        elif m.dim() == 3:
            m = m[:, None]
        if m.dim() != 4 or m.shape[1] != 1:
            raise MaskError(
                f"a binary mask must be (H, W), (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}"
            )
        m = m.nan_to_num(0.0).clamp(0.0, 1.0)
        return cls(torch.cat([1.0 - m, m], dim=1), BINARY_NAMES)

    @classmethod
    def whole(
        cls,
        b: int,
        h: int,
        w: int,
        *,
        names: Sequence[str] = ("whole",),
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> "Regions":
        """Every region the whole image: all-ones ``(b, len(names), h, w)``."""
        names = tuple(names)
        return cls(torch.ones(b, len(names), h, w, device=device, dtype=dtype), names)


# --------------------------------------------------------------------------- loading


def _colour_code(colour: Colour) -> int:
    """``0xrrggbb`` from ``"#rrggbb"`` or ``(r, g, b)``."""
    if isinstance(colour, str):
        text = colour.strip().lstrip("#")
        if len(text) != 6:
            raise MaskError(f"a palette colour must be '#rrggbb' or (r, g, b), got {colour!r}")
        try:
            return int(text, 16)
        except ValueError:
            raise MaskError(f"a palette colour must be '#rrggbb' or (r, g, b), got {colour!r}") from None
    values = [int(v) for v in colour]
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise MaskError(f"a palette colour must be '#rrggbb' or (r, g, b), got {colour!r}")
    return (values[0] << 16) | (values[1] << 8) | values[2]


def _colour_name(code: int) -> str:
    return f"#{code:06x}"


def _label_regions(codes: Tensor, order: Sequence[int]) -> Regions:
    """One-hot regions of an ``(H, W)`` map of colour codes, in ``order``."""
    order_t = torch.tensor(list(order), dtype=codes.dtype)
    masks = (codes[None] == order_t[:, None, None]).float()[None]
    return Regions(masks, tuple(_colour_name(c) for c in order))


def load_mask(
    path: PathLike,
    *,
    mode: str = "binary",
    size: tuple[int, int] | None = None,
    palette: Sequence[Colour] | None = None,
) -> Regions:
    """Read a mask file as :class:`Regions` (batch 1).

    ``mode="binary"``: any image, converted to grey in ``[0, 1]`` (soft
    weights, 16-bit kept), regions ``("background", "attention")``.
    ``mode="labels"``: one region per distinct RGB colour, named
    ``"#rrggbb"``, sorted by colour; with ``palette`` the regions are the
    palette's colours in its order (colours it lacks are an error, colours
    the mask lacks give empty regions). ``size = (h, w)`` resizes: area
    averaging for binary masks, nearest neighbour for labels (colours stay
    exact). EXIF orientation is applied as for images.

    Raises:
        MaskError: the file is missing or unreadable, or is not a label mask.

    >>> import os, tempfile, torch
    >>> from masked_gatys.image import save_image
    >>> path = os.path.join(tempfile.mkdtemp(), "m.png")
    >>> save_image(torch.tensor([[0.0, 1.0, 1.0, 0.0]]), path)
    >>> load_mask(path).mass()
    tensor([[2., 2.]])
    >>> load_mask(path, mode="labels").names
    ('#000000', '#ffffff')
    """
    if mode not in ("binary", "labels"):
        raise MaskError(f"mask mode must be 'binary' or 'labels', got {mode!r}")
    array, bands = read_float(path, noun="mask", error=MaskError)
    if bands in ("LA", "RGBA"):  # transparent means "not in the region": over black
        array = array[..., :-1] * array[..., -1:]
    if mode == "binary":
        if array.shape[-1] == 3:  # ITU-R 601 luma, as Pillow's "L"
            grey = array @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            grey = array[..., 0]
        regions = Regions.from_binary(torch.from_numpy(np.ascontiguousarray(grey, np.float32)))
        return regions.resized(size) if size is not None else regions

    rgb = np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.int64)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    codes = torch.from_numpy((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    if size is not None:
        h, w = (int(s) for s in size)
        codes = F.interpolate(codes[None, None].double(), size=(h, w), mode="nearest-exact")[0, 0].long()
    present = [int(c) for c in torch.unique(codes)]
    if palette is not None:
        order = [_colour_code(c) for c in palette]
        if len(set(order)) != len(order):
            raise MaskError("the palette lists a colour twice")
        missing = [c for c in present if c not in set(order)]
        if missing:
            shown = ", ".join(_colour_name(c) for c in missing[:5])
            raise MaskError(f"label mask {path} has colours not in the palette: {shown}")
    else:
        order = present
        if len(order) > MAX_LABELS:
            raise MaskError(
                f"label mask {path} has {len(order)} distinct colours (at most {MAX_LABELS}): a label mask "
                "needs flat colours; save it as PNG, not JPEG, or use --mask-mode binary"
            )
    return _label_regions(codes, order)


def _describe(mask: MaskLike, label: str) -> str:
    if isinstance(mask, (str, os.PathLike)):
        return f"{label} {os.fspath(mask)}"
    return f"{label} (given as a {type(mask).__name__})"


def _as_regions(mask: MaskLike, mode: str, palette: Sequence[Colour] | None) -> Regions:
    if isinstance(mask, Regions):
        return mask
    if isinstance(mask, Tensor):
        if mode != "binary":
            raise MaskError("a label mask must be a file or Regions, not a tensor")
        return Regions.from_binary(mask)
    return load_mask(mask, mode=mode, palette=palette)


def _fit(regions: Regions, size: tuple[int, int] | None, what: str, image: str, resize: bool, mode: str) -> Regions:
    """Check (or, with ``resize``, make) the mask the size of its image."""
    if size is None:
        return regions
    h, w = (int(s) for s in size)
    if regions.size == (h, w):
        return regions
    if not resize:
        mh, mw = regions.size
        raise MaskError(
            f"{what} is {mw}x{mh} px but the {image} is {w}x{h} px (width x height): "
            "resize the mask or pass --resize-masks"
        )
    if mode == "labels":  # nearest keeps one-hot channels one-hot
        masks = F.interpolate(regions.masks, size=(h, w), mode="nearest-exact")
        return Regions(masks, regions.names)
    return regions.resized((h, w))


def _check_nonempty(regions: Regions, what: str, mode: str) -> None:
    mass = regions.mass()
    for i, name in enumerate(regions.names):
        if bool((mass[:, i] <= _EMPTY).any()):
            hint = ""
            if mode == "binary" and regions.names == BINARY_NAMES:
                hint = " (the mask is all black)" if name == "attention" else " (the mask is all white)"
            raise MaskError(f"region '{name}' is empty in {what}{hint}")


def load_mask_pair(
    content_mask: MaskLike,
    style_mask: MaskLike | None,
    *,
    mode: str = "binary",
    content_size: tuple[int, int] | None,
    style_size: tuple[int, int] | None,
    resize: bool = False,
    palette: Sequence[Colour] | None = None,
) -> tuple[Regions, Regions]:
    """Content and style regions that match each other and their images.

    Each mask is a path, a binary mask tensor or :class:`Regions`.
    Eye part labels (``stylize``'s ``mask_mode="parts"``) are read by
    ``masked_gatys.eyes.labels.parts_regions`` and passed here as regions with ``mode="labels"``.
    ``content_size`` / ``style_size`` are the images' ``(h, w)`` (``None``:
    not checked). Checks, each a :class:`MaskError` naming the file:

    - a mask's size differs from its image's (with ``resize=True`` the mask
      is resized instead: :func:`resize_mask`, nearest for labels);
    - the masks have different regions (a colour in one label mask only);
    - a region is empty in either mask.

    With ``style_mask=None`` the whole style image is the target of every
    region (all-ones channels with the content's names), with a warning.
    Both results have the same region order.

    >>> import torch
    >>> c, s = load_mask_pair(torch.eye(4), torch.eye(4), content_size=(4, 4), style_size=(4, 4))
    >>> c.names == s.names
    True
    """
    if mode == "parts":  # the core knows no eye: stylize resolves parts through masked_gatys.eyes.labels
        raise MaskError("mask mode 'parts' is an eye's: pass masked_gatys.eyes.labels.parts_regions(mask) "
                        "with mode='labels' (stylize's mask_mode='parts' does this)")
    if mode not in ("binary", "labels"):
        raise MaskError(f"mask mode must be 'binary' or 'labels', got {mode!r}")
    content_what = _describe(content_mask, "content mask")
    content = _fit(_as_regions(content_mask, mode, palette), content_size, content_what, "content image",
                   resize, mode)
    if style_mask is None:
        if style_size is None:
            raise MaskError("without a style mask the style image's size is needed (style_size)")
        _check_nonempty(content, content_what, mode)
        warnings.warn(
            "no style mask: the whole style image is the target of every region "
            f"({', '.join(content.names)})",
            UserWarning,
            stacklevel=2,
        )
        h, w = (int(s) for s in style_size)
        return content, Regions.whole(1, h, w, names=content.names, dtype=content.masks.dtype)

    style_what = _describe(style_mask, "style mask")
    style = _fit(_as_regions(style_mask, mode, palette), style_size, style_what, "style image", resize, mode)

    if content.names != style.names:
        if set(content.names) == set(style.names):
            order = [style.names.index(n) for n in content.names]
            style = Regions(style.masks[:, order], content.names)
        else:
            only_content = [n for n in content.names if n not in style.names]
            only_style = [n for n in style.names if n not in content.names]
            if only_content:
                raise MaskError(f"region {only_content[0]} is present in {content_what} and empty in {style_what}")
            raise MaskError(f"region {only_style[0]} is present in {style_what} and empty in {content_what}")

    c_mass, s_mass = content.mass(), style.mass()
    for i, name in enumerate(content.names):  # a region in one mask and not the other
        c_empty, s_empty = bool((c_mass[:, i] <= _EMPTY).any()), bool((s_mass[:, i] <= _EMPTY).any())
        if c_empty != s_empty and mode == "labels":
            have, lack = (style_what, content_what) if c_empty else (content_what, style_what)
            raise MaskError(f"region {name} is present in {have} and empty in {lack}")
    _check_nonempty(content, content_what, mode)
    _check_nonempty(style, style_what, mode)
    return content, style


# --------------------------------------------------------------------------- coverage


def check_coverage(
    regions: Regions,
    layer_sizes: Mapping[str, tuple[int, int]],
    uses: Mapping[str, Iterable[str]],
    *,
    min_mass: float = 0.5,
    label: str = "content mask",
) -> None:
    """Raise if a region covers fewer than ``min_mass`` positions at a layer that uses it.

    ``layer_sizes``: each layer's grid ``(h, w)``; ``uses``: for each region
    name, the layers whose terms use it. The region's mask is brought to the
    grid by VGG's pooling chain (:func:`grid_mask`) and summed, for every
    batch element. Regions are checked in
    the order of ``regions.names``, layers in the order of ``layer_sizes``; the
    first failure is raised. ``"whole"`` (the whole image) needs no check
    when ``regions`` has no region of that name.

    >>> import torch
    >>> r = Regions.from_binary(torch.zeros(16, 16).index_fill_(0, torch.tensor([0]), 1.0))
    >>> check_coverage(r, {"relu1_1": (16, 16)}, {"attention": {"relu1_1"}})
    >>> check_coverage(r, {"relu5_1": (1, 1)}, {"attention": {"relu5_1"}})
    Traceback (most recent call last):
    ...
    masked_gatys.errors.MaskError: region 'attention' of the content mask covers 0.06 positions at relu5_1 (1x1 grid), fewer than 0.5: use a larger --size or drop that layer
    """
    wanted = {name: set(layers) for name, layers in uses.items()}
    for name in wanted:
        if name not in regions.names and name != "whole":
            regions.region(name)  # raises, listing the regions
    for layers in wanted.values():
        for layer in layers:
            if layer not in layer_sizes:
                raise MaskError(f"no grid size given for layer {layer}")
    masses: dict[tuple[int, int], Tensor] = {}
    for i, name in enumerate(regions.names):
        for layer, size in layer_sizes.items():
            if layer not in wanted.get(name, ()):
                continue
            h, w = (int(s) for s in size)
            if (h, w) not in masses:
                masses[(h, w)] = grid_mask(regions.masks, (h, w)).sum(dim=(-2, -1))
            mass = masses[(h, w)][:, i]
            worst = int(torch.argmin(mass))
            value = float(mass[worst])
            if value < min_mass:
                where = f" (batch element {worst})" if mass.shape[0] > 1 else ""
                raise MaskError(
                    f"region '{name}' of the {label}{where} covers {value:.2f} positions at {layer} "
                    f"({h}x{w} grid), fewer than {min_mass:g}: use a larger --size or drop that layer"
                )
