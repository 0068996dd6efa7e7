"""Purification throughput: images per second of the shipped networks and of the optimizer.

Cells (method x size x batch), each timed in one process with ``--threads`` threads and in
``--ranks`` torchrun ranks of one thread each (each rank purifies its own images; the
rank's time runs from a barrier before its first batch to a barrier after the last, so
the figure is all ranks' images over the slowest rank's time, and excludes start-up):

- ``net`` cells: the network's forward pass on a batch of rendered real eyes (the
  purification itself), repeated until ``--net-seconds`` of timed batches; the figure is
  the batch size over the **median** batch time. One warm-up batch first.
- ``net-e2e`` cells (one process only): ``purify()`` over a folder of ``--e2e-images``
  rendered eyes, wall time of the call (listing, reading, the network, writing PNGs with
  fsync, the manifest), without the pupil-shift measurement, which is timed on its own
  (``pupil`` in the JSON: seconds per image).
- ``optimizer`` cells: ``stylize`` (the code path ``purify`` runs per batch) on a batch of
  ``B`` eyes, masked preset, ``--iterations`` iterations of the batched projected L-BFGS,
  the rendered synthetic style eye, ``max_layer="auto"``, one encoder built beforehand (as
  ``purify`` does). ``--opt-images`` images per cell (at least one batch); figure =
  images / wall time. Beside it, the profile: evaluations per image, the median time of one
  evaluation at that batch (objective forward + backward), and the share of the wall time
  that is not evaluations (optimizer arithmetic and the Python loop).

``--speed-only`` (issue 22's target: ``purify`` with the purifier and automatic masks, >= 200
eyes a second at 36x60, CPU time) runs ``purify()`` as ``masked-gatys purify DIR -o OUT`` does
(the shipped purifier, ``mask="auto"``: every eye segmented, its NAME_mask.png and
NAME_labels.png written beside its output) over ``--speed-images`` grey 36x60 eyes (rendered in
the ``mpiigaze`` layout, ``webcam`` look, or ``--speed-folder``'s real ones), at ``--threads``
threads, ``--repeats`` times into a fresh folder, without the pupil-shift measurement; then once
with it on ``--pupil-images`` of them. Figures: eyes per second (wall) and per CPU-second
(``time.process_time``: every thread of the process), medians of the repeats, and the CPU time
of each stage (``time.thread_time`` summed over the threads that ran it, per input eye):
listing, the plan (input hashes), reading, segmenting, the network, writing the outputs, the
companions, the manifest, the pupil shift; ``other`` is the rest of the process's CPU time
(records, threads, Python).

The machine may be shared: the load average (before and after each part) is recorded,
and every time is an upper bound on what an idle machine takes.

Examples::

    python benchmarks/purify_throughput.py --quick --json quick.json
    python benchmarks/purify_throughput.py --speed-only --threads 1 --json benchmarks/results/purify-speed-cpu.json
    MASKED_GATYS_WEIGHTS=vgg19_caffe_bgr255_conv1_1-conv3_4.pth \\
        python benchmarks/purify_throughput.py --json benchmarks/results/purify-cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve()


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _eyes(n: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from masked_gatys.eyes import render_eye

    images, masks = [], []
    for i in range(n):
        eye = render_eye(yaw=(i * 7.3) % 40 - 20, pitch=(i * 3.1) % 20 - 10, domain="real", size=size,
                         seed=seed + i)
        images.append(eye.image.float())
        masks.append(eye.binary_mask.float())
    return torch.cat(images), torch.cat(masks)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ---------------------------------------------------------------- cells


def net_cell(name: str, size: tuple[int, int], batch: int, seconds: float, seed: int) -> dict[str, Any]:
    from masked_gatys.train import load_model, shipped_checkpoint

    model = load_model(shipped_checkpoint(name))
    x, m = _eyes(min(batch, 16), size, seed)
    reps = -(-batch // x.shape[0])
    x, m = x.repeat(reps, 1, 1, 1)[:batch].contiguous(), m.repeat(reps, 1, 1, 1)[:batch].contiguous()
    model(x, m)  # warm-up
    times: list[float] = []
    cpu = time.process_time()
    while sum(times) < seconds or len(times) < 3:
        start = time.perf_counter()
        model(x, m)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    med = statistics.median(times)
    return {"kind": "net", "method": name, "size": list(size), "batch": batch, "images": batch * len(times),
            "median_batch_seconds": med, "images_per_second": batch / med, "samples": len(times),
            "cpu_seconds_per_image": cpu / (batch * len(times))}


def _problem(size: tuple[int, int], batch: int, seed: int, iterations: int, weights: str | None):
    from masked_gatys.encoder import VGGEncoder, resolve_weights
    from masked_gatys.eyes import render_eye
    from masked_gatys.masks import Regions
    from masked_gatys.stylize import StylizeConfig, objective_config_for

    cfg = StylizeConfig(preset="masked", iterations=iterations, weights=weights, max_layer="auto", device="cpu")
    loaded = resolve_weights(weights)
    objective_cfg = objective_config_for(cfg, Regions.from_binary(torch.full((1, 1, 2, 2), 0.5)), loaded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = VGGEncoder(objective_cfg.layers, loaded)
    style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=size, seed=0)
    return cfg, encoder, style.image.float(), Regions.from_binary(style.mask.float()), objective_cfg


def _eval_seconds(cfg, encoder, x, m, style, style_regions, repeats: int = 5) -> float:
    from masked_gatys.stylize import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = prepare(x, style, mask=m, style_mask=style_regions, config=cfg, encoder=encoder)
    times = []
    for _ in range(repeats + 1):
        leaf = problem.x0.clone().requires_grad_(True)
        start = time.perf_counter()
        problem.objective(leaf).total.sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def optimizer_cell(size: tuple[int, int], batch: int, images: int, iterations: int, weights: str | None,
                   seed: int) -> dict[str, Any]:
    from masked_gatys.stylize import stylize

    cfg, encoder, style, style_regions, objective_cfg = _problem(size, batch, seed, iterations, weights)
    n_batches = max(1, -(-images // batch))
    x_all, m_all = _eyes(n_batches * batch, size, seed)
    wall, evals, iters = 0.0, 0, 0
    cpu = time.process_time()
    for k in range(n_batches):
        x, m = x_all[k * batch:(k + 1) * batch], m_all[k * batch:(k + 1) * batch]
        calls = {"n": 0}

        def count(_p: Any) -> bool:
            calls["n"] += 1
            return False

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stylize(x, style, mask=m, style_mask=style_regions, config=cfg, encoder=encoder, callback=count)
        wall += time.perf_counter() - start
        evals += result.n_eval
        iters += result.n_iter
    cpu = time.process_time() - cpu
    t_eval = _eval_seconds(cfg, encoder, x_all[:batch], m_all[:batch], style, style_regions)
    n = n_batches * batch
    in_evals = evals * t_eval
    return {"kind": "optimizer", "method": "masked", "size": list(size), "batch": batch, "images": n,
            "iterations": iterations, "seconds": wall, "images_per_second": n / wall,
            "cpu_seconds_per_image": cpu / n,
            "evaluations_per_batch": evals / n_batches, "iterations_per_batch": iters / n_batches,
            "eval_seconds_at_batch": t_eval, "eval_seconds_per_image": t_eval / batch,
            "overhead_share": max(0.0, 1 - in_evals / wall),
            "deepest_layer": objective_cfg.layers[-1], "weights": encoder.identity.to_dict()}


def estimate_cell(size: tuple[int, int], batch: int, measured: dict[str, Any], weights: str | None,
                  seed: int) -> dict[str, Any]:
    """A batch too slow to run in full here: its rate from the median evaluation at that batch and the
    evaluations per image and overhead share measured at a smaller batch of the same size."""
    cfg, encoder, style, style_regions, _ = _problem(size, batch, seed, measured["iterations"], weights)
    x, m = _eyes(batch, size, seed)
    t_eval = _eval_seconds(cfg, encoder, x, m, style, style_regions, repeats=2)
    evals = measured["evaluations_per_batch"]
    seconds = evals * t_eval / max(1e-9, 1 - measured["overhead_share"])
    return {"kind": "optimizer-estimate", "method": "masked", "size": list(size), "batch": batch,
            "iterations": measured["iterations"], "eval_seconds_at_batch": t_eval,
            "eval_seconds_per_image": t_eval / batch, "images_per_second": batch / seconds,
            "from_batch": measured["batch"], "evaluations_per_batch": evals,
            "overhead_share": measured["overhead_share"]}


def e2e_cell(name: str, size: tuple[int, int], batch: int, images: int, seed: int) -> dict[str, Any]:
    from masked_gatys.image import save_image
    from masked_gatys.purify import PurifyConfig, purify

    x, m = _eyes(images, size, seed)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(images):
            save_image(x[i:i + 1], src / f"{i:05d}.png")
            save_image(m[i:i + 1], src / f"{i:05d}_mask.png")
        start = time.perf_counter()
        report = purify(src, Path(tmp) / "out", config=PurifyConfig(method=name, batch_size=batch, pupil_shift=False))
        seconds = time.perf_counter() - start
    return {"kind": "net-e2e", "method": name, "size": list(size), "batch": batch, "images": report.done,
            "seconds": seconds, "images_per_second": report.done / seconds}


def pupil_cost(size: tuple[int, int], seed: int, n: int = 10) -> float:
    from masked_gatys.eyes.pupil import pupil_shift

    x, m = _eyes(n, size, seed)
    start = time.perf_counter()
    for i in range(n):
        pupil_shift(x[i:i + 1], x[i:i + 1], m[i:i + 1])
    return (time.perf_counter() - start) / n


# ---------------------------------------------------------------- purify speed (issue 22)

#: (module, attribute, stage): what each stage's CPU time is taken over (outermost call only)
_STAGES = [
    ("masked_gatys.purify", "list_inputs", "list"), ("masked_gatys.purify", "_plan", "plan (input hashes)"),
    ("masked_gatys.purify", "load_image", "read"), ("masked_gatys.purify", "load_mask", "read"),
    ("masked_gatys.eyes.segment.Segmenter", "__call__", "segment"), ("masked_gatys.eyes.segment", "mask_image", "segment"),
    ("masked_gatys.purify_methods.Network", "run", "net"),
    ("masked_gatys.purify", "save_image", "write output"), ("masked_gatys.purify", "luminance", "write output"),
    ("masked_gatys.eyes.segment", "write_companions", "companions"),
    ("masked_gatys.purify", "update_manifest", "manifest"), ("masked_gatys.purify", "merge_manifests", "manifest"),
    ("masked_gatys.purify", "check_settings", "manifest"),
    ("masked_gatys.eyes.pupil", "pupil_shift", "pupil shift"),
    ("masked_gatys.purify_methods.Network", "__init__", "load networks"),
    ("masked_gatys.eyes.segment", "load_segmenter", "load networks"),
]


class _StageClock:
    """CPU time per stage: the listed functions wrapped (while in use) to add their thread's CPU time."""

    def __init__(self) -> None:
        import importlib
        import threading

        self.totals: dict[str, float] = {}
        self.lock, self.local, self.saved = threading.Lock(), threading.local(), []
        for where, name, stage in _STAGES:
            if where.endswith((".Segmenter", ".Network")):
                mod_name, cls_name = where.rsplit(".", 1)
                owner = getattr(importlib.import_module(mod_name), cls_name)
            else:
                owner = importlib.import_module(where)
            original = owner.__dict__[name]
            self.saved.append((owner, name, original))
            setattr(owner, name, self._wrap(original, stage))

    def _wrap(self, f, stage: str):
        import functools

        @functools.wraps(f)
        def timed(*a, **k):
            if getattr(self.local, "inside", False):
                return f(*a, **k)
            self.local.inside = True
            start = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                self.local.inside = False
                with self.lock:
                    self.totals[stage] = self.totals.get(stage, 0.0) + time.thread_time() - start
        return timed

    def close(self) -> None:
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)


