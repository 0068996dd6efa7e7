"""Procedural eye-region images with exact masks and ground truth.

UnityEyes, LPW and MPIIGaze cannot be downloaded everywhere, so this module
draws eye images itself: :func:`render_eye` returns the image, per-pixel
labels (0 skin, 1 sclera, 2 iris, 3 pupil), the attention mask (iris + pupil)
and a JSON-serialisable ground truth (pupil centre, iris ellipse, gaze, eye
corners, lids and every drawn parameter).

>>> r = render_eye(yaw=10.0, pitch=-5.0, domain="real", size=(36, 60), seed=3)
>>> tuple(r.image.shape), tuple(r.labels.shape), tuple(r.mask.shape)
((1, 3, 36, 60), (36, 60), (1, 1, 36, 60))
>>> r.truth["gaze"]["yaw"], len(r.truth["pupil_center"])
(10.0, 2)

Conventions
-----------
*Pixels*: x to the right, y down, the centre of pixel ``(row i, column j)``
is at ``(x, y) = (j, i)``; sizes are ``(H, W)``. *Gaze*: ``(yaw, pitch)`` in
degrees, always in that order. Positive yaw turns the eye towards +x (the
pupil moves right in the image), positive pitch turns it up (the pupil moves
up). The gaze vector is in camera coordinates (x right, y down, z away from
the camera, into the scene) and points from the eye outwards, so looking
straight at the camera is ``(0, 0, -1)``::

    v = (cos(pitch) sin(yaw), -sin(pitch), -cos(pitch) cos(yaw))

(MPIIGaze writes angles as (pitch, yaw) and its yaw has the opposite sign:
``g = (-cos p sin y, -sin p, -cos p cos y)``. Convert explicitly, never by
swapping indices blindly.)

What is simulated
-----------------
*Geometry* (identical in both domains for one seed): an eyeball seen under
orthographic projection; a circular iris and pupil on the eyeball's surface
whose projections move and foreshorten into ellipses with the gaze; pupil
size; upper and lower eyelids as smooth curves between two eye corners with a
random opening (the upper lid follows the pitch); head roll (a tilt of the
corner line). The lids are always opened far enough to show the whole pupil,
so the labelled pupil's centroid is the stated pupil centre.

*Appearance* (identical in both domains): skin tone with two-scale texture,
an eyelid crease, a dark lash line, a pinkish caruncle at the inner corner,
sclera shaded by the sphere and by the lids, an iris with radial striations,
a darker limbal ring and a collarette.

*Domain "synthetic"*: the clean, evenly lit look of UnityEyes renders:
no noise, no blur, neutral white balance, no glints.

*Domain "real"*: the same eye seen outdoors, every effect drawn per seed: a
directional light gradient, a soft-edged cast shadow (brim, frame, brow), a
colour temperature shift, a faint sky reflection over the cornea, one to three
specular glints on the cornea, a slight Gaussian blur, exposure, gamma,
contrast and saturation changes, and signal-dependent sensor noise (partly
shared by the three channels, partly per channel).

*Layouts and looks* (:mod:`masked_gatys.eyes.layouts`): the above is the ``unity`` layout
(``default``) in the looks ``clean`` (synthetic) and ``outdoor`` (real), unchanged. The
``mpiigaze`` layout frames the eye as MPIIGaze's normalised patches (36x60, corner to corner,
no brows, grey, histogram-equalised; a webcam's socket shading and thick lash line); ``nir``
as a near-infrared eye camera (240x320, one eye filling the frame, near-infrared materials,
lashes as strands). Both draw closed and half-closed lids (the lids may cover the pupil; a shut
eye has no iris or pupil label). The looks ``webcam``, ``photo`` and ``nir``
(:mod:`masked_gatys.eyes.looks`) are captures: photometric steps and resampling on the same
pixel grid, so one seed has the same labels in every look.

How it differs from real photographs: no eyelashes as strands, no skin pores,
wrinkles, make-up, eyebrows or glasses; no perspective (orthographic
projection), no refraction of the iris by the cornea, no motion blur, no
compression artefacts, no vignetting or lens distortion; the shadow is a
straight soft edge and the light a linear ramp, where real light is neither;
noise is independent per pixel, without demosaicing. Use it to test and
demonstrate, not to measure a gaze estimator's accuracy on people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes.labels import LABEL_COLORS, LABELS  # re-exported: the label ids and colours live in labels
from masked_gatys.eyes.drawing import downsample as _downsample
from masked_gatys.eyes.drawing import equalise_hist, to_grey
from masked_gatys.eyes.layouts import LOOKS, Layout, LayoutError, get_layout
from masked_gatys.eyes.looks import CAPTURES
from masked_gatys.eyes.scene import close_lids as _close_lids
from masked_gatys.eyes.scene import draw_closure as _draw_closure
from masked_gatys.eyes.scene import layout_shading, nir_appearance
from masked_gatys.eyes.scene import shade as _shade

__all__ = [
    "EyeError",
    "EyeRender",
    "render_eye",
    "gaze_to_vector",
    "vector_to_gaze",
    "angular_error",
    "LABELS",
    "LABEL_COLORS",
    "DOMAINS",
    "labels_to_rgb",
    "style_eye",
]

DOMAINS = ("synthetic", "real")

#: the largest gaze angles (degrees) the renderer accepts
MAX_YAW = 60.0
MAX_PITCH = 45.0


class EyeError(MaskedGatysError, ValueError):
    """Invalid arguments to the eye renderer."""


@dataclass(frozen=True)
class EyeRender:
    """One rendered eye.

    ``image``: ``(1, 3, H, W)`` float32 RGB in [0, 1]. ``labels``: ``(H, W)``
    int64 (0 skin, 1 sclera, 2 iris, 3 pupil; the majority class of each
    pixel). ``mask``: ``(1, 1, H, W)`` float32, the anti-aliased coverage of
    the attention region (iris + pupil). ``truth``: JSON-serialisable dict.
    """

    image: Tensor
    labels: Tensor
    mask: Tensor
    truth: dict[str, Any] = field(repr=False)

    @property
    def binary_mask(self) -> Tensor:
        """The attention mask thresholded at 0.5, ``(1, 1, H, W)`` float32."""
        return (self.mask >= 0.5).to(torch.float32)


# --------------------------------------------------------------------------- gaze


def gaze_to_vector(yaw: Any, pitch: Any) -> np.ndarray:
    """Unit gaze vector(s) ``(..., 3)`` from ``yaw`` and ``pitch`` in degrees.

    Camera coordinates: x right, y down, z into the scene; see the module
    docstring for the signs.

    >>> gaze_to_vector(0.0, 0.0).round(6).tolist()
    [0.0, -0.0, -1.0]
    >>> gaze_to_vector(90.0, 0.0).round(6).tolist()  # towards +x
    [1.0, -0.0, -0.0]
    """
    y = np.radians(np.asarray(yaw, dtype=np.float64))
    p = np.radians(np.asarray(pitch, dtype=np.float64))
    return np.stack([np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], axis=-1)


def vector_to_gaze(vector: Any) -> np.ndarray:
    """``(yaw, pitch)`` in degrees, shape ``(..., 2)``, from gaze vector(s) ``(..., 3)``.

    The inverse of :func:`gaze_to_vector`; the vector need not be unit length.

    >>> vector_to_gaze(gaze_to_vector(20.0, -10.0)).round(6).tolist()
    [20.0, -10.0]
    """
    v = np.asarray(vector, dtype=np.float64)
    if v.shape[-1:] != (3,):
        raise EyeError(f"a gaze vector has 3 components, got shape {v.shape}")
    norm = np.linalg.norm(v, axis=-1)
    if np.any(norm == 0):
        raise EyeError("a gaze vector of length 0 has no direction")
    yaw = np.degrees(np.arctan2(v[..., 0], -v[..., 2]))
    pitch = np.degrees(np.arcsin(np.clip(-v[..., 1] / norm, -1.0, 1.0)))
    return np.stack([yaw, pitch], axis=-1)


def angular_error(a: Any, b: Any) -> Any:
    """Angle in degrees between gazes ``a`` and ``b``.

    Each is ``(..., 2)`` ``(yaw, pitch)`` in degrees or ``(..., 3)`` vectors.
    Returns a float for single gazes, else an array.

    >>> round(angular_error((10.0, 0.0), (0.0, 0.0)), 6)
    10.0
    >>> round(angular_error((0.0, 0.0), gaze_to_vector(0.0, 5.0)), 6)
    5.0
    """
    va, vb = _as_vector(a), _as_vector(b)
    va = va / np.linalg.norm(va, axis=-1, keepdims=True)
    vb = vb / np.linalg.norm(vb, axis=-1, keepdims=True)
    cos = np.clip(np.sum(va * vb, axis=-1), -1.0, 1.0)
    # atan2 of |cross| and dot is accurate for small angles, where acos is not
    sin = np.linalg.norm(np.cross(va, vb), axis=-1)
    angle = np.degrees(np.arctan2(sin, cos))
    return float(angle) if np.ndim(angle) == 0 else angle


def _as_vector(g: Any) -> np.ndarray:
    arr = np.asarray(g.detach().cpu() if isinstance(g, Tensor) else g, dtype=np.float64)
    if arr.shape[-1:] == (2,):
        return gaze_to_vector(arr[..., 0], arr[..., 1])
    if arr.shape[-1:] == (3,):
        return arr
    raise EyeError(f"a gaze is (yaw, pitch) or a 3-vector, got shape {arr.shape}")


# --------------------------------------------------------------------------- drawing helpers


def _mix(rng: np.random.Generator, palette: Sequence[Sequence[float]], jitter: float) -> np.ndarray:
    base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=np.float64)
    return np.clip(base * (1.0 + jitter * rng.uniform(-1, 1, 3)), 0.0, 1.0)


_IRIS_PALETTE = (
    (0.32, 0.18, 0.09),  # brown
    (0.22, 0.13, 0.07),  # dark brown
    (0.30, 0.45, 0.62),  # blue
    (0.33, 0.42, 0.24),  # green
    (0.47, 0.35, 0.18),  # hazel
    (0.45, 0.50, 0.54),  # grey
)
_SKIN_LIGHT = np.array([0.90, 0.72, 0.62])
_SKIN_DARK = np.array([0.38, 0.25, 0.18])

_GEOMETRY_KEYS = {
    "center": "(x, y) of the midpoint between the corners, pixels",
    "half_width": "half the corner-to-corner distance, pixels",
    "tilt": "roll of the corner line, degrees (positive: clockwise in the image)",
    "upper_opening": "upper lid height above the corner line at its peak, in half-widths",
    "lower_opening": "lower lid depth below the corner line at its peak, in half-widths",
    "lid_skew": "asymmetry of the lids along the corner line, -0.5 .. 0.5",
    "eyeball_radius": "eyeball radius, in half-widths",
    "iris_radius": "iris radius, as a fraction of the eyeball radius",
    "pupil_ratio": "pupil radius / iris radius",
    "inner_corner": "'left' or 'right': the side of the caruncle",
    "iris_color": "RGB in [0, 1]",
    "skin_color": "RGB in [0, 1]",
    "supersample": "supersampling factor per axis (anti-aliasing)",
    "closure": "0 (open as drawn) .. 1 (closed): how far the upper lid has come down",
}


def _parse_size(size: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise EyeError(f"size must be (H, W), got {size!r}") from None
    if h < 16 or w < 16:
        raise EyeError(f"size must be at least 16x16 pixels, got {h}x{w}")
    if h > 4096 or w > 4096:
        raise EyeError(f"size must be at most 4096x4096 pixels, got {h}x{w}")
    return h, w


# --------------------------------------------------------------------------- the renderer


def _checked_args(layout: str | Layout, domain: str | None, look: str | None, yaw: float, pitch: float,
                  seed: int, overrides: dict[str, Any]) -> tuple[Layout, str, str, float, float, int]:
    """render_eye's arguments checked: (layout, look, domain, yaw, pitch, seed); EyeError if bad."""
    try:
        lay = get_layout(layout)
    except LayoutError as exc:
        raise EyeError(str(exc)) from None
    look_name, domain = _resolve_look(lay, domain, look, seed)
    unknown = sorted(set(overrides) - set(_GEOMETRY_KEYS))
    if unknown:
        raise EyeError(f"unknown render_eye parameter(s) {unknown}; known: {sorted(_GEOMETRY_KEYS)}")
    try:
        yaw, pitch, seed = float(yaw), float(pitch), int(seed)
    except (TypeError, ValueError):
        raise EyeError("yaw and pitch must be numbers and seed an integer") from None
    if not (abs(yaw) <= MAX_YAW and abs(pitch) <= MAX_PITCH):
        raise EyeError(f"gaze out of range: |yaw| <= {MAX_YAW:g} and |pitch| <= {MAX_PITCH:g} degrees")
    if seed < 0:
        raise EyeError(f"seed must be >= 0, got {seed}")
    return lay, look_name, domain, yaw, pitch, seed


