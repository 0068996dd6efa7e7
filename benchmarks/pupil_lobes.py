"""Four-lobed pupils from the ``masked`` optimizer (issue 22, item 4): reproduce and measure.

A real-look render, a disc mask of radius 11 px (at 36x60) around its detected pupil,
a synthetic render (with its own mask) as the style; ``stylize`` with the masked preset
(masked-eye on eyes). Lobedness of the output's pupil: the dark blob (inside the mask,
below the midpoint between the pupil's and the iris's grey levels of the content) --
its solidity (area / convex hull area), the share of its boundary radius's angular
spectrum at frequency 4 (a disc: ~0) and its number of dark components.

    MASKED_GATYS_WEIGHTS=vgg19_caffe_bgr255_conv1_1-conv3_4.pth \\
        python benchmarks/pupil_lobes.py --seeds 0 1 2 --iterations 150 --variant auto

``--layout mpiigaze`` (the renders ``render_eye(layout="mpiigaze", look="webcam")``) and
``--real FOLDER`` (MPIIGaze patches ``FOLDER/mpiigaze/mpii_NNNN.jpg``, ``--seeds`` their
numbers) run the user's case instead: the disc around the detected pupil centre
(``--variant disc``), the renderer's own mask (``exact``) or the segmenter's (``auto``), the
style the clean ``mpiigaze`` eye (``eyes.render.style_eye``), and measure the output's pupil
blob (:func:`pupil_blob`: the near-black blob inside the image's iris, in units of the image's
pupil -- the renderer's labels, or the segmenter's on a real eye; a lobed pupil is a blob
several pupils large). ``--sheet PNG`` writes input | output rows.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from masked_gatys import StylizeConfig, stylize
from masked_gatys.eyes import render_eye
from masked_gatys.eyes.parts import eye_regions
from masked_gatys.eyes.pupil import pupil_center
from masked_gatys.eyes.render import style_eye
from masked_gatys.eyes.segment import segment
from masked_gatys.image import load_image


def disc(hw, x, y, r):
    yy, xx = torch.meshgrid(torch.arange(hw[0], dtype=torch.float32), torch.arange(hw[1], dtype=torch.float32),
                            indexing="ij")
    return (((xx - x) ** 2 + (yy - y) ** 2).sqrt() <= r).float()[None, None]


def lobedness(image: torch.Tensor, mask: torch.Tensor, threshold: float) -> dict:
    """Solidity, angular-4 share and dark components of the dark blob inside ``mask``."""
    from scipy import ndimage  # deferred: only the measure needs it
    from scipy.spatial import ConvexHull

    grey = image[0].mean(0).numpy()
    inside = mask[0, 0].numpy() >= 0.5
    dark = (grey < threshold) & inside
    labels, n = ndimage.label(dark)
    if n == 0:
        return {"components": 0, "solidity": float("nan"), "a4": float("nan"), "area": 0}
    sizes = ndimage.sum(dark, labels, range(1, n + 1))
    blob = labels == (1 + int(np.argmax(sizes)))
    ys, xs = np.nonzero(blob)
    pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (-.5, .5) for dy in (-.5, .5)])
    solidity = blob.sum() / ConvexHull(pts).volume
    # boundary radius against angle, about the blob's centroid: 64 rays on a 4x supersampled blob
    big = np.kron(blob, np.ones((4, 4), bool))
    cy, cx = (ys.mean() + .5) * 4 - .5, (xs.mean() + .5) * 4 - .5
    radii = []
    for t in np.linspace(0, 2 * math.pi, 64, endpoint=False):
        r = 0.0
        while True:
            yy, xx = int(round(cy + r * math.sin(t))), int(round(cx + r * math.cos(t)))
            if not (0 <= yy < big.shape[0] and 0 <= xx < big.shape[1]) or not big[yy, xx]:
                break
            r += 0.25
        radii.append(r)
    if max(radii) == 0:  # the centroid is outside the blob (a ring, a crescent): no radius function
        return {"components": int((sizes >= 2).sum()), "solidity": float(solidity), "a4": float("nan"),
                "area": int(blob.sum())}
    spec = np.abs(np.fft.rfft(np.asarray(radii) - np.mean(radii)))
    a4 = float(spec[4] / (np.mean(radii) * 64 / 2 + 1e-9))  # amplitude of the 4-lobe term / mean radius
    return {"components": int((sizes >= 2).sum()), "solidity": float(solidity), "a4": a4, "area": int(blob.sum())}


def run(seed: int, iterations: int, variant: str, size=(36, 60), weights=None) -> dict:
    content = render_eye(size=size, seed=seed, domain="real", yaw=10 * (seed % 3 - 1), pitch=5 * (seed % 2))
    style = render_eye(size=size, seed=100 + seed, domain="synthetic")
    x, y = pupil_center(content.image, content.mask)
    r = 11.0 * size[0] / 36
    mask = disc(size, x, y, r)
    grey = content.image[0].mean(0)
    lab = content.labels
    threshold = float((grey[lab == 3].mean() + grey[lab == 2].mean()) / 2)
    cfg = dict(iterations=iterations, seed=0, size=0, weights=weights)
    if variant == "auto":
        out = stylize(content.image, style.image, mask=mask, style_mask=style.binary_mask,
                      config=StylizeConfig(preset="masked", **cfg))
    elif variant == "nopupil":  # the paper's masked preset: one attention region, no pupil term
        out = stylize(content.image, style.image, mask=mask, style_mask=style.binary_mask,
                      config=StylizeConfig(preset="masked", subject="general", **cfg))
    elif variant == "irismask":  # the content's own iris+pupil mask instead of the disc (measured inside the disc)
        out = stylize(content.image, style.image, mask=content.binary_mask, style_mask=style.binary_mask,
                      config=StylizeConfig(preset="masked", **cfg))
    else:
        raise SystemExit(f"unknown variant {variant}")
    m = lobedness(out.image.detach().cpu(), mask, threshold)
    m0 = lobedness(content.image, mask, threshold)
    cr = eye_regions(content.image, mask)
    sr = eye_regions(style.image, style.binary_mask)
    return {"seed": seed, "variant": variant, **m, "input_solidity": m0["solidity"], "input_a4": m0["a4"],
            "content_pupil_area": float(cr.region("pupil").sum()), "style_pupil_area": float(sr.region("pupil").sum()),
            "content_attention_area": float(mask.sum()), "style_attention_area": float(style.binary_mask.sum())}


def pupil_blob(image: torch.Tensor, iris: torch.Tensor, pupil_px: float) -> dict:
    """The output's pupil: the largest near-black blob (grey < 0.05 after a 0.5 px blur, holes
    filled) inside ``iris`` (the image's iris + pupil grown by 1 px, ``(H, W)`` bool): its area
    in units of the image's pupil (``pupil_px``) and its solidity."""
    from scipy import ndimage  # deferred: only the measure needs it
    from scipy.spatial import ConvexHull

    grey = ndimage.gaussian_filter(image[0].mean(0).numpy(), 0.5)
    dark = (grey < 0.05) & iris.numpy()
    labels, n = ndimage.label(dark)
    if n == 0:
        return {"blob_pupils": 0.0, "blob_solidity": float("nan")}
    blob = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(ndimage.sum(dark, labels, range(1, n + 1)))))
    ys, xs = np.nonzero(blob)
    solidity = float("nan")
    if len(xs) >= 3:
        pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (-.5, .5) for dy in (-.5, .5)])
        solidity = float(blob.sum() / ConvexHull(pts).volume)
    return {"blob_pupils": round(float(blob.sum()) / max(pupil_px, 1.0), 2), "blob_solidity": round(solidity, 2)}


