"""What the gaze experiment reports, and how it is written: :class:`GazeReport`, the markdown
table, the sheet of eyes and the bar plot (``masked_gatys.eyes.experiment`` re-exports them).

>>> r = GazeReport(columns=[{"name": "real", "n": 2, "failed": 0}],
...                errors={"knn": {"real": {"mean": 9.0, "std": 1.0}}}, estimators={}, skipped={}, metadata={})
>>> print(format_table(r).splitlines()[2])
| knn | 9.0 +- 1.0 |
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from masked_gatys.eyes.datasets import GazeSet
from masked_gatys.files import atomic_write
from masked_gatys.sheet import Column, compose_sheet, save_sheet

__all__ = ["GazeReport", "format_table", "write_sheet", "write_plot"]


@dataclass
class GazeReport:
    """What :func:`evaluate` measured. ``columns``: one dict per test column (``name``,
    ``test_set``, ``method``, ``n``, ``failed``, pupil shifts); ``errors[estimator][column]``:
    ``mean``, ``std``, ``median``, ``n`` in degrees; ``estimators``: training records."""

    columns: list[dict[str, Any]]
    errors: dict[str, dict[str, dict[str, float]]]
    estimators: dict[str, dict[str, Any]]
    skipped: dict[str, str]
    metadata: dict[str, Any]
    targets: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "columns": self.columns, "errors": self.errors,
                "estimators": self.estimators, "skipped": self.skipped, "targets": self.targets,
                "notices": self.notices}


def format_table(report: GazeReport) -> str:
    """Markdown: rows estimators, columns test sets, cells mean +- std degrees (purified columns:
    in brackets the paired change against the raw eyes, +- the half-width of its 95 % interval);
    pupil rows below."""
    cols = [c["name"] for c in report.columns]
    lines = ["| estimator | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for e, errs in report.errors.items():
        cells = []
        for c in cols:
            s = errs[c]
            cell = f"{s['mean']:.1f} +- {s['std']:.1f}"
            if "paired_vs_raw" in s:  # the change against raw on the same eyes, +- its 95 % interval
                d = s["paired_vs_raw"]
                cell += f" ({d['mean']:+.1f}" + ("" if math.isnan(d["ci95"]) else f" +- {d['ci95']:.1f}") + ")"
            cells.append(cell)
        lines.append(f"| {e} | " + " | ".join(cells) + " |")

    def pupil_cell(v: dict[str, float] | None) -> str:
        return "-" if not v or not v.get("n") else f"{v['mean']:.2f} +- {v['std']:.2f}"

    lines.append("| pupil vs truth (px) | " + " | ".join(pupil_cell(c.get("pupil_error_truth")) for c in report.columns) + " |")
    lines.append("| pupil shift (px) | " + " | ".join(pupil_cell(c.get("shift_content")) for c in report.columns) + " |")
    lines.append("| eyes (failed) | " + " | ".join(
        f"{c['n']} ({c['failed']}" + (f"; {c['no_iris']} no iris, left out" if c.get("no_iris") else "") + ")"
        for c in report.columns) + " |")
    return "\n".join(lines) + "\n"


def write_sheet(columns: list[tuple[dict[str, Any], GazeSet]], per_eye: dict[str, dict[str, np.ndarray]],
                 path: Path, n: int) -> Path:
    """A sheet of the first ``n`` eyes of the first column, every column's image of each with the
    first estimator's (the CNN's if there is one) error in degrees."""
    est = "cnn" if "cnn" in per_eye else next(iter(per_eye))
    ids = list(columns[0][1].ids[:n])
    cols = []
    for col, s in columns:
        where = {ident: j for j, ident in enumerate(s.ids)}
        images, captions = [], []
        for ident in ids:
            j = where.get(ident)
            images.append(None if j is None else s.images[j:j + 1])
            captions.append("failed" if j is None else f"{est} {per_eye[est][col['name']][j]:.1f} deg")
        cols.append(Column(col["name"], images, captions))
    sheet = compose_sheet(cols, title=f"Gaze test eyes: {est} angular error per eye", min_width=120)
    return save_sheet(sheet, path)


def write_plot(report: GazeReport, path: str | os.PathLike) -> Path:
    """Grouped bars: one group per estimator, one bar per test column, error bars = std."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    ests = list(report.errors)
    cols = [c["name"] for c in report.columns]
    width = 0.8 / max(1, len(cols))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(ests) * len(cols) * 0.5 + 2), 4.2))
    for k, c in enumerate(cols):
        means = [report.errors[e][c]["mean"] for e in ests]
        stds = [report.errors[e][c]["std"] for e in ests]
        ax.bar(np.arange(len(ests)) + (k - (len(cols) - 1) / 2) * width, means, width, yerr=stds,
               capsize=2, label=c)
    ax.set_xticks(np.arange(len(ests)), ests)
    ax.set_ylabel("angular error (degrees), mean +- std")
    ax.set_title("Gaze error: trained on synthetic eyes, tested raw and purified")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    path = Path(path)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path
