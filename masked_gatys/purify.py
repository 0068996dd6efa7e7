"""Purify many images: folders and manifests, batches, resume, shards.

:func:`purify` runs a method over every input (see
:mod:`masked_gatys.manifests` for the inputs) and writes, under ``out_dir``,
the purified images at the inputs' relative paths (as PNG), their masks and
labels copied beside them, and ``manifest.jsonl``: the input's columns plus
``output``, ``status`` (``done`` / ``failed: reason``), ``objective``,
``pupil_shift`` (pixels, inside the content's mask), ``seconds`` and
``finished`` (and, for ``masked``, ``parts_used``: whether the input's
``NAME_labels.png`` was read), and the input's identity: ``input_path`` (its
resolved path) and ``input_sha256`` (of the image, its mask and its labels).
The manifest is the union of every source ever purified into the folder, one
record per input. A rerun skips what is done (the manifest says so, and the
output and its companions' copies are there, with the size recorded) and
redoes what failed or was cut off, an input whose content changed, and, for
``masked``, an input whose labels came or went.

Every output lies inside ``out_dir``: an input whose output would not (a
manifest row ``../../keep.png``) is recorded ``failed: path outside the output
folder``, as is an input whose output another input's output already holds (a
second source with the same file names). The settings are checked against the
folder's ``purify.json`` and its records before anything is reported.

The method is either an objective preset (``gatys``, ``masked``, ...) run by
the batched projected L-BFGS of :func:`masked_gatys.stylize.stylize` (``B``
images per batch, one history each, each stopping on its own), or a trained
network (``johnson``, ``purifier``: the shipped eye checkpoints, or a
checkpoint path), batched (:mod:`masked_gatys.purify_methods`). By default it
is the shipped ``purifier`` (``masked`` where a style eye is given).

Masks (``mask="auto"``, the default): an input's own ``NAME_mask.png`` (or
manifest ``mask``) where it has one; for a method that needs masks, every
other input's from the eye-part segmenter (:mod:`masked_gatys.eyes.segment`,
the mask-less eyes of a batch in one call), written beside its output as
``NAME_mask.png`` and ``NAME_labels.png`` (and its labels are ``masked``'s
parts); an eye where it finds no iris is recorded ``failed: the segmenter finds
no iris (a closed eye?)``. Each record says ``mask_source`` (``given``,
``segmenter`` with ``segmenter_sha256``, or None); one warning per run says how
many masks the segmenter made. ``mask="none"``: no masks; a method that needs
them is refused before any work.

>>> import tempfile, torch, warnings
>>> from pathlib import Path
>>> from masked_gatys.eyes import render_eye
>>> from masked_gatys.image import save_image
>>> src, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp()) / "out"
>>> eye = render_eye(yaw=5.0, pitch=0.0, domain="real", size=(36, 60), seed=1)
>>> save_image(eye.image, src / "0000.png"); save_image(eye.binary_mask, src / "0000_mask.png")
>>> report = purify(src, out, config=PurifyConfig(method="johnson"))
>>> report.done, report.failed, report.records[0]["status"], (out / "0000.png").is_file()
(1, 0, 'done', True)
>>> purify(src, out, config=PurifyConfig(method="johnson")).skipped
1
>>> save_image(eye.image, src / "0001.png")  # no mask: the segmenter makes it
>>> with warnings.catch_warnings(record=True) as said:
...     warnings.simplefilter("always")
...     report = purify(src, Path(tempfile.mkdtemp()) / "auto", config=PurifyConfig(pupil_shift=False))
>>> [(r["status"], r["mask_source"]) for r in report.records]
[('done', 'given'), ('done', 'segmenter')]
>>> [str(w.message)[:36] for w in said if "segmenter" in str(w.message)]
['masks of 1 eye made by the segmenter']
"""

