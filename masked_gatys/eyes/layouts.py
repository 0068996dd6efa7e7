"""Eye layouts: the framing, size and channels of the eye images a data set holds.

A *layout* says where the eye sits in the image and how big its parts are (corners, lids, iris,
pupil), the image's default size, its channels and the light it is seen in (visible or
near-infrared). A *look* is how one capture of that scene comes out (clean, outdoor photo,
laptop webcam, RGB photo crop, near-infrared camera). :func:`masked_gatys.eyes.render.render_eye`
draws any layout in any of its looks with exact labels; this module holds the table and the
guess of a layout from an image, and imports nothing of the package but the errors.

- ``unity``: the renderer's original framing (a small eye with skin around it, 72x120 RGB).
  ``default`` is another name for it. Its renders are unchanged by the layouts.
- ``mpiigaze``: MPIIGaze's normalised patches: 36x60, grey, histogram-equalised, the eye from
  corner to corner, no brows, the iris under the upper lid.
- ``nir``: a head-mounted near-infrared eye camera: 240x320 grey, one eye filling the frame
  (the corners outside it), a large very dark pupil, bright skin and sclera, lashes, glints,
  lids often half-closed.

>>> get_layout("default").name, get_layout("mpiigaze").size, get_layout("nir").channels
('unity', (36, 60), 1)
>>> guess_layout((1, 36, 60))
('mpiigaze', 'a 36x60 grey image is an MPIIGaze normalised patch')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from masked_gatys.errors import MaskedGatysError

__all__ = ["Layout", "LAYOUTS", "LOOKS", "LayoutError", "get_layout", "guess_layout", "layout_for", "layout_names"]


class LayoutError(MaskedGatysError, ValueError):
    """An unknown layout or look, or one that does not fit the image."""


#: every look: how one capture of the scene comes out
LOOKS: dict[str, str] = {
    "clean": "the synthetic domain: evenly lit, no noise, no blur, no glints (UnityEyes' look)",
    "outdoor": "the renderer's original real domain: daylight ramp, cast shadow, colour "
               "temperature, cornea reflection, glints, blur, exposure, gamma, sensor noise",
    "webcam": "a laptop webcam indoors: side light, a soft shadow, low resolution, blur, "
              "sensor noise, JPEG, a colour cast, sometimes glasses' reflections",
    "photo": "an RGB photo crop: JPEG, noise, blur, low resolution, side light, strong colour "
             "casts, glasses' reflections",
    "nir": "a near-infrared eye camera: LED fall-off, glints from the LEDs, slight blur, "
           "sensor noise, sometimes JPEG; grey",
    "any": "one of the layout's real looks, drawn per eye from the seed",
}


@dataclass(frozen=True)
class Layout:
    """One framing of the eye. Ranges are ``(low, high)`` of a uniform draw per eye.

    ``half_width``: corner-to-corner half-width as a fraction of ``min(W / 2, 0.95 H)``.
    ``center``: the corners' midpoint as ``(x, y)`` fractions of ``(W, H)`` and the uniform
    jitter ``(jx, jy)`` around it in the same fractions. The other geometry ranges are the
    renderer's parameters (:data:`masked_gatys.eyes.render._GEOMETRY_KEYS`). ``closure``:
    ``(share of closed eyes, share of half-closed eyes)``; ``whole_pupil``: the lids always
    open over the whole pupil (the original renderer's rule); ``inner_left``: the share of eyes
    with the inner corner (caruncle) on the left.
    """

    name: str
    size: tuple[int, int]
    channels: int
    spectrum: str  # "visible" or "nir"
    equalise: bool
    real_looks: tuple[str, ...]
    yaw_range: float
    pitch_range: float
    description: str
    geometry: dict[str, tuple[float, float]] = field(default_factory=dict)
    center: tuple[float, float, float, float] = (0.5, 0.5, 0.04, 0.05)
    closure: tuple[float, float] = (0.0, 0.0)
    whole_pupil: bool = True
    inner_left: float = 0.5

    @property
    def real_look(self) -> str:
        """The look of the real domain when none is named."""
        return self.real_looks[0]


_UNITY_GEOMETRY = {
    "half_width": (0.60, 0.70), "tilt": (-8.0, 8.0), "upper_opening": (0.42, 0.66),
    "lower_opening": (0.22, 0.38), "lid_skew": (-0.25, 0.25), "eyeball_radius": (0.80, 0.92),
    "iris_radius": (0.47, 0.54), "pupil_ratio": (0.28, 0.55), "eyeball_drop": (0.0, 0.08),
}

LAYOUTS: dict[str, Layout] = {
    "unity": Layout(
        name="unity", size=(72, 120), channels=3, spectrum="visible", equalise=False,
        real_looks=("outdoor", "webcam", "photo"), yaw_range=30.0, pitch_range=20.0,
        description="the renderer's original framing: a small eye with skin around it, RGB",
        geometry=_UNITY_GEOMETRY),
    "mpiigaze": Layout(
        name="mpiigaze", size=(36, 60), channels=1, spectrum="visible", equalise=True,
        real_looks=("webcam", "photo", "outdoor"), yaw_range=25.0, pitch_range=18.0,
        description="MPIIGaze's normalised patches: 36x60 grey, histogram-equalised, corner to "
                    "corner, no brows, the iris under the upper lid",
        geometry={"half_width": (0.84, 0.95), "tilt": (-6.0, 6.0), "upper_opening": (0.20, 0.36),
                  "lower_opening": (0.22, 0.34), "lid_skew": (-0.2, 0.2),
                  "eyeball_radius": (0.80, 0.90), "iris_radius": (0.35, 0.41),
                  "pupil_ratio": (0.30, 0.50), "eyeball_drop": (0.0, 0.06)},
        center=(0.5, 0.45, 0.03, 0.04), closure=(0.04, 0.12), whole_pupil=False, inner_left=0.8),
    "nir": Layout(
        name="nir", size=(240, 320), channels=1, spectrum="nir", equalise=False,
        real_looks=("nir",), yaw_range=28.0, pitch_range=18.0,
        description="a head-mounted near-infrared eye camera: 240x320 grey, one eye filling the "
                    "frame, a large dark pupil, bright skin and sclera, lashes, glints",
        geometry={"half_width": (1.05, 1.6), "tilt": (-10.0, 10.0), "upper_opening": (0.42, 0.62),
                  "lower_opening": (0.32, 0.48), "lid_skew": (-0.25, 0.25),
                  "eyeball_radius": (0.80, 0.90), "iris_radius": (0.46, 0.54),
                  "pupil_ratio": (0.28, 0.52), "eyeball_drop": (0.0, 0.08)},
        center=(0.5, 0.5, 0.12, 0.08), closure=(0.05, 0.25), whole_pupil=False),
}
_ALIASES = {"default": "unity"}


def layout_names() -> tuple[str, ...]:
    """The layout names, aliases included.

    >>> layout_names()
    ('unity', 'mpiigaze', 'nir', 'default')
    """
    return tuple(LAYOUTS) + tuple(_ALIASES)


def get_layout(name: str | Layout) -> Layout:
    """The :class:`Layout` called ``name`` (``default`` is ``unity``).

    >>> get_layout("nir").size
    (240, 320)
    """
    if isinstance(name, Layout):
        return name
    key = _ALIASES.get(str(name), str(name))
    if key not in LAYOUTS:
        raise LayoutError(f"unknown layout {name!r}: use one of {', '.join(layout_names())}")
    return LAYOUTS[key]


def _shape_of(image: Any) -> tuple[int, int, int]:
    """``(channels, H, W)`` of a tensor or array ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)``, a
    PIL image, or a shape tuple; channels 1 also for RGB whose channels are equal."""
    if isinstance(image, tuple) and all(isinstance(v, int) for v in image):
        shape, data = image, None
    elif hasattr(image, "getbands"):  # a PIL image
        w, h = image.size
        c = 1 if image.mode in ("L", "I", "I;16", "F", "1") else 3
        if c == 3:
            bands = image.convert("RGB").split()
            c = 1 if bands[0].tobytes() == bands[1].tobytes() == bands[2].tobytes() else 3
        return c, h, w
    else:
        shape, data = tuple(image.shape), image
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) == 3 and data is not None:
        data = data[None]
    if len(shape) not in (3, 4):
        raise LayoutError(f"an image is (N, C, H, W), (C, H, W) or (H, W), got shape {shape}")
    c, h, w = shape[-3:]
    if c == 3 and data is not None:  # grey when every image of the batch has three equal channels
        if bool((data[:, 0] == data[:, 1]).all() and (data[:, 1] == data[:, 2]).all()):
            c = 1
    return c, h, w


def guess_layout(image: Any) -> tuple[str, str]:
    """The layout an eye image most likely has, and the reason, from its size and channels.

    Grey (one channel, or three equal ones) 36x60 is ``mpiigaze`` (also any grey image of
    that 3:5 aspect up to 72x120); grey 4:3 images of at least 120x160 are ``nir``; anything
    else is ``unity``, the original framing, and the reason says it was not recognised.
    ``image``: a tensor or array ``(N, C, H, W)`` (grey when all N are), ``(C, H, W)``,
    ``(H, W)``, a PIL image, or a shape tuple.

    >>> guess_layout((1, 240, 320))[0], guess_layout((3, 240, 320))[0]
    ('nir', 'unity')
    """
    c, h, w = _shape_of(image)
    grey = c == 1
    if grey and 3 * w == 5 * h and h <= 72:
        return "mpiigaze", f"a {h}x{w} grey image is an MPIIGaze normalised patch"
    if grey and 3 * w == 4 * h and h >= 120:
        return "nir", f"a {h}x{w} grey 4:3 image is a near-infrared eye-camera frame"
    what = "grey" if grey else "colour"
    return "unity", f"a {h}x{w} {what} image matches no data set's layout: the original framing (unity)"


def layout_for(image: Any, layout: str | None = None) -> tuple[str, str]:
    """The layout to use for ``image``: ``layout`` when named, else :func:`guess_layout`'s,
    with the reason (say it to the user when it was guessed).

    >>> layout_for((1, 36, 60), "unity")
    ('unity', 'named')
    >>> layout_for((1, 36, 60))[0]
    'mpiigaze'
    """
    if layout is not None:
        return get_layout(layout).name, "named"
    return guess_layout(image)
