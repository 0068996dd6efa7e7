"""The benchmark run: every size, preset, optimizer and net of a :class:`BenchConfig`, as records.

:func:`run_bench` goes size by size. Each size measures every preset
(:func:`_measure_preset`: the floor and one evaluation, then the optimizers on the held-out
eyes), then every net (:func:`_net_record`: its speed, and what it is worth in optimizer
iterations). A size finished is handed to ``checkpoint``, so an interrupted run can resume.
"""

from __future__ import annotations

import os
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from masked_gatys.bench.config import (BenchConfig, BenchProgress, BenchResult, ProgressFn, config_record,
                                       make_record, resumable_sizes)
from masked_gatys.bench.inputs import HELDOUT_SEEDS, held_out_eyes, style_eye
from masked_gatys.bench.measures import OptimizerRun, equivalent_iterations, iteration_stats, run_optimizer, summarize
from masked_gatys.bench.memory import MemoryProbe
from masked_gatys.bench.metadata import machine_metadata
from masked_gatys.bench.networks import load_nets, time_net, worth_on_training_objective
from masked_gatys.bench.timing import measure_floor_and_eval, ratio_to_floor
from masked_gatys.encoder import default_weights
from masked_gatys.errors import CheckpointError
from masked_gatys.files import recorded_name
from masked_gatys.masks import Regions
from masked_gatys.stylize import StylizeConfig, prepare
from masked_gatys.checkpoints import check_compatible

__all__ = ["run_bench"]

_STYLE_RECIPE = "render_eye(yaw=0, pitch=0, domain='synthetic', size=(size, size), seed=0)"


class _Steps:
    """The progress counter: reports ``done`` of ``total`` as each step starts."""

    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, label: str, advance: int = 1) -> None:
        if self.progress is not None:
            self.progress(BenchProgress(self.done, self.total, label))
        self.done += advance

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(BenchProgress(self.total, self.total, "done"))


@dataclass
class _Bench:
    """What every size's measurement shares: the settings, the nets, the encoders built so far."""

    cfg: BenchConfig
    weights: Any
    device: torch.device
    probe: MemoryProbe
    nets: list[tuple[str, Any, str]]
    steps: _Steps
    per_size: int
    identity: dict[str, Any] | None = None  # the weights' identity, from the last encoder built
    encoders: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Size:
    """One size's inputs and what its presets leave for its nets."""

    size: int
    eyes: list[tuple[Tensor, Tensor, dict[str, Any]]]
    style: Tensor
    style_mask: Tensor
    records: list[dict[str, Any]] = field(default_factory=list)
    net_levels: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (checkpoint, preset)
    net_reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    own_objectives: dict[str, Any] = field(default_factory=dict)  # nets' training objectives and their runs


