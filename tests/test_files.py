"""The one atomic writer every output goes through."""

from __future__ import annotations

import json
import os
import stat

import pytest

from masked_gatys.files import atomic_write, write_json_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def broken(fh):
        fh.write(b"half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_new_file_gets_the_umask_permissions_not_mkstemps(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "f.txt", lambda fh: fh.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640


def test_json_round_trip_and_replace(tmp_path):
    path = tmp_path / "run.json"
    write_json_atomic({"a": [1, 2]}, path)
    write_json_atomic({"b": 3}, path)
    assert json.loads(path.read_text()) == {"b": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_missing_folder_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        atomic_write(tmp_path / "nope" / "f.txt", lambda fh: fh.write(b"x"))


def _interrupting_create(monkeypatch, interrupt):
    """Make ``files._create`` call ``interrupt()`` once the temporary file exists."""
    from masked_gatys import files

    real = files._create

    def create(path):
        fd = real(path)
        interrupt()
        return fd

    monkeypatch.setattr(files, "_create", create)


def test_a_ctrl_c_as_the_temporary_file_is_made_leaves_nothing_behind(tmp_path, monkeypatch):
    """SIGINT raised in this thread just after the temporary file was created (before its
    descriptor is even handed back) must not leave the file behind."""
    import signal

    _interrupting_create(monkeypatch, lambda: signal.raise_signal(signal.SIGINT))  # thread-directed
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic({"a": 1}, tmp_path / "run.json")
    assert list(tmp_path.iterdir()) == []


def test_a_process_directed_ctrl_c_taken_by_another_thread_leaves_nothing_behind(tmp_path, monkeypatch):
    """A real Ctrl-C is process-directed: the OS may hand it to any thread (torch's workers), and
    Python raises KeyboardInterrupt in the main thread at its next bytecode. A signal mask held by
    the main thread alone cannot stop that (the old code left the file 1 run in 5); the write must
    clean up wherever the interrupt lands. A helper thread is started on purpose so the
    cross-thread delivery is exercised on every run."""
    import os
    import signal
    import threading
    import time

    stop = threading.Event()
    helper = threading.Thread(target=lambda: stop.wait(30), daemon=True)
    helper.start()

    def kill_and_wait():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # KeyboardInterrupt lands here, whichever thread took the signal

    _interrupting_create(monkeypatch, kill_and_wait)
    try:
        for _ in range(5):
            with pytest.raises(KeyboardInterrupt):
                write_json_atomic({"a": 1}, tmp_path / "run.json")
            assert list(tmp_path.iterdir()) == []
    finally:
        stop.set()
        helper.join()


def test_sha256_file_streams_and_sees_a_rewritten_file(tmp_path, monkeypatch):
    import hashlib
    import os

    from masked_gatys.files import sha256_file

    path = tmp_path / "w.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one block
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: reads.append(a) or real_open(*a, **k))
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest() and reads == []  # cached
    path.write_bytes(data[:-1])  # same path, new size (and mtime): hashed again
    assert sha256_file(path) == hashlib.sha256(data[:-1]).hexdigest() and len(reads) == 1
    stat = path.stat()
    path.write_bytes(data[:-2] + b"x")  # same size: the mtime tells it apart
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert sha256_file(path) == hashlib.sha256(data[:-2] + b"x").hexdigest()
