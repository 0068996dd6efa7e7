"""The pupil benchmark: how far each purification moves the pupil, and how much style it takes.

For every eye size, N held-out real-domain renders (``render_eye(domain="real")``,
seeds ``950000 + k``, gaze from a fixed generator: yaw +-25, pitch +-15
degrees) are purified after the synthetic style eye (``render_eye(yaw=0,
pitch=0, domain="synthetic", seed=0)`` with its mask, the shipped nets'
recipe) by each method, and scored:

- **pupil shift against the truth**: distance between
  ``eyes.pupil.pupil_center(output, mask)`` and the renderer's pupil centre;
- **pupil shift content to output**: ``eyes.pupil.pupil_shift(content, output,
  mask)`` (carries the detector's error on the real image, 0.3-0.5 px);
- both in px and in px per 55 px of eye width (the distance between the eye
  corners; the paper's eyes are about 55 px wide): mean, std, 95th percentile;
- **style distance**: the style terms (normalised, layer-weighted sum) of the
  output divided by those of the content image, under two fixed scorers: the
  paper's ``masked`` preset (per region) and ``gatys`` (whole image), both
  restricted to the layers the weights hold. Lower = more style taken;
- for the nets, **equivalent iterations**: the projected L-BFGS iteration at
  which the optimizer, run on the net's own training objective, first
  matches the net's objective on that eye (``masked_gatys.bench.equivalent_iterations``).

Methods: ``masked+parts``, ``masked+pool``, ``masked+pool+parts`` (what ``purify`` runs for
``masked`` with part labels, ``--style-pool`` or both: the pool is the gaze experiment's, the
first 1,000 synthetic renders of seed 0); optimizer presets by name (``gatys``, ``masked``, ``masked-eye``,
...: the names ``preset()`` knows, through ``stylize.prepare`` with
``max_layer="auto"`` and ``subject="auto"``; ``masked:general`` is ``masked``
with ``subject="general"``, the paper's objective), the experimental variants of
``VARIANTS`` below (the options docs/tuning.md reports), nets by name
(``johnson``, ``purifier``: the shipped checkpoints) or a checkpoint path.
Every optimizer method runs ``--iterations`` of ``plbfgs`` from the content
image on the whole batch of eyes at once (one history per eye).

    python benchmarks/pupil.py --weights VGG.pth --sizes 36x60,48x72,72x120 --eyes 50 \\
        --methods gatys,masked:general,masked,johnson,purifier --json out.json --sheet out.png

The method is in benchmarks/README.md ("The pupil benchmark").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from masked_gatys.bench import equivalent_iterations, machine_metadata
from masked_gatys.encoder import VGGEncoder, layer_names, resolve_weights
from masked_gatys.errors import MaskedGatysError
from masked_gatys.eyes import render_eye
from masked_gatys.eyes.pupil import pupil_center
from masked_gatys.masks import Regions
from masked_gatys.objective import Objective, ObjectiveConfig, Term, preset
from masked_gatys.optim import minimize
from masked_gatys.stylize import StylizeConfig, prepare

SEED0 = 950000
PAPER_EYE_WIDTH = 55.0
NETS = ("johnson", "purifier")


# ----------------------------------------------------------------------------- eyes

def held_out(size: tuple[int, int], count: int) -> list[Any]:
    """``count`` real-domain renders at ``size`` (the same eyes at every size)."""
    rng = np.random.default_rng(13)
    gazes = [(float(rng.uniform(-25, 25)), float(rng.uniform(-15, 15))) for _ in range(count)]
    return [render_eye(yaw=y, pitch=p, domain="real", size=size, seed=SEED0 + k)
            for k, (y, p) in enumerate(gazes)]


def style_eye(size: tuple[int, int]):
    return render_eye(yaw=0, pitch=0, domain="synthetic", size=size, seed=0)


def part_regions(labels: torch.Tensor, soft_attention: torch.Tensor) -> Regions:
    """Regions skin, sclera, iris, pupil (one-hot labels) and the soft attention mask."""
    onehot = torch.stack([(labels == k).float() for k in range(4)])  # (4, H, W) or (4, B, H, W)
    if onehot.dim() == 3:
        onehot = onehot[None]
    else:
        onehot = onehot.permute(1, 0, 2, 3)
    masks = torch.cat([onehot, soft_attention], dim=1)
    return Regions(masks, ("skin", "sclera", "iris", "pupil", "attention"))


# ----------------------------------------------------------------------------- variants

def _masked(max_layer: str, **changes: Any) -> ObjectiveConfig:
    return dataclasses.replace(preset("masked", max_layer=max_layer), **changes)


def _shallow(max_layer: str, layer: str) -> ObjectiveConfig:
    cfg = preset("masked", max_layer=max_layer)
    terms = tuple(dataclasses.replace(t, layer=layer) if t.kind == "content" and t.region == "attention" else t
                  for t in cfg.terms)
    return dataclasses.replace(cfg, terms=terms)


def _parts(max_layer: str, style_layers=("relu1_1", "relu2_1", "relu3_1")) -> ObjectiveConfig:
    cfg = preset("masked", max_layer=max_layer)
    content = [t for t in cfg.terms if t.kind == "content"]
    style = [Term("style", layer, region, 1.0 / len(style_layers))
             for region in ("skin", "sclera", "iris", "pupil") for layer in style_layers]
    return dataclasses.replace(cfg, terms=tuple(content + style))


#: name -> (objective factory (max_layer) -> ObjectiveConfig, regions: True = the renderer's part
#: labels, "detector" = eyes.parts.eye_regions (the pupil found in the image), False = binary)
VARIANTS: dict[str, tuple[Callable[[str], ObjectiveConfig], bool]] = {
    "masked+geometry10": (lambda L: _masked(L, geometry_weight=10.0), False),
    "masked+geometry100": (lambda L: _masked(L, geometry_weight=100.0), False),
    "masked+geometry1000": (lambda L: _masked(L, geometry_weight=1000.0), False),
    "masked+geometry10000": (lambda L: _masked(L, geometry_weight=10000.0), False),
    "masked+content-attention-relu2_2": (lambda L: _shallow(L, "relu2_2"), False),
    "masked+content-attention-relu1_2": (lambda L: _shallow(L, "relu1_2"), False),
    "parts": (lambda L: _parts(L), True),
    "parts+geometry100": (lambda L: dataclasses.replace(_parts(L), geometry_weight=100.0), True),
    "masked-eye+tv10": (lambda L: preset("masked-eye", max_layer=L, tv_weight=10.0), "detector"),
    "masked-eye+tv100": (lambda L: preset("masked-eye", max_layer=L, tv_weight=100.0), "detector"),
    "masked-eye+geometry100": (lambda L: preset("masked-eye", max_layer=L, geometry_weight=100.0), "detector"),
}


# ----------------------------------------------------------------------------- matched styles

MATCH_YAWS = (-20.0, -10.0, 0.0, 10.0, 20.0)
MATCH_PITCHES = (-10.0, 0.0, 10.0)
MATCH_PUPILS = (0.3, 0.4, 0.5)


def _eye_features(image: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """What a real image and its attention mask tell: the iris's place and the pupil's relative size.

    (centroid x / W, centroid y / H of the mask; sqrt of the dark blob's second
    moment over the mask's, about pupil radius / iris radius.)
    """
    from masked_gatys import functional as Fn
    from masked_gatys.objective import _dark_levels

    h, w = image.shape[-2:]
    m_mom = Fn.blob_moments(mask)[0]
    t, s = _dark_levels(image, mask)
    d_mom = Fn.blob_moments(Fn.darkness(image, t, s) * mask)[0]
    ratio = math.sqrt(float(d_mom[2] + d_mom[3]) / max(float(m_mom[2] + m_mom[3]), 1e-6))
    return np.array([float(m_mom[0]) / w, float(m_mom[1]) / h, ratio])


def style_set(size: tuple[int, int]) -> list[Any]:
    """The synthetic style eye (seed 0) at a grid of gazes and pupil sizes."""
    return [render_eye(yaw=y, pitch=p, domain="synthetic", size=size, seed=0, pupil_ratio=r)
            for y in MATCH_YAWS for p in MATCH_PITCHES for r in MATCH_PUPILS]


def match_styles(eyes: list[Any], styles: list[Any]) -> list[int]:
    """For each content eye, the index of the style eye nearest in (place, pupil size)."""
    feats = np.stack([_eye_features(s.image, s.mask) for s in styles])
    scale = np.array([0.05, 0.05, 0.05])
    return [int(np.argmin((np.abs(feats - _eye_features(e.image, e.mask)) / scale).sum(axis=1))) for e in eyes]


# ----------------------------------------------------------------------------- shipped eye paths

#: name -> (style eye per eye from a pool, skin and sclera apart from the part labels)
SHIPPED_EYE_PATHS = {"masked+parts": (False, True), "masked+pool": (True, False), "masked+pool+parts": (True, True)}
POOL_EYES = 1000
_POOLS: dict[tuple[int, int], Any] = {}


def pool_for(size: tuple[int, int]):
    """The gaze experiment's default pool: the first 1,000 synthetic training renders (seed 0)."""
    if size not in _POOLS:
        from masked_gatys.eyes.datasets import render_set
        from masked_gatys.eyes.styles import StylePool

        _POOLS[size] = StylePool.from_gaze_set(render_set(POOL_EYES, size=size, seed=0))
    return _POOLS[size]


# ----------------------------------------------------------------------------- running

def _run_plbfgs(objective: Objective, x0: torch.Tensor, iterations: int) -> tuple[torch.Tensor, list[list[float]]]:
    """plbfgs from ``x0``; the per-eye objective after every iteration (curve[0]: the start)."""
    with torch.no_grad():
        start = objective(x0).total.tolist()
    curve = [start]
    last: dict[str, Any] = {}

    def fun(x):
        value = objective(x)
        last["total"] = value.total.detach()
        return value.total

    def on_iteration(info) -> bool:
        curve.append(info.fun.detach().tolist() if info.fun is not None else last["total"].tolist())
        return False

    torch.manual_seed(0)
    result = minimize(fun, x0.clone(), method="plbfgs", max_iter=iterations, callback=on_iteration)
    return result.x.detach().clamp(0, 1), curve


def _style_sum(value, config: ObjectiveConfig) -> torch.Tensor:
    total = 0.0
    for term in config.terms:
        if term.kind == "style":
            total = total + term.weight * value.terms[term.name]
    return total


def _eye_width(truth: dict[str, Any]) -> float:
    (x0, y0), (x1, y1) = truth["corners"]["left"], truth["corners"]["right"]
    return math.hypot(x1 - x0, y1 - y0)


def _stats(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "p95": None, "n": 0, "missing": len(values)}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "p95": float(np.percentile(vals, 95)), "n": len(vals), "missing": len(values) - len(vals)}


