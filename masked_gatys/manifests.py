"""What ``purify`` reads and writes: input listings, manifests, shards, merging.

An input is a folder (images with ``NAME_mask`` / ``NAME_labels`` companions,
the layout ``render-eyes`` writes), a manifest file (``.csv`` or ``.jsonl``:
column ``image``, optional ``mask`` and ``labels``, any other columns carried
through; relative paths are relative to the manifest's folder), or a list of
such dicts (relative paths relative to the working folder). Each becomes a
list of :class:`Item`, one per image, in the order of their relative paths.

Output manifests are JSON lines, one record per input: the input's columns
plus ``output`` (relative to the output folder), ``status`` (``done`` or
``failed: reason``), the input's identity (``input_path``, its resolved path,
and ``input_sha256``, of the image and its companions) and what the run
measured. A folder's manifest is the union of every source ever purified into
it, one record per input (:func:`record_key`); every update is a
read-modify-write under a lock file (:func:`locked`), so runs into one folder,
one after the other or at once, keep each other's records.

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

import contextlib
import csv
import functools
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Mapping, Sequence

from masked_gatys.errors import ImageError, MaskedGatysError
from masked_gatys.files import atomic_write, sha256_file, write_json_atomic

__all__ = ["Item", "IMAGE_EXTS", "COMPANIONS", "list_inputs", "list_images", "find_companion", "shard_of",
           "select_shard", "check_outputs",
           "outside_outputs", "read_table", "read_manifest", "write_manifest", "update_manifest", "manifest_name",
           "record_key", "existing_records", "merge_manifests", "locked", "OUTSIDE", "input_sha256",
           "is_done", "settings_fingerprint", "check_settings", "printable"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: file-name suffixes of an image's companions (never inputs themselves)
COMPANIONS = ("mask", "labels")
MANIFEST = "manifest.jsonl"
LOCK = ".manifest.lock"
#: the failure recorded for an input whose output would lie outside the output folder
OUTSIDE = "path outside the output folder"


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

    @functools.cached_property
    def key(self) -> str:
        """The input's identity in a manifest: the image's resolved path (:func:`record_key`)."""
        return os.fspath(self.image.resolve())

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


def find_companion(image: Path, kind: str) -> Path | None:
    """``NAME_mask.*`` (``kind="mask"``) or ``NAME_labels.*`` beside an image, if there is one."""
    for ext in IMAGE_EXTS:
        for e in (ext, ext.upper()):
            candidate = image.with_name(f"{image.stem}_{kind}{e}")
            if candidate.is_file():
                return candidate
    return None


_JSON_LINES = (".jsonl", ".ndjson", ".json")


def read_table(path: str | os.PathLike, *, error: type[MaskedGatysError] = ImageError,
               torn_tail: bool = False) -> list[dict[str, Any]]:
    """The rows of a ``.csv`` / ``.tsv`` (a header line) or ``.jsonl`` (one object a line) file.

    The one reader of manifests, label files and ``truth.jsonl``: UTF-8 with or
    without a byte-order mark (as Excel saves CSV). ``torn_tail`` ignores an
    unreadable last line (a killed writer's). Problems raise ``error``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = p.write_bytes(b"\\xef\\xbb\\xbfimage,yaw\\r\\na.png,1.5\\r\\n")
    >>> read_table(p)
    [{'image': 'a.png', 'yaw': '1.5'}]
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".tsv") + _JSON_LINES:
        raise error(f"{p}: give a .csv, .tsv or .jsonl file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise error(f"{p}: not found") from None
    except OSError as exc:
        raise error(f"{p}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not UTF-8 text (byte {exc.start})") from None
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), dialect="excel-tab" if suffix == ".tsv" else "excel")
        try:
            return [{str(k): v for k, v in row.items() if k is not None} for row in reader]
        except csv.Error as exc:
            raise error(f"{p}: line {reader.line_num} is not CSV ({exc})") from None
    lines = text.splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if torn_tail and n == len(lines):
                continue
            raise error(f"{p}: line {n} is not JSON") from None
        if not isinstance(row, dict):
            raise error(f"{p}: line {n} is not a JSON object")
        rows.append(row)
    return rows


