"""The purification demo (``masked-gatys demo``): one real-looking eye purified every way.

An application (layer L3) though it lives in ``eyes/``: it runs the pipelines
(``stylize``, the shipped networks) on rendered eyes and writes a comparison
sheet. :func:`run_demo` renders the two eyes, runs the ``gatys`` and
``masked`` presets and every shipped network, judges every output by both
presets' objectives and the pupil shift, and writes ``sheet.png``,
``results.json``, the images and ``outputs.pt`` into a folder. It reports
progress and notices by callback; the CLI prints them.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from masked_gatys.checkpoints import SHIPPED, load_model
from masked_gatys.config import DEMO_CONTENT, DEMO_ITERATIONS, DEMO_MAX_LAYER, DEMO_SIZE, DEMO_STYLE
from masked_gatys.encoder import default_weights
from masked_gatys.eyes.pupil import pupil_center, pupil_shift
from masked_gatys.eyes.render import EyeRender, render_eye
from masked_gatys.files import atomic_write, write_json_atomic
from masked_gatys.image import save_image
from masked_gatys.sheet import Column, compose_sheet, save_sheet
from masked_gatys.stylize import Progress, StylizeConfig, prepare, stylize

__all__ = ["run_demo", "find_demo_weights", "DEMO_CONTENT", "DEMO_STYLE", "DEMO_SIZE", "DEMO_ITERATIONS",
           "DEMO_MAX_LAYER", "TORCHVISION_VGG19"]

TORCHVISION_VGG19 = "vgg19-dcbb9e9d.pth"

#: (preset, stylize's progress) -> anything; a True return is ignored (the demo runs to the end)
OnProgress = Callable[[str, Progress], Any]


def find_demo_weights() -> tuple[str, str]:
    """(weights for ``StylizeConfig.weights``, where they came from): env, hub cache, else random."""
    choice, source = default_weights()  # the one rule every command follows (README)
    if choice == "imagenet":  # the cached file itself, so the demo names what it used
        return str(Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19), "torch hub cache"
    return choice, ("random" if choice == "random" else "MASKED_GATYS_WEIGHTS")


def _data_dir() -> Path:
    """Where the shipped networks lie (a test points it elsewhere)."""
    return Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class _Demo:
    """The settings of one demo run and its two eyes."""

    out: Path
    size: tuple[int, int]
    iterations: int
    weights: str
    device: str
    max_layer: str
    content: EyeRender
    style: EyeRender

    def config(self, preset: str) -> StylizeConfig:
        return StylizeConfig(preset=preset, iterations=self.iterations, weights=self.weights,
                             max_layer=self.max_layer, device=self.device)

    def stylize_args(self) -> dict[str, Any]:
        return {"mask": self.content.binary_mask, "style_mask": self.style.binary_mask}


@dataclass(frozen=True)
class _Reporter:
    """stylize's callback: passes each iteration on, never stops the run."""

    preset: str
    on_progress: OnProgress

    def __call__(self, progress: Progress) -> bool:
        self.on_progress(self.preset, progress)
        return False


def _render_inputs(out: Path, size: tuple[int, int]) -> tuple[EyeRender, EyeRender]:
    """The content (real domain) and style (synthetic) eyes, written beside the outputs."""
    content = render_eye(domain="real", size=size, **DEMO_CONTENT)
    style = render_eye(domain="synthetic", size=size, **DEMO_STYLE)
    save_image(content.image, out / "content.png")
    save_image(content.binary_mask, out / "content_mask.png")
    save_image(style.image, out / "style.png")
    save_image(style.binary_mask, out / "style_mask.png")
    return content, style


def _run_optimizers(demo: _Demo, on_progress: OnProgress | None
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any] | None]:
    """Both presets minimised: their records, outputs and the loss network's identity."""
    methods: dict[str, dict[str, Any]] = {}
    outputs: dict[str, torch.Tensor] = {}
    identity = None
    for preset in ("gatys", "masked"):
        callback = None if on_progress is None else _Reporter(preset, on_progress)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random-weights warning: the CLI says it once
            result = stylize(demo.content.image, demo.style.image, **demo.stylize_args(),
                             config=demo.config(preset), callback=callback)
        identity = result.weights.to_dict()
        outputs[preset] = result.image
        methods[preset] = {"kind": "optimizer", "objective": result.total, "terms": result.terms,
                           "seconds": result.seconds, "n_iter": result.n_iter, "n_eval": result.n_eval,
                           "stop_reason": result.stop_reason}
    return methods, outputs, identity