# The methods (a network, the optimizer) live in purify_methods; this module is the run: inputs,
# masks (given or the segmenter's), batches, records, resume.

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from masked_gatys.colour import keeps_grey, luminance
from masked_gatys.config import ObjectiveSettings, OptimizerSettings
from masked_gatys.device import resolve_device
from masked_gatys.errors import MaskedGatysError, MaskError
from masked_gatys.eyes.labels import load_parts
from masked_gatys.files import atomic_write, write_json_atomic
from masked_gatys.image import load_image, save_image
from masked_gatys.manifests import (OUTSIDE, Item, check_outputs, check_settings, input_sha256,
                                    is_done, list_inputs, locked, manifest_name, merge_manifests, outside_outputs,
                                    printable, record_key, select_shard, settings_fingerprint, update_manifest)
from masked_gatys.masks import load_mask
from masked_gatys.objective import PRESETS
from masked_gatys.purify_methods import NETWORKS, Network, Optimizer, check_method, uses_parts

__all__ = ["PurifyConfig", "PurifyProgress", "PurifyReport", "purify", "NETWORKS", "SETTINGS_FILE"]

SETTINGS_FILE = "purify.json"
# Settings that do not change what an image's output is: a rerun may change them.
_RESUMABLE = {"batch_size", "device", "shard", "fail_fast", "pupil_shift", "write_workers"}


@dataclass(frozen=True)
class PurifyConfig(ObjectiveSettings, OptimizerSettings):
    """Every setting of a purification run; the CLI's defaults come from here.

    The loss and optimizer settings are ``StylizeConfig``'s (:class:`ObjectiveSettings`,
    :class:`OptimizerSettings` in ``masked_gatys.config``), passed on to ``stylize`` as they are.

    >>> PurifyConfig().method, PurifyConfig(style="rendered").method, PurifyConfig(method="gatys").is_network
    ('purifier', 'masked', False)
    """

    method: str | None = None
    """An objective preset (``masked``, ``gatys``, ...) for the optimizer, or a network:
    ``johnson``, ``purifier`` or a checkpoint path. None: ``masked`` where a ``style`` or
    ``style_pool`` is given (they are the optimizer's), else the shipped ``purifier`` network:
    the one-command path for real eyes (with ``mask="auto"``), measured best for gaze
    (docs/gaze.md) and fast (no style eye, no loss network)."""
    mask: str = "auto"
    """Where the masks come from. ``auto``: an input's own (``NAME_mask.png`` beside it, a
    manifest's ``mask`` column) where it has one; for a method that needs masks (a network
    trained with them, the ``masked``/``regional`` presets) every other input's from the
    eye-part segmenter (:mod:`masked_gatys.eyes.segment`), written as ``NAME_mask.png`` and
    ``NAME_labels.png`` beside its output; an eye where it finds no iris fails. ``none``: no
    masks (given ones ignored): methods that need masks are refused, ``gatys`` runs without."""
    segmenter: str | None = None
    """The segmenter checkpoint of ``mask="auto"``; None: the shipped ``segmenter.pt``."""
    style: str | None = None
    """The style image (optimizer only); ``rendered``: a rendered synthetic eye at each
    input's size (the style the shipped networks were trained on)."""
    style_mask: str | None = None
    """None: ``STYLE_mask.png`` beside the style image if there is one."""
    layout: str | None = None
    """The layout of the eyes (``unity``, ``mpiigaze``, ``nir``: :mod:`masked_gatys.eyes.layouts`):
    ``style="rendered"``'s eye is rendered in it, and a shipped network (``purifier``,
    ``johnson``) is the one trained in it where one is shipped
    (:data:`masked_gatys.checkpoints.SHIPPED_BY_LAYOUT`); None: guessed from each batch's size and channels (grey
    36x60 is ``mpiigaze``, grey 4:3 frames ``nir``, anything else ``unity``), with a warning
    when the guess is not ``unity``."""
    style_pool: str | None = None
    """A folder of synthetic style eyes with masks (optimizer only): each input eye takes the
    pool eye that looks most like it as its style (:mod:`masked_gatys.eyes.styles`), in place
    of one ``style`` for all. Lowers gaze error where one style eye raises it (docs/gaze.md)."""
    iterations: int = 100
    batch_size: int | None = None
    """Images per batch; None: 8 for the optimizer, 64 for a network."""
    device: str = "cpu"
    shard: tuple[int, int] | None = None
    """``(i, n)``: take shard ``i`` of ``n`` (a stable hash of each input's relative path)."""
    fail_fast: bool = False
    """Stop at the first bad input instead of recording it as failed."""
    pupil_shift: bool = True
    """Measure the pupil shift of each output (about 22 ms per 36x60 image on one core, more than
    the rest of a purification with the purifier and automatic masks, about 12 ms; on by default:
    the figure that says whether the pupil was kept; benchmarks/README.md, issue 22)."""
    write_workers: int = 4
    colour: str | None = None
    """``keep``: a grey input (one channel, or R, G, B within 1/255) is purified on luminance
    (the style's luminance as its target; a network's output turned to luminance) and written
    as a grey PNG; ``style``: the output takes the style's colours; None: keep for grey inputs."""
    """Threads measuring pupil shifts and writing outputs, beside the next batch's work."""

    def __post_init__(self) -> None:
        OptimizerSettings.__post_init__(self)
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.shard is not None:
            i, n = (int(v) for v in self.shard)
            if n < 1 or not 0 <= i < n:
                raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {self.shard}")
            object.__setattr__(self, "shard", (i, n))
        if self.colour not in (None, "keep", "style"):
            raise ValueError(f"unknown colour {self.colour!r}: use keep or style")
        if self.write_workers < 1:
            raise ValueError(f"write_workers must be >= 1, got {self.write_workers}")
        if self.mask not in ("auto", "none"):
            raise ValueError(f"unknown mask {self.mask!r}: use auto or none")
        if self.method is None:
            object.__setattr__(self, "method", "masked" if self.style or self.style_pool else "purifier")

    @property
    def is_network(self) -> bool:
        return self.method not in PRESETS

    @property
    def batch(self) -> int:
        return self.batch_size or (64 if self.is_network else 8)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shard"] = list(self.shard) if self.shard else None
        return d


