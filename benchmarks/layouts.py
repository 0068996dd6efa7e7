"""The layouts benchmark: how close the renderer's layouts come to real eyes of the same kind.

For each layout with real eyes of its kind (``mpiigaze``: MPIIGaze's normalised patches;
``nir``: near-infrared eye-camera frames), N renders of the layout in its real domain
(``render_many(N, layout=..., domain="real", seed=0)``: the ``webcam`` and ``nir`` looks) and the real eyes in ``--real`` (a folder
with ``mpiigaze/*.jpg`` and ``nir/*.png``, never a path of this project) are reduced to grey
[0, 255] and measured the same way:

- **intensity**: mean and standard deviation of each image (averaged over the set);
- **dark blob**: the connected region around the darkest point (after a 1 px blur) below the
  level half-way between the image's 2nd percentile and its median: its share of the image,
  its width and height as shares of the image's, its centroid as (x/W, y/H). In grey webcam
  eyes it is the iris with the pupil, in near-infrared frames the pupil;
- **pupil centre**: ``masked_gatys.eyes.pupil.pupil_center`` on the whole image, as (x/W, y/H)
  (mean and standard deviation over the set, and the share of images where it fails);
- **row profile**: the mean intensity in six horizontal bands, top to bottom (the framing:
  skin, lid, eye, lid, skin);
- **fine detail**: the mean absolute Laplacian (noise and sharpness).

Each figure is reported for the real set, the renders, and their difference in standard
deviations of the real set (``z``: 0 is a match). A sheet shows renders beside real eyes.

    python benchmarks/layouts.py --real PATH/realeyes --n 400 --json benchmarks/results/layouts.json \\
        --sheet docs/layouts-sheet.png --renders-sheet docs/layouts-renders.png --markdown layouts-table.md

The method is in benchmarks/README.md ("The layouts benchmark").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from masked_gatys.bench import machine_metadata
from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes.datasets import render_many
from masked_gatys.eyes.layouts import get_layout
from masked_gatys.eyes.pupil import pupil_center

REAL_KINDS = {"mpiigaze": ("mpiigaze", "*.jpg"), "nir": ("nir", "*.png")}
ATTRIBUTION = {
    "mpiigaze": "Real: MPIIGaze normalised patches (Zhang, Sugano, Fritz, Bulling, CVPR 2015 / TPAMI 2017), "
                "CC BY-NC-SA 4.0",
    "nir": "Real: DeepVOG demo video and test image (Yiu et al., J. Neurosci. Methods 2019), GPL-3.0",
}


def load_real(folder: Path, layout: str, limit: int | None = None) -> list[np.ndarray]:
    """The real eyes of ``layout``'s kind in ``folder`` as grey float arrays in [0, 255]."""
    sub, pattern = REAL_KINDS[layout]
    files = sorted((folder / sub).glob(pattern))
    if limit:
        files = files[:limit]
    return [np.asarray(Image.open(f).convert("L"), dtype=np.float32) for f in files]


def render_grey(layout: str, n: int, seed: int = 0, look: str | None = None) -> list[np.ndarray]:
    """``n`` renders of ``layout`` in ``look`` (None: the layout's real look), grey float arrays
    in [0, 255]."""
    out = []
    for eye in render_many(n, layout=layout, look=look, domain="real" if look is None else None, seed=seed):
        img = eye.image[0].numpy()
        grey = img[0] if eye.truth.get("channels", 3) == 1 else 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
        out.append(np.clip(np.rint(grey * 255.0), 0, 255).astype(np.float32))  # as written to an 8-bit file
    return out


def dark_blob(grey: np.ndarray) -> dict[str, float]:
    """Share of the image, width and height shares and centroid of the dark blob (see above)."""
    h, w = grey.shape
    smooth = ndimage.gaussian_filter(grey, 1.0)
    level = 0.5 * (np.percentile(smooth, 2) + np.median(smooth))
    lab, _ = ndimage.label(smooth < level)
    i, j = np.unravel_index(int(np.argmin(smooth)), smooth.shape)
    blob = lab == lab[i, j]
    ys, xs = np.nonzero(blob)
    return {"area": float(blob.mean()), "width": float((xs.max() - xs.min() + 1) / w),
            "height": float((ys.max() - ys.min() + 1) / h), "x": float(xs.mean() / w), "y": float(ys.mean() / h)}


