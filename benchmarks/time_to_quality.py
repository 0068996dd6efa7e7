"""Time to quality: how soon each way of running ``stylize`` reaches a given objective.

The reference level of a problem is the objective that 400 single-scale iterations of torch's
L-BFGS, clamped to [0, 1] after each step (``optimizer="lbfgs"``, the paper's baseline), reach.
Every other variant runs on the same problem (same content, style, masks, weights, objective
terms and weights) and records, after every iteration, the seconds since the call of
``stylize`` and the objective of the working image; its **time to quality** is the first time
at which that objective is at or below the reference level, at full size (a coarse-to-fine run
counts only its last scale's values, but its clock includes the coarse scales). The method and
the recorded results: benchmarks/README.md, ``results/time-to-quality-*.json``.

Only the public API is used (``masked_gatys.stylize.stylize`` / ``prepare``,
``masked_gatys.eyes.render_eye``, ``masked_gatys.bench.held_out_eyes``,
``masked_gatys.sheet``). Runs are single-threaded unless ``--threads`` says otherwise; both the
wall-clock seconds and the process's CPU seconds are recorded (on a shared machine the CPU
seconds of a single-threaded run are the steadier figure). Each finished run is written to the
JSON at once (atomically), so an interrupted benchmark resumes with ``--resume``.

Examples::

    python benchmarks/time_to_quality.py --sizes 64 --presets gatys --variants lbfgs,plbfgs \\
        --baseline-iterations 10 --weights random --json out.json      # a smoke test
    MASKED_GATYS_WEIGHTS=vgg19.pth python benchmarks/time_to_quality.py --sizes 256 \\
        --json benchmarks/results/time-to-quality-cpu.json --images scratch/ttq --resume
    python benchmarks/time_to_quality.py --report-only --json benchmarks/results/time-to-quality-cpu.json \\
        --sheet benchmarks/results/time-to-quality-cpu.png --images scratch/ttq
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from masked_gatys.bench import held_out_eyes
from masked_gatys.files import sha256_file, write_json_atomic
from masked_gatys.stylize import StylizeConfig, prepare, stylize

ROOT = Path(__file__).resolve().parent.parent

#: name -> (StylizeConfig changes, whether the run stops once it reaches the reference level)
VARIANTS: dict[str, tuple[dict[str, Any], bool]] = {
    # the paper's baseline: torch L-BFGS clamped after each step, one scale, no early stop
    "lbfgs": ({"optimizer": "lbfgs", "scales": 1, "stop_tol": 0.0}, False),
    # projected L-BFGS at one scale
    "plbfgs": ({"optimizer": "plbfgs", "scales": 1, "stop_tol": 0.0}, True),
    "plbfgs-h20": ({"optimizer": "plbfgs", "scales": 1, "stop_tol": 0.0, "history_size": 20}, True),
    # projected L-BFGS coarse-to-fine: 2 and 3 scales from 128 px, the budget split equally
    # (stylize's default split until the fourth session of 2026-12-02; "equal_split" is this script's, not a setting)
    "c2f-2": ({"optimizer": "plbfgs", "scales": 2, "min_size": 128, "stop_tol": 0.0, "equal_split": 2}, True),
    "c2f-3": ({"optimizer": "plbfgs", "scales": 3, "min_size": 128, "stop_tol": 0.0, "equal_split": 3}, True),
    # what a user gets: stylize's defaults (iterations, scales, stopping rule) as they are; it
    # stops at the level too (its time to the level is what is measured, and the rest of a
    # 512 px run would cost as much as the variants before it)
    "default": ({}, True),
    # the default's coarse passes with a longer last pass (100 + 100 + 400 at 512 px): does
    # more time at full size take coarse-to-fine to the baseline's level?
    "c2f-long-last": ({"scale_iterations": (100, 100, 400), "stop_tol": 0.0}, True),
}
_NEUTRAL = {"scales": 1, "stop_tol": 0.0}
DEFAULT_VARIANTS = ("lbfgs", "plbfgs", "c2f-2", "default")


def problem(size: int, preset: str) -> dict[str, torch.Tensor | None]:
    """The benchmark problem: the first held-out real eye and the synthetic style eye, square."""
    from masked_gatys.eyes import render_eye

    (content, mask, _info), = held_out_eyes((size, size), 1)
    style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(size, size), seed=0)
    masked = preset != "gatys"
    return {"content": content, "style": style.image.float(),
            "mask": mask if masked else None, "style_mask": style.mask.float() if masked else None}


def _commit() -> dict[str, Any] | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "masked_gatys"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"sha": sha, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):  # an exported tree (git archive) says its commit
        sha = os.environ.get("BENCH_COMMIT")
        return {"sha": sha, "dirty": None} if sha else None


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "baseline_iterations": args.baseline_iterations, "iterations": args.iterations,
            "problem": "held_out_eyes((size, size), 1)[0] (real eye, seed 900000) after "
                       "render_eye(yaw=0, pitch=0, domain='synthetic', seed=0), square crops",
            "max_layer": args.max_layer, "device": args.device,
            "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor()}


def _config(variant: str, preset: str, args: argparse.Namespace) -> StylizeConfig | None:
    changes, _ = VARIANTS[variant]
    changes = dict(changes)
    n_equal = changes.pop("equal_split", None)
    if n_equal:
        share = args.iterations // n_equal
        changes["scale_iterations"] = (share,) * (n_equal - 1) + (args.iterations - share * (n_equal - 1),)
    fields = {f.name for f in dataclasses.fields(StylizeConfig)}
    # a version of stylize without these options behaves as these values say
    changes = {k: v for k, v in changes.items() if k in fields or _NEUTRAL.get(k, object()) != v}
    if not set(changes) <= fields:
        return None
    base: dict[str, Any] = dict(preset=preset, weights=args.weights, max_layer=args.max_layer,
                                device=args.device)
    if "subject" in fields:  # the plain presets, as the records were made (no eye-part objective)
        base["subject"] = "general"
    if variant != "default":
        base["iterations"] = args.baseline_iterations if variant == "lbfgs" else args.iterations
    base.update(changes)
    return StylizeConfig(**base)


def run_one(size: int, preset: str, variant: str, target: float | None, args: argparse.Namespace,
            encoder: Any, checkpoint: Any = None) -> dict[str, Any] | None:
    """One run: its curve (iteration, scale, wall s, CPU s, objective) and the final image.

    ``checkpoint(curve)`` is called every 20 iterations, so a run cut short leaves its curve.
    """
    cfg = _config(variant, preset, args)
    if cfg is None:
        return None
    stops_at_target = VARIANTS[variant][1] and target is not None
    data = problem(size, preset)
    curve: list[list[float]] = []
    start = {"wall": 0.0, "cpu": 0.0}

    def on_progress(p: Any) -> bool:
        wall, cpu = time.perf_counter() - start["wall"], time.process_time() - start["cpu"]
        scale = getattr(p, "scale", 0)
        last = getattr(p, "n_scales", 1) - 1
        curve.append([p.iteration, scale, round(wall, 4), round(cpu, 4), p.total])
        if checkpoint is not None and len(curve) % 20 == 0:
            checkpoint(curve)
        return bool(stops_at_target and scale == last and p.total <= target)

    load_before = os.getloadavg()
    start["wall"], start["cpu"] = time.perf_counter(), time.process_time()
    result = stylize(data["content"], data["style"], mask=data["mask"], style_mask=data["style_mask"],
                     config=cfg, callback=on_progress, encoder=encoder)
    wall, cpu = time.perf_counter() - start["wall"], time.process_time() - start["cpu"]
    image_path = None
    if args.images:
        from masked_gatys.image import save_image

        image_path = Path(args.images) / f"{preset}-{size}-{variant}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        save_image(result.image, image_path)
    return {"size": size, "preset": preset, "variant": variant, "config": _scrub(cfg.to_dict()),
            "objective_config": result.objective.to_dict(), "curve": curve, "final": result.total,
            "n_iter": result.n_iter, "n_eval": result.n_eval, "stop_reason": result.stop_reason,
            "wall_seconds": wall, "cpu_seconds": cpu, "stopped_at_target": stops_at_target,
            "load_before": load_before, "load_after": os.getloadavg(), "commit": _commit(),
            "image": image_path.name if image_path else None}


def _scrub(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the weights file named, not placed (no local paths in the records)."""
    weights = config.get("weights")
    if weights not in (None, "random", "imagenet"):
        config = {**config, "weights": Path(weights).name}
    return config