def _speed_eyes(folder: Path, n: int, source: Path | None) -> int:
    """``n`` grey 36x60 eyes in ``folder``: ``source``'s first ``n`` images, or rendered ones."""
    from masked_gatys.eyes import render_eye
    from masked_gatys.image import load_image, save_image
    from masked_gatys.manifests import list_inputs

    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        items = list_inputs(source)[:n]
        for i, item in enumerate(items):
            save_image(load_image(item.image)[:, :1], folder / f"{i:05d}.png")
        return len(items)
    for i in range(n):
        save_image(render_eye(layout="mpiigaze", look="webcam", seed=i).image[:, :1], folder / f"{i:05d}.png")
    return n


def _speed_run(src: Path, out: Path, pupil_shift: bool) -> dict[str, Any]:
    import shutil

    from masked_gatys.purify import PurifyConfig, purify

    shutil.rmtree(out, ignore_errors=True)
    clock = _StageClock()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wall, cpu = time.perf_counter(), time.process_time()
            report = purify(src, out, config=PurifyConfig(pupil_shift=pupil_shift))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        clock.close()
    n = report.total
    stages = {k: 1000 * v / n for k, v in sorted(clock.totals.items(), key=lambda kv: -kv[1])}
    stages["other"] = 1000 * (cpu - sum(clock.totals.values())) / n
    return {"inputs": n, "done": report.done, "failed": report.failed, "pupil_shift": pupil_shift,
            "wall_seconds": wall, "cpu_seconds": cpu,
            "eyes_per_second": report.done / wall, "eyes_per_cpu_second": report.done / cpu,
            "inputs_per_cpu_second": n / cpu, "cpu_ms_per_input": 1000 * cpu / n,
            "stage_cpu_ms_per_input": {k: round(v, 4) for k, v in stages.items()}, "load": _load()}