def _centre(image: torch.Tensor, mask: torch.Tensor) -> tuple[float, float] | None:
    try:
        return pupil_center(image, mask)
    except MaskedGatysError:
        return None


def score(outputs: torch.Tensor, eyes: list[Any], content_centres: list, scorers: dict) -> dict[str, Any]:
    truth_px, truth_55, c2o_px, c2o_55 = [], [], [], []
    for k, eye in enumerate(eyes):
        width = _eye_width(eye.truth)
        got = _centre(outputs[k:k + 1], eye.mask)
        tx, ty = eye.truth["pupil_center"]
        d_truth = math.hypot(got[0] - tx, got[1] - ty) if got else None
        cc = content_centres[k]
        d_c2o = math.hypot(got[0] - cc[0], got[1] - cc[1]) if got and cc else None
        truth_px.append(d_truth)
        truth_55.append(d_truth * PAPER_EYE_WIDTH / width if d_truth is not None else None)
        c2o_px.append(d_c2o)
        c2o_55.append(d_c2o * PAPER_EYE_WIDTH / width if d_c2o is not None else None)
    style = {}
    with torch.no_grad():
        for name, (objective, content_style) in scorers.items():
            ratio = (_style_sum(objective(outputs), objective.config) / content_style).tolist()
            style[name] = {"per_eye": ratio, **_stats(ratio)}
    return {
        "shift_truth_px": {"per_eye": truth_px, **_stats(truth_px)},
        "shift_truth_per55": _stats(truth_55),
        "shift_content_px": {"per_eye": c2o_px, **_stats(c2o_px)},
        "shift_content_per55": _stats(c2o_55),
        "style_ratio": style,
    }


