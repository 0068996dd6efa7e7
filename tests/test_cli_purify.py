"""``masked-gatys purify``: a real run, resume, --shard and --merge, SIGTERM, two torchrun ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.eyes import render_eye
from masked_gatys.image import save_image
from masked_gatys.manifests import read_manifest

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def eyes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eyes")
    for i in range(6):
        eye = render_eye(yaw=5.0 * i - 12, pitch=0.0, domain="real", size=(24, 40), seed=i)
        save_image(eye.image, folder / f"{i:04d}.png")
        save_image(eye.binary_mask, folder / f"{i:04d}_mask.png")
    return folder


def _invoke(args):
    return CliRunner().invoke(main, ["purify", *args], catch_exceptions=False)


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_a_real_run_then_a_rerun_that_skips_everything(eyes, tiny_net, tmp_path):
    out = tmp_path / "out"
    result = _invoke([str(eyes), "-o", str(out), "--model", tiny_net, "--no-pupil-shift", "-q"])
    assert result.exit_code == 0, result.output
    assert len(read_manifest(out / "manifest.jsonl")) == 6
    result = _invoke([str(eyes), "-o", str(out), "--model", tiny_net, "--no-pupil-shift"])
    assert result.exit_code == 0 and "0 purified, 6 already done, 0 failed" in result.output


def test_shards_then_merge(eyes, tiny_net, tmp_path):
    out = tmp_path / "out"
    for i in range(2):
        result = _invoke([str(eyes), "-o", str(out), "--model", tiny_net, "--shard", f"{i}/2", "-q"])
        assert result.exit_code == 0, result.output
    assert not (out / "manifest.jsonl").exists()
    result = _invoke(["--merge", "-o", str(out)])
    assert result.exit_code == 0 and "merged 6 records (6 done)" in result.output


def test_errors_are_one_line(eyes, tiny_net, tmp_path):
    for args, message in (([str(eyes), "-o", str(eyes), "--model", tiny_net], "output folder is the input"),
                          ([str(eyes), "-o", str(tmp_path / "o"), "--shard", "2/2"], "need 0 <= I < N"),
                          ([str(tmp_path / "none"), "-o", str(tmp_path / "o")], "input not found"),
                          ([str(eyes), "-o", str(tmp_path / "o"), "--preset", "masked", "--weights", "random"],
                           "needs a style image"),
                          ([str(eyes), "-o", str(tmp_path / "o"), "--model", "nonet"], "unknown method 'nonet'")):
        result = CliRunner().invoke(main, ["purify", *args])
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_sigterm_in_process_records_progress_and_exits_143(eyes, tiny_net, tmp_path, monkeypatch):
    from masked_gatys.cli import purify as cli_purify

    shown = cli_purify._Bar.__call__

    def terminate_after_first(self, p):
        shown(self, p)
        if p.done == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return False

    monkeypatch.setattr(cli_purify._Bar, "__call__", terminate_after_first)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["purify", str(eyes), "-o", str(out), "--model", tiny_net, "-q",
                                       "--batch-size", "1", "--no-pupil-shift"])
    assert result.exit_code == 143, result.output
    assert "interrupted" in result.output
    records = read_manifest(out / "manifest.jsonl")
    assert 1 <= len(records) < 6 and all((out / r["output"]).is_file() for r in records)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


@pytest.mark.slow
def test_sigterm_finishes_the_writes_records_progress_and_exits_143(eyes, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "masked_gatys", "purify", str(eyes), "-o", str(out), "--style", "rendered",
           "--weights", "random", "--max-layer", "relu2_1", "--iterations", "200", "--batch-size", "1",
           "--no-pupil-shift", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while not (out / "0000.png").exists():  # the first image is written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no image within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    records = read_manifest(out / "manifest.jsonl")
    assert 1 <= len(records) < 6 and all(r["status"] == "done" for r in records)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".manifest.lock"]


def _rank(rank, port, args, codes):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        main(["purify", *args], standalone_mode=False)
        codes.put((rank, 0))
    except BaseException as exc:  # noqa: BLE001  (report anything to the parent)
        codes.put((rank, repr(exc)))


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_under_the_torchrun_environment_purify_once_and_rank0_merges(eyes, tiny_net, tmp_path):
    # What torchrun gives each rank (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*), in two forked
    # processes: the same code path in a few seconds (the launcher itself: the slow test below).
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    codes = ctx.Queue()
    out = tmp_path / "out"
    args = [str(eyes), "-o", str(out), "--model", tiny_net, "--no-pupil-shift", "--device", "cpu", "-q"]
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, args, codes)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = dict(codes.get(timeout=5) for _ in procs)
    assert results == {0: 0, 1: 0}, results
    records = read_manifest(out / "manifest.jsonl")
    assert sorted(r["output"] for r in records) == [f"{i:04d}.png" for i in range(6)]
    assert not list(out.glob("manifest.shard-*"))


@pytest.mark.slow
def test_two_torchrun_ranks_purify_the_set_once_and_rank0_merges(eyes, tiny_net, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "masked_gatys", "purify", str(eyes), "-o", str(out), "--model", tiny_net, "--no-pupil-shift",
           "--device", "cpu", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_manifest(out / "manifest.jsonl")
    assert sorted(r["output"] for r in records) == [f"{i:04d}.png" for i in range(6)]
    assert all(r["status"] == "done" for r in records)
    assert not list(out.glob("manifest.shard-*"))
    settings = json.loads((out / "purify.json").read_text())
    assert settings["settings"]["method"] == "tiny.pt"


def test_a_run_where_every_image_failed_exits_non_zero(tiny_net, tmp_path):
    # D10: exit 0 with every image failed
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "b.png"):
        (src / name).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = CliRunner().invoke(main, ["purify", str(src), "-o", str(tmp_path / "out"), "--model", tiny_net, "-q"])
    assert result.exit_code == 1, result.output
    assert "every image failed (2); the first:" in result.output and "Traceback" not in result.output
    assert len(read_manifest(tmp_path / "out" / "manifest.jsonl")) == 2


def test_the_bar_moves_during_an_optimizer_batch(eyes, tmp_path, monkeypatch):
    # the bar stayed at 0 % for a whole optimizer run and jumped to 100 % at the end
    from masked_gatys.cli import purify as cli_purify

    seen = []
    shown = cli_purify._Bar.__call__

    def spy(self, p):
        seen.append((p.done, p.working, p.record is None))
        return shown(self, p)

    monkeypatch.setattr(cli_purify._Bar, "__call__", spy)
    result = CliRunner().invoke(main, ["purify", str(eyes), "-o", str(tmp_path / "out"), "--style", "rendered",
                                       "--weights", "random", "--max-layer", "relu1_1", "--iterations", "2",
                                       "--batch-size", "6", "--no-pupil-shift"])
    assert result.exit_code == 0, result.output
    during = [working for done, working, batch in seen if batch and done == 0]
    assert during and all(0 < w <= 6 for w in during)
