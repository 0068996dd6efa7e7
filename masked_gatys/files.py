"""Writing files without ever leaving a partial one: temporary file, fsync, rename.

Every file the package writes (images, checkpoints, logs, sheets) goes
through :func:`atomic_write`: the data goes to a temporary file in the
target's folder, is flushed to disk, gets the usual permissions and then
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
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write", "write_json_atomic", "recorded_name"]


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, briefly
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *, suffix: str | None = None) -> Path:
    """Call ``write(fh)`` on a temporary file, then move it onto ``path``.

    Raises ``OSError`` (the caller words it for its own kind of file); the
    target is never left half-written.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes 0600; give the usual mode
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


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
