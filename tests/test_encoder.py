"""The VGG loss network (masked_gatys.encoder) against torchvision run by hand.

Random weights only; "imagenet" is exercised with torchvision's download
replaced by a function that raises, so no test touches the network. Weight
files are tiny state dicts (conv1_1 .. conv2_2) written to ``tmp_path``.
"""

from __future__ import annotations

import copy
import hashlib
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn

from masked_gatys.encoder import WEIGHTS_ENV, check_layers, layer_grid, layer_names, layer_scale, load_encoder
from masked_gatys.errors import LayerError, WeightsError

# torchvision's ImageNet statistics and the caffe BGR mean (0-255), written out independently
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)

# convolutions per block (Simonyan & Zisserman, configurations D and E) and their widths
BLOCKS = {"vgg16": [2, 2, 3, 3, 3], "vgg19": [2, 2, 4, 4, 4]}
WIDTHS = [64, 128, 256, 512, 512]

# indices in torchvision's vgg19().features of the layers used below
IDX = {"conv1_1": 0, "relu1_1": 1, "conv1_2": 2, "relu1_2": 3, "pool1": 4, "conv2_1": 5, "relu2_1": 6,
       "conv2_2": 7, "relu2_2": 8, "pool2": 9, "conv3_1": 10, "relu3_1": 11, "conv3_2": 12, "relu3_2": 13}
# the convolutions a tiny weights file holds: conv1_1 .. conv2_2
FILE_CONVS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]


def expected_names(arch: str) -> list[str]:
    names = []
    for block, n_convs in enumerate(BLOCKS[arch], start=1):
        for n in range(1, n_convs + 1):
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
        names.append(f"pool{block}")
    return names