def time_to_reach(record: dict[str, Any], level: float, clock: str = "cpu") -> float | None:
    """First time (``clock``: "cpu" or "wall" seconds) at which the run's last-scale objective <= level.

    >>> rec = {"curve": [[1, 0, 1.0, 0.9, 5.0], [1, 1, 2.0, 1.8, 3.0], [2, 1, 3.0, 2.7, 1.0]]}
    >>> time_to_reach(rec, 3.0), time_to_reach(rec, 0.5, "wall")
    (1.8, None)
    """
    curve = record["curve"]
    if not curve:
        return None
    last = max(row[1] for row in curve)
    column = 3 if clock == "cpu" else 2
    for row in curve:
        if row[1] == last and row[4] <= level:
            return row[column]
    return None


def _bases(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The baseline of each problem: a finished lbfgs run, else its partial curve so far."""
    bases = []
    for key, rec in sorted(data.get("runs", {}).items()):
        if rec["variant"] == "lbfgs":
            bases.append({"size": rec["size"], "preset": rec["preset"], "level": rec["final"],
                          "cpu": rec["cpu_seconds"], "wall": rec["wall_seconds"], "iterations": rec["n_iter"],
                          "complete": True})
    done = {(b["size"], b["preset"]) for b in bases}
    for key, part in sorted(data.get("partial", {}).items()):
        preset, size, variant = key.split("-", 2)
        if variant == "lbfgs" and (int(size), preset) not in done and part["curve"]:
            curve = part["curve"]
            bases.append({"size": int(size), "preset": preset, "level": min(r[4] for r in curve),
                          "cpu": curve[-1][3], "wall": curve[-1][2], "iterations": len(curve), "complete": False})
    return bases


def summarize(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (size, preset): the reference level and each variant's time to it, as a fraction.

    Where the baseline did not finish, the level is that of the iterations it ran
    (``reference_iterations``, ``reference_complete: false``).
    """
    rows = []
    runs = list(data.get("runs", {}).values())
    runs += [{"variant": k.split("-", 2)[2], "size": int(k.split("-", 2)[1]), "preset": k.split("-", 2)[0],
              "curve": p["curve"], "final": min(r[4] for r in p["curve"]), "cpu_seconds": p["curve"][-1][3],
              "n_iter": len(p["curve"]), "stop_reason": "unfinished"}
             for k, p in data.get("partial", {}).items() if p["curve"] and k not in data.get("runs", {})]
    for base in _bases(data):
        for other in sorted(runs, key=lambda r: r["variant"]):
            if (other["size"], other["preset"]) != (base["size"], base["preset"]):
                continue
            cpu, wall = time_to_reach(other, base["level"], "cpu"), time_to_reach(other, base["level"], "wall")
            rows.append({"size": base["size"], "preset": base["preset"], "variant": other["variant"],
                         "reference_level": base["level"], "reference_iterations": base["iterations"],
                         "reference_complete": base["complete"], "final": other["final"],
                         "cpu_seconds_to_level": cpu, "wall_seconds_to_level": wall,
                         "fraction_of_baseline_cpu": None if cpu is None else cpu / base["cpu"],
                         "fraction_of_baseline_wall": None if wall is None else wall / base["wall"],
                         "total_cpu_seconds": other["cpu_seconds"], "n_iter": other["n_iter"],
                         "stop_reason": other["stop_reason"]})
    return rows


def format_summary(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'size':>5} {'preset':8} {'variant':11} {'ref its':>7} {'to level (cpu s)':>16} {'fraction':>9} "
             f"{'final':>10} {'iters':>6} stop"]
    for r in rows:
        cpu = "never" if r["cpu_seconds_to_level"] is None else f"{r['cpu_seconds_to_level']:.1f}"
        frac = "-" if r["fraction_of_baseline_cpu"] is None else f"{r['fraction_of_baseline_cpu']:.1%}"
        ref = f"{r['reference_iterations']}{'' if r['reference_complete'] else '*'}"
        lines.append(f"{r['size']:>5} {r['preset']:8} {r['variant']:11} {ref:>7} {cpu:>16} {frac:>9} "
                     f"{r['final']:>10.4g} {r['n_iter']:>6} {r['stop_reason']}")
    return "\n".join(lines)


