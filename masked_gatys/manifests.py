"""What ``purify`` reads and writes: input listings, manifests, shards, merging.

An input is a folder (images with ``NAME_mask`` / ``NAME_labels`` companions,
the layout ``render-eyes`` writes), a manifest file (``.csv`` or ``.jsonl``:
column ``image``, optional ``mask`` and ``labels``, any other columns carried
through; relative paths are relative to the manifest's folder), or a list of
such dicts (relative paths relative to the working folder). Each becomes a
list of :class:`Item`, one per image, in the order of their relative paths.

Output manifests are JSON lines, one record per image: the input's columns
plus ``output`` (relative to the output folder), ``status`` (``done`` or
``failed: reason``) and what the run measured.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b.png", "a.png", "a_mask.png", "a_labels.png", ".a.png.x1.png"):
...     _ = (d / name).write_bytes(b"")
>>> [(i.rel, i.mask is not None) for i in list_inputs(d)]
[('a.png', True), ('b.png', False)]
>>> shard_of("a.png", 4) == shard_of("a.png", 4)
True
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from masked_gatys.errors import ImageError
from masked_gatys.files import atomic_write

__all__ = ["Item", "IMAGE_EXTS", "COMPANIONS", "list_inputs", "shard_of", "select_shard", "check_outputs",
           "read_manifest", "write_manifest", "manifest_name", "existing_records", "merge_manifests"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: file-name suffixes of an image's companions (never inputs themselves)
COMPANIONS = ("mask", "labels")
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Item:
    """One input image: where it is, its companions, its columns, where its output goes."""

    rel: str
    """The image's relative path (posix), the key of shards and outputs."""
    image: Path
    mask: Path | None = None
    labels: Path | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)
    """The input's own columns (``image``, ``mask`` ... as given), carried into the manifest."""

    @property
    def output(self) -> str:
        """Output path relative to the output folder: the same relative path, as PNG."""
        return str(PurePosixPath(self.rel).with_suffix(".png"))

    def companion_output(self, kind: str) -> str | None:
        """Where the ``mask`` or ``labels`` companion is copied (beside the output, ``NAME_kind``)."""
        source = self.mask if kind == "mask" else self.labels
        if source is None:
            return None
        out = PurePosixPath(self.output)
        return str(out.with_name(f"{out.stem}_{kind}{source.suffix.lower()}"))


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _companion_kind(stem: str) -> str | None:
    for kind in COMPANIONS:
        if stem.endswith(f"_{kind}"):
            return kind
    return None


def _find_companion(image: Path, kind: str) -> Path | None:
    for ext in IMAGE_EXTS:
        for e in (ext, ext.upper()):
            candidate = image.with_name(f"{image.stem}_{kind}{e}")
            if candidate.is_file():
                return candidate
    return None


def _truth_rows(folder: Path) -> dict[str, dict[str, Any]]:
    """``truth.jsonl`` of a render-eyes folder: {image file name: its other fields}."""
    path = folder / "truth.jsonl"
    if not path.is_file():
        return {}
    rows: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ImageError(f"{path}: not JSON lines") from None
        files = row.get("files") if isinstance(row, dict) else None
        if isinstance(files, dict) and "image" in files:
            rows[str(files["image"])] = {k: v for k, v in row.items() if k not in ("files",)}
    return rows


def _list_folder(folder: Path, exclude: Sequence[Path] = ()) -> list[Item]:
    excluded = {p.resolve() for p in exclude}
    items = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d) and (here / d).resolve() not in excluded)
        truth = _truth_rows(here)
        for name in sorted(filenames):
            path = here / name
            if _is_hidden(name) or path.suffix.lower() not in IMAGE_EXTS or _companion_kind(path.stem):
                continue
            rel = path.relative_to(folder).as_posix()
            mask, labels = _find_companion(path, "mask"), _find_companion(path, "labels")
            columns: dict[str, Any] = {"image": rel}
            if mask is not None:
                columns["mask"] = mask.relative_to(folder).as_posix()
            if labels is not None:
                columns["labels"] = labels.relative_to(folder).as_posix()
            columns.update({k: v for k, v in truth.get(name, {}).items() if k not in columns})
            items.append(Item(rel, path, mask, labels, columns))
    return items


def _read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return [dict(row) for row in csv.DictReader(text.splitlines())]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ImageError(f"{path}: line {n} is not JSON") from None
        if not isinstance(row, dict):
            raise ImageError(f"{path}: line {n} is not a JSON object")
        rows.append(row)
    return rows


def _rel_key(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:  # outside the base: key by the path as given, without its anchor
        return PurePosixPath(*Path(path).parts[1:] if Path(path).is_absolute() else Path(path).parts).as_posix()


def _list_rows(rows: Iterable[Mapping[str, Any]], base: Path, label: str) -> list[Item]:
    items = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, Mapping) or not row.get("image"):
            raise ImageError(f"{label}: row {n} has no 'image'")
        columns = dict(row)

        def where(key: str) -> Path | None:
            value = columns.get(key)
            if value in (None, ""):
                return None
            p = Path(str(value)).expanduser()
            return p if p.is_absolute() else base / p

        image = where("image")
        assert image is not None
        items.append(Item(_rel_key(image, base), image, where("mask"), where("labels"), columns))
    return sorted(items, key=lambda i: i.rel)