def run_user_case(seed: int, iterations: int, variant: str, real=None, size=(36, 60), weights=None):
    """The user's case on an ``mpiigaze`` webcam render or a real MPIIGaze patch: (row, input, output)."""
    from scipy import ndimage  # deferred: only the measure needs it

    if real is not None:
        image = load_image(f"{real}/mpiigaze/mpii_{seed:04d}.jpg")
        labels, exact = segment(image)[0], None
    else:
        eye = render_eye(layout="mpiigaze", look="webcam", size=size, seed=seed, yaw=10 * (seed % 3 - 1),
                         pitch=5 * (seed % 2))
        image, labels, exact = eye.image, eye.labels, eye.binary_mask
    style = style_eye("mpiigaze", size=tuple(image.shape[-2:]), seed=0)
    try:
        x, y = pupil_center(image)
    except Exception:  # no pupil found: the user would put the disc at the middle
        x, y = image.shape[-1] / 2, image.shape[-2] / 2
    mask = {"disc": disc(tuple(image.shape[-2:]), x, y, 11.0 * image.shape[-2] / 36), "exact": exact,
            "auto": "auto"}[variant]
    if mask is None:
        raise SystemExit("--variant exact needs renders")
    out = stylize(image, style.image, mask=mask, style_mask=style.binary_mask,
                  config=StylizeConfig(preset="masked", iterations=iterations, seed=0, size=0, weights=weights))
    iris = torch.from_numpy(ndimage.binary_dilation((labels >= 2).numpy(), iterations=1))
    pupil_px = float((labels == 3).sum())
    row = {"eye": f"{'real' if real else 'render'}:{seed}", "variant": variant, "pupil_px": pupil_px,
           **pupil_blob(out.image.detach().cpu(), iris, pupil_px),
           "input": pupil_blob(image, iris, pupil_px)}
    return row, image, out.image.detach().cpu()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--variant", nargs="+", default=None,
                   help="auto nopupil irismask (unity renders); disc exact auto (--layout mpiigaze, --real)")
    p.add_argument("--size", type=int, nargs=2, default=[36, 60])
    p.add_argument("--layout", default="unity", choices=["unity", "mpiigaze"])
    p.add_argument("--real", default=None, help="folder with mpiigaze/mpii_NNNN.jpg: real eyes, --seeds their numbers")
    p.add_argument("--sheet", default=None, help="PNG: input | output per variant, a row per eye")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.layout == "unity" and a.real is None:
        for v in a.variant or ["auto"]:
            for s in a.seeds:
                print(json.dumps(run(s, a.iterations, v, tuple(a.size))), flush=True)
        return
    rows, tiles = [], []
    for s in a.seeds:
        line = []
        for v in a.variant or ["disc"]:
            row, image, out = run_user_case(s, a.iterations, v, a.real, tuple(a.size))
            rows.append(row)
            print(json.dumps(row), flush=True)
            line += [image, out] if not line else [out]
        tiles.append(torch.cat(line, dim=3))
    for v in a.variant or ["disc"]:
        blobs = np.array([r["blob_pupils"] for r in rows if r["variant"] == v])
        print(json.dumps({"variant": v, "eyes": len(blobs), "median_blob_pupils": float(np.median(blobs)),
                          "share_over_2": round(float((blobs > 2).mean()), 3),
                          "share_over_3": round(float((blobs > 3).mean()), 3)}))
    if a.sheet:
        from masked_gatys.image import save_image
        save_image(torch.cat(tiles, dim=2).clamp(0, 1), a.sheet)


if __name__ == "__main__":
    main()
