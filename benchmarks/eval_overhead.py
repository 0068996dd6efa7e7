"""Where an objective evaluation spends its time beyond the floor, and one layout against another.

The floor and the evaluation are those of ``masked-gatys bench`` (benchmarks/README.md): one
forward + backward (input gradient only) of the truncated VGG, and the objective's forward +
the backward of its total. This script times them in **process CPU seconds** (single-threaded:
on a shared machine the steadier figure), interleaved repeat by repeat, for the loss network in
the default layout (NCHW) and in channels-last (weights and input converted, the same modules),
and prints the medians and the ratios; ``--profile`` prints torch's profiler table for one
evaluation and one floor instead. Random weights with the presets as designed (speed does not
depend on the weights' values). The recorded figures: docs/performance.md, "Per evaluation".

    python benchmarks/eval_overhead.py --size 256 --preset masked --repeats 6
    python benchmarks/eval_overhead.py --size 256 --preset masked --profile
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from typing import Any, Callable

import torch

from masked_gatys.bench import held_out_eyes
from masked_gatys.stylize import StylizeConfig, prepare


def _problem(size: int, preset: str) -> Any:
    from masked_gatys.eyes import render_eye

    (content, mask, _), = held_out_eyes((size, size), 1)
    style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(size, size), seed=0)
    masked = preset != "gatys"
    cfg = StylizeConfig(preset=preset, weights="random", max_layer="auto", device="cpu", iterations=0,
                        subject="general")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(content, style.image.float(), mask=mask if masked else None,
                       style_mask=style.mask.float() if masked else None, config=cfg)


def _floor(encoder: Any, x: torch.Tensor) -> Callable[[], None]:
    leaf = x.detach().clone().requires_grad_(True)
    deepest = list(encoder.layers)[-1]

    def once() -> None:
        out = encoder(leaf)[deepest]
        torch.autograd.grad(out, leaf, grad_outputs=torch.ones_like(out))

    return once


def _evaluation(objective: Any, x: torch.Tensor) -> Callable[[], None]:
    leaf = x.detach().clone().requires_grad_(True)

    def once() -> None:
        torch.autograd.grad(objective(leaf).total.sum(), leaf)

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default="masked")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = _problem(args.size, args.preset)
    encoder, objective, x = problem.encoder, problem.objective, problem.content
    plain = encoder.forward

    def channels_last(h: torch.Tensor) -> Any:
        return plain(h.contiguous(memory_format=torch.channels_last))

    def layout(name: str) -> None:
        encoder.to(memory_format=torch.channels_last if name == "channels-last" else torch.contiguous_format)
        encoder.forward = channels_last if name == "channels-last" else plain

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for name, fn in (("floor", _floor(encoder, x)), ("evaluation", _evaluation(objective, x))):
            fn()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            print(f"== {name}, {args.preset} {args.size} px, {args.threads} thread(s), load {os.getloadavg()}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        return

    values = {}
    for name in ("nchw", "channels-last"):
        layout(name)
        with torch.no_grad():
            values[name] = float(objective(x).total)
    print(f"objective: nchw {values['nchw']:.8g}, channels-last {values['channels-last']:.8g}")
    fns = {(name, kind): (_floor if kind == "floor" else _evaluation)(encoder if kind == "floor" else objective, x)
           for name in ("nchw", "channels-last") for kind in ("floor", "evaluation")}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in fns}
    load = os.getloadavg()
    for repeat in range(args.repeats + 1):  # the first round is a warm-up
        for (name, kind), fn in fns.items():
            layout(name)
            start = time.process_time()
            fn()
            if repeat:
                samples[(name, kind)].append(time.process_time() - start)
    med = {key: statistics.median(v) for key, v in samples.items()}
    print(f"{args.preset} {args.size} px, {args.threads} thread(s), {args.repeats} repeats, load {load} -> "
          f"{os.getloadavg()}")
    for (name, kind), value in med.items():
        print(f"  {name:13} {kind:10} median {value:.4f} CPU s (min {min(samples[(name, kind)]):.4f}, "
              f"max {max(samples[(name, kind)]):.4f})")
    for name in ("nchw", "channels-last"):
        print(f"  {name:13} ratio to the floor {med[(name, 'evaluation')] / med[(name, 'floor')]:.3f}")
    print(f"  channels-last / nchw: evaluation {med[('channels-last', 'evaluation')] / med[('nchw', 'evaluation')]:.3f}"
          f", floor {med[('channels-last', 'floor')] / med[('nchw', 'floor')]:.3f}")


if __name__ == "__main__":
    main()