def run_bench(config: BenchConfig | None = None, *, progress: ProgressFn | None = None,
              resume: dict[str, Any] | None = None,
              checkpoint: Callable[[BenchResult], Any] | None = None) -> BenchResult:
    """Measure everything :class:`BenchConfig` asks for; return the metadata and the records.

    ``resume`` (an earlier run's :meth:`BenchResult.to_dict`, e.g. its JSON, made with the same
    settings: :func:`resumable_sizes`) gives the records of sizes measured before, which are
    kept (also those of sizes not asked for now) and not measured again; ``checkpoint(result)``
    is called after each size with the records so far (``masked-gatys bench --json`` writes them
    then, so an interrupted run keeps its finished sizes and ``--resume`` goes on from there).

    Records (one dict each, the keys of :data:`RESULT_FIELDS`):

    - ``kind="objective"``, ``method="objective"``: one per preset and size:
      seconds per evaluation, the floor and their ratio;
    - ``kind="optimizer"``: one per optimizer, preset and size: the above plus
      seconds per iteration, evaluations per iteration, the time for N
      iterations, peak memory, the objective curves;
    - ``kind="net"``: one per network and size: seconds per image, best batch,
      speed-up over N optimizer iterations, the net's objective and the
      optimizer iterations it is worth (or why it is unavailable).
    """
    cfg = config or BenchConfig()
    bench = _start(cfg, progress)
    result = BenchResult(_metadata(bench))
    earlier = _resume_setup(bench, result, resume)
    for size in cfg.sizes:
        if size in earlier:  # measured by the earlier run
            result.results.extend(earlier[size])
            bench.steps(f"{size}px: kept from the earlier run", advance=bench.per_size)
            continue
        result.results.extend(_measure_size(bench, size))
        result.metadata["weights"] = bench.identity
        if checkpoint is not None:
            checkpoint(result)
    result.metadata["weights"] = bench.identity
    result.metadata["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    bench.steps.finish()
    return result


def _start(cfg: BenchConfig, progress: ProgressFn | None) -> _Bench:
    """The weights (the one rule, README "Loss-network weights"), the device, the nets, the step count."""
    device = torch.device(cfg.device)
    nets = load_nets(cfg, device)
    runs_per_preset = (cfg.eyes * len(cfg.optimizers) if cfg.compare_all
                       else len(cfg.optimizers) + (cfg.eyes - 1) * min(1, len(cfg.optimizers)))
    per_size = len(cfg.presets) * (1 + runs_per_preset) + len(nets)
    return _Bench(cfg=cfg, weights=cfg.weights or default_weights()[0], device=device, probe=MemoryProbe(device),
                  nets=nets, steps=_Steps(progress, per_size * len(cfg.sizes)), per_size=per_size)


def _metadata(bench: _Bench) -> dict[str, Any]:
    meta = machine_metadata(bench.device)
    meta.update(config=config_record(bench.cfg), weights_requested=recorded_name(bench.weights),
                memory_method=bench.probe.method, image_shape="square: size x size pixels", style=_STYLE_RECIPE,
                held_out_eyes={"seeds": [HELDOUT_SEEDS + k for k in range(bench.cfg.eyes)], "domain": "real"})
    return meta


def _resume_setup(bench: _Bench, result: BenchResult, resume: dict[str, Any] | None
                  ) -> dict[int, list[dict[str, Any]]]:
    """The earlier run's records by size; sizes it measured and this run does not ask for are kept."""
    earlier = resumable_sizes(bench.cfg, resume) if resume is not None else {}
    if not earlier:
        return earlier
    meta, then = result.metadata, resume.get("metadata") or {}
    meta["resumed_sizes"] = sorted(sz for sz in bench.cfg.sizes if sz in earlier)
    meta["resumed_from"] = {k: then.get(k) for k in ("date", "git_commit")}
    bench.identity = then.get("weights")
    for sz in sorted(set(earlier) - set(bench.cfg.sizes)):
        result.results.extend(earlier[sz])
    meta["config"]["sizes"] = sorted(set(bench.cfg.sizes) | set(earlier))
    return earlier


def _measure_size(bench: _Bench, size: int) -> list[dict[str, Any]]:
    """Every preset, then every net, at ``size``: the size's records."""
    hw = (size, size)
    style, style_mask = style_eye(hw)
    state = _Size(size=size, eyes=held_out_eyes(hw, bench.cfg.eyes), style=style, style_mask=style_mask)
    for preset in bench.cfg.presets:
        _measure_preset(bench, state, preset)
    image0, mask0, _ = state.eyes[0]
    image0, mask0 = image0.to(bench.device), mask0.to(bench.device)
    for name, model, path in bench.nets:
        state.records.append(_net_record(bench, state, name, model, path, image0, mask0))
    return state.records


def _measure_preset(bench: _Bench, state: _Size, preset: str) -> None:
    """The floor and one evaluation, then the optimizers on the eyes, for one preset at one size."""
    cfg, size = bench.cfg, state.size
    bench.steps(f"{size}px {preset}: floor and evaluation")
    # the preset as named (masked stays the paper's; masked-eye is asked for by name)
    scfg = StylizeConfig(preset=preset, weights=bench.weights, max_layer=cfg.max_layer, device=str(bench.device),
                         history_size=cfg.history_size, lr=cfg.lr, subject="general")
    image0, mask0, _ = state.eyes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning: recorded in the metadata
        problem = prepare(image0, state.style, mask=mask0, style_mask=state.style_mask, config=scfg,
                          encoder=bench.encoders.get(preset))
    bench.encoders[preset] = problem.encoder
    bench.identity = problem.encoder.identity.to_dict()
    bench.probe.start()
    floor, per_eval = measure_floor_and_eval(problem.encoder, problem.objective, problem.x0, repeats=cfg.repeats,
                                             warmup=cfg.warmup, time_limit=cfg.time_limit)
    eval_peak = bench.probe.peak()
    shared = {"preset": preset, "size": size, "height": size, "width": size,
              "seconds_per_eval": per_eval.median, "eval_timing": per_eval.to_dict(),
              "floor_seconds": floor.median, "floor_timing": floor.to_dict(),
              "ratio_to_floor": ratio_to_floor(per_eval, floor)}
    state.records.append(make_record(method="objective", kind="objective", peak_memory_bytes=eval_peak,
                                     notes=f"layers {', '.join(problem.encoder.layers)}", **shared))
    runs = _optimizer_runs(bench, state, preset, problem)
    for method in cfg.optimizers:
        mruns = runs[method]
        curves = [r.curve for r in mruns]
        objective_rec = {"curves": curves, "eyes": len(curves), "start_mean": statistics.fmean(c[0] for c in curves),
                         "final_mean": statistics.fmean(c[-1] for c in curves),
                         "iterations_run": [len(c) - 1 for c in curves]}
        state.records.append(make_record(method=method, kind="optimizer", n_iterations=cfg.iterations,
                                         peak_memory_bytes=max(r.peak for r in mruns), objective=objective_rec,
                                         **shared, **iteration_stats(mruns, cfg.iterations)))


def _comparable_nets(bench: _Bench, state: _Size, preset: str, problem: Any) -> list[str]:
    """The nets (by file name) whose objective compares under this preset's; why not, for the others."""
    comparable = []
    for _name, model, path in bench.nets:
        try:
            check_compatible(model, problem.objective_config, problem.encoder.identity)
            comparable.append(path)
        except CheckpointError as exc:
            state.net_reasons[(path, preset)] = str(exc)
    return comparable


def _optimizer_runs(bench: _Bench, state: _Size, preset: str, problem: Any) -> dict[str, list[OptimizerRun]]:
    """Every optimizer from the first eye; the first optimizer (or all, ``compare_all``) from the others.

    With no comparable net there is no level to reach, and only the first eye is run. Each run
    stops at the comparable nets' best level (unless ``full_curves``).
    """
    cfg, size, objective = bench.cfg, state.size, problem.objective
    comparable = _comparable_nets(bench, state, preset, problem)
    n_eyes = cfg.eyes if comparable else 1
    runs: dict[str, list[OptimizerRun]] = {m: [] for m in cfg.optimizers}
    for k in range(cfg.eyes):
        methods = list(cfg.optimizers) if k == 0 or cfg.compare_all else list(cfg.optimizers[:1])
        if k >= n_eyes:
            bench.steps(f"{size}px {preset}: (no comparable net: one eye)", advance=len(methods))
            continue
        image, mask, _ = state.eyes[k]
        image, mask = image.to(bench.device), mask.to(bench.device)
        if k > 0:
            objective.set_content(image, Regions.from_binary(mask))
        levels = []
        for _name, model, path in bench.nets:
            if path not in comparable:
                continue
            with torch.no_grad():
                level = float(objective(model(image, mask)).total.sum())
            state.net_levels.setdefault((path, preset), []).append(level)
            levels.append(level)
        stop_below = None if cfg.full_curves or not levels else min(levels)
        for method in methods:
            bench.steps(f"{size}px {preset}: {method} on eye {k + 1}/{n_eyes}")
            runs[method].append(run_optimizer(objective, image.clone(), method, cfg, bench.probe, stop_below))
    return runs


def _net_record(bench: _Bench, state: _Size, name: str, model: Any, path: str, image0: Tensor, mask0: Tensor
                ) -> dict[str, Any]:
    """A net's record at one size: its speed, its objective and the optimizer iterations it is worth."""
    cfg, size = bench.cfg, state.size
    bench.steps(f"{size}px {name}: seconds per image")
    net_preset = (model.objective_config or {}).get("preset") or "masked"
    speed = time_net(model, image0, mask0, cfg, bench.probe)
    batches, best_b = speed["batches"], speed["best_batch"]
    b1 = batches.get(1)
    ref = _reference(state.records, net_preset)
    ref_total = ref["seconds_for_n_iterations"] if ref else None
    per_image = b1["seconds_per_image"] if b1 else None
    per_image_best = batches[best_b]["seconds_per_image"] if batches else None
    objective_rec, equivalent, by_opt = _net_objective(bench, state, name, model, path, net_preset)
    return make_record(
        method=name, kind="net", preset=net_preset, size=size, height=size, width=size,
        seconds_per_image=per_image, image_timing=b1["timing"] if b1 else None, best_batch=best_b,
        seconds_per_image_best_batch=per_image_best,
        batches={str(b): v for b, v in batches.items()},
        speedup_vs_optimizer=(ref_total / per_image) if ref_total and per_image else None,
        speedup_vs_optimizer_best_batch=(ref_total / per_image_best) if ref_total and per_image_best else None,
        speedup_reference=({"method": ref["method"], "preset": ref["preset"], "n_iterations": cfg.iterations,
                            "seconds_for_n_iterations": ref_total, "extrapolated": ref["extrapolated"]}
                           if ref else None),
        peak_memory_bytes=b1["peak_memory_bytes"] if b1 else None, objective=objective_rec,
        equivalent_iterations=equivalent, equivalent_iterations_by_optimizer=by_opt or None,
        checkpoint=path, n_iterations=cfg.iterations)


def _net_objective(bench: _Bench, state: _Size, name: str, model: Any, path: str, net_preset: str
                   ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """The net's objective record, its worth in iterations of the main optimizer, and by optimizer.

    Under the net's own preset if it was benchmarked (else the first preset); when its objective
    does not compare there, on the objective it was trained on (if the checkpoint says which).
    """
    cfg = bench.cfg
    preset_used = net_preset if net_preset in cfg.presets else (cfg.presets[0] if cfg.presets else None)
    levels = state.net_levels.get((path, preset_used)) if preset_used else None
    if levels:
        by_opt = {}
        for rec in state.records:
            if rec["kind"] != "optimizer" or rec["preset"] != preset_used:
                continue
            curves = rec["objective"]["curves"]
            eq = [equivalent_iterations(c, lv) for c, lv in zip(curves, levels)]
            by_opt[rec["method"]] = {"preset": preset_used, "optimizer": rec["method"], "per_eye": eq,
                                     "at_least": [len(c) - 1 if e is None else None for c, e in zip(curves, eq)],
                                     **summarize(eq)}
        main_opt = "plbfgs" if "plbfgs" in by_opt else next(iter(by_opt), None)
        objective_rec = {"available": True, "preset": preset_used, "values": levels, **summarize(levels)}
        return objective_rec, by_opt.get(main_opt) if main_opt else None, by_opt
    reason = state.net_reasons.get((path, preset_used)) if preset_used else None
    reason = reason or (f"the net was trained on preset {net_preset!r}, which was not benchmarked"
                        if preset_used != net_preset else "not measured")
    if not (model.checkpoint.get("train_config") and model.checkpoint.get("objective")):
        return {"available": False, "reason": reason}, None, {}
    # not one of the benchmark's objectives: judge it on its own (see the helper)
    bench.steps(f"{state.size}px {name}: plbfgs on its training objective", advance=0)
    try:
        objective_rec, equivalent = worth_on_training_objective(model, state.eyes, bench.weights, cfg, bench.device,
                                                                state.own_objectives)
    except CheckpointError as exc:  # its own objective is out of reach too: say why
        return {"available": False, "reason": str(exc)}, None, {}
    return objective_rec, equivalent, {"plbfgs": equivalent}


def _reference(records: list[dict[str, Any]], preset: str) -> dict[str, Any] | None:
    """The optimizer record a net's speed-up is taken against: plbfgs on the net's preset if there."""
    opts = [r for r in records if r["kind"] == "optimizer" and r["seconds_for_n_iterations"]]
    for pick in (lambda r: r["preset"] == preset and r["method"] == "plbfgs",
                 lambda r: r["preset"] == preset, lambda r: r["method"] == "plbfgs", lambda r: True):
        found = [r for r in opts if pick(r)]
        if found:
            return found[0]
    return None
