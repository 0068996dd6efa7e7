"""Purification of real eyes with automatic masks: pupil kept, iris kept, how synthetic (issue 22, item 5).

    pip install -e .[bench-segment]      # cheshm: PuRe, the independent pupil detector
    MASKED_GATYS_WEIGHTS=VGG.pth python benchmarks/real_eyes.py --real REALEYES \\
        --optimizer-n 24 6 --out benchmarks/results

``REALEYES`` holds ``mpiigaze/*.jpg`` (MPIIGaze normalised patches, 60x36 grey) and
``nir/*.png`` (near-infrared eye-camera frames, 320x240 grey). Method (benchmarks/README.md,
"Real eyes"):

- Each source's eyes are shuffled (``--seed``) and split in halves: the *training half* trains
  the classifier below, the *scoring half* comes first in the order the methods take their
  eyes from, so the optimizers' subsets (``--optimizer-n``) and ``--network-n`` lie in it.
- Masks: the shipped segmenter (``masked_gatys.eyes.segment.segment``) labels every input and
  ``write_companions`` writes ``NAME_labels.png`` / ``NAME_mask.png`` beside a copy of it in a
  temporary work folder; ``masked_gatys.purify.purify`` then runs each method on that folder
  (``style="rendered"``: a clean eye rendered in the input's layout, guessed from its size and
  channels; the optimizers' 100 iterations by default).
- Pupil moved: the project's detector (``eyes.pupil.pupil_center``, inside the input's
  automatic mask) on input and output; on the near-infrared frames also PuRe (``cheshm``),
  on the frames where PuRe's confidence on the input is at least ``--pure-confidence``. An
  output where the detector finds no pupil counts as a miss; inputs where it finds none are
  left out (their number is recorded). Also the output's pupil (project detector) against the
  input's iris centre (the segmenter's ``part_centre(labels, "iris")``): in MPIIGaze's patches
  the pupil is mostly invisible in a dark iris, so the detector's input pupil is any dark spot.
- Iris in place: the segmenter on the output finds exactly one iris (iris + pupil, one
  connected component) whose centre (``part_centre(labels, "iris")``) is within 1 px (36x60) or
  4 px (320x240) of the input's; over the inputs with exactly one iris.
- How synthetic: a logistic regression (scikit-learn; downsampled pixels and gradient
  orientation histograms, standardised) trained on the training half of the real eyes against
  clean renders of the layout (``datasets.render_set(layout=..., look="clean")``); its held-out
  accuracy on the scoring half's raw eyes and on other renders is recorded; then the share of
  each method's outputs on the scoring half that it calls synthetic.
- Channels kept (grey in, grey out: the output PNG's mode), seconds per eye (``purify``'s own
  per-eye record: the method's batch time over its eyes, reading and writing left out; the
  call's wall time per eye beside it; ``--threads``). A rerun with the same ``--work`` folder
  skips the purifications already done and measures again.
- A sheet per source (``real-eyes-SOURCE-sheet.png``): a row per method over the same eyes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from masked_gatys.bench import machine_metadata
from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes.datasets import render_set
from masked_gatys.eyes.pupil import pupil_center
from masked_gatys.eyes.segment import load_segmenter, part_centre, segment, write_companions
from masked_gatys.purify import PurifyConfig, purify

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layouts import ATTRIBUTION, sheet  # noqa: E402  (the layouts benchmark's sheet and credits)

SOURCES = {"mpiigaze": ("mpiigaze", "*.jpg", 1.0, 0.5), "nir": ("nir", "*.png", 4.0, 3.0)}
"""source -> (folder, pattern, iris tolerance px, pupil target px)"""
OPTIMIZERS = ("gatys", "masked")
METHODS = ("none", "gatys", "masked", "purifier", "johnson")


def _method(text: str) -> str:
    """``--methods``' type: a name of METHODS or a network checkpoint ``PATH.pt``."""
    if text in METHODS or (text.endswith(".pt") and Path(text).is_file()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(METHODS)} or a checkpoint PATH.pt")


