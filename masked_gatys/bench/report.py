"""The benchmark's records as text tables (:func:`format_table`) and a figure (:func:`write_plot`).

>>> _s(0.0042)
'4.2 ms'
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from masked_gatys.bench.config import BenchResult

__all__ = ["format_table", "write_plot"]


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def format_table(result: BenchResult | dict[str, Any]) -> str:
    """The records as readable text tables (seconds, or ``ms`` and ``us`` below one second)."""
    data = result.to_dict() if isinstance(result, BenchResult) else result
    meta, recs = data["metadata"], data["results"]
    weights = meta.get("weights") or {}
    n = (meta.get("config") or {}).get("iterations")
    lines = [(f"masked-gatys {meta.get('package_version')} bench on {meta.get('device')} ({meta.get('device_name')}), "
              f"{meta.get('torch_threads')} torch threads, torch {meta.get('torch')}; weights "
              f"{weights.get('name')} ({str(weights.get('sha256'))[:12]}); {meta.get('date')}"), ""]
    lines.append("Objective evaluation (forward + backward) against the floor (VGG forward + backward):")
    rows = [[str(r["size"]), r["preset"], _s(r["seconds_per_eval"]), _s(r["floor_seconds"]),
             f"{r['ratio_to_floor']:.3f}", f"{_s(r['eval_timing']['min'])}-{_s(r['eval_timing']['max'])}",
             str(r["eval_timing"]["n"]), _mb(r["peak_memory_bytes"])]
            for r in recs if r["kind"] == "objective"]
    lines += _table(["size", "preset", "s/eval", "floor s", "ratio", "eval min-max", "n", "peak MiB"], rows)
    lines += ["", f"Optimizers (time for N={n} iterations; * = extrapolated from the measured iterations):"]
    rows = []
    for r in recs:
        if r["kind"] != "optimizer":
            continue
        obj = r["objective"] or {}
        rows.append([str(r["size"]), r["preset"], r["method"], _s(r["seconds_per_iteration"]),
                     "-" if r["evals_per_iteration"] is None else f"{r['evals_per_iteration']:.2f}",
                     _s(r["seconds_for_n_iterations"]) + ("*" if r["extrapolated"] else ""),
                     str(r["measured_iterations"]),
                     "-" if not obj else f"{obj['start_mean']:.4g} -> {obj['final_mean']:.4g}",
                     _mb(r["peak_memory_bytes"])])
    lines += _table(["size", "preset", "optimizer", "s/iter", "evals/iter", "s for N", "measured", "objective",
                     "peak MiB"], rows)
    lines += ["", ("Networks (speed-up = time for N optimizer iterations / seconds per image; "
                   "worth = optimizer iterations reaching the net's objective, mean +- std over the eyes):")]
    rows = []
    for r in recs:
        if r["kind"] != "net":
            continue
        obj = r["objective"] or {}
        eq = r["equivalent_iterations"]
        on = f"{eq['optimizer']}, its training objective" if eq and eq.get("objective") == "training" else \
            (eq or {}).get("optimizer")
        if eq and eq.get("mean") is not None:
            worth = f"{eq['mean']:.1f} +- {eq['std']:.1f} ({on})"
            if eq.get("missing"):
                worth += f", {eq['missing']} beyond the run"
        elif eq:
            worth = f"> {max(a for a in eq['at_least'] if a is not None)} ({on})"
        else:
            worth = "n/a"
        ref = r["speedup_reference"] or {}
        rows.append([str(r["size"]), r["method"], _s(r["seconds_per_image"]),
                     f"{_s(r['seconds_per_image_best_batch'])} @{r['best_batch']}",
                     "-" if r["speedup_vs_optimizer"] is None else
                     f"{r['speedup_vs_optimizer']:.0f}x ({ref.get('method')}/{ref.get('preset')})",
                     f"{obj['mean']:.4g}" if obj.get("available") else "unavailable", worth,
                     _mb(r["peak_memory_bytes"])])
    lines += _table(["size", "net", "s/image", "best batch", "speed-up", "objective", "worth (iterations)",
                     "peak MiB"], rows)
    reasons = {(r["method"], r["objective"]["reason"]) for r in recs
               if r["kind"] == "net" and not (r["objective"] or {}).get("available", True)}
    for name, reason in sorted(reasons):
        lines.append(f"  {name}: objective unavailable: {reason}")
    lines += ["", f"Peak memory: {meta.get('memory_method')}."]
    return "\n".join(lines)


def _eyes_label(record: dict[str, Any]) -> str:
    n = len(record["objective"]["curves"])
    return f"{record['method']} ({n} eye{'' if n == 1 else 's'})"


def write_plot(result: BenchResult | dict[str, Any], path: str | os.PathLike) -> Path:
    """Objective against iteration (nets' levels as lines), one panel per size; time against size."""
    import matplotlib  # deferred: matplotlib is optional (the [bench] extra)
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    data = result.to_dict() if isinstance(result, BenchResult) else result
    recs = data["results"]
    sizes = sorted({r["size"] for r in recs})
    fig = Figure(figsize=(4.2 * (len(sizes) + 1), 3.8))
    axes = fig.subplots(1, len(sizes) + 1, squeeze=False)[0]
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, size in zip(axes, sizes):
        nets = [r for r in recs if r["kind"] == "net" and r["size"] == size and (r["objective"] or {}).get("available")]
        preset = nets[0]["objective"]["preset"] if nets else "masked"
        opts = [r for r in recs if r["kind"] == "optimizer" and r["size"] == size and r["preset"] == preset]
        if not opts:
            opts = [r for r in recs if r["kind"] == "optimizer" and r["size"] == size]
            preset = opts[0]["preset"] if opts else preset
        # every eye's curve is divided by its start (the content image), so the eyes share one scale
        starts = max((r["objective"]["curves"] for r in opts), key=len, default=[])
        starts = [c[0] for c in starts]
        for i, r in enumerate(opts):
            for j, curve in enumerate(r["objective"]["curves"]):
                ax.plot(range(len(curve)), [v / curve[0] for v in curve], color=colours[i % len(colours)], lw=1,
                        alpha=0.8, label=_eyes_label(r) if j == 0 else None)
        for i, r in enumerate(nets):
            rel = [v / f0 for v, f0 in zip(r["objective"]["values"], starts)]
            if rel:
                ax.axhline(statistics.fmean(rel), color=colours[(len(opts) + i) % len(colours)], ls="--", lw=1.2,
                           label=f"{r['method']} (mean)")
        ax.set_yscale("log")
        ax.set_title(f"{size} px, preset {preset}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("objective / objective at the start")
        ax.legend(fontsize=7)
    ax = axes[-1]
    series: dict[str, dict[int, float]] = {}
    for r in recs:
        if r["kind"] == "objective":
            series.setdefault(f"eval {r['preset']}", {})[r["size"]] = r["seconds_per_eval"]
            series.setdefault(f"floor {r['preset']}", {})[r["size"]] = r["floor_seconds"]
        elif r["kind"] == "net" and r["seconds_per_image"]:
            series.setdefault(f"{r['method']} per image", {})[r["size"]] = r["seconds_per_image"]
    for label, pts in series.items():
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", ls=":" if label.startswith("floor") else "-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("size (px, square)")
    ax.set_ylabel("seconds")
    ax.set_title("time against size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
