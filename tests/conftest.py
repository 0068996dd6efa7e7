"""Shared fixtures: devices, dtypes, tiny random-weight encoders, the ``gpu`` marker.

- ``device``: runs a test on ``cpu`` and, where CUDA exists, on ``cuda``
  (the cuda case carries the ``gpu`` marker).
- ``dtype``: ``torch.float32`` and ``torch.float64``.
- ``make_encoder(layers, pooling="max", seed=0)``: a random-weight VGG-19
  encoder, built once per session for each argument set (building one costs
  about a second on two cores). Treat it as read-only: it is shared.
- ``tiny_encoder``: random-weight VGG-19 (seed 0) with every ReLU up to
  relu3_4, enough for the presets restricted to ``max_layer="relu3_4"``.
- Tests marked ``@pytest.mark.gpu`` are skipped where CUDA is not available.
- ``one_thread``: module-scoped; a test module of tiny tensors opts in with
  ``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable

import pytest
import torch

from masked_gatys import nets
from masked_gatys.encoder import VGGEncoder, layer_names, load_encoder
from masked_gatys.train import CHECKPOINT_FORMAT, save_checkpoint

CUDA = torch.cuda.is_available()

#: every ReLU of VGG-19 up to relu3_4, in forward order
TINY_LAYERS = tuple(n for n in layer_names("vgg19")[: layer_names("vgg19").index("relu3_4") + 1]
                    if n.startswith("relu"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and not CUDA:
        pytest.skip("needs CUDA")


@pytest.fixture
def quiet_random_weights():
    """No 'using random VGG weights' warning: the training tests use them on purpose."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random VGG weights.*")
        yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: tiny problems gain nothing from threads, and on a
    shared 2-core machine spinning OpenMP threads made them up to forty times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


_ENCODERS: dict[tuple, VGGEncoder] = {}


def _build(layers: Iterable[str], pooling: str = "max", seed: int = 0) -> VGGEncoder:
    key = (tuple(layers), pooling, seed)
    if key not in _ENCODERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random-weights warning is tested on its own
            _ENCODERS[key] = load_encoder(weights="random", layers=list(layers), pooling=pooling, seed=seed)
    return _ENCODERS[key]


@pytest.fixture(scope="session")
def make_encoder() -> Callable[..., VGGEncoder]:
    """Factory of shared random-weight VGG-19 encoders (cached per argument set)."""
    return _build


@pytest.fixture(scope="module")
def tiny_encoder() -> VGGEncoder:
    """Random-weight VGG-19 (seed 0) with every ReLU up to relu3_4, float32, on the CPU."""
    return _build(TINY_LAYERS)


@pytest.fixture(scope="session")
def tiny_net(tmp_path_factory) -> str:
    """A tiny random johnson network checkpoint (fast, and never the shipped weights): its path."""
    torch.manual_seed(0)
    net = nets.build("johnson", width=2, blocks=1)
    path = tmp_path_factory.mktemp("net") / "tiny.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": net.state_dict(),
                           "objective": {}, "weights": {}})
    return str(path)
