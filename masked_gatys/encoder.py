"""The VGG loss network: named layers, truncation, weights and their identity.

Layers are named by walking torchvision's ``vgg19().features`` (or
``vgg16``): ``conv{block}_{n}``, ``relu{block}_{n}``, ``pool{block}``. The
encoder keeps only the modules up to the deepest layer asked for, is frozen
(weights never need gradients, so a backward pass computes only the input
gradient), uses ReLUs that are not in place (so every requested activation
survives the rest of the forward pass), and normalises its ``[0, 1]`` RGB
input itself.

Weights, in this order of choice (DESIGN.md, "The loss network"):

1. a file: a torchvision state dict (``features.0.weight`` or ``0.weight``
   keys) or a caffe conversion (the one neural-style uses, or named
   ``conv1_1.weight`` keys); a file may hold only the first layers;
2. ``"imagenet"``: torchvision's own ``weights=`` API (downloads once into
   the torch hub cache on a machine that is online);
3. ``"random"``: seeded He-initialised weights, for tests and offline trials.

``weights=None`` means ``$MASKED_GATYS_WEIGHTS`` if set, else ``"imagenet"``.

>>> import torch, warnings
>>> warnings.simplefilter("ignore")  # the random-weights warning
>>> enc = load_encoder(weights="random", layers=["relu1_1", "relu2_1"])
>>> feats = enc(torch.rand(1, 3, 32, 32))
>>> {k: tuple(v.shape) for k, v in feats.items()}
{'relu1_1': (1, 64, 32, 32), 'relu2_1': (1, 128, 16, 16)}
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from masked_gatys.errors import ImageError, LayerError, WeightsError
from masked_gatys.files import sha256_file

__all__ = [
    "VGGEncoder",
    "WeightsIdentity",
    "LoadedWeights",
    "load_encoder",
    "resolve_weights",
    "auto_max_layer",
    "layer_names",
    "layer_scale",
    "layer_grid",
    "check_layers",
    "WEIGHTS_ENV",
]

WEIGHTS_ENV = "MASKED_GATYS_WEIGHTS"

# Plain VGG configurations (torchvision's "D" and "E"): channels, "M" = pool.
_CFGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# ImageNet statistics (torchvision) and the caffe BGR mean on the 0-255 scale.
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Files whose format is known from the first 8 hex digits of their sha256
# (torchvision and neural-style name their files this way).
_KNOWN_FILES = {
    "dcbb9e9d": "torchvision",  # torchvision vgg19-dcbb9e9d.pth
    "397923af": "torchvision",  # torchvision vgg16-397923af.pth
    "d01eb7cb": "caffe",        # neural-style(-pt) vgg19-d01eb7cb.pth
    "c403b74a": "caffe",        # Keras/caffe VGG-19 conv1_1..conv3_4 (the partial ImageNet file)
}


def _walk(arch: str) -> list[tuple[str, int]]:
    """(name, index in ``features``) of every module of a VGG's feature stack."""
    try:
        cfg = _CFGS[arch]
    except KeyError:
        raise WeightsError(f"unknown architecture {arch!r}: use one of {sorted(_CFGS)}") from None
    names: list[tuple[str, int]] = []
    block, n, index = 1, 1, 0
    for item in cfg:
        if item == "M":
            names.append((f"pool{block}", index))
            index += 1
            block, n = block + 1, 1
        else:
            names.append((f"conv{block}_{n}", index))
            names.append((f"relu{block}_{n}", index + 1))
            index += 2
            n += 1
    return names


def layer_names(arch: str = "vgg19") -> list[str]:
    """Every layer name of ``arch`` in forward order.

    >>> layer_names("vgg19")[:5]
    ['conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1']
    >>> len(layer_names("vgg16")), len(layer_names("vgg19"))
    (31, 37)
    """
    return [name for name, _ in _walk(arch)]


