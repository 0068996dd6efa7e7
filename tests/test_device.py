"""One device rule (``masked_gatys.device.resolve_device``) under the library, the CLI and torchrun."""

import click
import pytest
import torch

from masked_gatys.cli._common import resolve_device as cli_resolve
from masked_gatys.device import resolve_device
from masked_gatys.distributed import RankEnv
from masked_gatys.errors import DeviceError


def test_auto_cpu_and_unknown_names():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(click.ClickException, match="unknown device 'mps'"):
        cli_resolve("mps")  # the command line takes auto, cpu and cuda only
    assert cli_resolve("Auto") == str(resolve_device("auto"))
    assert RankEnv(1, 2, 1).device("cpu") == "cpu"


def test_absent_cuda_fails_at_once_in_every_caller(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and RankEnv(0, 2, 0).device("auto") == "cpu"
    with pytest.raises(DeviceError, match="CUDA is not available") as caught:
        resolve_device("cuda:1")
    assert isinstance(caught.value, RuntimeError)  # as before the one resolver: callers catching it still do
    with pytest.raises(click.ClickException, match="CUDA is not available"):
        cli_resolve("cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        RankEnv(0, 2, 0).device("cuda")


def test_a_rank_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert RankEnv(3, 4, 3).device("auto") == "cuda:1"
    assert RankEnv(3, 4, 3).device("cuda") == "cuda:1"
    assert RankEnv(3, 4, 3).device("cuda:0") == "cuda:0"  # an explicit index is kept
    assert resolve_device("cuda") == torch.device("cuda")