def list_images(folder: Path) -> list[Path]:
    """The images directly in ``folder`` (not its subfolders), sorted: no companions, no hidden files.

    Raises :class:`~masked_gatys.errors.ImageError` for a missing folder or one without images.
    """
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                   and not _is_hidden(p.name) and not _companion_kind(p.stem))
    if not files:
        raise ImageError(f"{folder}: no images (png, jpg, ...) found")
    return files


def _truth_rows(folder: Path) -> dict[str, dict[str, Any]]:
    """``truth.jsonl`` of a render-eyes folder: {image file name: its other fields}."""
    path = folder / "truth.jsonl"
    if not path.is_file():
        return {}
    rows: dict[str, dict[str, Any]] = {}
    for row in read_table(path):
        files = row.get("files")
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
        names = {name.lower() for name in filenames}
        for name in sorted(filenames):
            path = here / name
            if _is_hidden(name) or path.suffix.lower() not in IMAGE_EXTS or _companion_kind(path.stem):
                continue
            rel = path.relative_to(folder).as_posix()
            mask, labels = (find_companion(path, kind) if _may_have(path.stem, kind, names) else None
                            for kind in ("mask", "labels"))
            columns: dict[str, Any] = {"image": rel}
            if mask is not None:
                columns["mask"] = mask.relative_to(folder).as_posix()
            if labels is not None:
                columns["labels"] = labels.relative_to(folder).as_posix()
            columns.update({k: v for k, v in truth.get(name, {}).items() if k not in columns})
            items.append(Item(rel, path, mask, labels, columns))
    return items


def _may_have(stem: str, kind: str, names: set[str]) -> bool:
    """Whether the folder's listing (``names``, lower-cased) holds a ``STEM_KIND.EXT`` in some
    case: where it does not, :func:`find_companion` finds none (a name the file system matches
    differs at most in case), and its dozens of ``stat`` calls per image are saved."""
    base = f"{stem}_{kind}".lower()
    return any(base + ext in names for ext in IMAGE_EXTS)


def _rel_key(value: Path, base: Path) -> str:
    """The relative path that names an input's output: inside ``base``, relative to it; an
    absolute path outside, without its anchor; a relative one that climbs out, as given (its
    output would lie outside the output folder: :func:`outside_outputs`)."""
    path = value if value.is_absolute() else base / value
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return PurePosixPath(*value.parts[1:] if value.is_absolute() else value.parts).as_posix()


def _list_rows(rows: Iterable[Mapping[str, Any]], base: Path, label: str) -> list[Item]:
    items: dict[str, tuple[int, Item]] = {}
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
        rel = _rel_key(Path(str(columns["image"])).expanduser(), base)
        item = Item(rel, image, where("mask"), where("labels"), columns)
        if item.key in items:  # one image named twice: say so, never drop a row silently
            first, other = items[item.key]
            if dict(other.columns) != columns:
                raise ImageError(f"{label}: rows {first} and {n} both name the image {columns['image']} "
                                 "(with different columns); keep one of them")
            warnings.warn(f"{label}: row {n} repeats row {first} ({columns['image']}); it is purified once",
                          stacklevel=3)
            continue
        items[item.key] = (n, item)
    return sorted((item for _, item in items.values()), key=lambda i: i.rel)