def quiet(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_encoder(**kwargs)


@pytest.fixture(scope="module")
def ref_features(make_encoder) -> nn.Sequential:
    """torchvision's own ``vgg19().features`` (to relu3_2) holding the seed-0 random weights.

    The weights are copied by layer name into torchvision's module indices (``IDX``), so the
    manual forward below checks the encoder's layer order, normalisation and pooling against
    torchvision's network, whatever way the random weights are drawn.
    """
    with torch.device("meta"):
        feats = tvm.vgg19(weights=None).features[: IDX["relu3_2"] + 1]
    feats = feats.to_empty(device="cpu").eval()
    source = dict(make_encoder(["relu3_2"], seed=0).named_parameters())
    state = {f"{IDX[k.split('.')[1]]}.{k.split('.')[2]}": v for k, v in source.items()}
    assert len(state) == 2 * 6  # conv1_1 .. conv3_2
    feats.load_state_dict(state)
    for m in feats.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False  # the reference must keep every intermediate intact
    return feats.requires_grad_(False)


def run_manual(feats: nn.Sequential, x: torch.Tensor, layers, *, pool: str = "max") -> dict[str, torch.Tensor]:
    """Run ``feats`` module by module on an already normalised input, cloning requested outputs."""
    out, h = {}, x
    wanted = {IDX[name]: name for name in layers}
    for i, module in enumerate(feats[: max(wanted) + 1]):
        if isinstance(module, nn.MaxPool2d) and pool == "avg":
            h = F.avg_pool2d(h, 2, 2)
        else:
            h = module(h)
        if i in wanted:
            out[wanted[i]] = h.clone()
    return out


def torchvision_norm(x: torch.Tensor) -> torch.Tensor:
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def caffe_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flip(1) * 255.0 - CAFFE_MEAN_BGR  # RGB -> BGR, 0-255, mean subtracted


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_layer_names_follow_torchvision_modules(arch: str) -> None:
    names = layer_names(arch)
    assert names == expected_names(arch)
    assert len(names) == {"vgg16": 31, "vgg19": 37}[arch]
    with torch.device("meta"):  # the module types, without paying for a weight init
        features = getattr(tvm, arch)(weights=None).features
    assert len(features) == len(names)
    for name, module in zip(names, features):
        kind = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[name[:4]]
        assert isinstance(module, kind), (name, module)
        if name.startswith("conv"):
            assert module.out_channels == WIDTHS[int(name[4]) - 1], name


@pytest.mark.parametrize("bad, suggestion", [("relu4-2", "relu4_2"), ("Relu3_1", "relu3_1"), ("conv1_3", None)])
def test_unknown_layer_raises_with_suggestion(bad: str, suggestion) -> None:
    with pytest.raises(LayerError) as info:
        check_layers(["relu1_1", bad])
    msg = str(info.value)
    assert repr(bad) in msg
    if suggestion:
        assert f"did you mean {suggestion!r}" in msg
    assert isinstance(info.value, KeyError)  # a LayerError is still a KeyError
    with pytest.raises(LayerError, match="did you mean 'relu4_2'"):
        quiet(weights="random", layers=["relu4-2"])


def test_vgg16_has_no_relu3_4() -> None:
    with pytest.raises(LayerError, match="vgg16"):
        check_layers(["relu3_4"], arch="vgg16")
    assert check_layers(["relu3_4"], arch="vgg19") == ["relu3_4"]


def test_vgg16_encoder() -> None:
    enc = quiet(weights="random", arch="vgg16", layers=["relu3_3", "relu1_2"])
    assert list(enc.body) == expected_names("vgg16")[: expected_names("vgg16").index("relu3_3") + 1]
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256]
    out = enc(torch.rand(1, 3, 16, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"relu1_2": (1, 64, 16, 16), "relu3_3": (1, 256, 4, 4)}
    with pytest.raises(LayerError, match="relu3_3"):  # the suggestion for a VGG-19-only name
        quiet(weights="random", arch="vgg16", layers=["relu3_4"])


def test_layer_scale_and_grid_match_the_encoder(make_encoder) -> None:
    layers = ["relu1_1", "pool1", "relu2_1", "relu2_2", "pool2", "relu3_1", "relu3_4"]
    enc = make_encoder(layers)
    for size in [(64, 64), (37, 61)]:
        out = enc(torch.rand(1, 3, *size))
        for layer in layers:
            assert tuple(out[layer].shape[-2:]) == layer_grid(layer, size), (layer, size)
            if size == (64, 64):
                assert out[layer].shape[-1] * layer_scale(layer) == 64, layer


# ---------------------------------------------------------------- structure


def test_truncated_after_the_deepest_requested_layer(make_encoder) -> None:
    tiny = make_encoder(["relu1_1"])
    assert list(tiny.body) == ["conv1_1", "relu1_1"]
    assert sum(p.numel() for p in tiny.parameters()) == 64 * 3 * 9 + 64
    enc = make_encoder(["relu2_1", "relu1_1"])
    assert list(enc.body) == layer_names()[: layer_names().index("relu2_1") + 1]
    assert enc.layers == ("relu1_1", "relu2_1")  # forward order
    out = enc(torch.rand(1, 3, 16, 16))
    assert list(out) == ["relu1_1", "relu2_1"]  # exactly the requested layers, in forward order
    assert list(make_encoder(["pool1"]).body)[-1] == "pool1"


def test_frozen_and_input_gradient_only(make_encoder) -> None:
    enc = make_encoder(["relu1_1", "relu2_1"])
    assert all(not p.requires_grad for p in enc.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = enc(x)
    sum(v.square().sum() for v in out.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())
    enc.train()  # the loss network stays in inference mode
    assert not enc.training and not any(m.training for m in enc.modules())


def test_relus_are_not_in_place(make_encoder, ref_features, image) -> None:
    layers = ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "conv2_1"]
    enc = make_encoder(layers)
    assert all(not m.inplace for m in enc.modules() if isinstance(m, nn.ReLU))
    out = enc(image)
    ref = run_manual(ref_features, torchvision_norm(image), layers)
    for name in layers:
        torch.testing.assert_close(out[name], ref[name], msg=name)
    # a conv output that an in-place ReLU had overwritten would have no negative values
    assert (out["conv1_1"] < 0).any() and (out["conv1_2"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_outputs_equal_a_manual_torchvision_forward(make_encoder, ref_features, image) -> None:
    layers = ["relu1_1", "relu1_2", "pool1", "relu2_1", "pool2", "relu3_1", "conv3_2", "relu3_2"]
    enc = make_encoder(layers)
    assert enc.identity.format == "torchvision"
    out = enc(image)
    ref = run_manual(ref_features, torchvision_norm(image), layers)
    assert list(out) == layers
    for name in layers:
        torch.testing.assert_close(out[name], ref[name], rtol=1e-5, atol=1e-5, msg=name)


def test_average_pooling_replaces_max(make_encoder, ref_features, image) -> None:
    layers = ["relu1_2", "pool1", "relu2_2", "pool2"]
    avg, mx = make_encoder(layers, pooling="avg"), make_encoder(layers, pooling="max")
    assert not any(isinstance(m, nn.MaxPool2d) for m in avg.modules())
    assert sum(isinstance(m, nn.AvgPool2d) for m in avg.modules()) == 2
    out = avg(image)
    ref = run_manual(ref_features, torchvision_norm(image), layers, pool="avg")
    for name in layers:
        torch.testing.assert_close(out[name], ref[name], rtol=1e-5, atol=1e-5, msg=name)
    torch.testing.assert_close(out["relu1_2"], mx(image)["relu1_2"])
    assert not torch.allclose(out["pool1"], mx(image)["pool1"])
    with pytest.raises(WeightsError, match="pooling"):
        quiet(weights="random", layers=["relu1_1"], pooling="min")


def test_input_shape_is_checked(make_encoder) -> None:
    enc = make_encoder(["relu1_1"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.rand(3, 8, 8))


def test_device_and_dtype(make_encoder, device, dtype) -> None:
    enc = copy.deepcopy(make_encoder(["relu1_1", "relu2_1"])).to(device=device, dtype=dtype)
    x = torch.rand(1, 3, 16, 16)
    out = enc(x.to(device=device, dtype=dtype))
    ref = make_encoder(["relu1_1", "relu2_1"])(x)
    for name, value in out.items():
        assert value.device.type == device.type and value.dtype == dtype
        torch.testing.assert_close(value.cpu().float(), ref[name], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- random weights


def test_random_weights_seeded_and_warned(make_encoder) -> None:
    with pytest.warns(UserWarning, match="random"):
        a = load_encoder(weights="random", layers=["relu1_2"], seed=3)
    with pytest.warns(UserWarning, match="random"):
        b = load_encoder(weights="random", layers=["relu2_1"], seed=3)
    c = make_encoder(["relu1_2"], seed=0)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name  # same seed, same weights, whatever the layers
        assert not torch.equal(pa, pc) or name.endswith("bias"), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    assert a.identity == b.identity and a.identity.name == "random(seed=3)"
    assert a.identity.sha256 != c.identity.sha256
    assert len(a.identity.sha256) == 64
    assert a.identity.format == "torchvision"
    x = torch.rand(1, 3, 8, 8)
    assert not torch.allclose(a(x)["relu1_2"], c(x)["relu1_2"])


def test_building_an_encoder_leaves_the_global_rng_alone(tmp_path, file_state) -> None:
    path = tmp_path / "rng_caffe.pth"
    torch.save(file_state, path)
    state = torch.get_rng_state()
    quiet(weights="random", layers=["relu1_2"], seed=5)
    assert torch.equal(torch.get_rng_state(), state), "building random weights moved the global RNG"
    quiet(weights=path, layers=["relu1_2"])
    assert torch.equal(torch.get_rng_state(), state), "loading a weights file moved the global RNG"


@pytest.mark.gpu
def test_random_weights_leave_the_cuda_rng_alone() -> None:
    torch.cuda.init()
    state = torch.cuda.get_rng_state()
    quiet(weights="random", layers=["relu1_1"], seed=11)
    assert torch.equal(torch.cuda.get_rng_state(), state)


def test_unknown_arch_format_and_no_layers(tmp_path, file_state) -> None:
    with pytest.raises(WeightsError, match="vgg19"):
        quiet(weights="random", layers=["relu1_1"], arch="vgg11")
    path = tmp_path / "tiny.pth"
    torch.save(file_state, path)
    with pytest.raises(WeightsError, match="bogus"):
        quiet(weights=path, layers=["relu1_1"], weights_format="bogus")
    with pytest.raises(LayerError, match="layer"):
        quiet(weights="random", layers=[])


def test_wrapped_state_dict_and_module_prefix(tmp_path, file_state, image) -> None:
    # {"state_dict": ...} wrappers and DataParallel's "module." prefix are common in the wild
    path = tmp_path / "wrapped_caffe.pth"
    torch.save({"state_dict": {f"module.features.{k}": v for k, v in file_state.items()},
                "epoch": 3}, path)
    enc = load_encoder(weights=path, layers=["relu2_2"])
    torch.testing.assert_close(enc(image)["relu2_2"], manual_file_forward(file_state, image, "caffe")["relu2_2"],
                               rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- weight files


@pytest.fixture(scope="module")
def file_state(ref_features) -> dict[str, torch.Tensor]:
    """conv1_1 .. conv2_2 of the seed-0 VGG-19, perturbed so they differ from seed 0's own."""
    g = torch.Generator().manual_seed(123)
    state = {}
    for name in FILE_CONVS:
        conv = ref_features[IDX[name]]
        state[f"{IDX[name]}.weight"] = conv.weight + 0.01 * torch.randn(conv.weight.shape, generator=g)
        state[f"{IDX[name]}.bias"] = conv.bias + 0.1 * torch.randn(conv.bias.shape, generator=g)
    return state


def manual_file_forward(state, x: torch.Tensor, fmt: str) -> dict[str, torch.Tensor]:
    """relu1_1, relu2_2 by hand with functional convolutions and the given preprocessing."""
    h = caffe_norm(x) if fmt == "caffe" else torchvision_norm(x)
    out = {}
    for name in FILE_CONVS:
        i = IDX[name]
        h = F.relu(F.conv2d(h, state[f"{i}.weight"], state[f"{i}.bias"], padding=1))
        if name == "conv1_1":
            out["relu1_1"] = h
        if name == "conv1_2":
            h = F.max_pool2d(h, 2, 2)
    out["relu2_2"] = h
    return out


def write(path, obj) -> None:
    torch.save(obj, path)


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def name_of(index_key: str) -> str:
    index, _, tail = index_key.partition(".")
    return {IDX[n]: n for n in FILE_CONVS}[int(index)] + "." + tail


@pytest.mark.parametrize(
    "filename, keys, fmt_arg, expected_fmt",
    [
        ("tiny_vgg.pth", "index", "auto", "torchvision"),       # unknown: assumes torchvision, warns
        ("tiny_vgg.pth", "features", "torchvision", "torchvision"),
        ("tiny_caffe.pth", "features", "auto", "caffe"),         # 'caffe' in the file name
        ("tiny_vgg_named.pth", "named", "auto", "caffe"),        # conv1_1.weight keys
        ("tiny_caffe.pth", "index", "torchvision", "torchvision"),  # explicit override wins
        ("tiny_vgg.pth", "index", "caffe", "caffe"),
    ],
)
def test_weights_file_formats_and_values(tmp_path, file_state, image, filename, keys, fmt_arg, expected_fmt):
    keyed = {
        "index": dict(file_state),
        "features": {f"features.{k}": v for k, v in file_state.items()},
        "named": {name_of(k): v for k, v in file_state.items()},
    }[keys]
    path = tmp_path / filename
    write(path, keyed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = load_encoder(weights=path, layers=["relu1_1", "relu2_2"], weights_format=fmt_arg)
    if (keys, fmt_arg) == ("index", "auto"):
        assert any("weights_format" in str(w.message) for w in caught), "guessing a format must warn"
    assert enc.identity.format == expected_fmt
    assert enc.identity.name == filename
    assert enc.identity.sha256 == sha256_of(path)
    assert enc.identity.to_dict() == {"name": filename, "sha256": sha256_of(path), "format": expected_fmt}
    out = enc(image)
    ref = manual_file_forward(file_state, image, expected_fmt)
    tol = {"rtol": 1e-4, "atol": 1e-3} if expected_fmt == "caffe" else {"rtol": 1e-5, "atol": 1e-5}
    for name in ("relu1_1", "relu2_2"):
        torch.testing.assert_close(out[name], ref[name], **tol, msg=name)
    other = manual_file_forward(file_state, image, "torchvision" if expected_fmt == "caffe" else "caffe")
    assert not torch.allclose(out["relu1_1"], other["relu1_1"], rtol=1e-3, atol=1e-3)


def test_weights_file_deeper_layer_names_deepest_available(tmp_path, file_state) -> None:
    path = tmp_path / "first_layers_caffe.pth"
    write(path, file_state)
    enc = load_encoder(weights=path, layers=["relu2_2"])
    assert enc.deepest_available in ("relu2_2", "pool2")
    with pytest.raises(WeightsError) as info:
        load_encoder(weights=path, layers=["relu1_1", "relu3_1"])
    msg = str(info.value)
    assert "relu3_1" in msg and enc.deepest_available in msg


def test_weights_env_variable_picks_the_file(tmp_path, file_state, monkeypatch) -> None:
    path = tmp_path / "env_caffe.pth"
    write(path, file_state)
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    assert WEIGHTS_ENV == "MASKED_GATYS_WEIGHTS"
    enc = load_encoder(weights=None, layers=["relu1_1"])
    assert enc.identity.sha256 == sha256_of(path) and enc.identity.format == "caffe"
    # an explicit choice beats the environment
    assert quiet(weights="random", layers=["relu1_1"]).identity.name.startswith("random")


def test_missing_folder_and_corrupt_files(tmp_path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth"):
        load_encoder(weights=missing, layers=["relu1_1"])
    with pytest.raises(WeightsError, match=str(tmp_path)):
        load_encoder(weights=tmp_path, layers=["relu1_1"])
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 this is not a torch file" * 10)
    with pytest.raises(WeightsError, match="corrupt.pth"):
        load_encoder(weights=corrupt, layers=["relu1_1"])
    truncated = tmp_path / "truncated.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3), "0.bias": torch.zeros(64)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(WeightsError, match="truncated.pth"):
        load_encoder(weights=truncated, layers=["relu1_1"])
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(WeightsError, match="tensor.pth"):
        load_encoder(weights=not_a_dict, layers=["relu1_1"])
    no_vgg = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, no_vgg)
    with pytest.raises(WeightsError, match="other.pth"):
        quiet(weights=no_vgg, layers=["relu1_1"])


def test_weights_of_the_wrong_shape(tmp_path) -> None:
    path = tmp_path / "wrong_shape.pth"
    torch.save({"0.weight": torch.zeros(8, 3, 3, 3), "0.bias": torch.zeros(8)}, path)
    with pytest.raises(WeightsError, match="wrong_shape.pth"):
        quiet(weights=path, layers=["relu1_1"])


def test_imagenet_offline_tells_how_to_pass_a_file(monkeypatch) -> None:
    calls = []

    def offline(*args, **kwargs):
        calls.append(1)
        raise OSError("no network in tests")

    monkeypatch.setattr(tvm.VGG19_Weights, "get_state_dict", offline)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError) as info:
        load_encoder(weights="imagenet", layers=["relu1_1"])
    msg = str(info.value)
    assert "--weights" in msg and WEIGHTS_ENV in msg, msg
    assert "no network in tests" in msg
    assert calls, "the download path was not exercised"
    # nothing named and nothing cached: the one default rule gives random weights, loudly, and
    # never downloads (README: "Loss-network weights")
    monkeypatch.setenv("TORCH_HOME", "never-created-torch-home")
    calls.clear()
    with pytest.warns(UserWarning, match="RANDOM"):
        load_encoder(weights=None, layers=["relu1_1"])
    assert not calls
