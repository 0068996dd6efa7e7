"""The paper's gaze experiment (Sec. 4.2, Table 2): train on synthetic eyes, test on real ones,
raw and purified.

:func:`evaluate` trains each estimator on a training set (default: rendered synthetic eyes),
tests it on test sets (default: rendered real eyes and synthetic renders of the same eyes) and
on each test set purified by each method asked for, and returns the table of mean angular
errors with the pupil shift of each purification beside it. Purification goes through
:func:`masked_gatys.purify.purify`, whose output folder is the cache: a rerun purifies nothing
twice. Trained CNNs and rendered sets are cached in the output folder too.

Layout of ``out``::

    data/        rendered sets (.pt), keyed by their settings
    estimators/  trained CNNs with their provenance
    test/NAME/   each test set as PNGs + manifest.jsonl (purify's input)
    purified/NAME-METHOD-KEY/   purify's output folder and manifest
    results.json, table.md, plot.png, sheet.png

>>> import tempfile
>>> cfg = quick_config(tempfile.mkdtemp(), estimators=("knn",), purify=("none",), train_n=40, test_n=4)
>>> report = evaluate(cfg)
>>> [c["name"] for c in report.columns], sorted(report.errors)
(['synthetic', 'real'], ['knn'])
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy.special import stdtrit

from masked_gatys.bench.metadata import machine_metadata
from masked_gatys.device import resolve_device
from masked_gatys.encoder import default_weights
from masked_gatys import __version__
from masked_gatys import nets
from masked_gatys.checkpoints import load_model, shipped_checkpoint
from masked_gatys.errors import GazeError
from masked_gatys.eyes.gaze_report import GazeReport, format_table, write_plot, write_sheet  # re-exported
from masked_gatys.eyes.layouts import guess_layout
from masked_gatys.eyes.pupil import pupil_center
from masked_gatys.eyes.segment import load_segmenter, segment
from masked_gatys.eyes.render import style_eye
from masked_gatys.files import atomic_write, write_json_atomic
from masked_gatys.image import load_image, resize_to, save_image
from masked_gatys.objective import preset
from masked_gatys.purify import PurifyConfig, purify
from masked_gatys.eyes.datasets import GazeSet, load_labelled_folder, load_mpiigaze, load_unityeyes, render_set
from masked_gatys.eyes.gaze import (
    CNNConfig,
    CNNEstimator,
    available_estimators,
    build_estimator,
    load_estimator,
    save_estimator,
    score,
)
from masked_gatys.files import recorded_name, sha256_file

__all__ = ["ExperimentConfig", "GazeReport", "evaluate", "quick_config", "load_gaze_set", "format_table"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Notify = Callable[[str], None]  # one line for the user

NETS = ("johnson", "purifier")
MASK_MODES = ("auto", "none")


@dataclass(frozen=True)
class ExperimentConfig:
    """Settings of :func:`evaluate` (the CLI's defaults come from here).

    ``train`` / ``test``: ``"render"`` (rendered eyes: synthetic for training; real plus
    synthetic renders of the same eyes for testing) or paths of gaze data sets
    (:func:`load_gaze_set`). ``purify``: ``none`` and any of the optimizer presets (``gatys``,
    ``masked``, ``regional``, ...), the shipped nets (``johnson``, ``purifier``) or a
    checkpoint path. ``purify_synthetic`` purifies the synthetic test set too (off by default:
    it doubles the optimizer's time). ``purify_n`` purifies only the first N eyes of each test
    set (default None: all of them; the optimizer purifies a 36x60 eye in about 1.6 s on a CPU
    core, so 13 minutes per optimizer method for the default 500; on 100 eyes kNN's gain
    carried a 95 % interval of +- 0.7 degrees and read 1 degree high, docs/gaze.md); the
    purified columns, their paired differences against the raw eyes and every column's pupil
    figures use those N.
    ``style_pool`` (optimizer methods): ``"train"`` gives each test eye the nearest-looking of
    the first ``style_pool_n`` training eyes as its style eye
    (:class:`~masked_gatys.eyes.styles.StylePool`; only the test image is used to choose,
    never its labels), a folder path names another pool, ``None`` uses one ``style`` eye for
    all. ``style``: that one style eye (default: the synthetic render of seed 0 looking at
    (0, 0), at the experiment's size) and its mask; giving it turns the pool off.
    ``layout``: the framing of the rendered eyes; None guesses it from the first test data set
    given by path (:func:`masked_gatys.eyes.layouts.guess_layout`: grey 36x60 is ``mpiigaze``),
    else ``unity``. ``mask``: ``"auto"`` gives test sets that come without masks (MPIIGaze,
    a folder without a mask column) the shipped segmenter's
    (:func:`masked_gatys.eyes.segment.segment`), cached in ``OUT/masks/``; an eye in which it
    finds no iris (a closed eye) is left out of the purified columns of the methods that need
    a mask (``masked``, ``regional``, ``masked-eye``, ``purifier``), and counted there
    (``no_iris``); methods without a mask purify it. ``"none"``: no segmenter; a method that
    needs a mask on a test set without masks is refused.
    """

    out: str = "gaze-out"
    estimators: tuple[str, ...] = ("cnn", "knn", "svr", "rf")
    train: str = "render"
    train_n: int = 5000
    test: tuple[str, ...] = ("render",)
    test_n: int = 500
    size: tuple[int, int] = (36, 60)
    seed: int = 0
    test_seed: int = 1
    yaw_range: float = 30.0
    pitch_range: float = 20.0
    # the renderer's framing of rendered train and test eyes and of the rendered style eye
    # (masked_gatys.eyes.layouts): mpiigaze for the paper's Table 2 setting
    layout: str | None = None
    purify: tuple[str, ...] = ("none", "masked", "purifier")
    purify_synthetic: bool = False
    purify_n: int | None = None
    style: str | None = None
    style_mask: str | None = None
    # one style eye for all raises the CNN's error on real eyes by 1.9 degrees; the nearest
    # training eye as each eye's style lowers it (docs/gaze.md, "Matched style eyes")
    style_pool: str | None = "train"
    style_pool_n: int = 1000
    iterations: int = 100
    weights: str | None = None
    # eye crops of 36x60 leave relu4/relu5 a few positions, too few for the iris and pupil regions
    # (DESIGN.md); relu3_4 is also where the ImageNet file the record used stops
    max_layer: str | None = "relu3_4"
    device: str = "cpu"
    batch_size: int | None = None
    mask: str = "auto"
    cnn: CNNConfig = field(default_factory=CNNConfig)
    sheet_n: int = 6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_config(out: str, **changes: Any) -> ExperimentConfig:
    """The ``--quick`` settings: a smoke test of every stage in well under a minute."""
    base = ExperimentConfig(out=out, train_n=300, test_n=12, iterations=5,
                            cnn=CNNConfig(epochs=2, batch_size=32, patience=2), sheet_n=4)
    return replace(base, **changes)


# --------------------------------------------------------------------------- data


def load_gaze_set(path: str | os.PathLike, *, size: tuple[int, int], limit: int | None = None) -> GazeSet:
    """A gaze data set from ``path``, its kind told by what it holds: a folder of UnityEyes
    ``N.json`` files, MPIIGaze ``.mat`` files (or one), else a labels file or a folder with
    ``manifest.jsonl`` / ``labels.jsonl`` / ``labels.csv``."""
    p = Path(path)
    if p.suffix.lower() == ".mat" or (p.is_dir() and next(p.rglob("day*.mat"), None) is not None):
        s = load_mpiigaze(p, limit=limit)
        return s if s.size == tuple(size) else s.with_images(_resize(s.images, size))
    if p.is_dir() and any(q.stem.isdigit() for q in p.glob("*.json")):
        return load_unityeyes(p, size=size, limit=limit)
    return load_labelled_folder(p, size=size, limit=limit)


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return resize_to(images, size)


def _key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _quantised(s: GazeSet) -> GazeSet:
    """8-bit images, as every stored eye is: cached sets, PNGs and purify's inputs agree."""
    return s.with_images((s.images * 255).round() / 255)


def _from_blob(blob: dict[str, Any]) -> GazeSet:
    return GazeSet(blob["images"].float() / 255, blob["gaze"].numpy(), blob["masks"].float() / 255,
                   blob["pupil"].numpy(), tuple(blob["ids"]), json.loads(blob["source"]), blob.get("parts"))


def _rendered(cfg: ExperimentConfig, n: int, domain: str, seed: int, progress: Progress | None) -> GazeSet:
    layout = cfg.layout or "unity"  # None: not guessed yet (no data set to guess from): unity, as _with_layout
    extra = () if layout in ("unity", "default") else (layout,)  # unity: the caches made before layouts
    key = _key("render", n, domain, seed, cfg.size, cfg.yaw_range, cfg.pitch_range, *extra)
    path = Path(cfg.out) / "data" / f"render-{domain}-{n}-{key}.pt"
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("parts") is not None:
            return _from_blob(blob)
        # a cache from before part labels were kept: its eyes are the same, only the labels are added
    stage = f"render {domain} ({n})"
    s = render_set(n, domain=domain, size=cfg.size, seed=seed, yaw_range=cfg.yaw_range,
                   pitch_range=cfg.pitch_range, layout=layout,
                   progress=None if progress is None else (lambda d, t: progress(stage, d, t)))
    blob = {"images": (s.images * 255).round().to(torch.uint8), "gaze": torch.from_numpy(s.gaze),
            "masks": (s.masks * 255).round().to(torch.uint8), "pupil": torch.from_numpy(s.pupil),
            "ids": list(s.ids), "source": json.dumps(s.source), "parts": s.parts}
    _save_torch(blob, path)
    return _from_blob(blob)


def _save_torch(obj: Any, path: Path) -> None:
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _train_set(cfg: ExperimentConfig, progress: Progress | None) -> GazeSet:
    if cfg.train == "render":
        return _rendered(cfg, cfg.train_n, "synthetic", cfg.seed, progress)
    return _quantised(load_gaze_set(cfg.train, size=cfg.size, limit=cfg.train_n))


def _test_sets(cfg: ExperimentConfig, progress: Progress | None, *, render: bool = True,
               loaded: dict[str, GazeSet] | None = None) -> dict[str, GazeSet]:
    """The test sets in ``cfg.test``'s order; ``render=False``: the data sets only (the layout of
    the rendered ones may be guessed from them); ``loaded``: sets already read, by name."""
    sets: dict[str, GazeSet] = {}
    for spec in cfg.test:
        if spec == "render":
            if not render:
                continue
            sets["synthetic"] = _rendered(cfg, cfg.test_n, "synthetic", cfg.test_seed, progress)
            sets["real"] = _rendered(cfg, cfg.test_n, "real", cfg.test_seed, progress)
        else:
            name = _test_name(spec)
            if loaded is not None and name in loaded:
                sets[name] = loaded[name]
                continue
            s = _quantised(load_gaze_set(spec, size=cfg.size, limit=cfg.test_n))
            sets[name] = s.with_images(s.images, spec_key=_key(str(Path(spec).resolve())))
    return sets


def _test_name(spec: str) -> str:
    """A test set's column name: its file's stem or its folder's name."""
    return Path(spec).stem if Path(spec).is_file() else Path(spec).name


def _set_key(s: GazeSet) -> str:
    """The identity of a test set's eyes, whatever their number: eye i of a rendered set depends
    on the seed and i alone, so a larger run reuses the purified eyes of a smaller one."""
    return _key({k: v for k, v in s.source.items() if k not in ("n", "subset")})


def _with_layout(cfg: ExperimentConfig, tests: dict[str, GazeSet]) -> tuple[ExperimentConfig, str | None]:
    """``cfg`` with its layout decided, and the line saying so when it was guessed.

    Named: kept. Else guessed (:func:`~masked_gatys.eyes.layouts.guess_layout`) from the first
    test set given by path, which the rendered training eyes should look like; no such set:
    ``unity``.
    """
    if cfg.layout is not None:
        return cfg, None
    paths = [spec for spec in cfg.test if spec != "render"]
    if not paths:
        return replace(cfg, layout="unity"), None
    name = _test_name(paths[0])
    layout, reason = guess_layout(tests[name].images)
    what = "rendered training eyes" if cfg.train == "render" else "rendered eyes"
    return replace(cfg, layout=layout), f"layout {layout} for the {what}, guessed from {name}: {reason} (--layout names one)"


def _needs_mask(method: str) -> bool:
    """Whether purifying by ``method`` needs each eye's attention mask (purify refuses an eye without).

    >>> _needs_mask("purifier"), _needs_mask("johnson"), _needs_mask("masked"), _needs_mask("gatys")
    (True, False, True, False)
    """
    if method in NETS or method.endswith(".pt"):
        try:
            return isinstance(load_model(method).net, nets.Purifier)
        except Exception:  # an unreadable file: purify gives the error, with its own words
            return False
    try:
        c = preset(method)
    except Exception:  # regional needs the mask's region names; an unknown name: purify says so
        return method == "regional"
    return any(t.region is not None for t in c.terms)


def _segmented(cfg: ExperimentConfig, name: str, s: GazeSet, progress: Progress | None) -> tuple[GazeSet, dict[str, Any]]:
    """``s`` with the shipped segmenter's part labels and attention masks (cached in ``OUT/masks/``).

    The cache is keyed by the images' bytes and the segmenter's sha256, so a rerun segments
    nothing and a retrained segmenter segments afresh. The set's source records the segmenter,
    so its purified folders are apart from those of other masks.
    """
    seg = load_segmenter()
    identity = {"file": seg.identity.get("file"), "sha256": seg.identity.get("sha256")}
    pixels = (s.images * 255).round().to(torch.uint8).numpy()
    key = _key("masks", hashlib.sha256(pixels.tobytes()).hexdigest(), list(s.ids), identity["sha256"])
    path = Path(cfg.out) / "masks" / f"{name}-{len(s)}-{key}.pt"
    stage = f"segment {name}"
    if path.is_file():
        labels = torch.load(path, map_location="cpu", weights_only=True)["labels"]
    else:
        if progress is not None:
            progress(stage, 0, len(s))
        labels = segment(s.images, model=seg).to(torch.uint8)
        _save_torch({"labels": labels, "ids": list(s.ids), "segmenter": json.dumps(identity)}, path)
        if progress is not None:
            progress(stage, len(s), len(s))
    masks = (labels >= 2).float()[:, None]
    no_iris = [ident for ident, m in zip(s.ids, masks) if not bool(m.any())]
    out = GazeSet(s.images, s.gaze, masks, s.pupil, s.ids,
                  dict(s.source, masks={"from": "segmenter", "sha256": identity["sha256"]}), labels)
    info = {"from": "segmenter", "segmenter": identity, "n": len(s), "no_iris": len(no_iris),
            "no_iris_ids": no_iris[:20], "cache": str(path.relative_to(cfg.out))}
    return out, info


def _masked_tests(cfg: ExperimentConfig, tests: dict[str, GazeSet], progress: Progress | None,
                  notify: Notify | None) -> tuple[dict[str, GazeSet], dict[str, Any]]:
    """Every test set with attention masks where it can have them, and where they came from.

    ``cfg.mask == "auto"``: sets without masks get the segmenter's (one notice for the run);
    ``"none"``: they keep none, and a method that needs a mask is refused here, before any
    training.
    """
    if cfg.mask not in MASK_MODES:
        raise GazeError(f"mask={cfg.mask!r}: use auto or none")
    sources = {name: {"from": "rendered" if s.source.get("kind") == "rendered" else "data set"}
               for name, s in tests.items() if s.masks is not None}
    bare = [name for name, s in tests.items() if s.masks is None]
    purified = [name for name in bare if name != "synthetic" or cfg.purify_synthetic]
    masked_methods = [m for m in cfg.purify if m != "none" and _needs_mask(m)]
    if cfg.mask == "none":
        if purified and masked_methods:
            raise GazeError(f"--purify {','.join(masked_methods)}: needs masks and test set {purified[0]} has none (mask none): "
                            f"use --mask auto (the segmenter's masks) or purify with gatys or johnson")
        return tests, {**sources, **{name: {"from": None} for name in bare}}
    out = dict(tests)
    said = []
    for name in bare:
        out[name], sources[name] = _segmented(cfg, name, tests[name], progress)
        k = sources[name]["no_iris"]
        said.append(f"{name} ({len(tests[name])} eyes" + (f", {k} with no iris: left out of the purified "
                                                            f"columns that need a mask" if k else "") + ")")
    if said and notify is not None:
        notify(f"masks from the segmenter ({sources[bare[0]]['segmenter']['file']}) for the test sets without "
               f"masks: {'; '.join(said)}")
    return out, sources


# --------------------------------------------------------------------------- estimators


def _fit_estimators(cfg: ExperimentConfig, train: GazeSet, names: Sequence[str],
                    progress: Progress | None) -> dict[str, Any]:
    fitted: dict[str, Any] = {}
    for name in names:
        stage = f"train {name}"
        if name == "cnn":
            key = _key("cnn", train.source, len(train), asdict(cfg.cnn), cfg.size)
            path = Path(cfg.out) / "estimators" / f"cnn-{key}.pt"
            if path.is_file():
                fitted[name] = load_estimator(path)
                continue
            est = CNNEstimator(cfg.cnn).fit(
                train, progress=None if progress is None else (lambda d, t, info: progress(stage, d, t)))

            save_estimator(est, path, provenance={"train": train.source, "train_n": len(train),
                                                  "seed": cfg.cnn.seed, "settings": asdict(cfg.cnn),
                                                  "masked_gatys": __version__})
            fitted[name] = est
        else:
            if progress is not None:
                progress(stage, 0, 1)
            fitted[name] = build_estimator(name, cnn=cfg.cnn, seed=cfg.seed).fit(train)
            if progress is not None:
                progress(stage, 1, 1)
    return fitted


# --------------------------------------------------------------------------- purification


def _style_files(cfg: ExperimentConfig) -> tuple[str, str | None]:
    if cfg.style is not None:
        return cfg.style, cfg.style_mask

    layout = cfg.layout or "unity"  # None: not guessed yet, as in _rendered
    folder = Path(cfg.out) / ("style" if layout in ("unity", "default") else f"style-{layout}")
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = folder / "style.png", folder / "style_mask.png"
    if not (image.is_file() and mask.is_file()):
        eye = style_eye(layout, size=cfg.size, seed=0)  # unity: the synthetic render of seed 0 at (0, 0)
        save_image(eye.image, image)
        save_image(eye.binary_mask.expand(1, 3, -1, -1), mask)
    return str(image), str(mask)


def _style_pool(cfg: ExperimentConfig, train: GazeSet | None) -> str | None:
    """The style pool folder purify reads, or None for one style eye."""
    if cfg.style is not None or cfg.style_pool is None:
        return None
    if cfg.style_pool != "train":
        return cfg.style_pool
    if train is None or train.masks is None:
        raise GazeError("style_pool='train' needs a training set with attention masks; give a pool folder "
                        "or style_pool=None")
    n = min(cfg.style_pool_n, len(train))
    pool = train.subset(range(n), name=f"first {n}")
    pool.write(Path(cfg.out) / "style-pool" / f"train-{n}-{_set_key(train)}")
    return str(Path(cfg.out) / "style-pool" / f"train-{n}-{_set_key(train)}")


def _method_slug(method: str) -> str:
    p = Path(method)
    return p.stem if p.suffix == ".pt" else method


def _method_identity(method: str, layout: str | None = None) -> Any:
    """What makes a method's output: a preset's terms and weights, a network file's bytes (a
    shipped one's of the eyes' layout). Part of the purified folder's name, so a changed preset
    or a retrained net is purified afresh."""
    if method in NETS or method.endswith(".pt"):
        path = shipped_checkpoint(method, layout) if method in NETS else Path(method)
        if path.is_file():
            return [method, sha256_file(path)]
        return [method]
    try:
        c = preset(method)
    except Exception:  # not a preset name here: purify gives the error, with its own words
        return [method]
    # the terms and group weights; purify itself refuses a folder made with other settings
    return [method, [(t.kind, t.layer, t.region, t.weight) for t in c.terms],
            c.content_weight, c.style_weight, c.tv_weight, c.normalize]


def _purified(cfg: ExperimentConfig, name: str, test: GazeSet, method: str,
              progress: Progress | None, pool: str | None = None) -> tuple[GazeSet, dict[str, Any]]:
    """``test`` purified by ``method`` through :func:`masked_gatys.purify.purify` (cached)."""
    set_key = _set_key(test)
    manifest = test.write(Path(cfg.out) / "test" / f"{name}-{set_key}")
    is_net = method in NETS or method.endswith(".pt")
    pool = None if is_net else pool
    style, style_mask = (None, None) if is_net or pool else _style_files(cfg)
    pcfg = PurifyConfig(method=method, style=style, style_mask=style_mask, style_pool=pool,
                        iterations=cfg.iterations, batch_size=cfg.batch_size, weights=cfg.weights,
                        max_layer=cfg.max_layer, device=cfg.device, layout=cfg.layout)
    key = _key(set_key, _method_identity(method, cfg.layout), cfg.iterations, cfg.weights, cfg.max_layer, cfg.style,
               cfg.style_mask, *([] if pool is None else [Path(pool).name]),
               *(["parts"] if test.parts is not None and not is_net else []))
    out = Path(cfg.out) / "purified" / f"{name}-{_method_slug(method)}-{key}"
    stage = f"purify {name} ({_method_slug(method)})"

    def tick(p: Any) -> None:
        if progress is not None:
            progress(stage, p.done + p.failed + p.skipped, p.total)

    report = purify(manifest, out, config=pcfg, progress=tick)
    by_id = {str(r.get("id")): r for r in report.records}
    keep, images, shifts, failed = [], [], [], []
    for i, ident in enumerate(test.ids):
        row = by_id.get(ident)
        if row is None or row.get("status") != "done":
            failed.append({"id": ident, "status": None if row is None else row.get("status")})
            continue
        keep.append(i)
        images.append(load_image(out / row["output"]))
        if row.get("pupil_shift") is not None:
            shifts.append(float(row["pupil_shift"]))
    if not keep:
        raise GazeError(f"purification by {method} failed on every eye of {name}: {failed[:1]}")
    subset = test.subset(keep, name=f"{name} purified by {method}")
    info = {"failed": len(failed), "failures": failed[:5], "folder": str(out.relative_to(cfg.out)),
            "shift_content": _stats(np.array(shifts)) if shifts else None}
    return subset.with_images(torch.cat(images), purified_by=method), info


def _stats(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "median": float("nan"), "p95": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "p95": float(np.percentile(v, 95)), "n": int(v.size)}


def _pupil_error(s: GazeSet) -> dict[str, float] | None:
    """Distance (px) of the detected pupil centre in each image from the set's known centre."""
    if s.pupil is None or s.masks is None:
        return None

    errs = []
    for i in range(len(s)):
        if not np.isfinite(s.pupil[i]).all():
            continue
        try:
            x, y = pupil_center(s.images[i:i + 1], s.masks[i:i + 1])
        except Exception:  # a pupil the detector cannot find counts as missing, not as zero
            continue
        errs.append(float(np.hypot(x - s.pupil[i, 0], y - s.pupil[i, 1])))
    return _stats(np.array(errs))


# --------------------------------------------------------------------------- the experiment


def _columns(cfg: ExperimentConfig, tests: dict[str, GazeSet], progress: Progress | None,
             train: GazeSet | None = None) -> list[tuple[dict[str, Any], GazeSet]]:
    """(column description, eyes) for every raw test set and every purified one."""
    out = []
    for name, s in tests.items():
        out.append(({"name": name, "test_set": name, "method": "none", "n": len(s), "failed": 0,
                     "shift_content": None}, s))
    methods = [m for m in cfg.purify if m != "none"]
    optimizer_methods = [m for m in methods if not (m in NETS or m.endswith(".pt"))]
    pool = _style_pool(cfg, train) if optimizer_methods else None
    for method in methods:
        for name, s in tests.items():
            if name == "synthetic" and not cfg.purify_synthetic:
                continue
            if cfg.purify_n is not None and cfg.purify_n < len(s):
                s = s.subset(range(cfg.purify_n), name=f"first {cfg.purify_n}")
            no_iris = 0
            if s.masks is not None and _needs_mask(method):
                # an eye the segmenter (or the data) gives no iris: nothing for the mask to keep
                keep = [i for i in range(len(s)) if bool(s.masks[i].any())]
                no_iris = len(s) - len(keep)
                if no_iris:
                    s = s.subset(keep, name=f"{len(keep)} with an iris of {len(s)}")
                if not keep:
                    raise GazeError(f"no eye of {name} has an iris to purify by {method}")
            purified, info = _purified(cfg, name, s, method, progress, pool)
            out.append(({"name": f"{name}+{_method_slug(method)}", "test_set": name, "method": method,
                         "n": len(purified), **info, "no_iris": no_iris}, purified))
    return out


def _paired(err: np.ndarray, raw: np.ndarray) -> dict[str, float]:
    """The paired change ``err - raw``: its mean and the half-width of its 95 % interval.

    The interval is Student's t with n - 1 degrees of freedom (at n = 12, t = 2.20, not 1.96).

    >>> d = _paired(np.array([1.0, 2.0, 4.0]), np.array([0.0, 0.0, 0.0]))
    >>> round(d["mean"], 3), round(d["ci95"], 2)
    (2.333, 3.79)
    """
    d = err - raw
    half = stdtrit(d.size - 1, 0.975) * d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": float(half), "n": int(d.size), "raw_mean": float(raw.mean())}


def _targets(report_errors: dict[str, dict[str, dict[str, float]]], columns: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, each with its figure and whether it is met."""
    names = [c["name"] for c in columns]
    out: dict[str, Any] = {}
    if "synthetic" in names and "real" in names:
        out["domain_gap_ratio"] = {e: errs["real"]["mean"] / errs["synthetic"]["mean"]
                                   for e, errs in report_errors.items()}
        out["domain_gap_met"] = all(r >= 1.5 for r in out["domain_gap_ratio"].values())
    gains: dict[str, dict[str, float]] = {}
    for c in columns:
        if c["method"] != "none" and c["test_set"] == "real":
            gains[c["name"]] = {e: -errs[c["name"]]["paired_vs_raw"]["mean"] for e, errs in report_errors.items()}
    out["gain_vs_raw_deg"] = gains
    for method in ("masked", "purifier"):
        col = f"real+{method}"
        if col in gains:
            out[f"{method}_gains_2deg_every_estimator"] = all(g >= 2.0 for g in gains[col].values())
    cnn = report_errors.get("cnn")
    if cnn and "synthetic" in cnn and "real" in cnn and gains:
        gap = cnn["real"]["mean"] - cnn["synthetic"]["mean"]
        best = min(gains, key=lambda n: cnn[n]["mean"])
        closed = (cnn["real"]["mean"] - cnn[best]["mean"]) / gap if gap > 0 else float("nan")
        out["cnn_best_purification"] = best
        out["cnn_gap_closed_fraction"] = closed
        out["cnn_half_gap_met"] = bool(closed >= 0.5)
    return out


def _metadata(cfg: ExperimentConfig) -> dict[str, Any]:
    """The run's record: :func:`~masked_gatys.bench.metadata.machine_metadata` (the benchmark's), the
    settings and the weights' name and sha256."""
    meta = machine_metadata(resolve_device(cfg.device), packages=("scikit-learn",))
    meta["config"] = cfg.to_dict()
    weights = cfg.weights or default_weights()[0]  # the one rule: $MASKED_GATYS_WEIGHTS, cached ImageNet, random
    meta["weights"] = {"name": recorded_name(weights)}
    if Path(weights).is_file():
        meta["weights"]["sha256"] = sha256_file(weights)
    # record no absolute paths of this machine: the output folder by name only
    meta["config"]["out"] = Path(cfg.out).name
    if cfg.weights:
        meta["config"]["weights"] = Path(cfg.weights).name
    return meta


def evaluate(config: ExperimentConfig | None = None, *, progress: Progress | None = None,
             notify: Notify | None = None) -> GazeReport:
    """Run the gaze experiment; write ``results.json``, ``table.md``, ``sheet.png`` (and
    ``plot.png`` where matplotlib is installed) into ``config.out``; return the report.

    ``notify(line)`` hears the run's notices as they come (a guessed layout, the segmenter's
    masks); the report keeps them too."""
    cfg = config or ExperimentConfig()
    names, skipped = available_estimators(cfg.estimators)
    if not names:
        raise GazeError(f"no estimator can run: {skipped}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    notices: list[str] = []

    def say(line: str) -> None:
        notices.append(line)
        if notify is not None:
            notify(line)

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    # the data sets first: the rendered eyes take their layout when none is named
    data_sets = _test_sets(cfg, progress, render=False)
    cfg, guessed = _with_layout(cfg, data_sets)
    if guessed:
        say(guessed)
    tests = _test_sets(cfg, progress, loaded=data_sets)
    tests, mask_sources = _masked_tests(cfg, tests, progress, say)
    train = _train_set(cfg, progress)
    seconds["data"] = time.perf_counter() - t
    t = time.perf_counter()
    fitted = _fit_estimators(cfg, train, names, progress)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    columns = _columns(cfg, tests, progress, train)
    seconds["purify"] = time.perf_counter() - t
    t = time.perf_counter()
    per_eye: dict[str, dict[str, np.ndarray]] = {e: {} for e in names}
    errors: dict[str, dict[str, dict[str, float]]] = {e: {} for e in names}
    for i, (col, s) in enumerate(columns):
        # the pupil's distance from its true centre, on the eyes every column has (the detector
        # costs tenths of a second an eye)
        first = s if cfg.purify_n is None or col["method"] != "none" else s.subset(range(min(cfg.purify_n, len(s))))
        col["pupil_error_truth"] = _pupil_error(first)
        for e in names:
            err = score(fitted[e], s)
            per_eye[e][col["name"]] = err
            errors[e][col["name"]] = _stats(err)
        if progress is not None:
            progress("test", i + 1, len(columns))
    for col, s in columns:
        if col["method"] == "none":
            continue
        raw_ids = {ident: j for j, ident in enumerate(tests[col["test_set"]].ids)}
        idx = np.array([raw_ids[ident] for ident in s.ids])
        for e in names:
            raw = per_eye[e][col["test_set"]][idx]
            errors[e][col["name"]]["paired_vs_raw"] = _paired(per_eye[e][col["name"]], raw)
    seconds["test"] = time.perf_counter() - t
    meta = _metadata(cfg)
    meta["seconds"] = seconds
    meta["train_set"] = train.source
    meta["masks"] = mask_sources
    for col, _ in columns:
        col["masks"] = mask_sources.get(col["test_set"], {}).get("from")
    report = GazeReport([c for c, _ in columns], errors,
                        {e: getattr(fitted[e], "record", {}) for e in names}, skipped, meta, notices=notices)
    report.targets = _targets(errors, report.columns)
    _write_outputs(report, cfg, columns, per_eye)
    return report


# --------------------------------------------------------------------------- outputs


def _write_outputs(report: GazeReport, cfg: ExperimentConfig, columns: list[tuple[dict[str, Any], GazeSet]],
                   per_eye: dict[str, dict[str, np.ndarray]]) -> None:
    out = Path(cfg.out)
    write_json_atomic(report.to_dict(), out / "results.json")
    table = format_table(report)
    atomic_write(out / "table.md", lambda f: f.write(table.encode("utf-8")))
    report.paths = {"results": str(out / "results.json"), "table": str(out / "table.md")}
    report.paths["sheet"] = str(write_sheet(columns, per_eye, out / "sheet.png", cfg.sheet_n))
    try:
        report.paths["plot"] = str(write_plot(report, out / "plot.png"))
    except ImportError:
        report.skipped["plot"] = "matplotlib is not installed (pip install masked-gatys[bench])"
