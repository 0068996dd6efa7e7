"""Does ``original_colors="luminance"`` keep the content's chroma? Measured on the examples.

For each example pair (``examples/real_eye*.png`` after ``examples/synthetic_eye*.png``, with
their masks, the ``masked`` preset) ``stylize`` runs with and without the mode; the saved 8-bit
outputs are converted to YCbCr by Pillow (an independent reference) and compared with the
content: mean |dY|, |dCb|, |dCr| in 8-bit levels. The issue's target: mean |dCb|, |dCr| below
one level. Results: benchmarks/README.md ("Original colours").

    MASKED_GATYS_WEIGHTS=vgg19.pth python benchmarks/original_colors.py --iterations 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from masked_gatys.image import load_image
from masked_gatys.stylize import StylizeConfig, stylize

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ycbcr(image: torch.Tensor) -> np.ndarray:
    arr = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return np.asarray(Image.fromarray(arr).convert("YCbCr"), dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--weights", default=os.environ.get("MASKED_GATYS_WEIGHTS"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for suffix in ("", "_small"):
        content = load_image(EXAMPLES / f"real_eye{suffix}.png")
        kw = dict(mask=str(EXAMPLES / f"real_eye{suffix}_mask.png"),
                  style_mask=str(EXAMPLES / f"synthetic_eye{suffix}_mask.png"))
        for mode in (None, "luminance", "histogram"):
            cfg = StylizeConfig(weights=args.weights, max_layer="auto", iterations=args.iterations,
                                original_colors=mode, device="cpu")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = stylize(content, str(EXAMPLES / f"synthetic_eye{suffix}.png"), config=cfg, **kw).image
            d = np.abs(ycbcr(out) - ycbcr(content)).mean(axis=(0, 1))
            rows.append({"content": f"real_eye{suffix}.png", "mode": mode, "mean_abs_dY": d[0],
                         "mean_abs_dCb": d[1], "mean_abs_dCr": d[2]})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"iterations": args.iterations, "weights": Path(args.weights).name, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
