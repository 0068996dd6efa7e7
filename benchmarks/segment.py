"""The eye-part segmenter on held-out renders, on real eyes, and its speed (issue 20).

    python benchmarks/segment.py --mpiigaze REALEYES/mpiigaze --nir REALEYES/nir \\
        --json benchmarks/results/segment-cpu.json --sheets benchmarks/results

Method (benchmarks/README.md, "segment"):

- *Renders*: ``--n`` held-out renders (seed ``--seed``, never a training seed) of every layout
  in each of its looks at the layout's own size; IoU per class (pooled over the eyes), the
  pupil's and the iris's centre error (centroid of the predicted region against the
  centroid of the labelled one, in pixels at the render's size and scaled to 36x60), and
  closed eyes told apart (the renderer's closed eyes: share given no iris; open eyes: share
  given an iris).
- *Near-infrared frames* (``--nir``): the pupil centre (centroid of the predicted pupil)
  against PuRe (Santini et al. 2018, from the ``cheshm`` package: the ``bench-segment``
  extra) on the frames where PuRe's confidence is at least ``--pure-confidence``.
- *MPIIGaze patches* (``--mpiigaze``): the share of eyes with exactly one iris that holds the
  project's own pupil centre (``masked_gatys.eyes.pupil.pupil_center``), and a sheet of 48
  eyes with the iris and pupil outlines drawn over them.
- *Speed*: eyes per second at 36x60, batches of 256, post-processing included; CPU time
  (``time.process_time``) and wall time, at 1 and 2 threads; and the pupil-shift measurement
  ``purify`` records (``masked_gatys.eyes.pupil.pupil_shift``: two pupil centres an eye) on 64
  of those eyes, at 1 thread. ``--speed-only`` measures these alone and replaces the speed
  entries of an existing ``--json`` (the other figures stay as they were).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes.segment import load_segmenter, part_centre, segment


def _centroid(mask: np.ndarray) -> tuple[float, float] | None:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else None


def _dist(a, b) -> float | None:
    return None if a is None or b is None else float(np.hypot(a[0] - b[0], a[1] - b[1]))


def _stats(values) -> dict:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
            "p90": round(float(np.percentile(v, 90)), 4), "max": round(float(v.max()), 4)}


def _check_held_out(n: int, seed: int) -> int:
    """The benchmark's eye seeds are none of the training script's (its render_set seeds 7 and 8,
    its direct seeds below 10,000, its validation sets 99,000 and 99,500); returns how many
    training seeds were checked."""
    from masked_gatys.eyes.datasets import eye_seed_and_gaze

    train = set(range(10_000))
    for s, count in ((7, 500), (8, 500), (99_500, 60)):
        train |= {eye_seed_and_gaze(s, i)[0] for i in range(count)}
    ours = {eye_seed_and_gaze(seed, i)[0] for i in range(n)} | {eye_seed_and_gaze(seed + 1, i)[0] for i in range(n)}
    clash = ours & train
    if clash:
        raise SystemExit(f"benchmark eye seeds {sorted(clash)[:3]} were used in training; choose another --seed")
    return len(train)


def renders(seg, n: int, seed: int) -> dict:
    from masked_gatys.eyes.datasets import render_set
    from masked_gatys.eyes.layouts import LAYOUTS

    out = {"held_out_checked_against": _check_held_out(n, seed)}
    for name, layout in LAYOUTS.items():
        for look in ("clean",) + tuple(layout.real_looks):
            t = time.time()
            gs = render_set(n, layout=name, look=look, seed=seed)
            pred = segment(gs.images, model=seg).numpy()
            truth = gs.parts.long().numpy()
            h, w = truth.shape[-2:]
            scale = float(np.sqrt(36 * 60 / (h * w)))  # px at this size -> px at 36x60
            inter, union = np.zeros(4), np.zeros(4)
            pupil_err, iris_err, closed_ok, open_ok, n_closed = [], [], [], [], 0
            pupil_fit, iris_fit = [], []
            for p, tl, centre in zip(pred, truth, gs.pupil.tolist()):
                for k in range(4):
                    inter[k] += np.sum((p == k) & (tl == k))
                    union[k] += np.sum((p == k) | (tl == k))
                if not (tl >= 2).any():
                    n_closed += 1
                    closed_ok.append(not (p >= 2).any())
                    continue
                open_ok.append(bool((p >= 2).any()))
                pupil_err.append(_dist(_centroid(p == 3), _centroid(tl == 3)))
                iris_err.append(_dist(_centroid(p >= 2), _centroid(tl >= 2)))
                # the drawn centre (the whole pupil's and iris's, lids or not) against part_centre's fit
                pupil_fit.append(_dist(part_centre(p, "pupil"), centre))
                iris_fit.append(_dist(part_centre(p, "iris"), centre))
            key = f"{name}/{look}"
            iou = (inter / np.maximum(union, 1)).round(4).tolist()
            out[key] = {
                "size": [h, w], "n": n, "closed": n_closed,
                "iou": dict(zip(("skin", "sclera", "iris", "pupil"), iou)),
                "iou_iris_with_pupil": None,
                "pupil_centre_px": _stats(pupil_err), "iris_centre_px": _stats(iris_err),
                "pupil_centre_px_at_36x60": _stats([e * scale for e in pupil_err if e is not None]),
                "iris_centre_px_at_36x60": _stats([e * scale for e in iris_err if e is not None]),
                "iris_within_0.3px_at_36x60": round(float(np.mean([e * scale <= 0.3 for e in iris_err
                                                                   if e is not None])), 4),
                "pupil_fit_vs_drawn_centre_px_at_36x60": _stats([e * scale for e in pupil_fit if e is not None]),
                "iris_fit_vs_drawn_centre_px_at_36x60": _stats([e * scale for e in iris_fit if e is not None]),
                "pupil_missed": int(sum(e is None for e in pupil_err)),
                "closed_given_no_iris": round(float(np.mean(closed_ok)), 4) if closed_ok else None,
                "open_given_an_iris": round(float(np.mean(open_ok)), 4) if open_ok else None,
                "seconds": round(time.time() - t, 1),
            }
            # the attention region (iris + pupil), what a mask is made of
            a = (pred >= 2)
            b = (truth >= 2)
            out[key]["iou_iris_with_pupil"] = round(float((a & b).sum() / max(1, (a | b).sum())), 4)
            print(key, out[key]["iou"], out[key]["iris_centre_px_at_36x60"].get("median"), file=sys.stderr)
        # shut eyes on purpose (closure 1: no iris in the labels), a quarter as many, any look
        shut = render_set(max(1, n // 4), layout=name, look="any", seed=seed + 1, closure=1.0)
        assert not (shut.parts >= 2).any()
        pred = segment(shut.images, model=seg)
        out[f"{name}/shut"] = {"n": int(pred.shape[0]),
                               "given_no_iris": round(float((pred >= 2).flatten(1).any(1).logical_not()
                                                            .float().mean()), 4)}
    return out


def _grey(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)[None, None]


def nir_frames(seg, folder: Path, min_conf: float) -> tuple[dict, list]:
    from cheshm.pupil_detectors.PuRe import detect_pupil

    rows = []
    for f in sorted(folder.glob("*.png")):
        img = np.asarray(Image.open(f).convert("L"))
        res = detect_pupil(img)
        lab = segment(torch.from_numpy(img.copy())[None, None], model=seg)[0].numpy()
        ours = part_centre(lab, "pupil")
        centroid = _centroid(lab == 3)
        row = {"file": f.name, "pure_confidence": None, "pure_centre": None,
               "segmenter_pupil_centre": [round(v, 2) for v in ours] if ours else None,
               "iris": bool((lab >= 2).any())}
        if res is not None:
            (cx, cy), _, _ = res["ellipse"]
            row["pure_confidence"] = round(float(res["confidence"]), 4)
            row["pure_centre"] = [round(float(cx), 2), round(float(cy), 2)]
            row["error_px"] = _dist(ours, (cx, cy))
            row["centroid_error_px"] = _dist(centroid, (cx, cy))
        rows.append((row, img, lab))
    conf = [r for r, _, _ in rows if r["pure_confidence"] is not None and r["pure_confidence"] >= min_conf]
    errs = [r["error_px"] for r in conf]
    summary = {"frames": len(rows), "pure_found": sum(r["pure_confidence"] is not None for r, _, _ in rows),
               "pure_confident": len(conf), "min_confidence": min_conf,
               "error_px": _stats(errs),
               "centroid_error_px": _stats([r["centroid_error_px"] for r in conf]),
               "within_3px": round(float(np.mean([e is not None and e <= 3 for e in errs])), 4) if errs else None,
               "segmenter_found_no_pupil": sum(r["segmenter_pupil_centre"] is None for r, _, _ in rows),
               "frames_detail": [r for r, _, _ in rows]}
    return summary, rows


def mpiigaze(seg, folder: Path) -> tuple[dict, list]:
    from masked_gatys.errors import MaskedGatysError
    from masked_gatys.eyes.pupil import pupil_center
    from scipy import ndimage

    files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    images = torch.cat([_grey(f) for f in files])
    labels = segment(images, model=seg).numpy()
    one_iris, holds, no_iris, no_pupil_found = 0, 0, 0, 0
    rows = []
    for f, img, lab in zip(files, images, labels):
        eye = lab >= 2
        n = ndimage.label(eye)[1]
        no_iris += n == 0
        one_iris += n == 1
        try:
            x, y = pupil_center(img[None].expand(1, 3, -1, -1))
        except MaskedGatysError:
            no_pupil_found += 1
            x = y = None
        h, w = eye.shape
        inside = (x is not None and n == 1
                  and eye[min(h - 1, max(0, int(round(y)))), min(w - 1, max(0, int(round(x))))])
        holds += bool(inside)
        rows.append((f.name, img[0].numpy(), lab, (x, y), bool(inside)))
    total = len(files)
    return {"eyes": total, "one_iris": round(one_iris / total, 4), "one_iris_holding_pupil": round(holds / total, 4),
            "no_iris": round(no_iris / total, 4),
            "one_iris_holding_pupil_of_eyes_with_an_iris": round(holds / max(1, total - no_iris), 4),
            "project_pupil_not_found": no_pupil_found}, rows


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask)


def sheet(tiles, path: Path, scale: int, cols: int = 8) -> None:
    """Grey eyes with the iris (blue) and pupil (red) outlines and the project's pupil centre (yellow)."""
    out = []
    for grey, lab, centre in tiles:
        big = np.kron(grey, np.ones((scale, scale)))
        labb = np.kron(lab, np.ones((scale, scale), dtype=lab.dtype))
        rgb = np.stack([big] * 3, -1)
        iris = _outline(labb >= 2)
        pupil = _outline(labb == 3)
        rgb[iris] = (0.0, 0.5, 1.0)
        rgb[pupil] = (1.0, 0.1, 0.1)
        if centre is not None and centre[0] is not None:
            cx, cy = int(round((centre[0] + 0.5) * scale)), int(round((centre[1] + 0.5) * scale))
            rgb[max(0, cy - 1):cy + 2, max(0, cx - 1):cx + 2] = (1.0, 0.9, 0.0)
        out.append(np.pad(rgb, ((2, 2), (2, 2), (0, 0)), constant_values=1.0))
    rows = [np.concatenate(out[i:i + cols] + [np.ones_like(out[0])] * (cols - len(out[i:i + cols])), 1)
            for i in range(0, len(out), cols)]
    Image.fromarray((np.concatenate(rows, 0) * 255).round().astype(np.uint8)).save(path, optimize=True)