def _appearance(lay: Layout, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The eye's colours and surface parameters for the layout's spectrum (visible or near-infrared)."""
    if lay.spectrum == "visible":
        look_params = _draw_appearance(seed, overrides)
        if lay.name != "unity":
            look_params["crease_depth"] *= 0.5  # the webcam shading draws the lid's own shadows
        return look_params
    look_params = nir_appearance(seed)
    for key in ("skin_color", "iris_color"):
        if key in overrides:
            look_params[key] = _check_rgb(key, overrides[key])
    return look_params


def _image(lay: Layout, look_name: str, geo: Any, look_params: dict[str, Any], fields: dict[str, Any], seed: int,
           h: int, w: int, s: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The rendered picture (3, H, W) in the look's capture, grey layouts grey; and the capture's parameters."""
    radiance = _shade(geo, look_params, fields, seed, h, w, s)  # (3, H*s, W*s), linear-ish
    if lay.name != "unity":
        radiance = layout_shading(radiance, geo, look_params, fields, lay.name, seed, h, w, s)
    domain_params: dict[str, Any] = {}
    if look_name == "clean":
        image = np.clip(_downsample(radiance, s), 0.0, 1.0)
    else:
        image, domain_params = CAPTURES[look_name](radiance, geo, fields, seed, h, w, s)
    if lay.channels == 1:
        grey = to_grey(image)
        image = np.repeat(equalise_hist(grey) if lay.equalise else grey, 3, axis=0)
    return image, domain_params


def render_eye(
    *,
    yaw: float = 0.0,
    pitch: float = 0.0,
    domain: str | None = None,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    layout: str | Layout = "unity",
    look: str | None = None,
    **overrides: Any,
) -> EyeRender:
    """Render one eye looking at ``(yaw, pitch)`` degrees in ``layout``, seen in ``look``.

    ``layout`` (:mod:`masked_gatys.eyes.layouts`): ``unity`` (``default``, the original
    framing, 72x120 RGB), ``mpiigaze`` (36x60 grey, equalised) or ``nir`` (240x320 grey,
    near-infrared); ``size`` defaults to the layout's. ``look``: ``clean`` (the synthetic
    domain), ``outdoor``, ``webcam``, ``photo``, ``nir`` or ``any`` (one of the layout's real
    looks, drawn from the seed); without it, ``domain`` ("synthetic", the default, or "real")
    picks ``clean`` or the layout's first real look (``outdoor`` for unity, so the original
    renders are unchanged). Grey layouts return three equal channels (``truth["channels"]``
    is 1). The seed fixes the eye (geometry and appearance) and the capture; the same seed
    in every look gives the same geometry, labels and mask.

    ``overrides`` replace drawn parameters: ``center``, ``half_width``, ``tilt``,
    ``upper_opening``, ``lower_opening``, ``lid_skew``, ``eyeball_radius``, ``iris_radius``,
    ``pupil_ratio``, ``inner_corner``, ``iris_color``, ``skin_color``, ``supersample``, and
    ``closure`` (0 open as drawn .. 1 closed: the labels then hold no iris and no pupil; the
    lids may then cover the pupil, in every layout). Raises :class:`EyeError` on bad arguments.

    >>> a = render_eye(yaw=0, pitch=0, size=(36, 60), seed=1)
    >>> b = render_eye(yaw=0, pitch=0, size=(36, 60), seed=1, domain="real")
    >>> bool(torch.equal(a.labels, b.labels)), a.truth["pupil_center"] == b.truth["pupil_center"]
    (True, True)
    >>> c = render_eye(layout="mpiigaze", look="webcam", seed=1, closure=1.0)
    >>> tuple(c.image.shape), int(c.labels.max()), c.truth["closed"]
    ((1, 3, 36, 60), 0, True)
    """
    lay, look_name, domain, yaw, pitch, seed = _checked_args(layout, domain, look, yaw, pitch, seed, overrides)
    h, w = _parse_size(size if size is not None else lay.size)
    original = lay.name == "unity" and look_name in ("clean", "outdoor") and "closure" not in overrides

    geo = _draw_geometry(seed, h, w, yaw, pitch, overrides, lay)
    look_params = _appearance(lay, seed, overrides)
    s = int(overrides.get("supersample", 4 if h * w <= 4000 else (3 if h * w <= 20000 else 2)))
    if not 1 <= s <= 8:
        raise EyeError(f"supersample must be 1..8, got {s}")

    fields = _fields(geo, h, w, s)
    cover = _downsample(np.stack([fields["label"] == k for k in range(4)]).astype(np.float32), s)
    labels = np.argmax(cover, axis=0)
    mask = cover[2] + cover[3]

    image, domain_params = _image(lay, look_name, geo, look_params, fields, seed, h, w, s)

    truth = _truth(geo, look_params, domain, domain_params, seed, h, w, s)
    if not original:
        truth.update(_layout_truth(geo, lay, look_name, cover, labels))
    return EyeRender(
        image=torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
        labels=torch.from_numpy(labels.astype(np.int64)),
        mask=torch.from_numpy(mask.astype(np.float32))[None, None],
        truth=truth,
    )


def _resolve_look(lay: Layout, domain: str | None, look: str | None, seed: int) -> tuple[str, str]:
    """The capture to draw and its domain, from ``domain`` and ``look`` as given."""
    if look is None:
        domain = "synthetic" if domain is None else domain
        if domain not in DOMAINS:
            raise EyeError(f"unknown domain {domain!r}: use 'synthetic' or 'real'")
        return ("clean" if domain == "synthetic" else lay.real_look), domain
    if look not in LOOKS:
        raise EyeError(f"unknown look {look!r}: use one of {', '.join(LOOKS)}")
    if look == "any":
        look = lay.real_looks[int(np.random.default_rng([int(seed), 5]).integers(len(lay.real_looks)))]
    want = "synthetic" if look == "clean" else "real"
    if domain is not None and domain != want:
        raise EyeError(f"look {look!r} belongs to the {want} domain, not {domain!r}")
    return look, want


def _draw_geometry(seed: int, h: int, w: int, yaw: float, pitch: float,
                   overrides: dict[str, Any], lay: Layout) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 0])
    r = lay.geometry
    g: dict[str, Any] = {}
    scale = min(w / 2.0, h * 0.95)  # half-width that fits both axes
    g["half_width"] = float(overrides.get("half_width", scale * rng.uniform(*r["half_width"])))
    fx, fy, jx, jy = lay.center
    cx = w * fx - 0.5 + rng.uniform(-jx, jx) * w
    cy = h * fy - 0.5 + rng.uniform(-jy, jy) * h
    g["center"] = tuple(float(v) for v in overrides.get("center", (cx, cy)))
    for key in ("tilt", "upper_opening", "lower_opening", "lid_skew", "eyeball_radius", "iris_radius",
                "pupil_ratio"):
        g[key] = float(overrides.get(key, rng.uniform(*r[key])))
    g["inner_corner"] = str(overrides.get("inner_corner", "left" if rng.uniform() < lay.inner_left else "right"))
    g["eyeball_drop"] = float(rng.uniform(*r["eyeball_drop"]))  # eyeball centre below the corner line
    g["closure"] = float(overrides.get("closure", _draw_closure(seed, lay)))
    for key, lo, hi in (("half_width", 4.0, 4096.0), ("upper_opening", 0.05, 2.0),
                        ("lower_opening", 0.05, 2.0), ("lid_skew", -0.5, 0.5),
                        ("eyeball_radius", 0.3, 1.5), ("iris_radius", 0.2, 0.8),
                        ("pupil_ratio", 0.1, 0.9), ("tilt", -45.0, 45.0), ("closure", 0.0, 1.0)):
        if not lo <= g[key] <= hi:
            raise EyeError(f"{key} must be in [{lo:g}, {hi:g}], got {g[key]:g}")
    if g["inner_corner"] not in ("left", "right"):
        raise EyeError(f"inner_corner must be 'left' or 'right', got {g['inner_corner']!r}")

    a = g["half_width"]
    phi = math.radians(g["tilt"])
    g["axis"] = (math.cos(phi), math.sin(phi))  # corner line direction (x, y)
    g["normal"] = (-math.sin(phi), math.cos(phi))  # pointing down the face
    cx, cy = g["center"]
    g["corners"] = {"left": (cx - a * g["axis"][0], cy - a * g["axis"][1]),
                    "right": (cx + a * g["axis"][0], cy + a * g["axis"][1])}
    # the upper lid follows the pitch: up when looking up, down when looking down
    sp = math.sin(math.radians(pitch))
    g["upper_opening"] = max(0.08, g["upper_opening"] + 0.45 * sp)
    g["lower_opening"] = max(0.08, g["lower_opening"] - 0.12 * sp)

    R = g["eyeball_radius"] * a
    drop = g["eyeball_drop"] * a
    ex, ey = cx + drop * g["normal"][0], cy + drop * g["normal"][1]
    r_iris = g["iris_radius"] * R
    depth = math.sqrt(max(R * R - r_iris * r_iris, 0.0))  # eyeball centre to iris plane
    v = [float(c) for c in gaze_to_vector(yaw, pitch)]  # python floats keep the grids float32
    px, py = ex + depth * v[0], ey + depth * v[1]
    proj = math.hypot(v[0], v[1])
    eg = (v[0] / proj, v[1] / proj) if proj > 1e-9 else (0.0, 1.0)  # foreshortened direction
    ep = (-eg[1], eg[0])  # major axis
    g.update(R=R, eyeball_center=(ex, ey), r_iris=r_iris, r_pupil=g["pupil_ratio"] * r_iris,
             pupil=(px, py), fore=abs(v[2]), eg=eg, ep=ep, yaw=yaw, pitch=pitch,
             vector=tuple(float(c) for c in v))
    if lay.whole_pupil and "closure" not in overrides:
        _open_for_pupil(g)
    else:
        _close_lids(g)
    return g


