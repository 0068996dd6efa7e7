"""The looks of the eye renderer: how one capture of a rendered scene comes out.

Each capture takes the scene's radiance on the supersampled grid and returns the ``(3, H, W)``
image in [0, 1] with the parameters it drew (kept in the truth). Every step is photometric or
a resampling on the same pixel grid, so the labels the renderer computed from the geometry
stay exact under every look. The layouts' grey and equalising steps run after the capture
(:func:`masked_gatys.eyes.render.render_eye`).

- :func:`outdoor`: the renderer's original real domain (daylight).
- :func:`webcam`: a laptop webcam indoors (MPIIGaze's capture).
- :func:`photo`: an RGB photo crop, with strong casts and glasses' reflections.
- :func:`nir`: a near-infrared eye camera (LEDs, glints, grey).

>>> import numpy as np
>>> sorted(CAPTURES)
['nir', 'outdoor', 'photo', 'webcam']
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from masked_gatys.eyes.drawing import downsample as _downsample
from masked_gatys.eyes.drawing import gaussian_blur as _gaussian_blur
from masked_gatys.eyes.drawing import jpeg, low_resolution, to_grey
from masked_gatys.eyes.drawing import sigmoid as _sigmoid
from masked_gatys.eyes.drawing import smooth_noise as _smooth_noise
from masked_gatys.eyes.drawing import upsample as _upsample

__all__ = ["CAPTURES", "outdoor", "webcam", "photo", "nir"]

Capture = Callable[..., "tuple[np.ndarray, dict[str, Any]]"]


def outdoor(radiance: np.ndarray, g: dict[str, Any], f: dict[str, np.ndarray],
             seed: int, h: int, w: int, s: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Outdoor capture of ``radiance``: returns the ``(3, H, W)`` image and the drawn parameters."""
    rng = np.random.default_rng([seed, 2])
    p: dict[str, Any] = {}
    xs, ys = f["xs"], f["ys"]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0

    p["light_angle"] = float(rng.uniform(0, 360))
    p["light_strength"] = float(rng.uniform(0.3, 0.7))
    la = math.radians(p["light_angle"])
    ramp = ((xs - cx) * math.cos(la) + (ys - cy) * math.sin(la)) / (0.5 * math.hypot(w, h))
    light = np.clip(1.0 + p["light_strength"] * ramp, 0.25, None)

    p["shadow"] = bool(rng.uniform() < 0.7)
    p["shadow_angle"] = float(rng.uniform(0, 360))
    p["shadow_point"] = [float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(0.1, 0.9) * h)]
    p["shadow_factor"] = float(rng.uniform(0.45, 0.75))
    p["shadow_softness"] = float(rng.uniform(0.5, 3.0))
    if p["shadow"]:
        sa = math.radians(p["shadow_angle"])
        dist = (xs - p["shadow_point"][0]) * math.cos(sa) + (ys - p["shadow_point"][1]) * math.sin(sa)
        light = light * (1.0 - (1.0 - p["shadow_factor"]) * _sigmoid(dist / p["shadow_softness"]))

    p["color_temperature"] = float(rng.uniform(-1, 1))  # > 0 warm, < 0 cool
    p["tint"] = float(rng.uniform(-0.3, 0.3))
    t = p["color_temperature"]
    gains = np.array([1 + 0.2 * t, 1 + 0.04 * p["tint"], 1 - 0.2 * t], dtype=np.float32)
    img = radiance * light[None] * gains[:, None, None]

    # sky reflected by the cornea: a faint veil over the iris disc
    p["cornea_reflection"] = float(rng.uniform(0.0, 0.04))
    rng_tex = np.random.default_rng([seed, 3])
    veil = p["cornea_reflection"] * (1 + 0.5 * _upsample(_smooth_noise(rng_tex, (h, w), (4, 6)), s))
    img = img + (veil * (f["rho"] <= 1.0) * f["open"] * light)[None]

    # glints: small bright spots on the cornea, offset towards the light
    n = int(rng.integers(1, 4))
    glints = []
    for _ in range(n):
        ang = la + math.pi + rng.uniform(-1.0, 1.0)
        dist_r = rng.uniform(0.1, 0.75) * g["r_iris"]
        gx = g["pupil"][0] + dist_r * math.cos(ang)
        gy = g["pupil"][1] + dist_r * math.sin(ang)
        sigma = float(rng.uniform(0.25, 0.45) * max(1.0, g["r_iris"] / 8.0))
        amp = float(rng.uniform(0.6, 1.0))
        glints.append({"center": [float(gx), float(gy)], "sigma": sigma, "amplitude": amp})
        spot = amp * np.exp(-0.5 * ((xs - gx) ** 2 + (ys - gy) ** 2) / sigma ** 2) * f["open"]
        img = img + spot[None]
    p["glints"] = glints

    img = _downsample(img, s)
    p["blur_sigma"] = float(rng.uniform(0.3, 0.8))
    img = _gaussian_blur(img, p["blur_sigma"])
    p["exposure"] = float(rng.uniform(0.65, 1.35))
    p["gamma"] = float(rng.uniform(0.85, 1.2))
    p["contrast"] = float(rng.uniform(0.75, 1.15))
    p["saturation"] = float(rng.uniform(0.7, 1.0))
    img = np.clip(img * p["exposure"], 0.0, 1.0) ** (1.0 / p["gamma"])
    img = (img - 0.5) * p["contrast"] + 0.5
    grey = img.mean(axis=0, keepdims=True)
    img = grey + p["saturation"] * (img - grey)
    p["read_noise"] = float(rng.uniform(0.01, 0.03))
    p["shot_noise"] = float(rng.uniform(0.015, 0.04))
    p["chroma_noise"] = float(rng.uniform(0.3, 0.7))  # share of the noise that differs per channel
    sd = np.sqrt(p["read_noise"] ** 2 + p["shot_noise"] ** 2 * np.clip(img, 0, 1))
    c = p["chroma_noise"]
    noise = (math.sqrt(1 - c * c) * rng.standard_normal((1, h, w)) + c * rng.standard_normal(img.shape))
    img = img + sd * noise.astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32), p