def list_inputs(source: Any, *, exclude: Sequence[Path] = ()) -> list[Item]:
    """The inputs of a folder, a ``.csv`` / ``.jsonl`` manifest, a list of dicts, or of :class:`Item`.

    Hidden files (such as the temporary files a killed atomic write leaves)
    and ``NAME_mask`` / ``NAME_labels`` companions are never inputs; folders
    in ``exclude`` (the output folder inside the input) are not entered.
    Raises :class:`~masked_gatys.errors.ImageError` for a missing source, an
    empty one, or a manifest row without ``image``.
    """
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, Item) for s in source):
        items = sorted(source, key=lambda i: i.rel)
    elif isinstance(source, (list, tuple)):
        items = _list_rows(source, Path.cwd(), "input list")
    else:
        path = Path(source)
        if path.is_dir():
            items = _list_folder(path, exclude)
        elif path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
            items = _list_rows(read_table(path), path.parent, str(path))
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


def outside_outputs(items: Sequence[Item], out_dir: Path) -> list[Item]:
    """The items whose output (or a companion's copy) would not lie inside ``out_dir``.

    Every output path is resolved (``..``, symbolic links) before it is
    compared; an absolute input path is fine (its output is named by the path
    without its anchor), a relative one that climbs out (``../../keep.png``) is not.

    >>> out = Path("out")
    >>> [i.rel for i in outside_outputs([Item("a/b.png", Path("a/b.png")), Item("../../k.png", Path("k.png"))], out)]
    ['../../k.png']
    """
    root = out_dir.resolve()
    bad = []
    for item in items:
        for out in (item.output, item.companion_output("mask"), item.companion_output("labels")):
            if out is None:
                continue
            target = (out_dir / out).resolve()
            if target == root or root not in target.parents:
                bad.append(item)
                break
    return bad


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
    return [row for row in read_table(path, torn_tail=True) if "output" in row]


def record_key(record: Mapping[str, Any]) -> str:
    """A record's identity in a folder's manifest: its input's resolved path.

    Records written before inputs had an identity are keyed by their output.

    >>> record_key({"input_path": "/data/a.png", "output": "a.png"}), record_key({"output": "a.png"})
    ('/data/a.png', 'output:a.png')
    """
    return str(record.get("input_path") or f"output:{record.get('output', '')}")