def _lid_profile(u: np.ndarray, skew: float) -> np.ndarray:
    """Lid shape along the corner line, ``u`` in half-widths: 0 at the corners, ~1 at the peak."""
    inside = np.clip(1.0 - u * u, 0.0, None)
    return (inside ** 0.85) * (1.0 + skew * u)


def _open_for_pupil(g: dict[str, Any], margin_px: float = 1.0) -> None:
    """Raise the lids until the whole pupil (plus ``margin_px``) is between them."""
    t = np.linspace(0.0, 2.0 * np.pi, 90, endpoint=False)
    rp = g["r_pupil"] + margin_px
    bx = g["pupil"][0] + rp * np.cos(t) * g["ep"][0] + rp * g["fore"] * np.sin(t) * g["eg"][0]
    by = g["pupil"][1] + rp * np.cos(t) * g["ep"][1] + rp * g["fore"] * np.sin(t) * g["eg"][1]
    u, wv = _frame(g, bx, by)
    a = g["half_width"]
    if np.any(np.abs(u) >= 0.95):
        raise EyeError("the pupil falls outside the eye opening; reduce the gaze angle or eyeball_radius")
    prof_u = _lid_profile(u, g["lid_skew"])
    prof_l = _lid_profile(u, -0.5 * g["lid_skew"])
    need_up = float(np.max(-wv / (a * prof_u)))
    need_low = float(np.max(wv / (a * prof_l)))
    g["upper_opening"] = max(g["upper_opening"], need_up)
    g["lower_opening"] = max(g["lower_opening"], need_low)