def speed(seg, repeats: int = 5) -> dict:
    from masked_gatys.eyes.datasets import render_set

    x = render_set(256, layout="mpiigaze", look="any", seed=515151).images[:, :1]
    res = {}
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        segment(x, model=seg)
        cpu, wall, raw = [], [], []
        for _ in range(repeats):
            c, t = time.process_time(), time.perf_counter()
            segment(x, model=seg)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - t)
            c = time.process_time()
            seg(x, post=False)
            raw.append(time.process_time() - c)
        res[f"threads_{threads}"] = {"eyes_per_cpu_second": round(256 / float(np.median(cpu)), 1),
                                     "eyes_per_wall_second": round(256 / float(np.median(wall)), 1),
                                     "eyes_per_cpu_second_network_only": round(256 / float(np.median(raw)), 1)}
    torch.set_num_threads(before)
    return res


def pupil_speed(n: int = 64, repeats: int = 3) -> dict:
    """Eyes a second of ``pupil_shift`` (an input and an output: two pupil centres) at 36x60, 1 thread."""
    from masked_gatys.eyes.datasets import render_set
    from masked_gatys.eyes.pupil import pupil_shift

    rs = render_set(n, layout="mpiigaze", look="any", seed=515151)
    before = torch.get_num_threads()
    torch.set_num_threads(1)

    def once() -> float:
        c = time.process_time()
        for i in range(n):
            try:
                pupil_shift(rs.images[i:i + 1], rs.images[i:i + 1], rs.masks[i:i + 1])
            except MaskedGatysError:  # as purify: no findable pupil is no shift, not a failure
                pass
        return time.process_time() - c

    once()
    cpu = [once() for _ in range(repeats)]
    torch.set_num_threads(before)
    return {"eyes": n, "eyes_per_cpu_second": round(n / float(np.median(cpu)), 1),
            "ms_per_eye": round(1e3 * float(np.median(cpu)) / n, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a segmenter checkpoint (default: the shipped one)")
    ap.add_argument("--mpiigaze", type=Path, help="a folder of MPIIGaze normalised patches (60x36 grey)")
    ap.add_argument("--nir", type=Path, help="a folder of near-infrared eye-camera frames (PNG)")
    ap.add_argument("--n", type=int, default=100, help="held-out renders per layout and look")
    ap.add_argument("--seed", type=int, default=424242)
    ap.add_argument("--pure-confidence", type=float, default=0.8)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--sheets", type=Path, help="folder for the sheets (PNG)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-renders", action="store_true")
    ap.add_argument("--speed-only", action="store_true",
                    help="measure the speeds alone and replace them in an existing --json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    seg = load_segmenter(a.model)
    if a.speed_only:
        result = json.loads(a.json.read_text()) if a.json.is_file() else {"benchmark": "segment"}
        result["speed_36x60"] = speed(seg)
        result["pupil_shift_36x60"] = pupil_speed()
        result["speed_date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    result = {"benchmark": "segment", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "segmenter": {k: v for k, v in (seg.identity or {}).items() if k in ("file", "sha256", "step",
                                                                                     "trained", "data")},
              "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                          "threads": a.threads, "python": platform.python_version()},
              "settings": {"n": a.n, "seed": a.seed, "pure_confidence": a.pure_confidence}}
    if not a.skip_renders:
        result["renders"] = renders(seg, a.n, a.seed)
    if a.nir is not None:
        result["nir"], rows = nir_frames(seg, a.nir, a.pure_confidence)
        if a.sheets is not None:
            tiles = [(img[::2, ::2] / 255.0, lab[::2, ::2],
                      None if r["pure_centre"] is None else (r["pure_centre"][0] / 2, r["pure_centre"][1] / 2))
                     for r, img, lab in rows[:24]]
            sheet(tiles, a.sheets / "segment-nir-sheet.png", scale=1, cols=6)
    if a.mpiigaze is not None:
        result["mpiigaze"], rows = mpiigaze(seg, a.mpiigaze)
        if a.sheets is not None:
            pick = np.linspace(0, len(rows) - 1, 48).round().astype(int)
            sheet([(rows[i][1], rows[i][2], rows[i][3]) for i in pick], a.sheets / "segment-mpiigaze-sheet.png",
                  scale=4)
    result["speed_36x60"] = speed(seg)
    result["pupil_shift_36x60"] = pupil_speed()
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