def write_manifest(records: Iterable[Mapping[str, Any]], path: Path) -> None:
    """Write records as JSON lines, atomically, sorted by output path."""
    rows = sorted(records, key=lambda r: str(r.get("output", "")))
    text = "".join(json.dumps(r, sort_keys=False, default=str) + "\n" for r in rows)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def update_manifest(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Put ``records`` into the manifest ``path``, keeping its records of other inputs.

    A record replaces the one of the same input (:func:`record_key`); the
    read-modify-write runs under the folder's lock (:func:`locked`).
    """
    with locked(path.parent):
        rows = {record_key(r): r for r in read_manifest(path)}
        rows.update({record_key(r): dict(r) for r in records})
        write_manifest(_without_legacy(rows).values(), path)


def _without_legacy(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Drop the records without an input identity (older manifests) whose output a keyed record holds."""
    held = {str(r.get("output")) for k, r in rows.items() if not k.startswith("output:")}
    return {k: r for k, r in rows.items() if not (k.startswith("output:") and str(r.get("output")) in held)}


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock file (``.manifest.lock``) for the block.

    Every manifest update and the settings check take it, so runs into one
    folder at once never lose each other's records. Where the platform has no
    ``fcntl`` (Windows), the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _manifests(out_dir: Path) -> list[Path]:
    shards = sorted(out_dir.glob("manifest.shard-*-of-*.jsonl"))
    main = out_dir / MANIFEST
    return ([main] if main.is_file() else []) + shards


def _better(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Which of two records of one input to keep: done over failed, then the later one."""
    new_done, old_done = new.get("status") == "done", old.get("status") == "done"
    if new_done != old_done:
        return new_done
    return str(new.get("finished", "")) >= str(old.get("finished", ""))


def existing_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record of the output folder's manifests (whole and shards), the best per input.

    Keyed by :func:`record_key`.
    """
    best: dict[str, dict[str, Any]] = {}
    for path in _manifests(out_dir):
        for record in read_manifest(path):
            key = record_key(record)
            if key not in best or _better(record, best[key]):
                best[key] = record
    return best


def merge_manifests(out_dir: str | os.PathLike, extra: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Join the shard manifests of ``out_dir`` (and ``extra`` records) into ``manifest.jsonl``.

    Keeps one record per input (done over failed, then the latest; an
    ``extra`` record, this run's, replaces the one of its input), writes
    ``manifest.jsonl`` atomically, then removes the shard manifests it
    merged; all under the folder's lock. Returns the merged records.
    """
    out_dir = Path(out_dir)
    with locked(out_dir):
        shard_files = [p for p in _manifests(out_dir) if p.name != MANIFEST]
        best = existing_records(out_dir)
        best.update({record_key(r): dict(r) for r in extra})
        records = sorted(_without_legacy(best).values(), key=lambda r: (str(r["output"]), record_key(r)))
        write_manifest(records, out_dir / MANIFEST)
        for path in shard_files:
            path.unlink(missing_ok=True)
    return records


# ---------------------------------------------------------------- an output folder's state


def input_sha256(item: Item) -> str | None:
    """The identity of an input's content: the sha256 of its image, mask and labels (None: unreadable)."""
    h = hashlib.sha256()
    try:
        for path in (item.image, item.mask, item.labels):
            h.update(b"-" if path is None else sha256_file(path).encode("ascii"))
    except OSError:
        return None
    return h.hexdigest()


def is_done(record: Mapping[str, Any] | None, out_dir: Path) -> bool:
    """The record says done, and the output (its size as recorded) and its companions' copies are there."""
    if not record or record.get("status") != "done":
        return False
    try:
        path = out_dir / str(record["output"])
        if not (path.is_file() and path.stat().st_size == int(record.get("output_bytes", -1))):
            return False
        return all((out_dir / str(record[k])).is_file() for k in ("output_mask", "output_labels") if record.get(k))
    except (OSError, ValueError, TypeError):
        return False


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """A short sha256 of settings (canonical JSON): what each record keeps as ``settings_sha256``.

    >>> settings_fingerprint({"a": 1, "b": 2}) == settings_fingerprint({"b": 2, "a": 1})
    True
    """
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_settings(out_dir: Path, settings: Mapping[str, Any], fingerprint: str,
                   name: str = "purify.json") -> dict[str, dict[str, Any]]:
    """Refuse other settings than the folder's outputs were made with; returns the folder's records.

    Under the folder's lock: the settings file ``name`` (``{"settings": {...}}``, written when
    missing or damaged) and each done record's ``settings_sha256`` must agree with this run's.
    Raises :class:`~masked_gatys.errors.MaskedGatysError`.
    """
    path = out_dir / name
    refuse = (f"{out_dir} holds outputs made with other settings ({{}}); use another output folder, "
              "or remove it to start again")
    with locked(out_dir):
        previous = existing_records(out_dir)
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        readable = isinstance(old, dict) and isinstance(old.get("settings"), dict)
        if readable:
            before, now = old["settings"], settings["settings"]
            differ = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            if differ:
                raise MaskedGatysError(refuse.format(f"they differ in {', '.join(differ)}"))
        made = {r.get("settings_sha256") for r in previous.values() if r.get("status") == "done"}
        if made - {fingerprint} - ({None} if readable else set()):
            why = "its manifest's records say so" if readable else \
                f"{name} is missing or damaged, and its manifest's records cannot vouch for these"
            raise MaskedGatysError(refuse.format(why))
        if not readable:
            write_json_atomic(dict(settings), path)
    return previous


def printable(text: str) -> str:
    """A path as text that encodes: a file name that is not UTF-8 keeps its bytes as ``\\xNN``.

    >>> printable("caf\\udce9.png")
    'caf\\\\xe9.png'
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