def _frame(g: dict[str, Any], x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """(u, w): position along the corner line in half-widths, and pixels below it."""
    dx, dy = x - g["center"][0], y - g["center"][1]
    u = (dx * g["axis"][0] + dy * g["axis"][1]) / g["half_width"]
    wv = dx * g["normal"][0] + dy * g["normal"][1]
    return u, wv


def _fields(g: dict[str, Any], h: int, w: int, s: int) -> dict[str, np.ndarray]:
    """Per-subpixel geometry on the supersampled grid."""
    ys = ((np.arange(h * s, dtype=np.float32) + 0.5) / s - 0.5)[:, None]
    xs = ((np.arange(w * s, dtype=np.float32) + 0.5) / s - 0.5)[None, :]
    a = g["half_width"]
    u, wv = _frame(g, xs, ys)
    upper = -a * g["upper_opening"] * _lid_profile(u, g["lid_skew"])  # lid edge (w), negative = up
    lower = a * g["lower_opening"] * _lid_profile(u, -0.5 * g["lid_skew"])
    open_ = (np.abs(u) < 1.0) & (wv > upper) & (wv < lower)
    if g.get("closure", 0.0) >= 1.0:  # shut: the lids meet along the whole line
        open_ = np.zeros_like(open_)
    dxp, dyp = xs - g["pupil"][0], ys - g["pupil"][1]
    along = dxp * g["eg"][0] + dyp * g["eg"][1]
    perp = dxp * g["ep"][0] + dyp * g["ep"][1]
    circ_along = along / max(g["fore"], 1e-6)
    rho = np.sqrt(perp * perp + circ_along * circ_along) / g["r_iris"]  # 1 at the limbus
    theta = np.arctan2(circ_along, perp)
    label = np.where(open_, 1, 0)
    label = np.where(open_ & (rho <= 1.0), 2, label)
    label = np.where(open_ & (rho <= g["pupil_ratio"]), 3, label)
    exd, eyd = xs - g["eyeball_center"][0], ys - g["eyeball_center"][1]
    return {"u": u, "w": wv, "upper": upper, "lower": lower, "open": open_, "rho": rho,
            "theta": theta, "label": label, "ball": np.sqrt(exd * exd + eyd * eyd) / g["R"],
            "xs": xs, "ys": ys}


def _draw_appearance(seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 1])
    t = rng.uniform(0.0, 1.0)
    skin = np.clip((1 - t) * _SKIN_LIGHT + t * _SKIN_DARK + rng.uniform(-0.03, 0.03, 3), 0, 1)
    look: dict[str, Any] = {
        "skin_color": _check_rgb("skin_color", overrides.get("skin_color", skin)),
        "iris_color": _check_rgb("iris_color", overrides.get("iris_color", _mix(rng, _IRIS_PALETTE, 0.12))),
        "sclera_color": np.clip(np.array([0.93, 0.90, 0.87]) + rng.uniform(-0.04, 0.03, 3), 0, 1),
        "pupil_level": float(rng.uniform(0.02, 0.05)),
        "lash_darkness": float(rng.uniform(0.35, 0.6)),
        "crease_gap": float(rng.uniform(0.22, 0.40)),
        "crease_depth": float(rng.uniform(0.08, 0.2)),
        "skin_texture": float(rng.uniform(0.04, 0.09)),
        "iris_contrast": float(rng.uniform(0.25, 0.45)),
        "iris_phases": rng.uniform(0, 2 * np.pi, 4).tolist(),
        "iris_freqs": rng.integers(9, 31, 4).tolist(),
        "noise_seed": int(rng.integers(2 ** 31)),
    }
    return look


