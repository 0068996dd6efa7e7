"""The feed-forward networks in the benchmark: loading, seconds per image, worth on their own objective.

Checkpoints are loaded through ``masked_gatys.train``'s names for now (they move to
``masked_gatys.checkpoints``; ``train`` keeps re-exporting them).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masked_gatys.bench.config import MIN_ITERATIONS, BenchConfig
from masked_gatys.bench.measures import equivalent_iterations, summarize
from masked_gatys.bench.memory import MemoryProbe
from masked_gatys.bench.timing import timed
from masked_gatys.optim import minimize
from masked_gatys.checkpoints import SHIPPED, apply_model, load_model, shipped_checkpoint
from masked_gatys.train import training_objective

__all__: list[str] = []


def load_nets(cfg: BenchConfig, device: torch.device) -> list[tuple[str, Any, str]]:
    """The nets of ``cfg.nets`` (shipped names or paths), loaded: (name, model, file name) each."""
    out = []
    for item in cfg.nets:
        path = shipped_checkpoint(item) if item in SHIPPED else Path(item)
        model = load_model(path, device=device)
        out.append((model.name, model, Path(path).name))  # recorded: the file's name, not its folder
    return out


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def time_net(model: Any, image: Tensor, mask: Tensor, cfg: BenchConfig, probe: MemoryProbe,
             ) -> dict[str, Any]:
    """Seconds per image at batch 1 and at the best batch (doubling while memory and time allow)."""
    device = image.device
    max_batch = cfg.max_batch or (256 if device.type == "cuda" else 8)
    batches: dict[int, dict[str, Any]] = {}
    best_b, best = 1, math.inf
    b = 1
    while b <= max_batch:
        x, m = image.expand(b, -1, -1, -1).contiguous(), mask.expand(b, -1, -1, -1).contiguous()
        try:
            probe.start()
            t = timed(lambda x=x, m=m: apply_model(model, x, m), device=device, repeats=cfg.repeats, warmup=cfg.warmup,
                      time_limit=cfg.time_limit)
            peak = probe.peak()
        except RuntimeError as exc:
            if not _is_oom(exc):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            break
        per_image = t.median / b
        batches[b] = {"seconds_per_image": per_image, "timing": t.to_dict(), "peak_memory_bytes": peak}
        if per_image < best * 0.98:
            best_b, best = b, per_image
        elif b > 1:
            break  # no gain from the last doubling
        if cfg.time_limit is not None and t.median * 2 > cfg.time_limit and b > 1:
            break
        b *= 2
    return {"batches": batches, "best_batch": best_b}


def worth_on_training_objective(model: Any, eyes: list, weights: Any, cfg: BenchConfig, device: torch.device,
                                cache: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A net's objective and worth on the objective it was trained on (``train.training_objective``:
    its preset, its style eye or each eye's nearest eye of its style pool, the eyes' part labels).

    The benchmark's presets judge every net against one style eye; a net trained on another
    objective (the shipped ones: ``masked-eye`` with a style pool) would be scored on terms it was
    not asked to lower. ``plbfgs`` runs on the same objective from each eye (all eyes as one
    batch, one history each) until every eye reaches the net's value or ``run_iterations``;
    nets sharing an objective (same terms, pool and seed) share the run through ``cache``.
    Raises :class:`~masked_gatys.errors.CheckpointError` when the weights are not the net's.
    """
    images = torch.cat([e[0] for e in eyes]).to(device)
    masks = torch.cat([e[1] for e in eyes]).to(device)
    parts = torch.stack([e[2]["labels"] for e in eyes]).to(device)
    trained = model.checkpoint.get("train_config") or {}
    key = json.dumps([model.checkpoint.get("objective"), trained.get("style_pool"), trained.get("seed"),
                      trained.get("parts")], sort_keys=True, default=str)
    if key not in cache:
        objective = training_objective(model, images, masks, parts=parts, weights=weights)
        cache[key] = {"objective": objective, "curves": None}
    entry = cache[key]
    objective = entry["objective"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resize-to-trained-size notice: the speed row gives it
        levels = [float(v) for v in objective(model(images, masks)).total]
    if entry["curves"] is None or (not cfg.full_curves and any(
            min(c) > lv and len(c) - 1 < cfg.iterations_per_run for c, lv in zip(entry["curves"], levels))):
        with torch.no_grad():
            start = objective(images).total.tolist()
        curves = [[float(v)] for v in start]
        goal = None if cfg.full_curves else levels

        def callback(info: Any) -> bool:
            for c, v in zip(curves, info.fun.tolist()):
                c.append(float(v))
            n = len(curves[0]) - 1
            if n >= cfg.iterations_per_run:
                return True
            return goal is not None and n >= MIN_ITERATIONS and all(min(c) <= g for c, g in zip(curves, goal))

        minimize(lambda x: objective(x).total, images.clone(), method="plbfgs", max_iter=cfg.iterations_per_run,
                 lower=0.0, upper=1.0, callback=callback, history_size=cfg.history_size)
        entry["curves"] = curves
    curves = entry["curves"]
    preset_name = objective.config.preset
    objective_rec = {"available": True, "preset": preset_name, "objective": "training", "values": levels,
                     "curves": curves, **summarize(levels)}
    eq = [equivalent_iterations(c, lv) for c, lv in zip(curves, levels)]
    equivalent = {"preset": preset_name, "optimizer": "plbfgs", "objective": "training", "per_eye": eq,
                  "at_least": [len(c) - 1 if e is None else None for c, e in zip(curves, eq)], **summarize(eq)}
    return objective_rec, equivalent