def measure(images: list[np.ndarray]) -> dict[str, Any]:
    """The figures above for one set of grey images."""
    h, w = images[0].shape
    means = np.array([im.mean() for im in images])
    stds = np.array([im.std() for im in images])
    blobs = [dark_blob(im) for im in images]
    lap = np.array([np.abs(ndimage.laplace(im)).mean() for im in images])
    bands = np.array([[band.mean() for band in np.array_split(im, 6, axis=0)] for im in images])
    centres, failed = [], 0
    for im in images:
        try:
            x, y = pupil_center(np.repeat((im / 255.0)[:, :, None], 3, axis=2))
            centres.append((x / w, y / h))
        except MaskedGatysError:
            failed += 1
    c = np.array(centres) if centres else np.full((1, 2), np.nan)

    def stat(v: np.ndarray) -> dict[str, float]:
        return {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)}

    figures = {"intensity_mean": stat(means), "intensity_std": stat(stds), "laplacian": stat(lap)}
    for key in ("area", "width", "height", "x", "y"):
        figures[f"dark_{key}"] = stat(np.array([b[key] for b in blobs]))
    figures["pupil_x"] = stat(c[:, 0])
    figures["pupil_y"] = stat(c[:, 1])
    for k in range(6):
        figures[f"band{k}"] = stat(bands[:, k])
    return {"n": len(images), "size": [h, w], "pupil_failed": failed, "figures": figures}


def compare(real: dict[str, Any], rendered: dict[str, Any]) -> dict[str, float]:
    """Per figure: (rendered mean - real mean) / real std (0 is a match)."""
    out = {}
    for key, r in real["figures"].items():
        s = rendered["figures"][key]
        out[key] = round((s["mean"] - r["mean"]) / max(r["std"], 1e-6), 2)
    return out


def _tile(img: np.ndarray, tile: tuple[int, int]) -> Image.Image:
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((tile[1], tile[0]), Image.BILINEAR)