def _ramp_light(rng: np.random.Generator, f: dict[str, np.ndarray], h: int, w: int, p: dict[str, Any],
                strength: tuple[float, float], side: bool) -> np.ndarray:
    """A linear light ramp (from the side when ``side``) and maybe a soft cast shadow."""
    xs, ys = f["xs"], f["ys"]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    base = 0.0 if rng.uniform() < 0.5 else 180.0
    p["light_angle"] = float(base + rng.uniform(-40, 40) if side else rng.uniform(0, 360))
    p["light_strength"] = float(rng.uniform(*strength))
    la = math.radians(p["light_angle"])
    ramp = ((xs - cx) * math.cos(la) + (ys - cy) * math.sin(la)) / (0.5 * math.hypot(w, h))
    light = np.clip(1.0 + p["light_strength"] * ramp, 0.2, None)
    p["shadow"] = bool(rng.uniform() < 0.3)
    if p["shadow"]:
        sa = rng.uniform(0, 2 * math.pi)
        px, py = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        soft = rng.uniform(0.03, 0.15) * w
        factor = rng.uniform(0.5, 0.8)
        dist = (xs - px) * math.cos(sa) + (ys - py) * math.sin(sa)
        light = light * (1.0 - (1.0 - factor) * _sigmoid(dist / soft))
        p.update(shadow_angle=float(math.degrees(sa)), shadow_factor=float(factor))
    return light.astype(np.float32)


