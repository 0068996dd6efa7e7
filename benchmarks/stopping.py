"""What the relative-decrease stop gives up: runs to the full budget, stopped after the fact.

For each problem (held-out real eye after the synthetic style eye, both presets), ``stylize``
runs the full budget with the stop switched off (``stop_tol=0``) and keeps the image after
every iteration. For each candidate rule (tolerance, window), the iteration where it would
have stopped is found on the recorded curve, and that image is compared with the image at
the end of the budget: mean and 99th-percentile absolute difference in 8-bit levels, and how
much higher its objective is. A rule "stops a run that is still improving visibly" when the
image it keeps differs from the final one by one 8-bit level or more on average. Method and
results: benchmarks/README.md ("Stopping"), ``results/stopping-*.json``.

    MASKED_GATYS_WEIGHTS=vgg19.pth python benchmarks/stopping.py --json out.json
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from masked_gatys.bench import held_out_eyes
from masked_gatys.files import write_json_atomic
from masked_gatys.stylize import StylizeConfig, _stalled, stylize

RULES = [(tol, window) for tol in (3e-3, 1e-3, 3e-4, 1e-4) for window in (5, 10, 20)]


def run(size: tuple[int, int], preset: str, eye: int, iterations: int, weights: str) -> dict[str, Any]:
    from masked_gatys.eyes import render_eye

    content, mask, _ = held_out_eyes(size, eye + 1)[eye]
    style = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=size, seed=0)
    images, totals = [], []

    def keep(p: Any) -> bool:
        images.append(p.best_image.detach().clone())
        totals.append(p.total)
        return False

    cfg = StylizeConfig(preset=preset, weights=weights, max_layer="auto", iterations=iterations, stop_tol=0.0,
                        scales=1, device="cpu")
    masked = preset != "gatys"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stylize(content, style.image, mask=mask if masked else None,
                         style_mask=style.mask if masked else None, config=cfg, callback=keep)
    final = images[-1]
    rules = []
    for tol, window in RULES:
        stop = next((k for k in range(len(totals)) if _stalled(totals[: k + 1], tol, window)), None)
        at = images[stop] if stop is not None else final
        diff = (at - final).abs().flatten() * 255
        rules.append({"tol": tol, "window": window, "stop_iteration": None if stop is None else stop + 1,
                      "mean_abs_diff_8bit": float(diff.mean()), "p99_abs_diff_8bit": float(diff.quantile(0.99)),
                      "objective_above_final": totals[stop] / totals[-1] - 1 if stop is not None else 0.0})
    return {"size": list(size), "preset": preset, "eye": eye, "iterations": iterations, "curve": totals,
            "final": result.total, "rules": rules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="48x72,72x120,144x240")
    parser.add_argument("--presets", default="gatys,masked")
    parser.add_argument("--eyes", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--weights", default=os.environ.get("MASKED_GATYS_WEIGHTS"))
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = []
    for text in args.sizes.split(","):
        h, w = (int(v) for v in text.split("x"))
        for preset in args.presets.split(","):
            for eye in range(args.eyes):
                records.append(run((h, w), preset, eye, args.iterations, args.weights))
                write_json_atomic({"load": os.getloadavg(), "records": records,
                                   "weights": Path(args.weights).name}, args.json)
                r = records[-1]
                print(f"{text} {preset} eye {eye}: " + ", ".join(
                    f"{x['tol']:g}/{x['window']}: it {x['stop_iteration']} d {x['mean_abs_diff_8bit']:.2f}"
                    for x in r["rules"]), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
