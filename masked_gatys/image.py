"""Reading and writing images (DESIGN.md, "Conventions").

Images are float32 tensors ``(B, 3, H, W)`` in ``[0, 1]``, RGB.

Reading (:func:`load_image`) accepts every format and mode Pillow opens (PNG,
JPEG, TIFF, BMP, WebP, ...; modes ``1``, ``L``, ``LA``, ``P``, ``RGB``,
``RGBA``, ``CMYK``, ``I;16``, ``I``, ``F``, ...):

- 8-bit data is divided by 255; 16-bit data (``I;16``, and 16-bit PNGs of any
  colour type, which this module decodes itself because Pillow keeps only the
  high byte of 16-bit colour) by 65535; mode ``I`` (32-bit integers, what
  older tools make of 16-bit greyscale) by 65535 and clipped; mode ``F`` is
  taken as already in ``[0, 1]`` and clipped (NaN becomes 0).
- Transparency is composited over **white**: a transparent pixel reads as
  white, a half-transparent one as the colour mixed half with white.
- Palette images go through their palette; greyscale is repeated to RGB.
- The EXIF orientation tag is applied, so the tensor is upright.

Writing (:func:`save_image`) is atomic: the data goes to a temporary file in
the target's folder, is flushed to disk and then renamed over the target, so
a crash or an error never leaves a partial file.

>>> import tempfile, os, torch
>>> path = os.path.join(tempfile.mkdtemp(), "x.png")
>>> save_image(torch.full((1, 3, 2, 4), 0.5), path, metadata={"seed": 1})
>>> load_image(path).shape
torch.Size([1, 3, 2, 4])
>>> read_metadata(path)
{'seed': 1}
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, PngImagePlugin, UnidentifiedImageError
from torch import Tensor

from .errors import ImageError, MaskedGatysError
from .files import atomic_write

__all__ = ["load_image", "save_image", "resize_image", "resize_to", "read_metadata", "read_float"]

PathLike = Union[str, "os.PathLike[str]"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
_JPEG_QUALITY = 95


# --------------------------------------------------------------------------- reading


def _check_file(path: PathLike, noun: str, error: type[MaskedGatysError]) -> Path:
    """``Path(path)``, or ``error`` if it is missing or not a regular file."""
    p = Path(path)
    if not p.exists():
        raise error(f"{noun} file not found: {p}")
    if p.is_dir():
        raise error(f"{noun} path is a directory, not a file: {p}")
    return p


def _png_header(p: Path) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` of a PNG file, or ``None`` for other files."""
    with open(p, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``(H, W, C)`` array.

    Matches ``PIL.ImageOps.exif_transpose`` (tested against it).
    """
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
        3: lambda a: a[::-1, ::-1],  # ROTATE_180
        4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
        5: lambda a: a.swapaxes(0, 1),  # TRANSPOSE
        6: lambda a: np.rot90(a, -1),  # ROTATE_270 (clockwise quarter turn)
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # TRANSVERSE
        8: lambda a: np.rot90(a, 1),  # ROTATE_90 (counter-clockwise)
    }
    op = ops.get(orientation)
    return array if op is None else np.ascontiguousarray(op(array))


def _pillow_array(img: Image.Image) -> tuple[np.ndarray, str]:
    """Pixels of a loaded Pillow image as float32 ``(H, W, C)`` and its bands.

    Bands are one of ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"``; values in
    ``[0, 1]``, alpha not applied.
    """
    mode = img.mode
    if mode.startswith("I;16"):
        grey = np.asarray(img).astype(np.float32) / 65535.0
        return grey[..., None], "L"
    if mode == "I":
        grey = np.asarray(img).astype(np.float64) / 65535.0
        return np.clip(grey, 0.0, 1.0).astype(np.float32)[..., None], "L"
    if mode == "F":
        grey = np.nan_to_num(np.asarray(img).astype(np.float32), nan=0.0)
        if grey.size and (grey.min() < 0 or grey.max() > 1):
            warnings.warn(f"float image data in [{float(grey.min()):.4g}, {float(grey.max()):.4g}], outside "
                          "[0, 1]: clipped (a float image of 0-255 needs dividing by 255)", stacklevel=4)
        return np.clip(grey, 0.0, 1.0)[..., None], "L"
    transparent = "transparency" in img.info
    if mode == "1":
        img = img.convert("L")
    elif mode in ("L", "RGB") and transparent:
        img = img.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        has_alpha = transparent or "A" in img.getbands() or "a" in img.getbands()
        img = img.convert("RGBA" if has_alpha else "RGB")
    bands = img.mode
    array = np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return array, bands


def read_float(
    path: PathLike, *, noun: str = "image", error: type[MaskedGatysError] = ImageError
) -> tuple[np.ndarray, str]:
    """Read any image file as float32 ``(H, W, C)`` in ``[0, 1]``, upright.

    Returns the array and its bands (``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"``);
    alpha is left for the caller to apply. Shared with ``masks.py``.

    >>> import tempfile, os, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "g.png")
    >>> Image.fromarray(np.full((2, 3), 255, np.uint8)).save(p)
    >>> array, bands = read_float(p)
    >>> array.shape, bands, float(array.max())
    ((2, 3, 1), 'L', 1.0)
    """
    p = _check_file(path, noun, error)
    try:
        with Image.open(p) as img:
            img.load()
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            header = _png_header(p) if img.format == "PNG" else None
            if header is not None and header[0] == 16:
                array, bands = _read_png16(p.read_bytes())
            else:
                array, bands = _pillow_array(img)
    except MaskedGatysError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise error(f"not a readable {noun} file: {p} ({exc})") from exc
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, RuntimeError, struct.error, zlib.error) as exc:
        raise error(f"cannot read {noun} file {p}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from exc
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise error(f"{noun} file {p} has no pixels")
    return _orient(array, orientation), bands


def load_image(path: PathLike, *, size: int | None = None) -> Tensor:
    """Read an image file as a ``(1, 3, H, W)`` float32 tensor in ``[0, 1]``.

    Any format and mode Pillow opens; alpha is composited over white, EXIF
    orientation applied, 16-bit data kept at full precision. ``size`` resizes
    so the longest side is ``size`` pixels (antialiased bicubic).

    Raises:
        ImageError: the file is missing, a directory, corrupt or not an image.

    >>> import tempfile, os, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> save_image(torch.zeros(3, 10, 20), path)
    >>> load_image(path, size=8).shape
    torch.Size([1, 3, 4, 8])
    """
    array, bands = read_float(path)
    if bands in ("LA", "RGBA"):
        alpha = array[..., -1:]
        array = array[..., :-1] * alpha + (1.0 - alpha)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)
    image = image.unsqueeze(0).contiguous()
    if size is not None:
        image = resize_image(image, size)
    return image


def _check_image_tensor(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ImageError(f"expected an image tensor (B, C, H, W) or (C, H, W), got {shape}")


def as_unit_float(value: Tensor, label: str = "image") -> Tensor:
    """A tensor as float32 in [0, 1], the package's convention, or a clear refusal.

    ``uint8`` is read as 0-255 and ``uint16`` as 0-65535 (scaled); other
    integer and bool tensors are refused; NaN or infinite values are refused;
    float values outside [0, 1] are clamped with a warning (a float image
    of 0-255 is the usual cause). Shared by ``stylize`` and the networks.

    >>> as_unit_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
    [0.0, 1.0]
    """
    if not isinstance(value, Tensor):
        raise ImageError(f"the {label} must be a tensor, got {type(value).__name__}")
    if value.dtype == torch.uint8:
        return value.detach().float() / 255.0
    if getattr(torch, "uint16", None) is not None and value.dtype == torch.uint16:
        return value.detach().to(torch.float32) / 65535.0
    if not value.is_floating_point():
        raise ImageError(f"the {label} is a {str(value.dtype).replace('torch.', '')} tensor: give float values "
                         "in [0, 1] (or uint8 0-255)")
    image = value.detach().float()
    if not torch.isfinite(image).all():
        raise ImageError(f"the {label} holds NaN or infinite values")
    if image.numel() and (image.min() < 0 or image.max() > 1):
        warnings.warn(f"the {label} has values in [{float(image.min()):.4g}, {float(image.max()):.4g}], outside "
                      "[0, 1]: clamped (for 0-255 data divide by 255 first)", stacklevel=3)
        image = image.clamp(0, 1)
    return image



def as_image_batch(value: Tensor | str | os.PathLike, label: str = "image") -> Tensor:
    """An image argument as a ``(B, 3, H, W)`` float batch in [0, 1]: a path is loaded, a
    ``(3, H, W)`` tensor gets a batch axis, anything else is refused naming ``label``.

    >>> as_image_batch(torch.zeros(3, 4, 5, dtype=torch.uint8), "content").shape
    torch.Size([1, 3, 4, 5])
    """
    if isinstance(value, Tensor):
        image = value.unsqueeze(0) if value.dim() == 3 else value
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"the {label} image must be (B, 3, H, W), got {tuple(value.shape)}")
        return as_unit_float(image, f"{label} image")  # uint8 scaled, NaN refused, outside [0, 1] warned
    return load_image(value)

def resize_to(image: Tensor, size: tuple[int, int], *, mode: str = "bicubic") -> Tensor:
    """Resize ``(B, C, H, W)`` or ``(C, H, W)`` to ``size = (h, w)``, clamped to [0, 1].

    Antialiased ``mode`` (``bicubic``, or ``bilinear`` as the networks' inputs
    are resized; a box-like prefilter when shrinking); returns the input
    unchanged when it already has that size. Masks are resized by
    :func:`masked_gatys.masks.resize_mask` instead.

    >>> import torch
    >>> resize_to(torch.rand(1, 3, 8, 8), (4, 2)).shape
    torch.Size([1, 3, 4, 2])
    """
    _check_image_tensor(image)
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ImageError(f"cannot resize an image to {h}x{w}: sizes must be positive")
    if tuple(image.shape[-2:]) == (h, w):
        return image
    batched = image if image.dim() == 4 else image.unsqueeze(0)
    dtype = batched.dtype if batched.is_floating_point() else torch.float32
    out = F.interpolate(
        batched.to(dtype), size=(h, w), mode=mode, align_corners=False, antialias=True
    ).clamp_(0.0, 1.0)
    return out if image.dim() == 4 else out.squeeze(0)


def resize_image(image: Tensor, size: int) -> Tensor:
    """Resize so the longest side is ``size`` pixels, keeping the aspect ratio.

    >>> import torch
    >>> resize_image(torch.rand(1, 3, 30, 60), 20).shape
    torch.Size([1, 3, 10, 20])
    """
    _check_image_tensor(image)
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ImageError(f"size must be a positive number of pixels, got {size!r}")
    h, w = image.shape[-2:]
    scale = int(size) / max(h, w)
    return resize_to(image, (max(1, round(h * scale)), max(1, round(w * scale))))


# --------------------------------------------------------------------------- PNG codec
# Pillow reads 16-bit RGB(A)/LA PNGs as 8-bit and cannot write 16-bit RGB: torchvision's
# decode_png reads them; writing goes through this small encoder (PNG spec, ISO/IEC 15948)
# while no library the package keeps writes 16-bit RGB PNGs (torchvision's encode_png takes
# uint8 only).

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_PNG_BANDS = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _predict(ftype: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The PNG predictor of each filter type (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    f = ftype.reshape(ftype.shape + (1,) * (a.ndim - ftype.ndim))
    choices = [a, b, (a + b) >> 1, _paeth(a, b, c)]
    return np.select([f == 1, f == 2, f == 3, f == 4], choices, 0)


def _read_png16(data: bytes) -> tuple[np.ndarray, str]:
    """Decode a 16-bit PNG into float32 ``(H, W, C)`` in [0, 1] and its bands.

    torchvision's libpng decoder, asked for the file's own channels and depth
    (Pillow would keep only the high byte of 16-bit colour).
    """
    import torch
    from torchvision.io import ImageReadMode, decode_png

    if len(data) < 29 or data[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    depth, colour = data[24], data[25]
    if depth != 16 or colour not in _PNG_CHANNELS:
        raise ValueError(f"unsupported PNG bit depth {depth} / colour type {colour}")
    _check_png16(data)  # libpng's errors end the process inside torchvision: none may reach it
    pixels = decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.UNCHANGED)
    # uint16 in current torchvision (int32 in some older ones): the same values either way
    values = pixels.to(torch.int32).permute(1, 2, 0).numpy()
    if values.shape[-1] != _PNG_CHANNELS[colour]:
        raise ValueError(f"decoded {values.shape[-1]} channels, the header says {_PNG_CHANNELS[colour]}")
    return values.astype(np.float32) / 65535.0, _PNG_BANDS[colour]


def _check_png16(data: bytes) -> None:
    """Raise ``ValueError`` unless a 16-bit PNG is whole: every chunk's length and CRC, the
    header's fields, and image data that inflates to exactly the rows the header promises,
    each with a known filter type.

    torchvision's ``decode_png`` turns libpng's errors (short image data, a bad CRC) into a
    crash of the whole process, so untrusted files are checked here first.
    """
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("truncated PNG chunk")
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise ValueError(f"PNG chunk {kind!r} runs past the end of the file")
        body = data[pos + 8:pos + 8 + length]
        if struct.unpack(">I", data[end - 4:end])[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC")
        chunks.append((kind, body))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13 or chunks[-1][0] != b"IEND":
        raise ValueError("PNG chunks out of order (IHDR first, IEND last)")
    for kind, _ in chunks:
        if not kind.isalpha() or (kind[:1].isupper() and kind not in (b"IHDR", b"PLTE", b"IDAT", b"IEND")):
            raise ValueError(f"unknown critical PNG chunk {kind!r}")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if not (0 < width < 2**31 and 0 < height < 2**31) or compression or filtering or interlace not in (0, 1):
        raise ValueError("bad PNG header")
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS * 2:
        raise ValueError(f"{width}x{height} pixels is too many (a decompression bomb?)")
    idat = [i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT"]
    if not idat or idat != list(range(idat[0], idat[-1] + 1)):
        raise ValueError("PNG image data missing or not in one run of IDAT chunks")
    bpp = 2 * _PNG_CHANNELS[colour]
    passes = [(width, height)] if interlace == 0 else [
        ((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7]
    rows = [(w * bpp, h) for w, h in passes if w > 0 and h > 0]
    expected = sum((1 + row) * h for row, h in rows)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(chunks[i][1] for i in idat), expected + 1)
    except zlib.error as exc:
        raise ValueError(f"PNG image data is corrupt ({exc})") from None
    if len(raw) != expected or not inflate.eof:
        raise ValueError(f"PNG image data is {'short' if len(raw) < expected else 'long'}: "
                         f"{len(raw)} bytes for {expected}")
    start = 0
    for row, h in rows:  # the filter type byte that opens each row: 0-4
        types = np.frombuffer(raw, np.uint8)[start:start + (1 + row) * h:1 + row]
        if int(types.max()) > 4:
            raise ValueError(f"PNG row filter type {int(types.max())} is unknown")
        start += (1 + row) * h


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _text_chunk(key: str, value: str) -> bytes:
    """A tEXt chunk, or an iTXt chunk (UTF-8) when the value is not Latin-1."""
    try:
        return _png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        body = key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")
        return _png_chunk(b"iTXt", body)


def _filter_rows(x: np.ndarray, filters: int | Sequence[int]) -> bytes:
    """PNG-filter ``(h, w, bpp)`` bytes (as int32); one filter type per row or for all."""
    h, w, bpp = x.shape
    ftype = np.broadcast_to(np.asarray(filters, np.int32), (h,))
    a = np.pad(x, ((0, 0), (1, 0), (0, 0)))[:, :-1]
    b = np.pad(x, ((1, 0), (0, 0), (0, 0)))[:-1]
    c = np.pad(x, ((1, 0), (1, 0), (0, 0)))[:-1, :-1]
    filtered = ((x - _predict(ftype, a, b, c)) & 0xFF).astype(np.uint8).reshape(h, w * bpp)
    return np.concatenate([ftype.astype(np.uint8)[:, None], filtered], axis=1).tobytes()


def _encode_png16(
    values: np.ndarray,
    text: Mapping[str, str],
    *,
    filters: int | Sequence[int] = 4,
    interlace: bool = False,
) -> bytes:
    """A 16-bit PNG of uint16 ``(H, W, C)``, C = 1 (grey), 2 (LA), 3 (RGB), 4 (RGBA).

    Rows are Paeth-filtered by default; ``filters`` (one type, or one per row
    of a non-interlaced image) and ``interlace`` (Adam7) are there for tests.
    """
    h, w, channels = values.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    x = np.ascontiguousarray(values, dtype=">u2").view(np.uint8).reshape(h, w, 2 * channels).astype(np.int32)
    if interlace:
        passes = [x[y0::dy, x0::dx] for x0, y0, dx, dy in _ADAM7]
        raw = b"".join(_filter_rows(p, filters) for p in passes if p.size)
    else:
        raw = _filter_rows(x, filters)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, int(interlace))
    parts = [_PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr)]
    parts += [_text_chunk(k, v) for k, v in text.items()]
    parts += [_png_chunk(b"IDAT", zlib.compress(raw, 6)), _png_chunk(b"IEND", b"")]
    return b"".join(parts)


# --------------------------------------------------------------------------- writing


def _image_array(image: Tensor) -> np.ndarray:
    """``(H, W, C)`` float64 in [0, 1] (C = 1 or 3) from any accepted tensor shape."""
    if not isinstance(image, Tensor):
        raise ImageError(f"save_image needs a tensor, got {type(image).__name__}")
    x = image.detach()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 3 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] not in (1, 3) or x.shape[1] < 1 or x.shape[2] < 1:
        raise ImageError(
            "save_image takes one image: (1, 3, H, W), (3, H, W), (1, 1, H, W) or (H, W); "
            f"got {tuple(image.shape)}"
        )
    return x.to("cpu", torch.float64).nan_to_num(0.0).clamp(0.0, 1.0).permute(1, 2, 0).numpy()


def _metadata_text(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """Keys checked for PNG (1-79 Latin-1 characters), values JSON-encoded unless str."""
    text: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not 1 <= len(key) <= 79 or key != key.strip():
            raise ImageError(f"PNG metadata keys must be 1-79 characters without outer spaces: {key!r}")
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise ImageError(f"PNG metadata keys must be Latin-1: {key!r}") from None
        if isinstance(value, str):
            text[key] = value
        else:
            try:
                text[key] = json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise ImageError(f"metadata value of {key!r} is not JSON-serialisable: {exc}") from exc
    return text


def _format_for(path: Path) -> str:
    if not path.suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"cannot write {path}: unknown image file extension {path.suffix!r}")
    return fmt


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``masked_gatys.files.atomic_write``; failures become ``ImageError``."""
    try:
        atomic_write(path, write, suffix=path.suffix or ".png")
    except MaskedGatysError:
        raise
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ImageError(f"cannot write {path}: {reason}") from exc


def save_image(
    image: Tensor,
    path: PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    bits: int = 8,
) -> None:
    """Write an image atomically; PNG unless the extension names another format.

    Accepts ``(1, 3, H, W)``, ``(3, H, W)`` (RGB) or ``(1, 1, H, W)``, ``(H, W)``
    (greyscale); values are clamped to ``[0, 1]`` and rounded. ``metadata``
    becomes PNG text chunks, one per key, values JSON-encoded unless they are
    strings (read them back with :func:`read_metadata`); other formats cannot
    hold it and drop it with a warning. ``bits=16`` writes a 16-bit PNG.
    JPEG is written at quality 95.

    >>> import tempfile, os, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> save_image(torch.linspace(0, 1, 6).reshape(2, 3), path, bits=16)
    >>> round(load_image(path)[0, 0, 1, 2].item(), 6)
    1.0
    """
    p = Path(path)
    if bits not in (8, 16):
        raise ImageError(f"bits must be 8 or 16, got {bits!r}")
    array = _image_array(image)
    text = _metadata_text(metadata)
    fmt = _format_for(p)
    if bits == 16 and fmt != "PNG":
        raise ImageError(f"cannot write {p}: 16-bit output needs a .png file")
    if text and fmt != "PNG":
        warnings.warn(f"{p}: {fmt} files cannot hold the metadata; it is not written", stacklevel=2)

    if bits == 16:
        values = np.rint(array * 65535.0).astype(np.uint16)
        encoded = _encode_png16(values, text)

        def write(f: IO[bytes]) -> None:
            f.write(encoded)

    else:
        values8 = np.rint(array * 255.0).astype(np.uint8)
        pil = Image.fromarray(values8[..., 0] if values8.shape[-1] == 1 else values8)
        options: dict[str, Any] = {}
        if fmt == "PNG" and text:
            info = PngImagePlugin.PngInfo()
            for key, value in text.items():
                info.add_text(key, value)  # switches to iTXt for non-Latin-1 values
            options["pnginfo"] = info
        if fmt == "JPEG":
            options["quality"] = _JPEG_QUALITY

        def write(f: IO[bytes]) -> None:
            pil.save(f, format=fmt, **options)

    _atomic_write(p, write)


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The text chunks of a PNG as a dict, JSON-decoded where possible.

    A string that happens to be valid JSON (``"1.5"``) comes back decoded.
    Files other than PNG give ``{}``.

    >>> import tempfile, os, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> save_image(torch.zeros(3, 2, 2), path, metadata={"preset": "masked", "size": [2, 2]})
    >>> read_metadata(path)
    {'preset': 'masked', 'size': [2, 2]}
    """
    p = _check_file(path, "image", ImageError)
    try:
        with Image.open(p) as img:
            chunks = dict(getattr(img, "text", {}) or {})
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise ImageError(f"cannot read metadata of {p}: {exc}") from exc
    out: dict[str, Any] = {}
    for key, value in chunks.items():
        value = str(value)
        try:
            out[str(key)] = json.loads(value)
        except ValueError:
            out[str(key)] = value
    return out