def _glints(rng: np.random.Generator, g: dict[str, Any], f: dict[str, np.ndarray], n: int,
            spread: float, sigma_px: tuple[float, float], amp: tuple[float, float],
            anchor: tuple[float, float] | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``n`` Gaussian corneal reflections near the pupil, only where the eye is open."""
    xs, ys = f["xs"], f["ys"]
    out = np.zeros(np.broadcast_shapes(xs.shape, ys.shape), dtype=np.float32)
    r = g["r_iris"]
    ox = anchor[0] if anchor else rng.uniform(-0.5, 0.5) * r
    oy = anchor[1] if anchor else rng.uniform(-0.5, 0.5) * r
    gl = []
    for _ in range(n):
        gx = g["pupil"][0] + ox + rng.uniform(-spread, spread) * r
        gy = g["pupil"][1] + oy + rng.uniform(-0.4 * spread, 0.4 * spread) * r
        sigma = float(rng.uniform(*sigma_px))
        a = float(rng.uniform(*amp))
        d2 = (xs - gx) ** 2 + (ys - gy) ** 2
        out = out + a * np.exp(-0.5 * d2 / sigma ** 2).astype(np.float32)
        gl.append({"center": [round(float(gx), 3), round(float(gy), 3)], "sigma": round(sigma, 3),
                   "amplitude": round(a, 3)})
    return out * f["open"], gl


def _glasses(rng: np.random.Generator, f: dict[str, np.ndarray], h: int, w: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A reflection on glasses: a soft tinted band of light across the image, ``(3, Hs, Ws)``."""
    xs, ys = f["xs"], f["ys"]
    ang = rng.uniform(0, math.pi)
    off = rng.uniform(-0.4, 0.4) * math.hypot(w, h)
    width = rng.uniform(0.08, 0.35) * math.hypot(w, h)
    d = (xs - (w - 1) / 2.0) * math.cos(ang) + (ys - (h - 1) / 2.0) * math.sin(ang) - off
    band = np.exp(-0.5 * (d / (0.5 * width)) ** 2)
    streak = 1.0 + 0.3 * np.sin(d / (0.05 * width + 1e-3))
    strength = rng.uniform(0.08, 0.4)
    tint = np.array([rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0)], dtype=np.float32)
    refl = (strength * band * streak).astype(np.float32)[None] * tint[:, None, None]
    return refl, {"angle": round(math.degrees(ang), 2), "strength": round(float(strength), 3),
                  "tint": tint.round(3).tolist()}