def _comparable(model, encoder, record: dict[str, Any]) -> bool:
    """Whether a net's objective can be evaluated with this loss network (else the reason is recorded)."""
    from masked_gatys.errors import CheckpointError
    from masked_gatys.train import check_compatible

    try:
        check_compatible(model, model.checkpoint["objective"], encoder.identity)
    except CheckpointError as exc:
        record["equivalent_iterations"] = {"skipped": str(exc)}
        return False
    return True


def _stored_curves(paths: list[Path], size: tuple[int, int], eyes: int) -> dict[str, list]:
    """{objective config (JSON): curve} from earlier records of the same eyes and size."""
    out: dict[str, list] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for block in data["sizes"]:
            if tuple(block["size"]) != tuple(size) or block["eyes"] != eyes:
                continue
            for record in block["methods"].values():
                if record.get("curve") and record.get("objective_config"):
                    out.setdefault(json.dumps(record["objective_config"], sort_keys=True), record["curve"])
    return out


def run_size(size, args, weights, methods, progress, checkpoint=None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    eyes = held_out(size, args.eyes)
    style = style_eye(size)
    content = torch.cat([e.image for e in eyes])
    masks = torch.cat([e.mask for e in eyes])
    labels = torch.stack([e.labels for e in eyes])
    base = StylizeConfig(weights=args.weights, max_layer="auto", device="cpu", iterations=args.iterations)

    order = layer_names()
    max_layer = [n for n in order[: order.index(weights.deepest) + 1] if n.startswith("relu")][-1]
    layers = [n for n in order[: order.index(max_layer) + 1] if n.startswith("relu")]
    encoder = VGGEncoder(layers, weights)
    # Fixed scorers for the style distance: the paper's masked preset (per region) and gatys
    scorers = {}
    for name, regions, style_regions in (
            ("masked-paper", Regions.from_binary(masks), Regions.from_binary(style.mask)), ("gatys", None, None)):
        objective = Objective(encoder, preset(name.replace("-paper", ""), max_layer=max_layer), style=style.image,
                              style_regions=style_regions)
        objective.set_content(content, regions)
        with torch.no_grad():
            scorers[name] = (objective, _style_sum(objective(content), objective.config))

    content_centres = [_centre(e.image, e.mask) for e in eyes]
    records: dict[str, Any] = {"content": score(content, eyes, content_centres, scorers)}
    outputs: dict[str, torch.Tensor] = {"content": content}
    curves: dict[str, list] = {}
    stored_curves = _stored_curves(args.curves, size, len(eyes))
    block = {"size": list(size), "eyes": len(eyes), "methods": records,
             "eye_width_px": _stats([_eye_width(e.truth) for e in eyes])}
    for method in methods:
        t0 = time.perf_counter()
        record: dict[str, Any] = {"method": Path(method).name if method.endswith(".pt") else method}
        if method in NETS or method.endswith(".pt"):
            from masked_gatys.train import apply_model, load_model, shipped_checkpoint

            path = shipped_checkpoint(method) if method in NETS else Path(method)
            model = load_model(path)
            with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = apply_model(model, content, masks)
            record["notices"] = sorted({str(w.message) for w in caught})
            record["kind"] = "net"
            record["checkpoint"] = {"file": Path(path).name, "step": model.checkpoint.get("step"),
                                    "trained_sizes": model.checkpoint.get("trained_sizes")}
            net_cfg = ObjectiveConfig.from_dict(model.checkpoint["objective"])
            record["objective_preset"] = net_cfg.preset
            if args.equivalent and _comparable(model, encoder, record):
                # the net's own training objective on these eyes: its style eye (or each eye's
                # nearest pool eye) and, where it was trained on them, the renderer's part labels
                from masked_gatys.train import training_objective

                trained = model.checkpoint.get("train_config") or {}
                key = json.dumps(net_cfg.to_dict(), sort_keys=True)
                if trained.get("style_pool"):
                    key += json.dumps({k: trained.get(k) for k in ("style_pool", "seed")})
                if key not in curves:
                    objective = training_objective(model, content, masks, parts=labels, encoder=encoder)
                    if key in stored_curves:  # a curve recorded by an earlier run
                        curves[key] = (objective, stored_curves[key])
                    else:
                        _, curve = _run_plbfgs(objective, content, args.equivalent)
                        curves[key] = (objective, curve)
                objective, curve = curves[key]
                with torch.no_grad():
                    level = objective(out).total.tolist()
                eq = [equivalent_iterations([row[k] for row in curve], level[k]) for k in range(len(eyes))]
                record["objective"] = level
                record["equivalent_iterations"] = {"per_eye": eq, "iterations_run": args.equivalent,
                                                   **_stats([e if e is not None else float(args.equivalent)
                                                             for e in eq]),
                                                   "not_reached": sum(e is None for e in eq)}
        elif method in SHIPPED_EYE_PATHS:
            # what purify runs for masked with part labels and/or a style pool (stylize's own path)
            from masked_gatys.eyes.parts import parts_from_labels

            record["kind"] = "optimizer"
            use_pool, use_parts = SHIPPED_EYE_PATHS[method]
            st_images, st_masks, st_parts = style.image, style.mask, style.labels[None]
            if use_pool:
                pool = pool_for(size)
                st_images, st_masks, st_parts = pool.styles_for(content, size)
                record["pool"] = {"eyes": len(pool), "fingerprint": pool.fingerprint[:16]}
            regions = parts_from_labels(labels) if use_parts else masks
            style_regions = parts_from_labels(st_parts) if use_parts else st_masks
            problem = prepare(content, st_images, mask=regions, style_mask=style_regions, encoder=encoder,
                              config=dataclasses.replace(base, preset="masked"))
            objective, cfg = problem.objective, problem.objective_config
            out, curve = _run_plbfgs(objective, content, args.iterations)
            record["objective_config"] = cfg.to_dict()
            record["objective_final"] = curve[-1]
        elif method.endswith("+matched-style"):
            record["kind"] = "optimizer"
            base_name = method[: -len("+matched-style")]
            cfg = VARIANTS[base_name][0](max_layer) if base_name in VARIANTS else preset(base_name, max_layer=max_layer)
            styles = style_set(size)
            chosen = match_styles(eyes, styles)
            out = content.clone()
            for index in sorted(set(chosen)):
                group = [k for k, c in enumerate(chosen) if c == index]
                objective = Objective(encoder, cfg, style=styles[index].image,
                                      style_regions=Regions.from_binary(styles[index].mask))
                objective.set_content(content[group], Regions.from_binary(masks[group]))
                out[group], _ = _run_plbfgs(objective, content[group], args.iterations)
            record["objective_config"] = cfg.to_dict()
            record["styles"] = [styles[c].truth["gaze"] | {"pupil_ratio": styles[c].truth["geometry"]["pupil_ratio"]}
                                for c in chosen]
        else:
            record["kind"] = "optimizer"
            if method in VARIANTS:
                factory, needs_parts = VARIANTS[method]
                cfg = factory(max_layer)
                if needs_parts == "detector":
                    from masked_gatys.eyes.parts import eye_regions

                    regions, style_regions = eye_regions(content, masks), eye_regions(style.image, style.mask)
                elif needs_parts:
                    regions = part_regions(labels, masks)
                    style_regions = part_regions(style.labels, style.mask)
                else:
                    regions, style_regions = Regions.from_binary(masks), Regions.from_binary(style.mask)
                objective = Objective(encoder, cfg, style=style.image, style_regions=style_regions)
                objective.set_content(content, regions)
            else:  # a preset through stylize's own path; "NAME:SUBJECT" sets the subject
                name, _, subject = method.partition(":")
                problem = prepare(content, style.image, mask=masks, style_mask=style.mask, encoder=encoder,
                                  config=dataclasses.replace(base, preset=name, subject=subject or "auto"))
                objective, cfg = problem.objective, problem.objective_config
            out, curve = _run_plbfgs(objective, content, args.iterations)
            curves.setdefault(json.dumps(cfg.to_dict(), sort_keys=True), (objective, curve))
            record["objective_config"] = cfg.to_dict()
            record["objective_final"] = curve[-1]
            record["curve"] = curve  # per iteration, per eye
        record["seconds"] = time.perf_counter() - t0
        record.update(score(out, eyes, content_centres, scorers))
        label = Path(method).stem if method.endswith(".pt") else method
        records[label] = record
        outputs[label] = out
        progress(size, method, record)
        if checkpoint is not None:
            checkpoint(block)  # the record so far, after every method
    return block, outputs


def _fmt(stat: dict[str, Any], key: str = "mean") -> str:
    v = stat.get(key)
    return "-" if v is None else f"{v:.2f}"


def table(result: dict[str, Any]) -> str:
    lines = []
    for block in result["sizes"]:
        h, w = block["size"]
        lines.append(f"\n{h}x{w}, {block['eyes']} eyes (eye width {block['eye_width_px']['mean']:.1f} px)")
        lines.append(f"{'method':42s} {'truth px':>15s} {'p95':>5s} {'/55px':>6s} {'content px':>15s} "
                     f"{'/55px':>6s} {'style m':>7s} {'style g':>7s} {'eq.it':>6s}")
        for name, r in block["methods"].items():
            t, c = r["shift_truth_px"], r["shift_content_px"]
            eq = r.get("equivalent_iterations")
            lines.append(
                f"{name:42s} {_fmt(t):>7s} +- {_fmt(t, 'std'):>4s} {_fmt(t, 'p95'):>5s} "
                f"{_fmt(r['shift_truth_per55']):>6s} {_fmt(c):>7s} +- {_fmt(c, 'std'):>4s} "
                f"{_fmt(r['shift_content_per55']):>6s} {_fmt(r['style_ratio']['masked-paper']):>7s} "
                f"{_fmt(r['style_ratio']['gatys']):>7s} {_fmt(eq) if eq else '':>6s}")
    return "\n".join(lines)


def write_sheet(outputs_by_size: dict, path: Path, shown: int) -> None:
    from masked_gatys.sheet import Column, compose_sheet, save_sheet

    columns = []
    for size, outputs in outputs_by_size.items():
        for name, out in outputs.items():
            columns.append(Column(f"{name} {size[0]}x{size[1]}", [out[k:k + 1] for k in range(min(shown, len(out)))]))
    save_sheet(compose_sheet(columns, title="pupil benchmark: held-out real renders"), path)


def merge(paths: list[Path]) -> dict[str, Any]:
    """One record from several runs on the same eyes: size blocks joined, methods in run order,
    per-iteration curves dropped (they are for --equivalent, not for reading)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    blocks: dict[tuple[int, int, int], dict[str, Any]] = {}
    for run in runs:
        for block in run["sizes"]:
            key = (block["size"][0], block["size"][1], block["eyes"])
            target = blocks.setdefault(key, dict(block, methods={}))
            for name, record in block["methods"].items():
                target["methods"].setdefault(name, {k: v for k, v in record.items() if k != "curve"})
    return {"metadata": {"merged_from": [dict(r["metadata"], file=Path(p).name) for r, p in zip(runs, paths)]},
            "sizes": list(blocks.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=os.environ.get("MASKED_GATYS_WEIGHTS"),
                        help="loss-network weights (default $MASKED_GATYS_WEIGHTS)")
    parser.add_argument("--sizes", default="36x60,48x72,72x120")
    parser.add_argument("--eyes", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--methods", default="gatys,masked:general,masked,johnson,purifier")
    parser.add_argument("--equivalent", type=int, default=0,
                        help="run plbfgs this many iterations on each net's objective (0: skip)")
    parser.add_argument("--curves", type=Path, action="append", default=[],
                        help="reuse the optimizer curves recorded in this JSON (same eyes) for --equivalent")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sheet", type=Path)
    parser.add_argument("--sheet-eyes", type=int, default=4)
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these records into --json and print the table")
    args = parser.parse_args(argv)
    if args.merge:
        from masked_gatys.files import write_json_atomic

        result = merge(args.merge)
        print(table(result))
        if args.json:
            write_json_atomic(result, args.json)
        return 0
    if not args.weights:
        parser.error("give --weights or set $MASKED_GATYS_WEIGHTS (the ImageNet VGG-19)")
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    weights = resolve_weights(args.weights)
    metadata = machine_metadata("cpu")
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, list) else (Path(v).name if isinstance(v, Path) else v)

    config = {k: plain(v) for k, v in vars(args).items() if k != "weights"}
    config["methods"] = ",".join(Path(m).name if m.endswith(".pt") else m for m in methods)  # no local paths
    metadata.update({"benchmark": "pupil", "config": config,
                     "weights": weights.identity.to_dict(), "load_start": os.getloadavg()})

    def progress(size, method, record):
        t = record["shift_truth_px"]
        print(f"{size[0]}x{size[1]} {method}: truth {_fmt(t)} px, style {_fmt(record['style_ratio']['masked-paper'])}"
              f", {record['seconds']:.0f} s", file=sys.stderr, flush=True)

    from masked_gatys.files import write_json_atomic

    blocks, outputs_by_size = [], {}
    result = {"metadata": metadata, "sizes": blocks}

    def checkpoint(block):
        metadata["load_end"] = os.getloadavg()
        if args.json:
            write_json_atomic({"metadata": metadata, "sizes": blocks + [block]}, args.json)

    for size in sizes:
        block, outputs = run_size(size, args, weights, methods, progress, checkpoint)
        blocks.append(block)
        outputs_by_size[size] = outputs
    metadata["load_end"] = os.getloadavg()
    print(table(result))
    if args.json:
        write_json_atomic(result, args.json)
    if args.sheet:
        write_sheet(outputs_by_size, args.sheet, args.sheet_eyes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
