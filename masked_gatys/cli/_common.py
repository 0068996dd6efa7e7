"""What every command shares: the error boundary, signals, device checks, output checks.

Library code raises; this module is the one place where exceptions become
one-line messages on stderr and non-zero exit codes.

Signals (:func:`handle_signals`, installed by the ``masked-gatys`` group for
every command): SIGTERM is handled as SIGINT. The first one raises
KeyboardInterrupt, which long work catches to keep its best result; any later
one, and any that arrives inside :func:`deferred_interrupts` (the writing of
that result), waits until the writing is done. The exit code is 128 + the
signal's number: 130 for Ctrl-C, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import click

from masked_gatys.device import resolve_device as _resolve_device
from masked_gatys.errors import DeviceError

F = TypeVar("F", bound=Callable[..., Any])


def error_boundary(func: F) -> F:
    """Turn the library's exceptions into ``click.ClickException`` (exit 1).

    Tracebacks are shown only with ``MASKED_GATYS_DEBUG=1``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from masked_gatys.errors import MaskedGatysError

        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(interrupted_exit_code())
        except (MaskedGatysError, FileNotFoundError, PermissionError, IsADirectoryError,
                NotADirectoryError, OSError, ValueError, RuntimeError) as exc:
            if os.environ.get("MASKED_GATYS_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(message) from None

    return wrapper  # type: ignore[return-value]


#: the signal that interrupted this process, if any; the depth of deferred_interrupts blocks;
#: whether a signal is waiting for the end of those blocks
_received: dict[str, Any] = {"signum": None, "deferring": 0, "pending": False}
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signal(signum: int, frame: Any) -> None:
    if _received["signum"] is not None:
        return  # a second Ctrl-C: the best result is being evaluated or written; let it finish
    _received["signum"] = signum
    if _received["deferring"]:
        _received["pending"] = True  # raised when the write is done
        return
    raise KeyboardInterrupt


def _exit_at_once(signum: int, frame: Any) -> None:
    os.write(2, b"interrupted\n")
    os._exit(128 + signum)


#: what a command imports before its work: loaded under :func:`startup_signals`
HEAVY_IMPORTS = ("numpy", "torch", "torchvision", "PIL.Image")


@contextlib.contextmanager
def startup_signals(preload: bool) -> Iterator[None]:
    """SIGINT and SIGTERM end the process at once (130 / 143) until the block ends.

    Before a command has started nothing is written, and an interrupt raised
    inside a half-done import of numpy or torch leaves a broken interpreter
    (an AttributeError, a RecursionError or an abort on the way out). With
    ``preload``, the heavy modules every command needs are imported here, under
    these handlers. Only the main thread can set handlers; elsewhere the block
    just runs. The handlers before are put back at the end.
    """
    import importlib

    try:
        previous = {sig: signal.signal(sig, _exit_at_once) for sig in _SIGNALS}
    except ValueError:  # not the main thread
        yield
        return
    try:
        if preload:
            for name in HEAVY_IMPORTS:
                importlib.import_module(name)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM as described in the module docstring, for the block's duration.

    Only the main thread can set signal handlers; elsewhere this does nothing.
    """
    try:
        previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}
    except ValueError:  # not the main thread
        yield
        return
    _received.update(signum=None, deferring=0, pending=False)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block (writing a result) is done.

    A signal that arrived inside is raised as KeyboardInterrupt at the end,
    once the files are written.

    >>> with deferred_interrupts():
    ...     pass
    """
    _received["deferring"] += 1
    try:
        yield
    finally:
        _received["deferring"] -= 1
    if not _received["deferring"] and _received["pending"]:
        _received["pending"] = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Every Python warning, as it is raised, becomes one ``warning: ...`` line on stderr.

    Once per text; deprecation warnings stay silent. Installed by the group
    for every command, so warnings about a run (random weights, no style
    mask) come before its work, not after it.
    """
    import warnings

    seen: set[str] = set()

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = " ".join(str(message).split()) or category.__name__
        if issubclass(category, DeprecationWarning) or text in seen:
            return
        seen.add(text)
        click.echo(f"warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def was_interrupted() -> bool:
    """Whether a SIGINT or SIGTERM has arrived while :func:`handle_signals` was active."""
    return _received["signum"] is not None

#: the largest seed torch's generators take; the CLI's --seed options share it
MAX_SEED = 2**64 - 1


def interrupted_exit_code() -> int:
    """128 + the signal's number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    import signal

    return 128 + int(_received["signum"] or signal.SIGINT)


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` -> ``cuda`` if available else ``cpu``; asking for absent CUDA fails now.

    The rule is :func:`masked_gatys.device.resolve_device`'s; the command line takes only
    ``auto``, ``cpu`` and ``cuda[:N]``.
    """
    lowered = name.lower()
    if lowered not in ("auto", "cpu") and not lowered.startswith("cuda"):
        raise click.ClickException(f"unknown device {lowered!r}: use auto, cpu or cuda")
    try:
        return str(_resolve_device(lowered))
    except DeviceError as exc:
        raise click.ClickException(str(exc)) from None


def check_writable_output(path: Path, *, inputs: tuple[Path, ...] = ()) -> None:
    """Fail before any work if ``path`` cannot be written or would overwrite an input."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"cannot create output folder {folder}: {exc.strerror}") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise click.ClickException(f"output folder {folder} is not writable")
    if path.is_dir():
        raise click.ClickException(f"output {path} is a folder; give a file name")
    from masked_gatys.files import check_outputs

    check_outputs([("output", path)], [("input", inp) for inp in inputs])


# ----------------------------------------------------------------------------- option values


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` (purify, segment): this process's share of the inputs, or None."""
    if value is None:
        return None
    try:
        i, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise click.BadParameter(f"{value!r}: need 0 <= I < N")
    return i, n


class Size(click.ParamType):
    """``HEIGHTxWIDTH`` (e.g. ``64x96``), each side at least ``min`` pixels, as ``(height, width)``.

    >>> Size(min=16).convert("72x120", None, None)
    (72, 120)
    >>> Size(min=16).convert("8x8", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: '8x8': each side at least 16 px (16x16)
    """

    name = "HxW"

    def __init__(self, min: int = 1) -> None:  # noqa: A002 (click's own word, as IntRange(min=...))
        self.min = min

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(value))
        if not match:
            self.fail(f"{value!r}: give HEIGHTxWIDTH (HxW), e.g. 64x96", param, ctx)
        height, width = int(match[1]), int(match[2])
        if min(height, width) < self.min:
            self.fail(f"{value!r}: each side at least {self.min} px ({self.min}x{self.min})", param, ctx)
        return height, width


