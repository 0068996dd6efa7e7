"""How the default weights were chosen: a sweep over the style weight (and TV).

Runs both presets on a rendered real-domain eye (content) after a rendered
synthetic eye (style) with the ImageNet VGG-19 layers conv1_1..conv3_4
(``--weights``), writes a sheet (rows: presets, columns: style weights) and a
JSON of objective terms and pupil shift per setting.

    python benchmarks/tune_weights.py --weights "$MASKED_GATYS_WEIGHTS" \
        --out benchmarks/results/tuning

The chosen values and the reasoning are in docs/tuning.md.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from masked_gatys.eyes import render_eye
from masked_gatys.image import save_image
from masked_gatys.eyes.pupil import pupil_center
from masked_gatys.stylize import StylizeConfig, stylize


def to_pil(image: torch.Tensor, scale: int) -> Image.Image:
    array = (image[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    pil = Image.fromarray(array)
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tuning"))
    parser.add_argument("--size", default="72x120")
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--style-weights", default="1e1,1e2,1e3,1e4,1e5")
    parser.add_argument("--tv-weight", type=float, default=0.0)
    parser.add_argument("--presets", default="gatys,masked")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    content = render_eye(yaw=15, pitch=-8, domain="real", size=(h, w), seed=args.seed)
    style = render_eye(yaw=-10, pitch=5, domain="synthetic", size=(h, w), seed=args.seed + 100)
    weights = [float(v) for v in args.style_weights.split(",")]
    presets = args.presets.split(",")
    scale = 2
    cell_w, cell_h = w * scale, h * scale + 28
    sheet = Image.new("RGB", (cell_w * (len(weights) + 2), cell_h * len(presets)), "white")
    draw = ImageDraw.Draw(sheet)
    records = []
    truth = content.truth["pupil_center"]
    for row, name in enumerate(presets):
        sheet.paste(to_pil(content.image, scale), (0, row * cell_h))
        draw.text((2, row * cell_h + h * scale + 2), "content (real)", fill="black")
        sheet.paste(to_pil(style.image, scale), (cell_w, row * cell_h))
        draw.text((cell_w + 2, row * cell_h + h * scale + 2), "style (synthetic)", fill="black")
        for col, sw in enumerate(weights):
            cfg = StylizeConfig(preset=name, weights=args.weights, max_layer="auto", iterations=args.iterations,
                                style_weight=sw, tv_weight=args.tv_weight, device="cpu", seed=args.seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = stylize(content.image, style.image, mask=content.mask, style_mask=style.mask, config=cfg)
            seconds = time.perf_counter() - start
            px, py = pupil_center(result.image, content.mask)
            shift = ((px - truth[0]) ** 2 + (py - truth[1]) ** 2) ** 0.5
            records.append({"preset": name, "style_weight": sw, "tv_weight": args.tv_weight, "total": result.total,
                            "terms": result.terms, "pupil_shift_px": shift, "seconds": seconds,
                            "iterations": result.n_iter})
            x = cell_w * (col + 2)
            sheet.paste(to_pil(result.image, scale), (x, row * cell_h))
            draw.text((x + 2, row * cell_h + h * scale + 2), f"{name} s={sw:g} shift {shift:.1f}px",
                      fill="black")
            save_image(result.image, args.out / f"{name}_sw{sw:g}.png")
    sheet.save(args.out / "sheet.png")
    meta = {"weights": str(args.weights), "size": [h, w], "iterations": args.iterations, "seed": args.seed,
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    (args.out / "tuning.json").write_text(json.dumps({"metadata": meta, "results": records}, indent=1))


if __name__ == "__main__":
    main()