def _layout_truth(g: dict[str, Any], lay: Layout, look: str, cover: np.ndarray,
                  labels: np.ndarray) -> dict[str, Any]:
    """Truth of the layouts beyond the original: layout, look, channels, closure, and how
    much of the iris and the pupil the lids leave visible; closed: no pixel labelled iris or pupil."""
    iris_area = math.pi * g["r_iris"] ** 2 * g["fore"]
    pupil_area = math.pi * g["r_pupil"] ** 2 * g["fore"]
    iris_seen = float(cover[2].sum() + cover[3].sum())
    pupil_seen = float(cover[3].sum())
    return {
        "layout": lay.name,
        "look": look,
        "channels": lay.channels,
        "closure": round(g["closure"], 4),
        "visible": {"iris": round(min(1.0, iris_seen / max(iris_area, 1e-9)), 4),
                    "pupil": round(min(1.0, pupil_seen / max(pupil_area, 1e-9)), 4)},
        "closed": not bool((labels >= 2).any()),
    }


def style_eye(layout: str | Layout = "unity", *, size: tuple[int, int] | None = None, seed: int = 0,
              yaw: float = 0.0, pitch: float = 0.0) -> EyeRender:
    """A clean (synthetic-domain) open eye in ``layout``: the style eye for inputs of that layout.

    For ``unity`` it is exactly the style eye the toolkit has always rendered
    (``render_eye(yaw=0, pitch=0, domain="synthetic", size=size, seed=seed)``).

    >>> e = style_eye("mpiigaze")
    >>> tuple(e.image.shape), e.truth["closed"], bool((e.image[0, 0] == e.image[0, 2]).all())
    ((1, 3, 36, 60), False, True)
    """
    lay = get_layout(layout)
    extra: dict[str, Any] = {} if lay.name == "unity" else {"closure": 0.0}
    return render_eye(yaw=yaw, pitch=pitch, domain="synthetic", size=size, seed=seed, layout=lay, **extra)