@dataclass(frozen=True)
class PurifyProgress:
    """What the progress callback gets after each finished image, and during an optimizer batch."""

    done: int
    failed: int
    skipped: int
    total: int
    """Inputs of this run (this shard)."""
    elapsed: float
    record: dict | None = field(repr=False)
    """The last record (a manifest row); None for an update during a batch."""
    working: float = 0.0
    """How much of the batch under way is done, in images (its iterations so far over its
    budget, times its size): a progress bar's ``done + failed + working``."""


@dataclass
class PurifyReport:
    """The outcome of :func:`purify`: the manifest rows of this run's inputs and the counts."""

    records: list[dict[str, Any]]
    done: int
    failed: int
    skipped: int
    seconds: float
    manifest: Path
    out_dir: Path
    interrupted: bool = False

    @property
    def total(self) -> int:
        return len(self.records)


# ---------------------------------------------------------------- one run


@dataclass
class _Loaded:
    item: Item
    image: Tensor
    mask: Tensor | None
    parts: Tensor | None = None
    sha256: str | None = None
    labels: Tensor | None = None
    """The segmenter's labels ``(H, W)`` (``mask="auto"``); None: the mask, if any, was given."""
    auto: bool = False
    """No mask given: the segmenter makes it (before the batch runs)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _failed(item: Item, exc: BaseException | str) -> dict[str, Any]:
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return {**item.columns, "output": item.output, "status": f"failed: {reason}", "objective": None,
            "pupil_shift": None, "seconds": None, "finished": _now(), "input_path": item.key}


def _load(item: Item, needs_mask: bool, use_parts: bool = False, *, given: bool = True,
          auto: bool = False) -> _Loaded:
    """The input's image, its given mask (``given``: read them) and part labels; ``auto``: an
    input without a mask is left to the segmenter instead of failing."""
    image = load_image(item.image)
    mask = None
    if item.mask is not None and given:
        mask = load_mask(item.mask).region("attention")
        if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
            raise MaskError(f"{item.mask}: mask is {tuple(mask.shape[-2:])} but the image is "
                            f"{tuple(image.shape[-2:])}")
    elif auto:
        return _Loaded(item, image, None, auto=True)
    elif needs_mask:
        raise MaskError(f"{item.image}: no mask (NAME_mask.png beside it, or a 'mask' column)")
    parts = None
    if use_parts and mask is not None and item.labels is not None:
        parts = load_parts(item.labels)
        if tuple(parts.shape[-2:]) != tuple(image.shape[-2:]):
            raise MaskError(f"{item.labels}: labels are {tuple(parts.shape[-2:])} but the image is "
                            f"{tuple(image.shape[-2:])}")
    return _Loaded(item, image, mask, parts)


def _copy(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    atomic_write(dst, lambda fh: fh.write(data))


class _Run:
    """The state of one purify call: records, pending writes, counts, manifest flushes."""

    def __init__(self, out_dir: Path, manifest: Path, total: int, cfg: PurifyConfig,
                 progress: Callable[[PurifyProgress], Any] | None, settings_sha256: str = "") -> None:
        self.out_dir, self.manifest, self.total, self.cfg = out_dir, manifest, total, cfg
        self.progress = progress
        self.uses_parts = uses_parts(cfg)
        self.settings_sha256 = settings_sha256
        self.records: dict[str, dict[str, Any]] = {}
        """This run's new records, by input (record_key): what its manifest flushes write."""
        self.by_item: dict[str, dict[str, Any]] = {}
        """The record of each of this run's inputs (Item.key), new or skipped."""
        self.done = self.failed = self.skipped = 0
        self.start = time.perf_counter()
        self.pending: list[tuple[int, Future, Item, dict[str, Any]]] = []
        self.batch_index = 0
        self.pool = ThreadPoolExecutor(max_workers=cfg.write_workers, thread_name_prefix="purify-write")
        self.last_flush = time.perf_counter()
        self.flush_cost = 0.0
        self.last_step = 0.0
        self.stop_requested = False
        self.metadata: dict[str, Any] = {"software": "masked-gatys", "method": cfg.method}
        self.warnings: set[str] = set()
        self.segmenter: Any = None
        """The segmenter of ``mask="auto"`` (None: this run segments nothing)."""
        self.segmented = 0

    def expects_parts(self, item: Item) -> bool:
        """Whether the input's output is made with part labels: given ones, or the segmenter's."""
        if self.cfg.mask == "none":
            return False
        return item.labels is not None or (self.segmenter is not None and item.mask is None)

    def warn(self, text: str) -> None:
        """Keep a library warning; each is re-issued once at the end, not once per batch."""
        self.warnings.add(text)

    def _report(self, record: dict[str, Any] | None, working: float = 0.0) -> None:
        if self.progress is not None and self.progress(PurifyProgress(
                self.done, self.failed, self.skipped, self.total, time.perf_counter() - self.start,
                record, working)) is True:
            self.stop_requested = True

    def add(self, item: Item, record: dict[str, Any], *, skipped: bool = False) -> None:
        self.by_item[item.key] = record
        if skipped:
            self.skipped += 1
            return
        self.records[record_key(record)] = record
        if record["status"] == "done":
            self.done += 1
        else:
            self.failed += 1
        self._report(record)

    def step(self, working: float) -> bool:
        """During an optimizer batch (at most twice a second): report it. False: a batch is never
        cut short (its images would be recorded done with fewer iterations); a stop comes after it."""
        now = time.perf_counter()
        if self.progress is not None and now - self.last_step >= 0.5:
            self.last_step = now
            self._report(None, working)
        return False

    def fail(self, item: Item, exc: BaseException | str, sha256: str | None = None) -> None:
        if self.cfg.fail_fast:
            raise exc if isinstance(exc, BaseException) else MaskedGatysError(f"{item.image}: {exc}")
        self.add(item, {**_failed(item, exc), "input_sha256": sha256})

    def write(self, loaded: _Loaded, output: Tensor, objective: float | None, seconds: float) -> None:
        item = loaded.item
        record = {**item.columns, "output": item.output, "status": "done",
                  "objective": objective if objective is None or math.isfinite(objective) else None,
                  "pupil_shift": None, "seconds": round(seconds, 5)}
        if self.uses_parts:
            record["parts_used"] = loaded.parts is not None  # a rerun redoes it when its labels come or go
        if loaded.labels is not None:  # the segmenter's companions, written beside the output
            out = PurePosixPath(item.output)
            record.update(mask_source="segmenter", segmenter_sha256=self.segmenter.identity.get("sha256"),
                          output_mask=str(out.with_name(f"{out.stem}_mask.png")),
                          output_labels=str(out.with_name(f"{out.stem}_labels.png")))
        else:
            record["mask_source"] = "given" if loaded.mask is not None else None
            for kind in ("mask", "labels"):
                if getattr(item, kind) is not None and loaded.mask is not None:
                    record[f"output_{kind}"] = item.companion_output(kind)
        record.update(input_path=item.key, input_sha256=loaded.sha256, settings_sha256=self.settings_sha256)
        metadata = dict(self.metadata, source=printable(item.rel))
        future = self.pool.submit(self._finish, loaded, output, metadata)
        self.pending.append((self.batch_index, future, item, record))

    def _finish(self, loaded: _Loaded, output: Tensor, metadata: dict[str, Any]) -> tuple[int, float | None]:
        """In a writer thread: the pupil shift, then the files. Returns (output bytes, shift)."""
        item, shift = loaded.item, None
        grey = keeps_grey(self.cfg.colour, loaded.image)
        if grey:  # grey in, grey out (a network's RGB output becomes its luminance)
            output = luminance(output).expand(-1, 3, -1, -1)
        if self.cfg.pupil_shift:
            from masked_gatys.eyes.pupil import pupil_shift  # deferred: scipy.ndimage costs 0.8 s to import

            try:
                shift = round(pupil_shift(loaded.image, output, loaded.mask), 4)
            except MaskedGatysError:
                shift = None  # no findable pupil: not a failure of the purification
        target = self.out_dir / item.output
        target.parent.mkdir(parents=True, exist_ok=True)
        if loaded.labels is not None:
            from masked_gatys.eyes.segment import write_companions  # deferred: it imports scipy.ndimage

            write_companions(loaded.labels, target, target.parent)  # atomic, as every output
        elif loaded.mask is not None:
            for kind, source in (("mask", item.mask), ("labels", item.labels)):
                if source is not None:
                    _copy(source, self.out_dir / str(item.companion_output(kind)))
        save_image(output[:, :1] if grey else output, target, metadata=metadata)
        return target.stat().st_size, shift

    def next_batch(self) -> None:
        """Between batches: the writes of the batch before last must be done (one batch of
        writes overlaps the next batch's work; no more, so memory and a stop request stay bounded)."""
        self.harvest(upto=self.batch_index - 1)
        self.batch_index += 1

    def harvest(self, *, upto: int | None = None, everything: bool = False) -> None:
        """Record the finished writes; wait for those of batches <= ``upto`` (all with ``everything``)."""
        keep = []
        for batch, future, item, record in self.pending:
            wait = everything or (upto is not None and batch <= upto)
            if not wait and not future.done():
                keep.append((batch, future, item, record))
                continue
            try:
                size, shift = future.result()
            except Exception as exc:  # one output that cannot be written never stops the run
                self.fail(item, exc, record.get("input_sha256"))
                continue
            record["pupil_shift"] = shift
            record["output_bytes"] = size
            record["finished"] = _now()
            self.add(item, record)
        self.pending = keep
        self.maybe_flush()

    def maybe_flush(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last_flush >= max(2.0, 10 * self.flush_cost):
            update_manifest(self.manifest, self.records.values())
            self.last_flush = time.perf_counter()
            self.flush_cost = self.last_flush - now

    def close(self) -> None:
        """Finish every pending write (Ctrl-C included), then write the manifest."""
        try:
            self.harvest(everything=True)
        finally:
            self.pool.shutdown(wait=True)
            self.maybe_flush(force=True)


def _run_batch(run: _Run, method: Any, batch: list[_Loaded]) -> None:
    """Purify one batch (same size, all with masks or none); isolate a bad image by retrying one by one."""
    images = torch.cat([b.image for b in batch])
    masks = torch.cat([b.mask for b in batch]) if batch[0].mask is not None else None
    parts = torch.cat([b.parts for b in batch]) if batch[0].parts is not None else None
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs, objectives = method.run(images, masks) if parts is None else method.run(images, masks, parts)
    except (MaskedGatysError, RuntimeError, ValueError) as exc:
        if len(batch) > 1:
            for one in batch:
                _run_batch(run, method, [one])
            return
        run.fail(batch[0].item, exc, batch[0].sha256)
        return
    for w in caught:
        run.warn(str(w.message))
    seconds = (time.perf_counter() - start) / len(batch)
    for k, loaded in enumerate(batch):
        run.write(loaded, outputs[k:k + 1], objectives[k], seconds)


def _batches(run: _Run, todo: Sequence[tuple[Item, str | None]], size: int, needs_mask: bool,
             use_parts: bool = False):
    """Loaded items grouped by (size, has mask, has part labels), ``size`` at a time, the
    segmenter's masks made (:func:`_segment`); bad inputs recorded as failed."""
    buckets: dict[tuple, list[_Loaded]] = {}
    given, auto = run.cfg.mask != "none", run.segmenter is not None
    for item, sha256 in todo:
        try:
            loaded = _load(item, needs_mask, use_parts, given=given, auto=auto)
        except Exception as exc:  # one unreadable input never stops the run
            run.fail(item, exc, sha256)
            continue
        loaded.sha256 = sha256
        key = (tuple(loaded.image.shape[-2:]), loaded.mask is not None or loaded.auto,
               loaded.parts is not None or (loaded.auto and use_parts))
        bucket = buckets.setdefault(key, [])
        bucket.append(loaded)
        if len(bucket) == size:
            batch = _segment(run, buckets.pop(key), use_parts)
            if batch:
                yield batch
        if run.stop_requested:
            return
    for bucket in buckets.values():
        batch = _segment(run, bucket, use_parts)
        if batch:
            yield batch


#: the failure of an eye in which the segmenter finds no iris (mask="auto" never invents one)
NO_IRIS = "the segmenter finds no iris (a closed eye?)"


def _segment(run: _Run, batch: list[_Loaded], use_parts: bool) -> list[_Loaded]:
    """The batch with the segmenter's masks (and part labels) for its mask-less eyes, all in one
    call (they share a size); an eye without an iris, or that cannot be segmented, fails."""
    todo = [b for b in batch if b.auto]
    if not todo:
        return batch
    from masked_gatys.eyes.segment import mask_image  # deferred: it imports scipy.ndimage (see _finish)

    try:
        labels = run.segmenter(torch.cat([b.image for b in todo]))
    except (MaskedGatysError, RuntimeError, ValueError) as exc:
        for b in todo:
            run.fail(b.item, f"the segmenter failed: {exc}", b.sha256)
        return [b for b in batch if not b.auto]
    kept = []
    k = 0
    for b in batch:
        if b.auto:
            lab, k = labels[k], k + 1
            if not bool((lab >= 2).any()):
                run.fail(b.item, NO_IRIS, b.sha256)
                continue
            b.labels, b.mask, b.auto = lab, mask_image(lab), False
            b.parts = lab[None] if use_parts else None
            run.segmented += 1
        kept.append(b)
    return kept


def _plan(run: _Run, items: Sequence[Item], previous: dict[str, dict[str, Any]]) -> list[tuple[Item, str | None]]:
    """What to do with each input: skipped (done, unchanged), failed (its output is another
    input's), or to do (returned, with its content's sha256)."""
    owners = {str(r.get("output")): r for r in previous.values() if is_done(r, run.out_dir)}
    todo = []
    for item in items:
        sha256 = input_sha256(item)
        record = previous.get(item.key) or previous.get(f"output:{item.output}")  # keyed, or an older manifest's
        owner = owners.get(item.output)
        if owner is not None and owner is not record:
            if sha256 is not None and owner.get("input_sha256") == sha256:
                record = owner  # the same content from another place (a moved source folder)
            else:
                run.fail(item, f"the output {item.output} holds another input's ({printable(record_key(owner))}); "
                         "purify this source into its own output folder", sha256)
                continue
        if (is_done(record, run.out_dir) and record.get("input_sha256") in (None, sha256)
                and not (run.uses_parts and bool(record.get("parts_used")) != run.expects_parts(item))):
            run.add(item, record, skipped=True)
        else:
            todo.append((item, sha256))
    return todo


def purify(source: Any, out_dir: str | Path, *, config: PurifyConfig | None = None,
           progress: Callable[[PurifyProgress], Any] | None = None) -> PurifyReport:
    """Purify every input of ``source`` into ``out_dir``; see the module's docstring.

    Errors found before any work (no inputs, two inputs with one output, an
    output over an input, other settings than the folder was made with, another
    segmenter than its masks came from, ``mask="none"`` for a method that needs masks) raise
    :class:`~masked_gatys.errors.MaskedGatysError` subclasses. A bad input is
    recorded as failed (``fail_fast`` raises instead). ``progress(PurifyProgress)``
    after each image, and during an optimizer batch; returning True stops after
    the current batch. On
    KeyboardInterrupt the writes under way finish, the manifest is written and
    the exception propagates.
    """
    cfg = config or PurifyConfig()
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    source_path = None if isinstance(source, (list, tuple)) else Path(source)
    if source_path is not None and source_path.is_dir() and out_dir.resolve() == source_path.resolve():
        raise MaskedGatysError(f"{out_dir}: the output folder is the input folder; choose another")
    check_method(cfg)
    if cfg.style_pool is not None and cfg.is_network:
        raise MaskedGatysError("--style-pool chooses the optimizer's style eyes; a network has its own style")
    items = list_inputs(source, exclude=[out_dir] + ([Path(cfg.style_pool)] if cfg.style_pool else []))
    outside = {item.key for item in outside_outputs(items, out_dir)}
    protected = [p for p in (cfg.style, cfg.style_mask, cfg.style_pool) if p and p != "rendered"]
    if source_path is not None and source_path.is_file():
        protected.append(source_path)
    if cfg.is_network and cfg.method not in NETWORKS:
        protected.append(cfg.method)
    check_outputs([item for item in items if item.key not in outside], out_dir, [Path(p) for p in protected])
    mine = select_shard(items, cfg.shard)
    if cfg.mask == "none" and cfg.method in ("masked", "regional"):
        raise MaskedGatysError(_NO_MASKS.format(cfg.method))

    stop: dict[str, Any] = {}
    method = (Network(cfg, device) if cfg.is_network
              else Optimizer(cfg, device, stop=lambda working: stop["run"].step(working)))
    if cfg.mask == "none" and method.needs_mask:
        raise MaskedGatysError(_NO_MASKS.format(printable(Path(cfg.method).name)))
    segmenter = None
    if cfg.mask == "auto" and method.needs_mask and any(i.mask is None and i.key not in outside for i in mine):
        from masked_gatys.eyes.segment import load_segmenter  # deferred: it imports scipy.ndimage

        segmenter = load_segmenter(cfg.segmenter, device=str(device))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / manifest_name(cfg.shard)
    settings = {"software": "masked-gatys", "settings": _settings(cfg, method.identity)}
    fingerprint = settings_fingerprint(settings["settings"])
    previous = check_settings(out_dir, settings, fingerprint, SETTINGS_FILE)
    if segmenter is not None:
        _check_segmenter(out_dir, segmenter.identity, previous)
    run = stop["run"] = _Run(out_dir, manifest, len(mine), cfg, progress, fingerprint)
    run.segmenter = segmenter
    run.metadata["identity"] = method.identity
    interrupted = False
    try:
        for item in mine:
            if item.key in outside:
                run.fail(item, OUTSIDE)
        todo = _plan(run, [item for item in mine if item.key not in outside], previous)
        for batch in _batches(run, todo, cfg.batch, method.needs_mask, run.uses_parts):
            _run_batch(run, method, batch)
            run.next_batch()
            if run.stop_requested:
                interrupted = True
                break
    finally:
        run.close()
    if run.segmented:
        run.warn(f"masks of {run.segmented} eye{'s' if run.segmented != 1 else ''} made by the segmenter "
                 f"({segmenter.identity.get('file', 'segmenter')}), written beside the outputs in {out_dir}")
    for text in sorted(run.warnings):
        warnings.warn(text, stacklevel=2)
    records = [run.by_item[item.key] for item in mine if item.key in run.by_item]
    if cfg.shard is None and not interrupted:
        merge_manifests(out_dir, extra=run.records.values())
    return PurifyReport(records=records, done=run.done, failed=run.failed, skipped=run.skipped,
                        seconds=time.perf_counter() - run.start, manifest=manifest, out_dir=out_dir,
                        interrupted=interrupted)


_NO_MASKS = "--mask none: {} needs masks; use --mask auto or give NAME_mask.png"


def _check_segmenter(out_dir: Path, identity: dict[str, Any], previous: dict[str, dict[str, Any]]) -> None:
    """Masks of one output folder come from one segmenter: ``purify.json``'s ``segmenter`` (its
    sha256, recorded by the first run that segments) and the records' ``segmenter_sha256`` must be
    this one's. Kept out of the fingerprinted settings so that folders whose masks were all given
    (made before ``mask="auto"`` too) resume, and take mask-less eyes later."""
    sha = identity.get("sha256")
    refuse = (f"{out_dir} holds outputs made with other settings (they differ in segmenter: its masks came from "
              "another segmenter checkpoint); use another output folder, or remove it to start again")
    if any(r.get("status") == "done" and r.get("segmenter_sha256") not in (None, sha) for r in previous.values()):
        raise MaskedGatysError(refuse)
    path = out_dir / SETTINGS_FILE
    with locked(out_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict):
            return  # check_settings has just written it; a damaged one is its business
        if data.get("segmenter") not in (None, sha):
            raise MaskedGatysError(refuse)
        if data.get("segmenter") is None:
            write_json_atomic({**data, "segmenter": sha}, path)


def _settings(cfg: PurifyConfig, identity: dict[str, Any]) -> dict[str, Any]:
    d = {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE}
    # compared by content (sha256): the style's in identity, the segmenter's in purify.json (_check_segmenter)
    for key in ("style", "style_mask", "style_pool", "weights", "segmenter"):
        d.pop(key, None)
    if d.get("mask") == "auto":  # given masks used as before --mask: output folders from before it resume
        d.pop("mask", None)
    if d.get("layout") is None:  # guessed per batch from the inputs: runs from before --layout match
        d.pop("layout", None)
    if d.get("colour") is None:  # auto (grey kept grey): output folders from before --colour still resume
        d.pop("colour", None)
    if cfg.is_network and cfg.method not in NETWORKS:
        d["method"] = Path(cfg.method).name
    d["identity"] = identity
    return d