def purify_speed(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--speed-only`` figures (see the module's docstring)."""
    import masked_gatys.eyes.pupil  # noqa: F401  imported before the clock runs (scipy: most of a second)
    import masked_gatys.eyes.segment  # noqa: F401
    from masked_gatys.checkpoints import shipped_checkpoint
    from masked_gatys.files import sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "eyes"
        n = _speed_eyes(src, args.speed_images, args.speed_folder)
        runs = [_speed_run(src, Path(tmp) / "out", pupil_shift=False) for _ in range(args.repeats)]
        for row in runs:
            print(json.dumps({k: v for k, v in row.items() if k != "stage_cpu_ms_per_input"}), flush=True)
        psrc = Path(tmp) / "pupil"
        psrc.mkdir()
        for path in sorted(src.glob("*.png"))[:args.pupil_images]:
            (psrc / path.name).write_bytes(path.read_bytes())
        with_pupil = _speed_run(psrc, Path(tmp) / "out-pupil", pupil_shift=True)
    keys = ("eyes_per_second", "eyes_per_cpu_second", "inputs_per_cpu_second", "cpu_ms_per_input")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    stages = {k: round(statistics.median(r["stage_cpu_ms_per_input"].get(k, 0.0) for r in runs), 4)
              for k in runs[0]["stage_cpu_ms_per_input"]}
    pupil_ms = with_pupil["stage_cpu_ms_per_input"].get("pupil shift", 0.0)
    return {"kind": "purify-speed", "method": "purifier", "mask": "auto", "size": [36, 60],
            "eyes": "folder " + args.speed_folder.name if args.speed_folder else
            "rendered: layout mpiigaze, look webcam, seeds 0..n-1, written as grey PNGs",
            "inputs": n, "repeats": len(runs), "batch": 64,
            "checkpoint_sha256": sha256_file(shipped_checkpoint("purifier")),
            "median": med, "stage_cpu_ms_per_input_median": stages, "runs": runs,
            "with_pupil_shift": with_pupil, "pupil_shift_cpu_ms_per_input": pupil_ms,
            "target_eyes_per_cpu_second": 200,
            "net_budget_ms_for_target": round(1000 / 200 - (med["cpu_ms_per_input"] - stages.get("net", 0.0)), 4)}


def run_cell(cell: dict[str, Any], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    size = tuple(cell["size"])
    if cell["kind"] == "net":
        return net_cell(cell["method"], size, cell["batch"], args.net_seconds, seed)
    if cell["kind"] == "optimizer":
        return optimizer_cell(size, cell["batch"], max(cell["batch"], args.opt_images if cell["batch"] == 1 else 0),
                              args.iterations, args.weights, seed)
    raise ValueError(cell["kind"])


# ---------------------------------------------------------------- ranks


def worker(args: argparse.Namespace) -> None:
    """One torchrun rank: every cell on its own images, timed between barriers."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cells = json.loads(Path(args.cells).read_text())
    out = []
    for cell in cells:
        dist.barrier()
        start = time.perf_counter()
        result = run_cell(cell, args, seed=1000 * (rank + 1))
        dist.barrier()
        wall = time.perf_counter() - start
        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, result)
        if rank == 0:
            if cell["kind"] == "net":  # each rank's median rate, summed: ranks run side by side
                rate = sum(p["images_per_second"] for p in parts)
            else:
                rate = sum(p["images"] for p in parts) / wall
            cpu = statistics.mean(p["cpu_seconds_per_image"] for p in parts)
            out.append({**cell, "ranks": world, "threads_per_rank": 1, "images_per_second": rate,
                        "images_per_second_from_cpu_time": world / cpu,
                        "per_rank": parts, "wall_seconds": wall})
    if rank == 0:
        Path(args.worker_out).write_text(json.dumps(out))
    dist.destroy_process_group()


def torchrun(cells: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        cells_path, out_path = Path(tmp) / "cells.json", Path(tmp) / "out.json"
        cells_path.write_text(json.dumps(cells))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.ranks),
               str(HERE), "--worker", "--cells", str(cells_path), "--worker-out", str(out_path),
               "--iterations", str(args.iterations), "--net-seconds", str(args.net_seconds),
               "--opt-images", str(args.opt_images)]
        if args.weights:
            cmd += ["--weights", args.weights]
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        return json.loads(out_path.read_text())


# ---------------------------------------------------------------- main


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    from masked_gatys import __version__

    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "masked_gatys": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": args.threads, "ranks": args.ranks,
            "device": "cpu", "cuda": torch.cuda.is_available(),
            "note": "shared machine: times are upper bounds on an idle machine's"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="36x60,48x72")
    p.add_argument("--nets", default="johnson,purifier")
    p.add_argument("--net-batches", default="1,16,64,256")
    p.add_argument("--opt-batches", default="1,8")
    p.add_argument("--opt-estimate", default="32", help="optimizer batches estimated, not run (see estimate_cell)")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--opt-images", type=int, default=2, help="images of a batch-1 optimizer cell")
    p.add_argument("--torchrun-opt", default="36x60:1,8;48x72:1,8",
                   help="optimizer cells under torchrun, SIZE:BATCHES;...")
    p.add_argument("--net-seconds", type=float, default=2.0)
    p.add_argument("--e2e-images", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--weights", default=None, help="default: $MASKED_GATYS_WEIGHTS")
    p.add_argument("--skip", default="", help="comma list of parts to skip: nets,e2e,optimizer,torchrun")
    p.add_argument("--eval-threads", action="store_true",
                   help="also time one optimizer evaluation at 36x60, batch 1 and 8, with 1 and 2 threads")
    p.add_argument("--quick", action="store_true", help="a smoke run: one size, small batches, 3 iterations")
    p.add_argument("--json", type=Path)
    p.add_argument("--speed-only", action="store_true",
                   help="only purify's speed with the purifier and automatic masks at 36x60 (issue 22)")
    p.add_argument("--speed-images", type=int, default=2000)
    p.add_argument("--speed-folder", type=Path, default=None,
                   help="real 36x60 eyes (MPIIGaze patches) in place of rendered ones")
    p.add_argument("--pupil-images", type=int, default=500, help="eyes of the run with the pupil shift")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cells", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.sizes, args.net_batches, args.opt_batches, args.iterations = "36x60", "1,16", "1,2", 3
        args.net_seconds, args.e2e_images, args.torchrun_opt = 0.3, 32, "36x60:1,2"
        args.opt_estimate = "4"
    if args.speed_only:
        torch.set_num_threads(args.threads)
        results = {"metadata": _metadata(args), "load": {"start": _load()}}
        results["purify_speed"] = purify_speed(args)
        results["load"]["end"] = _load()
        row = results["purify_speed"]
        print(json.dumps({"median": row["median"], "stages": row["stage_cpu_ms_per_input_median"],
                          "pupil_shift_ms": row["pupil_shift_cpu_ms_per_input"]}), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1) + "\n")
        return None
    skip = set(filter(None, args.skip.split(",")))
    sizes = [_size(s) for s in args.sizes.split(",")]
    nets = args.nets.split(",")
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"metadata": _metadata(args), "one_process": [], "torchrun": [], "load": {}}
    results["load"]["start"] = _load()

    def log(row: dict[str, Any]) -> None:
        print(json.dumps({k: v for k, v in row.items() if k not in ("per_rank", "weights")}), flush=True)

    best: dict[tuple[str, tuple[int, int]], int] = {}
    if "nets" not in skip:
        for name in nets:
            for size in sizes:
                rows = [net_cell(name, size, b, args.net_seconds, 0) for b in map(int, args.net_batches.split(","))]
                for row in rows:
                    row["threads"] = args.threads
                    results["one_process"].append(row)
                    log(row)
                best[(name, size)] = max(rows, key=lambda r: r["images_per_second"])["batch"]
        results["load"]["after_nets"] = _load()
    if "e2e" not in skip:
        for name in nets:
            size = sizes[0]
            row = e2e_cell(name, size, best.get((name, size), 64), args.e2e_images, 0)
            row["threads"] = args.threads
            results["one_process"].append(row)
            log(row)
        results["pupil_seconds_per_image"] = {f"{h}x{w}": pupil_cost((h, w), 0) for h, w in sizes}
        results["load"]["after_e2e"] = _load()
    if args.eval_threads:
        rows = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for b in (1, 8):
                cfg, encoder, style, style_regions, _ = _problem(sizes[0], b, 0, args.iterations, args.weights)
                x, m = _eyes(b, sizes[0], 0)
                t = _eval_seconds(cfg, encoder, x, m, style, style_regions, repeats=5)
                rows.append({"kind": "eval", "size": list(sizes[0]), "batch": b, "threads": threads,
                             "eval_seconds": t, "eval_seconds_per_image": t / b, "load": _load()})
                log(rows[-1])
        torch.set_num_threads(args.threads)
        results["eval_threads"] = rows
    opt_cells = [{"kind": "optimizer", "size": list(s), "batch": b} for s in sizes
                 for b in map(int, args.opt_batches.split(","))]
    if "optimizer" not in skip:
        for cell in opt_cells:
            row = run_cell(cell, args, seed=0)
            row["threads"] = args.threads
            results["one_process"].append(row)
            log(row)
        for size in sizes:
            measured = [r for r in results["one_process"] if r["kind"] == "optimizer" and tuple(r["size"]) == size]
            for b in filter(None, args.opt_estimate.split(",")):
                row = estimate_cell(size, int(b), max(measured, key=lambda r: r["batch"]), args.weights, 0)
                row["threads"] = args.threads
                results["one_process"].append(row)
                log(row)
        results["load"]["after_optimizer"] = _load()
    if "torchrun" not in skip:
        cells = []
        if "nets" not in skip:
            cells += [{"kind": "net", "method": n, "size": list(s), "batch": b} for n in nets for s in sizes
                      for b in sorted({1, best[(n, s)]})]
        if "optimizer" not in skip:
            for part in filter(None, args.torchrun_opt.split(";")):
                size_text, batches = part.split(":")
                cells += [{"kind": "optimizer", "size": list(_size(size_text)), "batch": int(b)}
                          for b in batches.split(",")]
        for row in torchrun(cells, args):
            results["torchrun"].append(row)
            log(row)
        results["load"]["after_torchrun"] = _load()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
