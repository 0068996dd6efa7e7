"""Write the training curves of network checkpoints (``masked-gatys train`` output) to one JSON.

    python scripts/training_curves.py run1.pt run2.pt -o benchmarks/results/layout-nets-training.json

Per checkpoint (named by its file's stem, or ``NAME=PATH``): the network, the settings that
say what it was trained on (layout, look, masks, jitter, learning rate, batch, sizes, style
pool, init), the step it holds, the validation curve (``val_history``: step, objective, seconds)
and the training loss thinned to at most 200 points. File names only: no machine path is
written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from masked_gatys.checkpoints import read_checkpoint
from masked_gatys.files import recorded_name

SETTINGS = ("net", "layout", "look", "net_masks", "mask_jitter", "lr", "batch_size", "size", "sizes",
            "style_pool", "render", "val", "content_weight", "init", "seed")


def curve(path: Path) -> dict:
    """One checkpoint's curves and settings."""
    data = read_checkpoint(path)
    settings = data.get("train_config", {})
    history = data.get("history", [])
    every = max(1, len(history) // 200)
    return {
        "file": path.name,
        "step": data.get("step"),
        "settings": {k: recorded_name(v) if isinstance(v, str) else v for k, v in settings.items() if k in SETTINGS},
        "val": [{"step": v["step"], "objective": round(v["total"], 2), "seconds": round(v.get("seconds", 0.0), 1)}
                for v in data.get("val_history", [])],
        "loss": [{"step": h["step"], "loss": round(h["loss"], 2)} for h in history[::every]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="PATH.pt or NAME=PATH.pt")
    parser.add_argument("-o", "--out", required=True, type=Path)
    args = parser.parse_args(argv)
    runs = {}
    for item in args.checkpoints:
        name, _, path = item.rpartition("=") if "=" in item else (Path(item).stem, "", item)
        runs[name] = curve(Path(path))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1) + "\n")
    print(f"wrote {args.out} ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