def sheet(rows: list[tuple[str, list[np.ndarray]]], tile: tuple[int, int], cols: int, caption: str) -> Image.Image:
    """A grid: one labelled row of ``cols`` tiles per entry, and a caption at the bottom."""
    label_w, pad = 150, 4
    cap_h = 14 * len(caption.splitlines()) + 8 if caption else 0
    height = len(rows) * (tile[0] + pad) + cap_h
    out = Image.new("L", (label_w + cols * (tile[1] + pad), height), 255)
    draw = ImageDraw.Draw(out)
    for r, (name, imgs) in enumerate(rows):
        y = r * (tile[0] + pad)
        draw.multiline_text((4, y + tile[0] // 2 - 12), name, fill=0)
        for c, img in enumerate(imgs[:cols]):
            out.paste(_tile(img, tile), (label_w + c * (tile[1] + pad), y))
    if caption:
        draw.multiline_text((4, height - cap_h + 2), caption, fill=0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, help="folder with mpiigaze/*.jpg and nir/*.png (real eyes)")
    ap.add_argument("--n", type=int, default=400, help="renders per layout")
    ap.add_argument("--real-n", type=int, default=None, help="use only the first N real eyes of each kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path, help="write the comparison tables here")
    ap.add_argument("--sheet", type=Path, help="renders beside real eyes (needs --real)")
    ap.add_argument("--renders-sheet", type=Path, help="renders only: every layout in its looks")
    args = ap.parse_args(argv)

    record: dict[str, Any] = {"machine": machine_metadata(), "n": args.n, "seed": args.seed, "layouts": {}}
    sheet_rows: list[tuple[str, list[np.ndarray]]] = []
    for layout in ("mpiigaze", "nir"):
        t0 = time.process_time()
        rendered = render_grey(layout, args.n, args.seed)
        per_eye = (time.process_time() - t0) / args.n
        entry: dict[str, Any] = {"rendered": measure(rendered), "cpu_seconds_per_render": round(per_eye, 4)}
        if args.real:
            real = load_real(args.real, layout, args.real_n)
            if real:
                entry["real"] = measure(real)
                entry["z"] = compare(entry["real"], entry["rendered"])
                step = max(1, len(real) // 8)
                sheet_rows.append((f"{layout}\nreal", real[::step][:8]))
        sheet_rows.append((f"{layout}\nrendered", rendered[:8]))
        record["layouts"][layout] = entry
        print(f"{layout}: {per_eye:.3f} CPU s/render", file=sys.stderr)

    if args.json:
        args.json.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(record))
    if args.sheet and args.real:
        caption = "\n".join(ATTRIBUTION[k] for k in ("mpiigaze", "nir")) + \
            "\nRendered: masked-gatys render_many(n, layout=..., domain='real', seed=0)"
        _write_pair_sheet(sheet_rows, caption, args.sheet)
    if args.renders_sheet:
        _write_renders_sheet(args.renders_sheet, args.seed)
    return 0


def _write_pair_sheet(rows: list[tuple[str, list[np.ndarray]]], caption: str, path: Path) -> None:
    mp = [r for r in rows if r[0].startswith("mpiigaze")]
    nir = [r for r in rows if r[0].startswith("nir")]
    a = sheet(mp, (108, 180), 8, "")
    b = sheet([(name, [im for im in imgs]) for name, imgs in nir], (135, 180), 8, caption)
    out = Image.new("L", (max(a.width, b.width), a.height + b.height), 255)
    out.paste(a, (0, 0))
    out.paste(b, (0, a.height))
    out.save(path)


def _write_renders_sheet(path: Path, seed: int) -> None:
    rows = []
    for layout, looks in (("unity", ("clean", "outdoor", "webcam", "photo")),
                          ("mpiigaze", ("clean", "webcam", "photo")), ("nir", ("clean", "nir"))):
        for look in looks:
            imgs = []
            for eye in render_many(6, layout=layout, look=look, seed=seed):
                imgs.append(np.rint(eye.image[0].numpy().mean(axis=0) * 255.0) if get_layout(layout).channels == 1
                            else None)
                if imgs[-1] is None:  # colour: keep the RGB
                    imgs[-1] = np.rint(eye.image[0].permute(1, 2, 0).numpy() * 255.0)
            rows.append((f"{layout}\n{look}", imgs))
    tile, pad, label_w, cols = (72, 120), 3, 100, 6
    out = Image.new("RGB", (label_w + cols * (tile[1] + pad), len(rows) * (tile[0] + pad) + 24), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for r, (name, imgs) in enumerate(rows):
        y = r * (tile[0] + pad)
        draw.multiline_text((4, y + tile[0] // 2 - 12), name, fill=(0, 0, 0))
        for c, img in enumerate(imgs):
            im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("RGB")
            out.paste(im.resize((tile[1], tile[0]), Image.BILINEAR), (label_w + c * (tile[1] + pad), y))
    draw.text((4, out.height - 18), f"masked-gatys render_eye(layout, look), seed {seed}; unity shown at 72x120, "
              "mpiigaze 36x60, nir 240x320, all scaled to 72x120", fill=(0, 0, 0))
    out.save(path)


def markdown(record: dict[str, Any]) -> str:
    """The comparison as Markdown tables, one per layout."""
    lines = []
    for layout, e in record["layouts"].items():
        if "real" not in e:
            continue
        lines += [f"### {layout}: {e['real']['n']} real eyes, {e['rendered']['n']} renders "
                  f"({e['rendered']['size'][0]}x{e['rendered']['size'][1]})", "",
                  "| figure | real mean (std) | rendered mean (std) | z |", "| --- | --- | --- | --- |"]
        for key, r in e["real"]["figures"].items():
            s = e["rendered"]["figures"][key]
            lines.append(f"| {key} | {r['mean']:.3f} ({r['std']:.3f}) | {s['mean']:.3f} ({s['std']:.3f}) "
                         f"| {e['z'][key]:+.2f} |")
        lines += ["", f"pupil detector failed on {e['real']['pupil_failed']} real and "
                      f"{e['rendered']['pupil_failed']} rendered eyes.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