def check_layers(layers: Iterable[str], arch: str = "vgg19") -> list[str]:
    """Validate layer names; unknown ones raise ``LayerError`` with a suggestion.

    >>> check_layers(["relu4_2"])
    ['relu4_2']
    >>> check_layers(["relu4-2"])
    Traceback (most recent call last):
    ...
    masked_gatys.errors.LayerError: unknown layer 'relu4-2' for vgg19; did you mean 'relu4_2'? ...
    """
    valid = layer_names(arch)
    out = []
    for layer in layers:
        if layer not in valid:
            close = difflib.get_close_matches(layer, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise LayerError(f"unknown layer {layer!r} for {arch}; {hint}valid layers: {', '.join(valid)}")
        out.append(layer)
    return out


def _block_of(layer: str) -> int:
    return int(re.findall(r"\d+", layer)[0])


def _deepest_relu(layer: str, arch: str) -> str:
    """The deepest ReLU at or before ``layer``."""
    order = layer_names(arch)
    return [n for n in order[: order.index(layer) + 1] if n.startswith("relu")][-1]


def auto_max_layer(layers: Iterable[str], deepest_available: str, arch: str = "vgg19") -> str | None:
    """What ``max_layer="auto"`` means for ``layers`` (a preset's) and weights covering up to
    ``deepest_available``: None when the weights cover every layer, else the deepest ReLU they cover.
    The one rule of ``stylize``, ``train``, ``purify``, ``demo`` and ``bench``.

    >>> auto_max_layer(["relu1_1", "relu5_1"], "pool3"), auto_max_layer(["relu3_1"], "pool5")
    ('relu3_4', None)
    """
    order = layer_names(arch)
    deepest = max(check_layers(layers, arch), key=order.index)
    if order.index(deepest) <= order.index(deepest_available):
        return None
    return _deepest_relu(deepest_available, arch)


def layer_scale(layer: str) -> int:
    """How many input pixels one position of ``layer`` spans along each axis.

    >>> layer_scale("relu1_1"), layer_scale("pool1"), layer_scale("relu4_2")
    (1, 2, 8)
    """
    block = _block_of(layer)
    return 2 ** block if layer.startswith("pool") else 2 ** (block - 1)


def layer_grid(layer: str, size: tuple[int, int]) -> tuple[int, int]:
    """Grid ``(h, w)`` of ``layer`` for an input of ``size`` (pooling floors).

    >>> layer_grid("relu3_1", (37, 61))
    (9, 15)
    """
    h, w = size
    pools = _block_of(layer) if layer.startswith("pool") else _block_of(layer) - 1
    for _ in range(pools):
        h, w = h // 2, w // 2
    return h, w


def check_image_size(size: tuple[int, int], layers: Iterable[str], arch: str = "vgg19", *,
                     label: str = "image") -> None:
    """Refuse an image too small for the deepest of ``layers``, before any work.

    A layer of block b sees the image through b - 1 floor 2x2 poolings (b for
    ``pool{b}``); below ``layer_scale`` pixels on a side it has no position
    left and VGG fails inside a pooling. The message says which size or which
    ``--max-layer`` would do.

    >>> check_image_size((16, 9), ["relu1_1", "relu5_1"])
    Traceback (most recent call last):
    ...
    masked_gatys.errors.ImageError: image 16x9 vanishes at relu5_1; use --size >= 28 or --max-layer relu4_4
    """
    h, w = size
    if min(h, w) < 1:  # no size of it would do: the search below would never end
        raise ImageError(f"{label} {h}x{w} has no pixels")
    order = layer_names(arch)
    deepest = max(layers, key=order.index)
    need = layer_scale(deepest)
    if min(h, w) >= need:
        return
    side = max(h, w)
    n = side
    while min(round(h * n / side), round(w * n / side)) < need:
        n += 1
    fits = [name for name in order if name.startswith("relu") and layer_scale(name) <= min(h, w)]
    hint = f"--size >= {n}" + (f" or --max-layer {fits[-1]}" if fits else "")
    raise ImageError(f"{label} {h}x{w} vanishes at {deepest}; use {hint}")


@dataclass(frozen=True)
class WeightsIdentity:
    """Which weights made a result: a name, a sha256 and the input convention.

    >>> WeightsIdentity("random(seed=0)", "ab", "torchvision").to_dict()["format"]
    'torchvision'
    """

    name: str
    sha256: str
    format: str  # "torchvision" or "caffe": the input convention

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "WeightsIdentity":
        return cls(name=str(data["name"]), sha256=str(data["sha256"]), format=str(data["format"]))


@dataclass(frozen=True)
class LoadedWeights:
    """Weights resolved to a features-relative state dict (``"0.weight"`` ...).

    ``state`` is ``None`` for random weights, which are drawn at build time
    from ``seed``. ``deepest`` is the deepest layer the weights cover.
    """

    state: dict | None
    identity: WeightsIdentity
    arch: str
    deepest: str
    seed: int = 0


def _state_sha256(state: Mapping[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _to_features_state(raw: Mapping, arch: str, source: str) -> tuple[dict, bool]:
    """Keys rewritten to ``features`` indices; also whether they were caffe-named."""
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{source} does not hold a state dict (found {type(raw).__name__})")
    if "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    index_of = dict(_walk(arch))
    state: dict[str, Tensor] = {}
    named = False
    for key, value in raw.items():
        if not isinstance(value, Tensor):
            continue
        key = str(key)
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith("classifier."):
            continue
        if key.startswith("features."):
            key = key[len("features."):]
        head, _, tail = key.partition(".")
        if head in index_of and head.startswith("conv"):  # caffe-style named keys
            named = True
            key = f"{index_of[head]}.{tail}"
        state[key] = value.float()
    if not state:
        raise WeightsError(f"{source} holds no VGG convolution weights (keys: {list(raw)[:5]} ...)")
    return state, named


def _deepest_covered(state: Mapping[str, Tensor], arch: str, source: str) -> str:
    """Deepest layer such that every convolution up to it has weights in ``state``."""
    deepest = None
    for name, index in _walk(arch):
        if name.startswith("conv"):
            w, b = state.get(f"{index}.weight"), state.get(f"{index}.bias")
            if w is None or b is None:
                break
        deepest = name
    # a trailing conv without its relu is pointless: walk() puts relu right after conv
    if deepest is None:
        raise WeightsError(f"{source} has no weights for conv1_1")
    return deepest


def _detect_format(path: Path, sha: str, named: bool, state: Mapping[str, Tensor], requested: str) -> str:
    if requested in ("torchvision", "caffe"):
        return requested
    if requested != "auto":
        raise WeightsError(f"unknown weights format {requested!r}: use auto, torchvision or caffe")
    known = _KNOWN_FILES.get(sha[:8])
    if known:
        return known
    if named or "caffe" in path.name.lower():
        return "caffe"
    if "torchvision" in path.name.lower() or re.search(r"vgg1[69]-[0-9a-f]{8}\.pth$", path.name):
        return "torchvision"
    # The values alone do not tell the two conventions apart reliably, so
    # assume the common one and say so.
    warnings.warn(
        f"could not tell whether {path} is a torchvision or a caffe VGG; assuming torchvision "
        "(RGB, ImageNet mean/std). Pass weights_format='caffe' (--weights-format caffe) if it is "
        "a caffe conversion.",
        stacklevel=3,
    )
    return "torchvision"


def _load_file(path: Path, arch: str, weights_format: str) -> LoadedWeights:
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if path.is_dir():
        raise WeightsError(f"weights path is a folder, not a file: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, not a torch file
        raise WeightsError(f"cannot read weights file {path}: {exc}") from None
    state, named = _to_features_state(raw, arch, str(path))
    sha = sha256_file(path)
    fmt = _detect_format(path, sha, named, state, weights_format)
    deepest = _deepest_covered(state, arch, str(path))
    return LoadedWeights(state, WeightsIdentity(path.name, sha, fmt), arch, deepest)


def _load_imagenet(arch: str) -> LoadedWeights:
    enum = _weights_enum(arch)
    try:
        raw = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        raise WeightsError(
            f"could not get torchvision's ImageNet {arch.upper()} weights ({type(exc).__name__}: {exc}). "
            f"On an offline machine, download {enum.url} elsewhere and pass --weights PATH "
            f"(or set {WEIGHTS_ENV}=PATH); --weights random runs with random weights for trials."
        ) from None
    state, _ = _to_features_state(raw, arch, enum.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    sha = sha256_file(cached) if cached.exists() else _state_sha256(state)
    identity = WeightsIdentity(f"torchvision:{arch.upper()}_Weights.IMAGENET1K_V1", sha, "torchvision")
    return LoadedWeights(state, identity, arch, _deepest_covered(state, arch, enum.url))


def _weights_enum(arch: str):
    import torchvision.models as tvm

    return {"vgg19": tvm.VGG19_Weights, "vgg16": tvm.VGG16_Weights}[arch].IMAGENET1K_V1


def default_weights(arch: str = "vgg19") -> tuple[str, str]:
    """The one rule for weights nobody named: ``(choice, where it came from)``.

    ``$MASKED_GATYS_WEIGHTS``; else torchvision's ImageNet file if it is in
    the torch hub cache (``--weights imagenet`` downloads it once); else
    ``random``. Nothing is downloaded here. Every command (stylize, train,
    purify, demo, bench) follows it.

    >>> default_weights()[0] in ("random", "imagenet") or bool(os.environ.get(WEIGHTS_ENV))
    True
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return env, f"${WEIGHTS_ENV}"
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(_weights_enum(arch).url).name
    if cached.is_file():
        return "imagenet", f"the torch hub cache ({cached.name})"
    return "random", f"${WEIGHTS_ENV} is unset and torchvision's ImageNet file is not in the torch hub cache"


def resolve_weights(
    weights: str | os.PathLike | LoadedWeights | None = None,
    *,
    arch: str = "vgg19",
    seed: int = 0,
    weights_format: str = "auto",
) -> LoadedWeights:
    """Turn a weights choice into a state dict and its identity.

    >>> resolve_weights("random", seed=3).identity.name
    'random(seed=3)'
    """
    if isinstance(weights, LoadedWeights):
        return weights
    if weights is None:
        weights, source = default_weights(arch)
        if weights == "random":
            warnings.warn(f"no loss-network weights given: {source}; using RANDOM VGG weights. Set "
                          f"{WEIGHTS_ENV}=PATH (or --weights PATH, or --weights imagenet online) for real results",
                          stacklevel=2)
    if isinstance(weights, str) and weights == "random":
        _walk(arch)  # validates arch
        name = f"random(seed={seed})"
        return LoadedWeights(None, WeightsIdentity(name, _random_sha(arch, seed), "torchvision"), arch,
                             layer_names(arch)[-1], seed)
    if isinstance(weights, str) and weights == "imagenet":
        return _load_imagenet(arch)
    return _load_file(Path(weights).expanduser(), arch, weights_format)


def _features(arch: str, stop: int | None = None) -> nn.Sequential:
    """VGG's feature stack up to index ``stop``, torchvision's module layout, uninitialised.

    Built here rather than through ``torchvision.models.vgg19()``, which also
    builds and initialises the 120M-parameter classifier we never use. The
    convolutions are made on the meta device and then given empty storage,
    so no default initialisation runs and the global RNG is untouched;
    callers fill every parameter.
    """
    modules: list[nn.Module] = []
    channels = 3
    for item in _CFGS[arch]:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1, device="meta"),
                        nn.ReLU(inplace=False)]
            channels = int(item)
    if stop is not None:
        modules = modules[: stop + 1]
    return nn.Sequential(*modules).to_empty(device="cpu")


def _random_features(arch: str, seed: int) -> nn.Sequential:
    features = _features(arch)  # empty storage: every parameter is filled below
    # He et al. initialisation (fan_out, as torchvision initialises VGG),
    # drawn from a private generator so the caller's global RNG is untouched.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in features:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
                module.bias.zero_()
    return features


@functools.lru_cache(maxsize=2)
def _random_state(arch: str, seed: int) -> dict[str, Tensor]:
    return _random_features(arch, seed).state_dict()


@functools.lru_cache(maxsize=8)
def _random_sha(arch: str, seed: int) -> str:
    return _state_sha256(_random_state(arch, seed))


class _Normalize(nn.Module):
    """``[0, 1]`` RGB to the convention the weights were trained with."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        if fmt == "caffe":  # BGR, 0-255, mean subtracted, no std
            perm, scale = [2, 1, 0], [255.0] * 3
            shift = list(_CAFFE_MEAN_BGR)
        else:  # (x - mean) / std on RGB
            perm = [0, 1, 2]
            scale = [1.0 / s for s in _TORCHVISION_STD]
            shift = [m / s for m, s in zip(_TORCHVISION_MEAN, _TORCHVISION_STD)]
        self.perm = perm
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.perm != [0, 1, 2]:
            x = x[:, self.perm]
        return x * self.scale - self.shift


class VGGEncoder(nn.Module):
    """A frozen, truncated VGG returning the named layers it was built for.

    Build it with :func:`load_encoder`. ``encoder(x)`` takes ``(B, 3, H, W)``
    in ``[0, 1]`` and returns ``{layer: features}`` for ``encoder.layers``.
    """

    def __init__(self, layers: Sequence[str], weights: LoadedWeights, *, pooling: str = "max") -> None:
        super().__init__()
        arch = weights.arch
        layers = check_layers(layers, arch)
        if not layers:
            raise LayerError("an encoder needs at least one layer")
        if pooling not in ("max", "avg"):
            raise WeightsError(f"unknown pooling {pooling!r}: use max or avg")
        order = layer_names(arch)
        deepest = max(layers, key=order.index)
        if order.index(deepest) > order.index(weights.deepest):
            raise WeightsError(
                f"layer {deepest} is deeper than the weights {weights.identity.name} cover: the deepest "
                f"available layer is {weights.deepest}. Restrict the layers "
                f"(--max-layer {_deepest_relu(weights.deepest, arch)})."
            )
        self.arch = arch
        self.layers = tuple(sorted(set(layers), key=order.index))
        self.identity = weights.identity
        self.deepest_available = weights.deepest
        self.pooling = pooling

        stop = dict(_walk(arch))[deepest]
        full = _features(arch, stop)
        source = _random_state(arch, weights.seed) if weights.state is None else weights.state
        wanted = full.state_dict()
        try:  # load_state_dict copies, so the cached random state stays intact
            full.load_state_dict({k: source[k] for k in wanted})
        except KeyError as exc:  # cannot happen after the deepest check, but be loud if it does
            raise WeightsError(f"weights {weights.identity.name} lack {exc}") from None
        except RuntimeError as exc:
            detail = str(exc).strip().splitlines()[-1].strip()
            raise WeightsError(f"weights {weights.identity.name} do not fit {arch}: {detail}") from None
        modules: list[tuple[str, nn.Module]] = []
        for (name, index), module in zip(_walk(arch), full[: stop + 1]):
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            modules.append((name, module))
        self.normalize = _Normalize(weights.identity.format)
        self.body = nn.ModuleDict(modules)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGEncoder":
        # The loss network is always in inference mode.
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"the encoder takes (B, 3, H, W) images, got {tuple(x.shape)}")
        wanted = set(self.layers)
        out: dict[str, Tensor] = {}
        h = self.normalize(x)
        for name, module in self.body.items():
            h = module(h)
            if name in wanted:
                out[name] = h
        return {name: out[name] for name in self.layers}

    def extra_repr(self) -> str:
        return f"arch={self.arch}, layers={list(self.layers)}, weights={self.identity.name}"


def load_encoder(
    *,
    weights: str | os.PathLike | LoadedWeights | None = None,
    layers: Iterable[str],
    arch: str = "vgg19",
    pooling: str = "max",
    device: str | torch.device = "cpu",
    seed: int = 0,
    weights_format: str = "auto",
) -> VGGEncoder:
    """Build the frozen loss network for ``layers`` with the chosen weights.

    ``weights="random"`` warns: random weights are for tests and offline
    trials (He, Wang & Hopcroft 2016: random VGG still synthesises textures).

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     enc = load_encoder(weights="random", layers=["relu3_1"], pooling="avg")
    >>> list(enc.body)[-1], enc.identity.format
    ('relu3_1', 'torchvision')
    """
    loaded = resolve_weights(weights, arch=arch, seed=seed, weights_format=weights_format)
    if not isinstance(weights, LoadedWeights):
        warn_if_random(loaded, stacklevel=3)
    return VGGEncoder(list(layers), loaded, pooling=pooling).to(device)


def warn_if_random(weights: LoadedWeights, *, stacklevel: int = 2) -> None:
    """The warning every command gives when its loss network has random weights."""
    if weights.state is None:
        warnings.warn(
            f"using random VGG weights ({weights.identity.name}): fine for tests and offline trials, "
            "but images look right only with ImageNet weights (--weights PATH or imagenet)",
            stacklevel=stacklevel,
        )
