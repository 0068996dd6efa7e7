"""Writing files without ever leaving a partial one: temporary file, fsync, rename.

Every file the package writes (images, checkpoints, logs, sheets) goes
through :func:`atomic_write`: the data goes to a temporary file in the
target's folder, is flushed to disk and then
replaces the target in one ``os.replace``. On any error, Ctrl-C included, the
temporary file is removed and the target is untouched.

>>> import json, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_json_atomic({"a": 1}, folder / "run.json")
>>> json.loads((folder / "run.json").read_text())
{'a': 1}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Callable

from masked_gatys.errors import OutputError

__all__ = ["atomic_write", "write_json_atomic", "recorded_name", "check_outputs", "check_replaceable", "sha256_file"]


def _create(path: Path) -> int:
    """Create ``path`` for writing; it must not exist yet (``O_EXCL``). The umask sets the mode."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *, suffix: str | None = None) -> Path:
    """Call ``write(fh)`` on a temporary file, then move it onto ``path``.

    Raises ``OSError`` (the caller words it for its own kind of file); the
    target is never left half-written, and the temporary file never stays.
    """
    path = Path(path)
    check_replaceable(path)
    folder = path.parent if str(path.parent) else Path(".")
    ext = suffix or path.suffix or ".tmp"
    # The temporary file's name is chosen before the file exists, so an interrupt at any point
    # (Ctrl-C, SIGTERM: delivered to whichever thread the OS picks, torch's included, and raised
    # in the main thread at its next bytecode) finds a name to clean up. No signal mask is
    # needed; the worst an interrupt between os.open returning and ``fd`` being bound leaks is a
    # file descriptor, never a file.
    for _ in range(100):
        tmp = folder / f".{path.name}.{secrets.token_hex(8)}{ext}"
        try:
            try:
                fd = _create(tmp)
            except FileExistsError:  # someone else's file by that name: never touch it
                continue
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        break
    else:  # pragma: no cover - 100 clashes of 64 random bits
        raise FileExistsError(f"could not find a free temporary name beside {path}")
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks and cached by path, size and mtime.

    A file rewritten in place gets a new mtime (or size) and is hashed again.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_bytes(b"abc")
    >>> sha256_file(f)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _SHA256_CACHE.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _SHA256_CACHE[key] = h.hexdigest()
    return digest


def write_json_atomic(data: Any, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON through :func:`atomic_write`."""
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def recorded_name(value: str | os.PathLike | None) -> str | None:
    """What a recorded result says of a file it used: the file's name, not where it lay.

    Results are shared and committed; the folder a file sat in on the machine
    that made them means nothing elsewhere (the file's identity, its sha256, is
    recorded beside it). Words such as ``random`` or ``imagenet`` stay as they are.

    >>> recorded_name("/data/weights/vgg19.pth"), recorded_name("random"), recorded_name(None)
    ('vgg19.pth', 'random', None)
    """
    if value is None:
        return None
    text = os.fspath(value)
    return Path(text).name if ("/" in text or os.sep in text) else text


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuse a target that exists and is not a regular file (a folder, a FIFO, ``/dev/null``).

    The atomic rename would put a regular file in its place.

    >>> check_replaceable("/dev/null")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.OutputError: output /dev/null exists and is not a regular file (a device); refusing to replace it
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError:
        return  # unreadable: the write itself will say so
    if stat.S_ISREG(mode):
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device")
    raise OutputError(f"output {os.fspath(path)} exists and is not a regular file ({kind}); refusing to replace it")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())


def check_outputs(outputs, inputs=()) -> None:
    """Refuse, before any work, outputs that would replace an input or each other.

    ``outputs`` and ``inputs`` are ``(label, path)`` pairs (None paths are
    skipped); the error names both paths and their labels. Every output must
    also be replaceable (:func:`check_replaceable`). Shared by every command
    that writes (stylize and its ``--save-every`` and ``--log``, folder mode,
    render-eyes, purify).

    >>> check_outputs([("-o", "a.png"), ("--log", "a.png")])
    Traceback (most recent call last):
    ...
    masked_gatys.errors.OutputError: -o a.png and --log a.png are the same file; give each output its own name
    """
    outs = [(label, Path(p)) for label, p in outputs if p is not None]
    ins = [(label, Path(p)) for label, p in inputs if p is not None]
    for i, (label, path) in enumerate(outs):
        check_replaceable(path)
        for in_label, in_path in ins:
            if _same(path, in_path):
                raise OutputError(f"{label} {path} would overwrite the input {in_path} ({in_label}); "
                                  "choose another name")
        for other_label, other in outs[:i]:
            if _same(path, other):
                raise OutputError(f"{other_label} {other} and {label} {path} are the same file; "
                                  "give each output its own name")