def _label(method: str) -> str:
    """The name a method is reported under: a checkpoint's file stem (no path of this machine)."""
    return Path(method).stem if method.endswith(".pt") else method
TARGET_SHARE = {"pupil": 0.95, "iris": 0.98, "synthetic": 0.80}


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0


def _pupil(grey: np.ndarray, mask: np.ndarray) -> tuple[float, float] | None:
    try:
        return pupil_center(np.repeat(grey[..., None], 3, -1), mask)
    except MaskedGatysError:
        return None


def _pure(grey: np.ndarray) -> tuple[tuple[float, float] | None, float | None]:
    from cheshm.pupil_detectors.PuRe import detect_pupil

    res = detect_pupil(np.round(grey * 255).astype(np.uint8))
    if res is None:
        return None, None
    (cx, cy), _, _ = res["ellipse"]
    return (float(cx), float(cy)), float(res["confidence"])


def _dist(a, b) -> float | None:
    return None if a is None or b is None else float(np.hypot(a[0] - b[0], a[1] - b[1]))


def _irises(labels: np.ndarray) -> tuple[int, tuple[float, float] | None]:
    return int(ndimage.label(labels >= 2)[1]), part_centre(labels, "iris")


def _stats(values: list[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "median": round(float(np.median(v)), 4), "p95": round(float(np.percentile(v, 95)), 4),
            "max": round(float(v.max()), 4)}


# ----------------------------------------------------------------------------- the classifier

def features(grey: np.ndarray) -> np.ndarray:
    """Downsampled pixels and magnitude-weighted gradient orientation histograms (3x5 cells, 8 bins)."""
    h, w = grey.shape
    small = np.asarray(Image.fromarray(grey).resize((30, 18), Image.BILINEAR))
    g = grey if h <= 40 else np.asarray(Image.fromarray(grey).resize((120, 72), Image.BILINEAR))
    gy, gx = np.gradient(g)
    mag, ang = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((ang / np.pi * 8).astype(int), 7)
    hist = []
    for ys in np.array_split(np.arange(g.shape[0]), 3):
        for xs in np.array_split(np.arange(g.shape[1]), 5):
            m, b = mag[np.ix_(ys, xs)].ravel(), bins[np.ix_(ys, xs)].ravel()
            hist.append(np.bincount(b, weights=m, minlength=8) / (m.size))
    return np.concatenate([small.ravel(), np.sqrt(np.concatenate(hist)),
                           [grey.mean(), grey.std(), np.abs(gx).mean() + np.abs(gy).mean()]])


def _renders(layout: str, n: int, seed: int) -> list[np.ndarray]:
    imgs = render_set(n, layout=layout, look="clean", seed=seed).images
    return [im.mean(0).numpy().astype(np.float32) for im in imgs]


def train_classifier(layout: str, real: list[np.ndarray], held_real: list[np.ndarray], n_renders: int,
                     seed: int) -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    syn = _renders(layout, n_renders, seed)
    held_syn = _renders(layout, max(20, n_renders // 2), seed + 1)
    x = np.stack([features(g) for g in real + syn])
    y = np.r_[np.zeros(len(real)), np.ones(len(syn))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=5000, class_weight="balanced"))
    clf.fit(x, y)
    real_ok = 1.0 - float(np.mean(clf.predict(np.stack([features(g) for g in held_real]))))
    syn_ok = float(np.mean(clf.predict(np.stack([features(g) for g in held_syn]))))
    info = {"model": "StandardScaler + LogisticRegression(C=0.05, balanced)", "train_real": len(real),
            "train_renders": len(syn), "render_seed": seed, "render_look": "clean",
            "held_out_real": len(held_real), "held_out_renders": len(held_syn),
            "held_out_real_called_real": round(real_ok, 4), "held_out_renders_called_synthetic": round(syn_ok, 4),
            "held_out_balanced_accuracy": round((real_ok + syn_ok) / 2, 4)}
    return clf, info


# ----------------------------------------------------------------------------- one source

def run_source(name: str, real_dir: Path, work: Path, args: argparse.Namespace, seg: Any,
               result: dict[str, Any], save: Any) -> None:
    folder, pattern, iris_tol, pupil_tol = SOURCES[name]
    files = sorted((real_dir / folder).glob(pattern))
    if not files:
        raise SystemExit(f"no {pattern} in {real_dir / folder}")
    order = [files[i] for i in np.random.default_rng(args.seed).permutation(len(files))]
    half = len(order) // 2
    train_files, score_files = order[:half], order[half:]
    order = score_files + train_files  # subsets come from the scoring half
    n_net = len(order) if args.network_n is None else min(len(order), args.network_n)
    n_opt = min(n_net, args.optimizer_n[0 if name == "mpiigaze" else 1])
    entry: dict[str, Any] = {"eyes": len(files), "training_half": len(train_files), "scoring_half": len(score_files),
                             "iris_tolerance_px": iris_tol, "pupil_target_px": pupil_tol, "methods": {}}
    result["sources"][name] = entry
    _log(f"{name}: {len(files)} eyes, networks on {n_net}, optimizers on {n_opt}")

    # inputs, their automatic masks (companions in the work folder), what the detectors say
    src_all, src_opt = work / name / "in", work / name / "in-opt"
    eyes = order[:n_net]
    greys = {f.stem: _grey(f) for f in eyes}
    labels = segment(torch.from_numpy(np.stack([greys[f.stem] for f in eyes]))[:, None], model=seg).numpy()
    inputs: dict[str, dict[str, Any]] = {}
    for k, (f, lab) in enumerate(zip(eyes, labels)):
        for dst in (src_all, src_opt) if k < n_opt else (src_all,):
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / f.name)
            write_companions(torch.from_numpy(lab), dst / f.name)
        mask = (lab >= 2).astype(np.float64)
        n_iris, iris = _irises(lab)
        info = {"labels": lab, "mask": mask, "n_iris": n_iris, "iris": iris, "scored": k < len(score_files),
                "pupil": _pupil(greys[f.stem], mask) if mask.any() else None, "mode": Image.open(f).mode}
        if name == "nir":
            info["pure"], info["pure_conf"] = _pure(greys[f.stem])
        inputs[f.stem] = info
    entry["inputs"] = {"one_iris": sum(i["n_iris"] == 1 for i in inputs.values()),
                       "pupil_found": sum(i["pupil"] is not None for i in inputs.values()), "n": len(inputs)}
    if name == "nir":
        entry["inputs"]["pure_confident"] = sum((i["pure_conf"] or 0) >= args.pure_confidence
                                                for i in inputs.values())
    _log(f"{name}: inputs segmented and measured: {entry['inputs']}")

    clf, entry["classifier"] = train_classifier(name, [_grey(f) for f in train_files],
                                                [_grey(f) for f in score_files], args.renders[name], args.seed + 1000)
    _log(f"{name}: classifier {entry['classifier']}")

    sheet_eyes = list(greys)[:min(8 if name == "mpiigaze" else 6, n_opt or n_net)]
    rows = {"input": [greys[s] for s in sheet_eyes]}
    for method in sorted(args.methods, key=lambda m: m in OPTIMIZERS):  # networks first: a cut run keeps them
        label = _label(method)
        is_opt = method in OPTIMIZERS
        stems = list(greys)[:n_opt] if is_opt else list(greys)
        if not stems:
            continue
        t = time.perf_counter()
        outputs: dict[str, np.ndarray] = {}
        modes: dict[str, str] = {}
        if method == "none":
            outputs = {s: greys[s] for s in stems}
            modes = {s: inputs[s]["mode"] for s in stems}
            seconds, wall = 0.0, None
        else:
            out = work / name / label
            cfg = PurifyConfig(method=method, style="rendered" if is_opt else None, pupil_shift=False,
                               iterations=args.iterations, write_workers=1)
            report = purify(src_opt if is_opt else src_all, out, config=cfg)
            wall = (time.perf_counter() - t) / max(1, report.done) if report.done else None
            # the records' own seconds: kept when a rerun on the same work folder skips what is done
            seconds = float(np.mean([r["seconds"] for r in report.records if r["status"] == "done"] or [0.0]))
            for r in report.records:
                if r["status"] == "done":
                    stem = Path(r["output"]).stem
                    outputs[stem] = _grey(out / r["output"])
                    modes[stem] = Image.open(out / r["output"]).mode
        out_labels = segment(torch.from_numpy(np.stack([outputs[s] for s in outputs]))[:, None], model=seg).numpy()
        moved, pure_moved, iris_ok, pupil_lost, on_iris = [], [], [], 0, []
        for s, lab in zip(outputs, out_labels):
            i = inputs[s]
            p = i["pupil"] if method == "none" else _pupil(outputs[s], i["mask"]) if i["mask"].any() else None
            if i["n_iris"] == 1:  # the output's pupil against the input's iris centre (pupils hidden in dark irises)
                on_iris.append(np.inf if p is None else _dist(p, i["iris"]))
            if i["pupil"] is not None:
                pupil_lost += p is None
                moved.append(np.inf if p is None else _dist(p, i["pupil"]))
            if name == "nir" and (i["pure_conf"] or 0) >= args.pure_confidence:
                q = i["pure"] if method == "none" else _pure(outputs[s])[0]
                pure_moved.append(np.inf if q is None else _dist(q, i["pure"]))
            if i["n_iris"] == 1:
                n, c = _irises(lab)
                iris_ok.append(n == 1 and _dist(c, i["iris"]) <= iris_tol)
        scored = [s for s in outputs if inputs[s]["scored"]]
        x = np.stack([features(outputs[s]) for s in scored]) if scored else None
        called = clf.predict(x) if scored else np.zeros(0)
        proba = clf.predict_proba(x)[:, 1] if scored else np.zeros(0)
        m = {"n": len(stems), "done": len(outputs),
             "pupil_moved_px": _stats([v for v in moved if np.isfinite(v)]),
             "pupil_within_target": round(float(np.mean(np.asarray(moved) <= pupil_tol)), 4) if moved else None,
             "pupil_measured": len(moved), "pupil_not_found_on_output": pupil_lost,
             "one_iris_in_place": round(float(np.mean(iris_ok)), 4) if iris_ok else None,
             "iris_measured": len(iris_ok),
             "pupil_to_input_iris_centre_px": _stats([v for v in on_iris if np.isfinite(v)]),
             "pupil_to_input_iris_centre_within_target": (round(float(np.mean(np.asarray(on_iris) <= pupil_tol)), 4)
                                                          if on_iris else None),
             "called_synthetic": round(float(np.mean(called)), 4) if len(called) else None,
             "classified": len(scored),
             "mean_p_synthetic": round(float(np.mean(proba)), 4) if len(proba) else None,
             "grey_kept": round(float(np.mean([modes[s] == inputs[s]["mode"] for s in outputs])), 4),
             "output_modes": sorted(set(modes.values())),
             "seconds_per_eye": round(seconds, 4),
             "wall_seconds_per_eye_this_call": None if wall is None else round(wall, 4)}
        if name == "nir":
            m["pure_moved_px"] = _stats([v for v in pure_moved if np.isfinite(v)])
            m["pure_within_target"] = (round(float(np.mean(np.asarray(pure_moved) <= pupil_tol)), 4)
                                       if pure_moved else None)
            m["pure_measured"] = len(pure_moved)
            m["pure_not_found_on_output"] = int(np.sum(~np.isfinite(pure_moved))) if pure_moved else 0
        entry["methods"][label] = m
        rows[label] = [outputs[s] for s in sheet_eyes if s in outputs]
        _log(f"{name}/{method}: {m}")
        write_sheet(name, rows, args.out / f"{args.name}-{name}-sheet.png")
        save()


def write_sheet(name: str, rows: dict[str, list[np.ndarray]], path: Path) -> None:
    from PIL import ImageDraw

    tile = (108, 180) if name == "mpiigaze" else (135, 180)
    cols = max(len(v) for v in rows.values())
    caption = (ATTRIBUTION[name] + "\nRows: the real input, then each method's output of the same eyes (masked-gatys "
               "purify, automatic masks by the shipped segmenter, style rendered)")
    grid = sheet([(k, [v * 255.0 for v in imgs]) for k, imgs in rows.items() if k != "none"], tile, cols, "")
    out = Image.new("L", (max(grid.width, 7 * max(len(line) for line in caption.splitlines())), grid.height + 36), 255)
    out.paste(grid, (0, 0))
    ImageDraw.Draw(out).multiline_text((4, grid.height + 4), caption, fill=0)
    out.save(path, optimize=True)


def table(result: dict[str, Any]) -> str:
    lines = ["| source | method | n | pupil moved, median px (ours) | within target (ours) | within target (PuRe) "
             "| pupil on input iris centre, within target | one iris in place | called synthetic | grey kept | s/eye |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in result["sources"].items():
        for method, m in e["methods"].items():
            pure = f"{m['pure_within_target']} (n {m['pure_measured']})" if "pure_within_target" in m else "-"
            lines.append(f"| {name} | {method} | {m['n']} | {m['pupil_moved_px'].get('median')} | "
                         f"{m['pupil_within_target']} | {pure} | {m['pupil_to_input_iris_centre_within_target']} | "
                         f"{m['one_iris_in_place']} | "
                         f"{m['called_synthetic']} (n {m['classified']}) | {m['grey_kept']} | {m['seconds_per_eye']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True, help="folder with mpiigaze/*.jpg and nir/*.png")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--name", default="real-eyes-cpu", help="the JSON's and sheets' name stem")
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), type=_method,
                    help=f"of {', '.join(METHODS)}, or a network checkpoint PATH.pt (a candidate: "
                         "reported under its file's stem)")
    ap.add_argument("--optimizer-n", type=int, nargs=2, default=[24, 6], metavar=("MPIIGAZE", "NIR"),
                    help="eyes the optimizers purify, per source (from the scoring half)")
    ap.add_argument("--network-n", type=int, default=None, help="eyes for none and the networks (default: all)")
    ap.add_argument("--iterations", type=int, default=PurifyConfig.iterations)
    ap.add_argument("--renders", type=int, nargs=2, default=[1000, 150], metavar=("MPIIGAZE", "NIR"),
                    help="clean renders the classifier trains on, per source")
    ap.add_argument("--pure-confidence", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    args.renders = dict(zip(SOURCES, args.renders))
    torch.set_num_threads(args.threads)
    seg = load_segmenter()
    result: dict[str, Any] = {
        "benchmark": "real_eyes",
        "machine": machine_metadata(packages=("scikit-learn", "cheshm", "scipy")),
        "segmenter": {k: v for k, v in (seg.identity or {}).items() if k in ("file", "sha256", "step")},
        "vgg_weights": Path(os.environ["MASKED_GATYS_WEIGHTS"]).name if os.environ.get("MASKED_GATYS_WEIGHTS")
        else None,
        "settings": {"optimizer_n": dict(zip(SOURCES, args.optimizer_n)), "network_n": args.network_n,
                     "methods": args.methods, "iterations": args.iterations, "seed": args.seed,
                     "renders": args.renders, "pure_confidence": args.pure_confidence, "style": "rendered"},
        "targets": {"pupil_px": {k: v[3] for k, v in SOURCES.items()}, "share": TARGET_SHARE},
        "sources": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"

    def save() -> None:
        path.write_text(json.dumps(result, indent=1) + "\n")

    work = args.work or Path(tempfile.mkdtemp(prefix="real-eyes-"))
    try:
        for name in args.sources:
            run_source(name, args.real, work, args, seg, result, save)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
