"""The renderer's scene: the evenly lit colours of skin, eyeball, iris and pupil (:func:`shade`,
the original renderer's), and what the layouts add: closed and half-closed lids, near-infrared
materials, lashes drawn as strands, and the shading of a webcam eye (the socket, a thick lash
line, the lower lid).

Apart from the lids (geometry, so the labels follow them), everything here changes the
radiance only: the labels stay exact. The ``unity`` layout uses none of the additions, so its
renders are unchanged.

>>> sorted(nir_appearance(0))[:3]
['crease_depth', 'crease_gap', 'iris_color']
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from masked_gatys.eyes.drawing import sigmoid, smooth_noise, upsample
from masked_gatys.eyes.layouts import Layout

__all__ = ["shade", "draw_closure", "close_lids", "nir_appearance", "lashes", "layout_shading"]


def nir_appearance(seed: int) -> dict[str, Any]:
    """Materials under near-infrared light: bright skin and sclera, a mid-grey iris whatever
    its colour, a very dark pupil, dark lashes (own stream ``[seed, 9]``)."""
    rng = np.random.default_rng([seed, 9])
    skin = float(rng.uniform(0.70, 0.95))
    iris = float(rng.uniform(0.40, 0.65))
    look: dict[str, Any] = {
        "skin_color": np.full(3, skin),
        "iris_color": np.full(3, iris),
        "sclera_color": np.full(3, float(rng.uniform(0.90, 1.0))),
        "pupil_level": float(rng.uniform(0.01, 0.04)),
        "lash_darkness": float(rng.uniform(0.3, 0.55)),
        "crease_gap": float(rng.uniform(0.25, 0.45)),
        "crease_depth": float(rng.uniform(0.05, 0.15)),
        "skin_texture": float(rng.uniform(0.02, 0.05)),
        "iris_contrast": float(rng.uniform(0.15, 0.35)),
        "iris_phases": rng.uniform(0, 2 * np.pi, 4).tolist(),
        "iris_freqs": rng.integers(20, 61, 4).tolist(),
        "noise_seed": int(rng.integers(2 ** 31)),
        "lashes": int(rng.integers(100, 180)),
        "lash_strand": float(rng.uniform(0.85, 1.0)),
    }
    return look


def lashes(g: dict[str, Any], look: dict[str, Any], f: dict[str, np.ndarray],
            seed: int, h: int, w: int, s: int) -> np.ndarray:
    """Darkening ``(H*s, W*s)`` in [0, 1) by lashes drawn as curved strands from both lid
    margins (photometric only: a lash over the iris leaves the iris label)."""
    rng = np.random.default_rng([seed, 10])
    a = g["half_width"]
    dark = np.zeros((h * s, w * s), dtype=np.float32)
    n_up = look["lashes"]
    for side, n, length, sign in (("upper", n_up, (0.12, 0.32), -1.0), ("lower", n_up // 2, (0.04, 0.12), 1.0)):
        for _ in range(n):
            u = rng.uniform(-0.95, 0.95)
            prof = (1.0 - u * u) ** 0.85
            if side == "upper":
                wv = -a * g["upper_opening"] * prof * (1.0 + g["lid_skew"] * u)
            else:
                wv = a * g["lower_opening"] * prof * (1.0 - 0.5 * g["lid_skew"] * u)
            x0 = g["center"][0] + a * u * g["axis"][0] + wv * g["normal"][0]
            y0 = g["center"][1] + a * u * g["axis"][1] + wv * g["normal"][1]
            # outwards from the lid, fanned towards the corners, curling away from the eye
            ang = sign * (0.5 * math.pi) + sign * u * rng.uniform(0.4, 0.9) + rng.normal(0.0, 0.15)
            base = math.atan2(g["normal"][1], g["normal"][0]) - 0.5 * math.pi
            d0 = (math.cos(base + ang), math.sin(base + ang))
            ln = rng.uniform(*length) * a
            curl = rng.uniform(0.1, 0.5) * ln * (1 if u > 0 else -1)
            pts = [(x0 + t * ln * d0[0] + curl * t * t * -d0[1] * sign,
                    y0 + t * ln * d0[1] + curl * t * t * d0[0] * sign) for t in np.linspace(0, 1, 7)]
            width = rng.uniform(0.6, 1.5) * max(1.0, a / 150.0)
            strength = look["lash_strand"] * rng.uniform(0.7, 1.0)
            _stroke(dark, pts, width, strength, s)
    return dark


def _stroke(dark: np.ndarray, pts: Sequence[tuple[float, float]], width: float, strength: float, s: int) -> None:
    """Draw a polyline of ``width`` pixels into ``dark`` (supersampled by ``s``) in place,
    tapering to the tip; the darkest stroke wins where strokes cross."""
    hs, ws = dark.shape
    n = len(pts) - 1
    for k in range(n):
        (xa, ya), (xb, yb) = pts[k], pts[k + 1]
        half = 0.5 * width * (1.0 - 0.7 * k / n)
        pad = half + 1.0
        j0 = max(0, int(math.floor((min(xa, xb) - pad + 0.5) * s)))
        j1 = min(ws, int(math.ceil((max(xa, xb) + pad + 0.5) * s)))
        i0 = max(0, int(math.floor((min(ya, yb) - pad + 0.5) * s)))
        i1 = min(hs, int(math.ceil((max(ya, yb) + pad + 0.5) * s)))
        if j0 >= j1 or i0 >= i1:
            continue
        xs = ((np.arange(j0, j1, dtype=np.float32) + 0.5) / s - 0.5)[None, :]
        ys = ((np.arange(i0, i1, dtype=np.float32) + 0.5) / s - 0.5)[:, None]
        dx, dy = xb - xa, yb - ya
        L2 = dx * dx + dy * dy + 1e-9
        t = np.clip(((xs - xa) * dx + (ys - ya) * dy) / L2, 0.0, 1.0)
        dist = np.hypot(xs - (xa + t * dx), ys - (ya + t * dy))
        cov = np.clip(half + 0.5 / s - dist, 0.0, 1.0 / s) * s * strength
        np.maximum(dark[i0:i1, j0:j1], cov, out=dark[i0:i1, j0:j1])



def webcam_shading(g: dict[str, Any], f: dict[str, np.ndarray], seed: int, s: int) -> np.ndarray:
    """Gain ``(H*s, W*s)`` of an eye seen by a webcam in room light (own stream ``[seed, 11]``):
    the socket darker than the brow bone and the cheek, a thick dark lash line along the upper
    lid (thickest towards the outer corner), a darker lower lid margin and under-eye shadow, a
    dimmer sclera and iris."""
    rng = np.random.default_rng([seed, 11])
    a = g["half_width"]
    u, wv, upper, lower, label = f["u"], f["w"], f["upper"], f["lower"], f["label"]
    out_u = u if g["inner_corner"] == "left" else -u  # +1 at the outer corner
    # the socket: darkest a little below the corner line and towards the outer corner
    d2 = ((out_u - rng.uniform(0.0, 0.3)) / rng.uniform(1.0, 1.3)) ** 2 \
        + ((wv / a - rng.uniform(0.05, 0.2)) / rng.uniform(0.3, 0.45)) ** 2
    gain = 1.0 - rng.uniform(0.3, 0.55) * np.exp(-0.5 * d2)
    above = upper - wv
    thick = rng.uniform(0.05, 0.09) * a * (1.0 + 1.2 * np.clip(out_u, 0, None))
    band = np.exp(-np.clip(above, 0, None) / thick) * (above > -0.5 / s)
    fade = np.clip(1.0 - 0.7 * np.clip(-out_u, 0, None) ** 2, 0, 1)
    gain = gain * (1.0 - rng.uniform(0.55, 0.85) * band * fade)
    below = wv - lower
    margin = np.exp(-np.clip(below, 0, None) / (0.05 * a)) * (below > -0.5 / s)
    gain = gain * (1.0 - rng.uniform(0.3, 0.6) * margin * fade)
    bag = np.exp(-0.5 * ((below - rng.uniform(0.15, 0.3) * a) / (0.1 * a)) ** 2) * (below > 0)
    gain = gain * (1.0 - rng.uniform(0.1, 0.35) * bag)
    # the eyeball: dim, and shadowed by the lower lid too
    low_ao = 1.0 - rng.uniform(0.2, 0.45) * np.exp(-np.clip(lower - wv, 0, None) / (0.12 * a))
    gain = gain * np.where(label == 1, rng.uniform(0.6, 0.9) * low_ao, 1.0)
    gain = gain * np.where(label == 2, rng.uniform(0.35, 0.7) * low_ao, 1.0)
    return gain.astype(np.float32)


def iris_speckle(f: dict[str, np.ndarray], seed: int, h: int, w: int, s: int) -> np.ndarray:
    """Gain ``(H*s, W*s)``: the fine light flecks and crypts a near-infrared camera sees in the
    iris (own stream ``[seed, 12]``); 1 outside the iris."""
    rng = np.random.default_rng([seed, 12])
    fine = smooth_noise(rng, (h, w), (max(2, h // 3), max(2, w // 3)))
    finer = smooth_noise(rng, (h, w), (max(2, h // 2), max(2, w // 2)))
    tex = upsample(np.clip(0.6 * fine + 0.6 * finer, -2.5, 2.5), s)
    gain = 1.0 + rng.uniform(0.06, 0.16) * tex
    return np.where(f["label"] == 2, gain, 1.0).astype(np.float32)


def layout_shading(radiance: np.ndarray, g: dict[str, Any], look: dict[str, Any], f: dict[str, np.ndarray],
                   layout: str, seed: int, h: int, w: int, s: int) -> np.ndarray:
    """The radiance of ``layout``'s scene: near-infrared eyes get their lashes, visible-light
    layouts other than ``unity`` the webcam shading."""
    if "lashes" in look:
        return radiance * ((1.0 - lashes(g, look, f, seed, h, w, s)) * iris_speckle(f, seed, h, w, s))[None]
    return radiance * webcam_shading(g, f, seed, s)[None]


def draw_closure(seed: int, lay: Layout) -> float:
    """How far the lids are closed: 0 for most eyes, (0.35, 0.8) for the layout's share of
    half-closed eyes, (0.9, 1) for its share of closed ones (own stream: the rest unchanged)."""
    closed, half = lay.closure
    if closed <= 0 and half <= 0:
        return 0.0
    rng = np.random.default_rng([seed, 4])
    t = rng.uniform()
    if t < closed:
        return float(min(1.0, rng.uniform(0.9, 1.1)))
    if t < closed + half:
        return float(rng.uniform(0.35, 0.8))
    return float(rng.uniform(0.0, 0.08))


def close_lids(g: dict[str, Any]) -> None:
    """Bring the upper lid down over the eye by ``closure``; at 1 it meets the lower lid."""
    c = g["closure"]
    up, low = g["upper_opening"], g["lower_opening"]
    g["upper_opening"] = up - c * (up + 0.7 * low)
    g["lower_opening"] = low * (1.0 - 0.3 * c)


def shade(g: dict[str, Any], look: dict[str, Any], f: dict[str, np.ndarray],
           seed: int, h: int, w: int, s: int) -> np.ndarray:
    """Evenly lit colours on the supersampled grid, ``(3, H*s, W*s)`` float32."""
    a = g["half_width"]
    rng = np.random.default_rng(look["noise_seed"])
    u, wv, upper, lower = f["u"], f["w"], f["upper"], f["lower"]

    # skin: two scales of texture, crease, lash line, darker lid margins
    # smooth textures are drawn at the output resolution and repeated per subpixel
    tex = upsample(smooth_noise(rng, (h, w), (max(2, h // 12), max(2, w // 12)))
                    + 0.5 * smooth_noise(rng, (h, w), (max(2, h // 3), max(2, w // 3))), s)
    skin_gain = 1.0 + look["skin_texture"] * tex
    above = upper - wv  # pixels above the upper lid edge (>0 above)
    crease_at = a * look["crease_gap"]
    skin_gain = skin_gain * (1.0 - look["crease_depth"] * np.exp(-0.5 * ((above - crease_at) / (0.06 * a)) ** 2))
    lash = np.exp(-np.clip(above, 0, None) / (0.035 * a)) * (above > -0.5 / s)
    lash_w = np.clip(1.0 - 0.6 * np.abs(u) ** 3, 0, 1)
    skin_gain = skin_gain * (1.0 - look["lash_darkness"] * lash * lash_w)
    below = wv - lower
    skin_gain = skin_gain * (1.0 - 0.12 * np.exp(-np.clip(below, 0, None) / (0.05 * a)))
    skin = look["skin_color"][:, None, None] * skin_gain[None]

    # eyeball: sphere shading, lid shadows (ambient occlusion)
    ball = np.clip(f["ball"], 0, 1.6)
    sphere = 0.72 + 0.28 * np.sqrt(np.clip(1.0 - np.minimum(ball, 1.0) ** 2, 0, None))
    lid_ao = (1.0 - 0.38 * np.exp(-np.clip(wv - upper, 0, None) / (0.13 * a))) \
        * (1.0 - 0.15 * np.exp(-np.clip(lower - wv, 0, None) / (0.07 * a)))
    vein = 1.0 + 0.03 * upsample(smooth_noise(rng, (h, w), (max(2, h // 4), max(2, w // 4))), s)
    sclera = look["sclera_color"][:, None, None] * (sphere * lid_ao * vein)[None]
    corner = g["corners"][g["inner_corner"]]
    dc = np.sqrt((f["xs"] - corner[0]) ** 2 + (f["ys"] - corner[1]) ** 2) / (0.22 * a)
    pink = np.exp(-dc * dc)[None]
    sclera = sclera * (1 - 0.6 * pink) + 0.6 * pink * np.array([0.82, 0.50, 0.50])[:, None, None] * lid_ao[None]

    # iris: radial striations, limbal ring, collarette; pupil
    rho, theta = f["rho"], f["theta"]
    stri = sum(np.sin(k * theta + ph + 3.0 * rho) for k, ph in zip(look["iris_freqs"], look["iris_phases"])) / 4.0
    iris_gain = 1.0 + look["iris_contrast"] * stri * np.clip(rho - g["pupil_ratio"], 0, 1)
    iris_gain = iris_gain * (1.0 - 0.55 * sigmoid((rho - 0.86) / 0.04))  # limbal ring
    coll = 1.45 * g["pupil_ratio"] + 0.1
    iris_gain = iris_gain * (1.0 + 0.35 * np.exp(-0.5 * ((rho - coll) / 0.06) ** 2))
    iris = look["iris_color"][:, None, None] * (iris_gain * lid_ao)[None]
    pupil = np.full((3, 1, 1), look["pupil_level"], dtype=np.float32) * lid_ao[None]

    label = f["label"][None]
    out = np.where(label == 0, skin, np.where(label == 1, sclera, np.where(label == 2, iris, pupil)))
    return out.astype(np.float32)