def list_inputs(source: Any, *, exclude: Sequence[Path] = ()) -> list[Item]:
    """The inputs of a folder, a ``.csv`` / ``.jsonl`` manifest, or a list of dicts.

    Hidden files (such as the temporary files a killed atomic write leaves)
    and ``NAME_mask`` / ``NAME_labels`` companions are never inputs; folders
    in ``exclude`` (the output folder inside the input) are not entered.
    Raises :class:`~masked_gatys.errors.ImageError` for a missing source, an
    empty one, or a manifest row without ``image``.
    """
    if isinstance(source, (list, tuple)):
        items = _list_rows(source, Path.cwd(), "input list")
    else:
        path = Path(source)
        if path.is_dir():
            items = _list_folder(path, exclude)
        elif path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
            items = _list_rows(_read_rows(path), path.parent, str(path))
        elif path.exists():
            raise ImageError(f"{path}: give a folder of images or a manifest (.csv or .jsonl)")
        else:
            raise ImageError(f"{path}: not found")
    if not items:
        raise ImageError(f"{source}: no images (png, jpg, ...) found")
    return items


def shard_of(rel: str, n: int) -> int:
    """The shard (0 .. n-1) of an input, from a stable hash of its relative path.

    The same for every run, machine and listing order.

    >>> [shard_of(f"{i:04d}.png", 3) for i in range(6)]
    [1, 1, 1, 1, 1, 2]
    """
    digest = hashlib.sha256(rel.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def select_shard(items: Sequence[Item], shard: tuple[int, int] | None) -> list[Item]:
    """The items of shard ``(i, n)`` (all of them for None)."""
    if shard is None:
        return list(items)
    i, n = shard
    return [item for item in items if shard_of(item.rel, n) == i]


def check_outputs(items: Sequence[Item], out_dir: Path, protected: Iterable[Path] = ()) -> None:
    """Refuse, before any work, two inputs with one output and an output over an input."""
    seen: dict[str, str] = {}
    for item in items:
        for out in (item.output, item.companion_output("mask"), item.companion_output("labels")):
            if out is None:
                continue
            if out in seen and seen[out] != item.rel:
                raise ImageError(f"{seen[out]} and {item.rel} would both be written to {out_dir / out}; "
                                 "rename one of them")
            seen[out] = item.rel
    inputs = {p.resolve() for item in items for p in (item.image, item.mask, item.labels) if p is not None}
    inputs |= {Path(p).resolve() for p in protected}
    for out, rel in seen.items():
        target = (out_dir / out).resolve()
        if target in inputs:
            raise ImageError(f"the output {out_dir / out} (for {rel}) would overwrite an input; "
                             "choose another output folder")
    manifest = (out_dir / MANIFEST).resolve()
    if manifest in inputs:
        raise ImageError(f"the output manifest {out_dir / MANIFEST} would overwrite an input")


def manifest_name(shard: tuple[int, int] | None) -> str:
    """``manifest.jsonl``, or ``manifest.shard-I-of-N.jsonl`` for a shard.

    >>> manifest_name((0, 2))
    'manifest.shard-0-of-2.jsonl'
    """
    return MANIFEST if shard is None else f"manifest.shard-{shard[0]}-of-{shard[1]}.jsonl"


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines manifest; a torn last line (a killed writer) is ignored."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                continue
            raise ImageError(f"{path}: line {n + 1} is not JSON") from None
        if isinstance(row, dict) and "output" in row:
            records.append(row)
    return records


def write_manifest(records: Iterable[Mapping[str, Any]], path: Path) -> None:
    """Write records as JSON lines, atomically, sorted by output path."""
    rows = sorted(records, key=lambda r: str(r.get("output", "")))
    text = "".join(json.dumps(r, sort_keys=False, default=str) + "\n" for r in rows)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def _manifests(out_dir: Path) -> list[Path]:
    shards = sorted(out_dir.glob("manifest.shard-*-of-*.jsonl"))
    main = out_dir / MANIFEST
    return ([main] if main.is_file() else []) + shards


def _better(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Which of two records of one output to keep: done over failed, then the later one."""
    new_done, old_done = new.get("status") == "done", old.get("status") == "done"
    if new_done != old_done:
        return new_done
    return str(new.get("finished", "")) >= str(old.get("finished", ""))


def existing_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record of the output folder's manifests (whole and shards), the best per output."""
    best: dict[str, dict[str, Any]] = {}
    for path in _manifests(out_dir):
        for record in read_manifest(path):
            key = str(record["output"])
            if key not in best or _better(record, best[key]):
                best[key] = record
    return best


def merge_manifests(out_dir: str | os.PathLike, extra: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Join the shard manifests of ``out_dir`` (and ``extra`` records) into ``manifest.jsonl``.

    Keeps one record per output (done over failed, then the latest), writes
    ``manifest.jsonl`` atomically, then removes the shard manifests it
    merged. Returns the merged records.
    """
    out_dir = Path(out_dir)
    shard_files = [p for p in _manifests(out_dir) if p.name != MANIFEST]
    best = existing_records(out_dir)
    for record in extra:
        key = str(record["output"])
        if key not in best or _better(record, best[key]):
            best[key] = dict(record)
    records = sorted(best.values(), key=lambda r: str(r["output"]))
    write_manifest(records, out_dir / MANIFEST)
    for path in shard_files:
        path.unlink(missing_ok=True)
    return records