def _run_networks(demo: _Demo, say: Callable[[str], Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Every shipped network found in the data folder; a broken one is skipped with a notice."""
    methods: dict[str, dict[str, Any]] = {}
    outputs: dict[str, torch.Tensor] = {}
    for name in sorted(SHIPPED):
        path = _data_dir() / SHIPPED[name]
        if not path.is_file():
            continue
        try:
            model = load_model(path, device=demo.device)
            start = time.perf_counter()
            with torch.no_grad():
                image = model(demo.content.image.to(demo.device), demo.content.binary_mask.to(demo.device)).cpu()
            seconds = time.perf_counter() - start
        except Exception as exc:  # a broken or incompatible checkpoint must not sink the demo
            say(f"notice: skipping {path.name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")
            continue
        outputs[name] = image
        methods[name] = {"kind": "network", "checkpoint": path.name, "seconds": seconds,
                         "trained_with_weights": getattr(model, "weights_identity", None)}
    return methods, outputs


def _judge(demo: _Demo, methods: dict[str, Any], outputs: dict[str, torch.Tensor]) -> None:
    """Every output judged by both presets' objectives (same weights) and by its pupil shift."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        judges = {p: prepare(demo.content.image, demo.style.image, **demo.stylize_args(), config=demo.config(p))
                  for p in ("gatys", "masked")}
    for key, image in outputs.items():
        with torch.no_grad():
            values = {p: float(j.objective(image.to(j.device)).total[0]) for p, j in judges.items()}
        methods[key]["objective_gatys"] = values["gatys"]
        methods[key]["objective_masked"] = values["masked"]
        if methods[key]["kind"] == "network":
            methods[key]["objective"] = values["masked"]
        try:
            methods[key]["pupil_shift"] = pupil_shift(demo.content.image, image, demo.content.binary_mask)
        except (ValueError, RuntimeError) as exc:
            methods[key]["pupil_shift"] = None
            methods[key]["pupil_shift_error"] = str(exc)


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _sheet_columns(demo: _Demo, methods: dict[str, Any], outputs: dict[str, torch.Tensor],
                   identity: dict[str, Any] | None) -> list[Column]:
    """The inputs' two columns, then one per output with its figures."""
    columns = [
        Column("content (real)", [demo.content.image, demo.content.binary_mask],
               [f"seed {DEMO_CONTENT['seed']}, gaze ({DEMO_CONTENT['yaw']:g}, {DEMO_CONTENT['pitch']:g})",
                "attention mask"]),
        Column("style (synthetic)", [demo.style.image, demo.style.binary_mask],
               [f"seed {DEMO_STYLE['seed']}, gaze ({DEMO_STYLE['yaw']:g}, {DEMO_STYLE['pitch']:g})",
                "style mask"]),
    ]
    for key, image in outputs.items():
        m = methods[key]
        lines = [f"gatys obj {_fmt(m['objective_gatys'], '.4g')}",
                 f"masked obj {_fmt(m['objective_masked'], '.4g')}",
                 f"pupil shift {_fmt(m.get('pupil_shift'), '.2f')} px",
                 f"{m['seconds']:.1f} s" if m["seconds"] >= 0.1 else f"{m['seconds'] * 1000:.0f} ms"]
        trained = m.get("trained_with_weights") or {}
        if m["kind"] == "network" and identity and trained.get("sha256") != identity.get("sha256"):
            lines.append("(trained with other VGG weights)")
            m["note"] = "trained with other loss-network weights than the demo's: its objective values do not compare"
        heading = key if m["kind"] == "optimizer" else f"{key} (net)"
        columns.append(Column(heading, [image, None], ["\n".join(lines)]))
    return columns


def _write_outputs(demo: _Demo, outputs: dict[str, torch.Tensor], columns: list[Column],
                   identity: dict[str, Any] | None) -> None:
    buffer = io.BytesIO()
    torch.save({key: image.detach().cpu() for key, image in outputs.items()}, buffer)
    atomic_write(demo.out / "outputs.pt", lambda fh: fh.write(buffer.getvalue()))
    for key, image in outputs.items():
        save_image(image, demo.out / f"{key}.png")
    weights_name = identity["name"] if identity else demo.weights
    title = (f"masked-gatys demo: {demo.size[0]}x{demo.size[1]} eyes, {demo.iterations} iterations, "
             f"layers <= {demo.max_layer}, weights {weights_name}"
             f"{' (RANDOM: shows the pipeline, not the quality)' if demo.weights == 'random' else ''}")
    save_sheet(compose_sheet(columns, title=title), demo.out / "sheet.png")


def run_demo(out: Path, *, size: tuple[int, int] = DEMO_SIZE, iterations: int = DEMO_ITERATIONS, weights: str,
             device: str, max_layer: str = DEMO_MAX_LAYER, weights_source: str | None = None,
             echo: Callable[[str], Any] | None = None, on_progress: OnProgress | None = None) -> dict[str, Any]:
    """Render the two eyes, stylize with both presets and any shipped networks, write the sheet.

    Returns what ``results.json`` holds. ``echo`` receives notices (the CLI's
    stderr); ``on_progress(preset, progress)`` each optimizer iteration.
    """
    say = echo or (lambda message: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    content, style = _render_inputs(out, size)
    demo = _Demo(out, tuple(size), iterations, weights, device, max_layer, content, style)
    measured = pupil_center(content.image, content.binary_mask)
    methods, outputs, identity = _run_optimizers(demo, on_progress)
    net_methods, net_outputs = _run_networks(demo, say)
    methods.update(net_methods)
    outputs.update(net_outputs)
    _judge(demo, methods, outputs)
    _write_outputs(demo, outputs, _sheet_columns(demo, methods, outputs, identity), identity)
    results = {
        "size": list(size), "iterations": iterations, "max_layer": max_layer, "device": device,
        "weights": identity, "weights_source": weights_source or "--weights",
        "content": {**DEMO_CONTENT, "domain": "real", "pupil_center_truth": content.truth["pupil_center"],
                    "pupil_center_measured": list(measured)},
        "style": {**DEMO_STYLE, "domain": "synthetic"},
        "methods": methods,
        "notes": "objective: the method's own preset (networks: masked); objective_gatys/objective_masked: "
                 "every output judged by both presets' objectives with the same weights; pupil_shift: "
                 "distance in pixels between pupil_center of the content and of the output, inside the "
                 "content's attention mask",
    }
    write_json_atomic(results, out / "results.json")
    return results
