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


def test_a_ctrl_c_as_the_temporary_file_is_made_leaves_nothing_behind(tmp_path, monkeypatch):
    """SIGINT arriving between the temporary file's creation and the write's clean-up being armed
    (here: sent by mkstemp itself, once the file exists) must not leave the file behind."""
    import os
    import signal
    import tempfile

    from masked_gatys import files

    real = tempfile.mkstemp

    def interrupted(*args, **kwargs):
        made = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Python's default handler: KeyboardInterrupt
        return made

    monkeypatch.setattr(files.tempfile, "mkstemp", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_json_atomic({"a": 1}, tmp_path / "run.json")
    assert list(tmp_path.iterdir()) == []