def write_sheet(runs: dict[str, dict[str, Any]], images: Path, path: Path) -> None:
    """One row per (size, preset): the content, the style and each variant's final image."""
    from masked_gatys.image import load_image
    from masked_gatys.sheet import Column, compose_sheet, save_sheet

    problems = sorted({(r["size"], r["preset"]) for r in runs.values()})
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs.values())]
    columns = [Column("content", [problem(s, p)["content"] for s, p in problems],
                      [f"{p} {s} px" for s, p in problems]),
               Column("style", [problem(s, p)["style"] for s, p in problems])]
    for v in variants:
        cells, captions = [], []
        for s, p in problems:
            rec = runs.get(f"{p}-{s}-{v}")
            file = images / rec["image"] if rec and rec.get("image") else None
            cells.append(load_image(file) if file is not None and file.exists() else None)
            captions.append("" if rec is None else f"{rec['final']:.4g}\n{rec['cpu_seconds']:.0f} cpu s")
        columns.append(Column(v, cells, captions))
    save_sheet(compose_sheet(columns, title="time to quality: final images (objective, CPU seconds)",
                             min_width=160), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256", help="comma-separated square sizes (px)")
    parser.add_argument("--presets", default="gatys,masked")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}; lbfgs first (it sets the level)")
    parser.add_argument("--weights", default=os.environ.get("MASKED_GATYS_WEIGHTS"),
                        help="weights file (default $MASKED_GATYS_WEIGHTS), or random")
    parser.add_argument("--max-layer", default="auto")
    parser.add_argument("--baseline-iterations", type=int, default=400)
    parser.add_argument("--iterations", type=int, default=400, help="budget of the other variants")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda (on cuda compare the wall-clock fractions: the summary has both)")
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--images", type=Path, help="folder for the final images (not committed)")
    parser.add_argument("--sheet", type=Path, help="write a sheet of the final images")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --json")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="with --report-only: add the runs (and partial curves) of these JSON files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.weights is None and not args.report_only:
        parser.error("give --weights (a file or random) or set $MASKED_GATYS_WEIGHTS")

    data: dict[str, Any] = {"metadata": {}, "runs": {}}
    if (args.resume or args.report_only) and args.json.exists():
        data = json.loads(args.json.read_text())
    if not args.report_only:
        meta = metadata(args)
        if args.weights != "random":
            meta["weights"] = {"name": Path(args.weights).name, "sha256": sha256_file(args.weights)}
        else:
            meta["weights"] = {"name": "random(seed=0)"}
        data["metadata"] = {**data.get("metadata", {}), **meta}
        for size in (int(s) for s in args.sizes.split(",")):
            for preset in args.presets.split(","):
                encoder = None
                for variant in args.variants.split(","):
                    key = f"{preset}-{size}-{variant}"
                    if key in data["runs"]:
                        continue
                    if encoder is None:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            cfg = StylizeConfig(preset=preset, weights=args.weights, max_layer=args.max_layer,
                                                device=args.device, iterations=0)
                            encoder = prepare(**problem(size, preset), config=cfg).encoder
                    base = data["runs"].get(f"{preset}-{size}-lbfgs")
                    target = base["final"] if base else None
                    print(f"{key}: running (level {target})", file=sys.stderr, flush=True)
                    def checkpoint(curve: list, key: str = key) -> None:
                        data.setdefault("partial", {})[key] = {"curve": curve, "load": os.getloadavg()}
                        write_json_atomic(data, args.json)

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        record = run_one(size, preset, variant, target, args, encoder, checkpoint)
                    if record is None:
                        print(f"{key}: skipped (this version of stylize lacks its options)", file=sys.stderr)
                        continue
                    data["runs"][key] = record
                    data.get("partial", {}).pop(key, None)
                    data["summary"] = summarize(data)
                    write_json_atomic(data, args.json)
                    print(f"{key}: final {record['final']:.5g} in {record['cpu_seconds']:.1f} cpu s "
                          f"({record['n_iter']} iterations, {record['stop_reason']})", file=sys.stderr, flush=True)
    for other in args.merge:
        extra = json.loads(other.read_text())
        data["runs"].update({k: {**r, "config": _scrub(r["config"])} for k, r in extra.get("runs", {}).items()})
        data.setdefault("partial", {}).update(extra.get("partial", {}))
        data.setdefault("merged_metadata", []).append(extra.get("metadata", {}))
        data["metadata"] = data.get("metadata") or extra.get("metadata", {})
    data["summary"] = summarize(data)
    if not args.report_only or args.merge:
        write_json_atomic(data, args.json)
    print(format_summary(data["summary"]))
    if args.sheet:
        if not args.images:
            parser.error("--sheet needs --images (the folder the final images were written to)")
        write_sheet(data["runs"], args.images, args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
