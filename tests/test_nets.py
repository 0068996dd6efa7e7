"""The feed-forward networks: shapes for any size, range, config round trip, gating."""

from __future__ import annotations

import pytest
import torch

from masked_gatys import nets


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=["johnson", "purifier"])
def net(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.manual_seed(0)
    return nets.build(request.param, width=4, blocks=2).eval()


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (17, 23), (36, 60), (33, 8), (64, 97)])
def test_output_size_equals_input_size(net: torch.nn.Module, hw: tuple[int, int]) -> None:
    image = torch.rand(2, 3, *hw)
    mask = (torch.rand(2, 1, *hw) > 0.5).float()
    out = net(image, mask)
    assert out.shape == image.shape
    assert out.dtype == image.dtype


def test_output_in_unit_box(net: torch.nn.Module) -> None:
    out = net(torch.rand(1, 3, 21, 13) * 10 - 5, torch.ones(1, 1, 21, 13))
    assert out.min() >= 0 and out.max() <= 1


def test_mask_none_accepted(net: torch.nn.Module) -> None:
    image = torch.rand(1, 3, 12, 16)
    out = net(image, None)
    assert out.shape == image.shape
    if isinstance(net, nets.Purifier):  # None means the whole image is attention
        torch.testing.assert_close(out, net(image, torch.ones(1, 1, 12, 16)))


def test_training_mode_odd_size_and_backward(net: torch.nn.Module) -> None:
    net.train()
    image = torch.rand(2, 3, 11, 19)
    out = net(image, torch.rand(2, 1, 11, 19))
    assert out.shape == image.shape
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_config_round_trip(net: torch.nn.Module) -> None:
    rebuilt = nets.build(**net.config).eval()
    rebuilt.load_state_dict(net.state_dict())
    image, mask = torch.rand(1, 3, 16, 20), torch.ones(1, 1, 16, 20)
    torch.testing.assert_close(rebuilt(image, mask), net(image, mask))


def test_purifier_reads_the_mask() -> None:
    torch.manual_seed(0)
    net = nets.build("purifier", width=4).eval()
    image = torch.rand(1, 3, 16, 16)
    a = net(image, torch.zeros(1, 1, 16, 16))
    b = net(image, torch.ones(1, 1, 16, 16))
    assert not torch.allclose(a, b)
    att = net.attention_map(image, torch.ones(1, 1, 16, 16))
    assert att.shape == (1, 1, 4, 4)
    assert att.min() > 0 and att.max() < 1


def test_johnson_ignores_the_mask() -> None:
    torch.manual_seed(0)
    net = nets.build("johnson", width=4, blocks=1).eval()
    image = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(net(image, torch.zeros(1, 1, 16, 16)), net(image, None))


def test_default_checkpoint_is_small() -> None:
    for name in ("johnson", "purifier"):
        n = sum(p.numel() for p in nets.build(name).parameters())
        assert n * 4 < 3_000_000, (name, n)


def test_purifier_uses_batch_norm_and_dropout() -> None:
    net = nets.build("purifier", width=4)
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"BatchNorm2d", "Dropout2d", "Upsample"} <= kinds
    assert "ConvTranspose2d" not in kinds
    assert len(net.residual) == 4
    first = net.encode[0][1]
    last = net.decode[-1][1]
    assert first.in_channels == 4 and first.kernel_size == (9, 9)
    assert last.kernel_size == (9, 9)


@pytest.mark.parametrize("name,bad,match", [
    ("unet", {}, "unknown network"),
    ("johnson", {"depth": 3}, "bad configuration"),
    ("johnson", {"output": "relu"}, "unknown output"),
    ("purifier", {"dropout": 1.5}, "dropout"),
])
def test_build_errors(name: str, bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nets.build(name, **bad)


def test_bad_shapes_rejected(net: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="image must have shape"):
        net(torch.rand(1, 4, 8, 8), None)
    with pytest.raises(ValueError, match="does not fit"):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 9))


def test_docstring_examples_run() -> None:
    import doctest

    result = doctest.testmod(nets, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["johnson", "purifier"])
def test_cuda_forward_matches_cpu(name: str) -> None:
    torch.manual_seed(0)
    net = nets.build(name, width=4).eval()
    image, mask = torch.rand(2, 3, 19, 27), torch.rand(2, 1, 19, 27)
    expected = net(image, mask)
    out = net.to("cuda")(image.cuda(), mask.cuda())
    assert out.shape == image.shape and out.is_cuda
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)
