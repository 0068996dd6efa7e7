"""Ctrl-C and SIGTERM early in a command's life (issue 21, D8): 130 / 143 and one line, every time.

An interrupt raised inside numpy's or torch's import left a broken interpreter: an
AttributeError, a RecursionError or an abort (exit 1 or -6) in 4 of 24 runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (its /proc status SigCgt mask)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in text.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask >> (sig - 1) & 1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_early_signal_exits_cleanly_every_time(tmp_path, sig):
    import torch

    from masked_gatys.image import save_image

    src = tmp_path / "src"
    src.mkdir()
    save_image(torch.rand(1, 3, 24, 40), src / "a.png")  # 100000 iterations: every run is cut short
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outcomes = []
    for delay in (0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3):
        cmd = [sys.executable, "-m", "masked_gatys", "purify", str(src), "-o", str(tmp_path / f"out{delay}"),
               "--style", "rendered", "--weights", "random", "--max-layer", "relu1_1", "--iterations", "100000",
               "--no-pupil-shift", "-q"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        # from the moment the package's own code runs (SIGTERM caught: Python alone does not)
        while not _catches(proc.pid, signal.SIGTERM) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        outcomes.append((delay, proc.returncode, err.strip().splitlines()))
    # one line: "interrupted" (before the work), or purify's own "interrupted: progress recorded ..."
    bad = [o for o in outcomes if o[1] != 128 + sig or len(o[2]) != 1 or not o[2][0].startswith("interrupted")]
    assert not bad, bad
