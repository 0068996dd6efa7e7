"""Labelled comparison sheets: columns of images with a heading and captions.

Small eye crops are enlarged by an integer factor with nearest-neighbour
sampling, so the sheet shows the pixels as they are.

>>> import torch
>>> sheet = compose_sheet([Column("content", [torch.zeros(1, 3, 8, 12)], ["total 1.0"]),
...                        Column("style", [torch.ones(3, 8, 12)])], title="demo", min_width=48)
>>> sheet.mode, sheet.size[0] > 2 * 48
('RGB', True)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont
import torch

from masked_gatys.errors import ImageError
from masked_gatys.image import save_image

__all__ = ["Column", "compose_sheet", "save_sheet", "to_pil"]

PathLike = Union[str, os.PathLike]

_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_MUTED = (90, 90, 90)


@dataclass(frozen=True)
class Column:
    """One column: a heading, images stacked top to bottom, one caption per image.

    Images: tensors ``(1, 3, H, W)``, ``(3, H, W)``, ``(1, 1, H, W)``,
    ``(H, W)`` in [0, 1], numpy ``HxWx3``/``HxW`` arrays, or PIL images; an
    image of ``None`` leaves a blank cell. A caption may hold several lines
    (``"\\n"``).
    """

    heading: str
    images: Sequence[Any]
    captions: Sequence[str] = field(default_factory=tuple)


def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from a tensor, array or PIL image (see :class:`Column`).

    >>> import torch
    >>> to_pil(torch.ones(1, 1, 2, 3)).size
    (3, 2)
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if hasattr(image, "detach"):
        arr = image.detach().cpu().float().numpy()
        while arr.ndim > 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[0] in (1, 3):
            arr = np.moveaxis(arr, 0, -1)
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ImageError(f"cannot show an image of shape {getattr(image, 'shape', None)} on a sheet")
    return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=3)
    return right - left, bottom - top


def compose_sheet(columns: Sequence[Column], *, title: str | None = None, min_width: int = 240,
                  scale: int | None = None, padding: int = 10, font_size: int = 13) -> Image.Image:
    """Lay ``columns`` side by side under an optional ``title``; returns an RGB PIL image.

    Every image is enlarged by the same integer ``scale`` (default: the
    smallest that makes the narrowest image at least ``min_width`` pixels).
    """
    if not columns:
        raise ImageError("a sheet needs at least one column")
    cols = [(c.heading, [to_pil(im) if im is not None else None for im in c.images],
             list(c.captions) + [""] * (len(c.images) - len(c.captions))) for c in columns]
    sizes = [im.size for _, ims, _ in cols for im in ims if im is not None]
    if not sizes:
        raise ImageError("a sheet needs at least one image")
    if scale is None:
        scale = max(1, math.ceil(min_width / min(w for w, _ in sizes)))
    font, head_font = _font(font_size), _font(font_size + 3)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    n_rows = max(len(ims) for _, ims, _ in cols)
    col_w = []
    for heading, ims, caps in cols:
        widths = [im.size[0] * scale for im in ims if im is not None]
        widths += [_text_size(probe, c or "", font)[0] for c in caps]
        widths.append(_text_size(probe, heading, head_font)[0])
        col_w.append(max(widths))
    row_img_h = [max((ims[r].size[1] * scale for _, ims, _ in cols if r < len(ims) and ims[r] is not None),
                     default=0) for r in range(n_rows)]
    row_cap_h = [max((_text_size(probe, caps[r] or "", font)[1] for _, _, caps in cols if r < len(caps)),
                     default=0) for r in range(n_rows)]
    head_h = max(_text_size(probe, h, head_font)[1] for h, _, _ in cols)
    title_h = _text_size(probe, title, head_font)[1] + padding if title else 0

    width = sum(col_w) + padding * (len(cols) + 1)
    height = padding + title_h + head_h + padding + sum(
        row_img_h[r] + row_cap_h[r] + 2 * padding for r in range(n_rows))
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.multiline_text((padding, padding), title, fill=_TEXT, font=head_font, spacing=3)
    x = padding
    for (heading, ims, caps), cw in zip(cols, col_w):
        y = padding + title_h
        draw.text((x, y), heading, fill=_TEXT, font=head_font)
        y += head_h + padding
        for r in range(n_rows):
            im = ims[r] if r < len(ims) else None
            if im is not None:
                big = im.resize((im.size[0] * scale, im.size[1] * scale), Image.NEAREST)
                sheet.paste(big, (x, y))
            cap = caps[r] if r < len(caps) else ""
            if cap:
                draw.multiline_text((x, y + row_img_h[r] + 4), cap, fill=_MUTED, font=font, spacing=3)
            y += row_img_h[r] + row_cap_h[r] + 2 * padding
        x += cw + padding
    return sheet


def save_sheet(sheet: Image.Image, path: PathLike) -> Path:
    """Write ``sheet`` as PNG atomically (via :func:`masked_gatys.image.save_image`); returns the path.

    >>> import tempfile, os, torch
    >>> p = save_sheet(compose_sheet([Column("a", [torch.zeros(3, 4, 4)])]), os.path.join(tempfile.mkdtemp(), "s.png"))
    >>> p.exists()
    True
    """
    arr = np.asarray(sheet.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    save_image(tensor, path)
    return Path(path)
