"""``train`` under torchrun's environment: two gloo ranks give the steps of one process."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import socket
import warnings

import pytest
import torch

from masked_gatys.train import TrainConfig, load_model, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(out, **kw):
    return TrainConfig(net="johnson", width=2, blocks=1, render=4, val=0, size=(24, 32), iterations=2,
                       batch_size=4, weights="random", max_layer="relu2_1", lr=1e-2, output=str(out), **kw)


def _rank(rank, port, out, errors):
    import torch.distributed as dist

    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train(_config(out))
        dist.destroy_process_group()
        errors.put((rank, None))
    except BaseException as exc:  # noqa: BLE001  (report anything to the parent)
        errors.put((rank, repr(exc)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_train_like_one_process_with_the_same_global_batch(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(_config(tmp_path / "one.pt"))
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, tmp_path / "ddp.pt", errors)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert dict(errors.get(timeout=5) for _ in procs) == {0: None, 1: None}
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert one["step"] == ddp["step"] == 2
    for key, value in one["state_dict"].items():
        # A convolution's bias right before an instance norm has no gradient in exact arithmetic;
        # Adam turns its rounding noise into full-size steps in either run, and the norm removes
        # it again: compare those through the outputs below.
        if not key.endswith("bias"):
            torch.testing.assert_close(ddp["state_dict"][key], value, rtol=1e-4, atol=1e-6)
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    out_one = load_model(tmp_path / "one.pt")(x)
    out_ddp = load_model(tmp_path / "ddp.pt")(x)
    torch.testing.assert_close(out_ddp, out_one, rtol=0, atol=2e-5)
    for a, b in zip(one["history"], ddp["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert one["history"][0]["loss"] != one["history"][1]["loss"]  # the weights moved: the check can fail


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(tmp_path):
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    port = _free_port()

    def rank(r):
        import torch.distributed as dist

        try:
            dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                train(dataclasses.replace(_config(tmp_path / "x.pt"), batch_size=3))
            errors.put((r, None))
        except ValueError as exc:
            errors.put((r, str(exc)))
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()

    procs = [ctx.Process(target=rank, args=(r,)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = dict(errors.get(timeout=5) for _ in procs)
    assert all("split evenly over the 2 ranks" in str(v) for v in results.values()), results


@pytest.mark.slow
def test_masked_gatys_train_under_torchrun(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "net.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "masked_gatys", "train", "--net", "johnson", "--width", "2", "--blocks", "1", "--render", "4",
           "--val", "2", "--size", "24x32", "--iterations", "2", "--batch-size", "4", "--weights", "random",
           "--max-layer", "relu2_1", "--device", "cpu", "-o", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["step"] == 2 and len(checkpoint["val_history"]) >= 1
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone reports