class CommaList(click.ParamType):
    """Values separated by commas, each converted by ``item`` (a click type), as a tuple.

    ``min``: the least value of each item (numbers). No entry may be empty.

    >>> CommaList(click.INT, min=16).convert("256, 512", None, None)
    (256, 512)
    >>> CommaList(click.FLOAT).convert("1,x", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: '1,x': give numbers separated by commas, e.g. 0.7,0.3
    """

    name = "list"
    _WHAT = {"integer": ("whole numbers", "100,100,300"), "float": ("numbers", "0.7,0.3"),
             "text": ("names", "a,b"), "HxW": ("sizes HxW", "64x96,128x192")}

    def __init__(self, item: Any = click.STRING, *, min: float | None = None) -> None:  # noqa: A002
        self.item = click.types.convert_type(item)
        self.min = min

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple:
        if isinstance(value, tuple):
            return value
        parts = [v.strip() for v in str(value).split(",")]
        if not all(parts):
            self.fail(f"empty entry in {value!r}", param, ctx)
        what, example = self._WHAT.get(self.item.name, (f"{self.item.name} values", "a,b"))
        try:
            out = tuple(self.item.convert(v, param, ctx) for v in parts)
        except click.BadParameter as exc:
            detail = "" if self.item.name in ("integer", "float") else f" ({exc.message})"
            self.fail(f"{value!r}: give {what} separated by commas, e.g. {example}{detail}", param, ctx)
        if self.min is not None and min(out) < self.min:
            self.fail(f"{value!r}: each at least {self.min}", param, ctx)
        return out