def _finish(img: np.ndarray, rng: np.random.Generator, p: dict[str, Any], *, lowres: tuple[float, float],
            blur: tuple[float, float], exposure: tuple[float, float], gamma: tuple[float, float],
            contrast: tuple[float, float], read: tuple[float, float], shot: tuple[float, float],
            jpeg_share: float, quality: tuple[int, int], grey: bool) -> np.ndarray:
    """Camera steps on the ``(3, H, W)`` image: low resolution, blur, exposure, gamma,
    contrast, signal-dependent noise and JPEG; grey when ``grey``."""
    if grey:
        img = np.repeat(to_grey(img), 3, axis=0)
    p["low_resolution"] = float(rng.uniform(*lowres))
    img = low_resolution(img, p["low_resolution"])
    p["blur_sigma"] = float(rng.uniform(*blur))
    img = _gaussian_blur(img, p["blur_sigma"])
    p["exposure"] = float(rng.uniform(*exposure))
    p["gamma"] = float(rng.uniform(*gamma))
    p["contrast"] = float(rng.uniform(*contrast))
    img = np.clip(img * p["exposure"], 0.0, 1.0) ** (1.0 / p["gamma"])
    img = (img - 0.5) * p["contrast"] + 0.5
    p["read_noise"] = float(rng.uniform(*read))
    p["shot_noise"] = float(rng.uniform(*shot))
    sd = np.sqrt(p["read_noise"] ** 2 + p["shot_noise"] ** 2 * np.clip(img, 0, 1))
    c = 0.0 if grey else float(rng.uniform(0.2, 0.6))
    h, w = img.shape[1:]
    noise = math.sqrt(1 - c * c) * rng.standard_normal((1, h, w)) + c * rng.standard_normal(img.shape)
    img = np.clip(img + sd * noise.astype(np.float32), 0.0, 1.0)
    p["jpeg_quality"] = int(rng.integers(quality[0], quality[1] + 1)) if rng.uniform() < jpeg_share else None
    if p["jpeg_quality"] is not None:
        img = jpeg(img[:1] if grey else img, p["jpeg_quality"])
        img = np.repeat(img, 3, axis=0) if grey else img
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def webcam(radiance: np.ndarray, g: dict[str, Any], f: dict[str, np.ndarray],
           seed: int, h: int, w: int, s: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A laptop webcam indoors: side light, white balance off, the screen's reflection on the
    cornea, sometimes glasses, low resolution, blur, noise, JPEG."""
    rng = np.random.default_rng([seed, 6])
    p: dict[str, Any] = {"look": "webcam"}
    light = _ramp_light(rng, f, h, w, p, (0.1, 0.9), side=True)
    gains = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    p["gains"] = gains.round(3).tolist()
    img = radiance * light[None] * gains[:, None, None]
    n = int(rng.choice([0, 1, 1, 2]))
    spots, p["glints"] = _glints(rng, g, f, n, 0.3, (0.4 * max(1.0, g["r_iris"] / 8), 0.9 * max(1.0, g["r_iris"] / 8)),
                                 (0.3, 0.9))
    img = img + spots[None]
    p["glasses"] = None
    if rng.uniform() < 0.2:
        refl, p["glasses"] = _glasses(rng, f, h, w)
        img = img + refl
    img = _downsample(img, s)
    return _finish(img, rng, p, lowres=(1.0, 1.8), blur=(0.2, 0.7), exposure=(0.6, 1.3), gamma=(0.8, 1.25),
                   contrast=(0.7, 1.2), read=(0.001, 0.008), shot=(0.001, 0.01), jpeg_share=0.8,
                   quality=(70, 95), grey=False), p


def photo(radiance: np.ndarray, g: dict[str, Any], f: dict[str, np.ndarray],
          seed: int, h: int, w: int, s: int) -> tuple[np.ndarray, dict[str, Any]]:
    """An RGB photo crop: strong colour casts and saturation changes, side light, glasses'
    reflections, low resolution, blur, noise, JPEG; sometimes grey."""
    rng = np.random.default_rng([seed, 7])
    p: dict[str, Any] = {"look": "photo"}
    light = _ramp_light(rng, f, h, w, p, (0.2, 1.1), side=bool(rng.uniform() < 0.7))
    gains = np.exp(rng.normal(0.0, 0.18, 3)).astype(np.float32)
    p["gains"] = gains.round(3).tolist()
    img = radiance * light[None] * gains[:, None, None]
    n = int(rng.integers(0, 4))
    spots, p["glints"] = _glints(rng, g, f, n, 0.6, (0.3 * max(1.0, g["r_iris"] / 8), 0.8 * max(1.0, g["r_iris"] / 8)),
                                 (0.4, 1.0))
    img = img + spots[None]
    p["glasses"] = None
    if rng.uniform() < 0.35:
        refl, p["glasses"] = _glasses(rng, f, h, w)
        img = img + refl
    img = _downsample(img, s)
    p["saturation"] = float(rng.uniform(0.5, 1.4))
    grey = img.mean(axis=0, keepdims=True)
    img = grey + p["saturation"] * (img - grey)
    p["grey"] = bool(rng.uniform() < 0.15)
    return _finish(img, rng, p, lowres=(1.0, 3.0), blur=(0.0, 1.2), exposure=(0.5, 1.4), gamma=(0.75, 1.3),
                   contrast=(0.6, 1.3), read=(0.003, 0.03), shot=(0.005, 0.04), jpeg_share=0.85,
                   quality=(20, 95), grey=p["grey"]), p


def nir(radiance: np.ndarray, g: dict[str, Any], f: dict[str, np.ndarray],
        seed: int, h: int, w: int, s: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A near-infrared eye camera: LED fall-off, a row of LED glints near the pupil, slight
    blur, sensor noise, sometimes JPEG; grey."""
    rng = np.random.default_rng([seed, 8])
    p: dict[str, Any] = {"look": "nir"}
    xs, ys = f["xs"], f["ys"]
    scale = w / 320.0
    fx, fy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.8) * h
    p["falloff"] = float(rng.uniform(0.1, 0.5))
    r2 = ((xs - fx) ** 2 + (ys - fy) ** 2) / (0.25 * (w * w + h * h))
    light = np.clip(1.0 - p["falloff"] * r2, 0.3, None).astype(np.float32)
    img = np.repeat(to_grey(radiance), 3, axis=0) * light[None]
    n = int(rng.integers(1, 5))
    anchor = (rng.uniform(-0.6, 0.6) * g["r_iris"], rng.uniform(-0.1, 0.7) * g["r_iris"])
    spots, p["glints"] = _glints(rng, g, f, n, 0.35, (1.0 * scale, 2.6 * scale), (1.2, 2.5), anchor=anchor)
    img = img + spots[None]
    img = _downsample(img, s)
    return _finish(img, rng, p, lowres=(1.0, 1.5), blur=(0.5, 1.5), exposure=(0.85, 1.25), gamma=(0.8, 1.2),
                   contrast=(0.9, 1.3), read=(0.002, 0.012), shot=(0.002, 0.012), jpeg_share=0.5,
                   quality=(50, 95), grey=True), p


CAPTURES: dict[str, Capture] = {"outdoor": outdoor, "webcam": webcam, "photo": photo, "nir": nir}