def _check_rgb(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or np.any(arr < 0) or np.any(arr > 1):
        raise EyeError(f"{name} must be three numbers in [0, 1], got {value!r}")
    return arr


def _truth(g: dict[str, Any], look: dict[str, Any], domain: str, domain_params: dict[str, Any],
           seed: int, h: int, w: int, s: int) -> dict[str, Any]:
    def pt(p: Sequence[float]) -> list[float]:
        return [round(float(p[0]), 4), round(float(p[1]), 4)]

    angle = math.degrees(math.atan2(g["ep"][1], g["ep"][0]))
    return {
        "seed": seed,
        "domain": domain,
        "size": [h, w],
        "supersample": s,
        "gaze": {"yaw": g["yaw"], "pitch": g["pitch"], "order": "yaw,pitch", "unit": "degrees"},
        "gaze_vector": [round(c, 6) for c in g["vector"]],
        "pupil_center": pt(g["pupil"]),
        "pupil_ellipse": {"center": pt(g["pupil"]), "angle": round(angle, 3),
                          "axes": [round(g["r_pupil"], 4), round(g["r_pupil"] * g["fore"], 4)]},
        "iris_ellipse": {"center": pt(g["pupil"]), "angle": round(angle, 3),
                         "axes": [round(g["r_iris"], 4), round(g["r_iris"] * g["fore"], 4)]},
        "eyeball": {"center": pt(g["eyeball_center"]), "radius": round(g["R"], 4)},
        "corners": {"left": pt(g["corners"]["left"]), "right": pt(g["corners"]["right"]),
                    "inner": g["inner_corner"]},
        "geometry": {k: (pt(g[k]) if k == "center" else (g[k] if isinstance(g[k], str) else round(g[k], 5)))
                     for k in ("center", "half_width", "tilt", "upper_opening", "lower_opening", "lid_skew",
                               "eyeball_radius", "iris_radius", "pupil_ratio", "eyeball_drop")},
        "appearance": {"skin_color": [round(float(c), 4) for c in look["skin_color"]],
                       "iris_color": [round(float(c), 4) for c in look["iris_color"]],
                       "sclera_color": [round(float(c), 4) for c in look["sclera_color"]],
                       "pupil_level": round(look["pupil_level"], 4)},
        "domain_params": domain_params,
        "conventions": "pixel (row i, col j) centre at (x=j, y=i); axes are semi-axes in pixels, "
                       "angle of the first axis in degrees from +x towards +y",
    }


def labels_to_rgb(labels: Tensor) -> Tensor:
    """Colour-code ``(H, W)`` labels as a ``(3, H, W)`` float image using :data:`LABEL_COLORS`.

    >>> labels_to_rgb(torch.tensor([[0, 3]]))[:, 0, 1].tolist()
    [1.0, 0.0, 0.0]
    """
    palette = torch.tensor([LABEL_COLORS[k] for k in sorted(LABEL_COLORS)], dtype=torch.float32) / 255.0
    return palette[labels.long()].permute(2, 0, 1).contiguous()
