"""Network checkpoints: saving, reading, loading for inference, the shipped nets, applying a net.

A checkpoint is a ``torch.save``d dict of format :data:`CHECKPOINT_FORMAT`
holding the network config and weights, the objective it was trained on and
the loss network's identity (so :func:`check_compatible` can refuse to compare
objective values across loss networks), and the training record. Training
(:mod:`masked_gatys.train`) writes them; everything that runs a network reads
them here, without importing training.

>>> import torch
>>> from masked_gatys import nets
>>> model = LoadedModel(nets.build("johnson", width=2, blocks=1).eval(), {})
>>> apply_model(model, torch.rand(1, 3, 9, 11)).shape
torch.Size([1, 3, 9, 11])
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from masked_gatys import nets
from masked_gatys.errors import CheckpointError, ImageError, MaskError
from masked_gatys.files import atomic_write, recorded_name
from masked_gatys.image import as_unit_float, resize_to
from masked_gatys.masks import Regions, resize_mask

__all__ = [
    "CHECKPOINT_FORMAT", "save_checkpoint", "read_checkpoint", "strip_checkpoint", "LoadedModel", "load_model",
    "SHIPPED", "SHIPPED_BY_LAYOUT", "shipped_checkpoint", "check_compatible", "apply_model", "attention_of",
    "check_finite_state", "fold_batchnorm",
]

CHECKPOINT_FORMAT = "masked-gatys-net/1"


def _resize(x: Tensor, size: tuple[int, int], *, mask: bool = False) -> Tensor:
    """A network input resized: masks by the one mask rule, images bilinear (antialiased)."""
    return resize_mask(x, size) if mask else resize_to(x, size, mode="bilinear")


def attention_of(regions: Regions) -> Tensor:
    """The attention channel of a :class:`~masked_gatys.masks.Regions`, (B, 1, H, W).

    >>> attention_of(Regions.from_binary(torch.tensor([[0.0, 1.0]]))).tolist()
    [[[[0.0, 1.0]]]]
    """
    if "attention" in regions.names:
        return regions.region("attention")
    if len(regions.names) == 1:
        return regions.masks[:, :1]
    raise MaskError(f"expected a binary (attention) mask, got regions {', '.join(regions.names)}")


def _atomic_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(obj, fh), suffix=".tmp")


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict atomically (temporary file in the same folder, then ``os.replace``)."""
    _atomic_save(dict(checkpoint), Path(path))
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint file as its dict (tensors on the CPU), checked for format and the keys every one holds.

    >>> read_checkpoint("/nonexistent.pt")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: /nonexistent.pt: checkpoint not found
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a masked-gatys network checkpoint")
    for key in ("net", "state_dict", "objective", "weights"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return data


_SHIPPED_HISTORY = 500  # per-step records kept by strip_checkpoint
_PATH_SETTINGS = ("weights", "output", "resume", "content_dir", "style", "style_mask", "sample_dir", "init")


def strip_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint without the optimizer and RNG state (for shipping; cannot be resumed).

    The per-step ``history`` is thinned to at most about 500 evenly spaced records (and the
    last); ``val_history`` is kept whole.

    >>> import tempfile, torch
    >>> from masked_gatys import nets
    >>> d = tempfile.mkdtemp()
    >>> net = nets.build("johnson", width=2, blocks=1)
    >>> _ = save_checkpoint(f"{d}/a.pt", {"format": CHECKPOINT_FORMAT, "net": net.config,
    ...     "state_dict": net.state_dict(), "objective": {}, "weights": {}, "optimizer": {}})
    >>> "optimizer" in torch.load(strip_checkpoint(f"{d}/a.pt", f"{d}/b.pt"))
    False
    """
    data = read_checkpoint(src)
    for key in ("optimizer", "rng"):
        data.pop(key, None)
    history = data.get("history")
    if isinstance(history, list) and len(history) > _SHIPPED_HISTORY:
        # a long run's per-step records dwarf the network; keep an even sample (and the last)
        stride = -(-len(history) // _SHIPPED_HISTORY)
        data["history"] = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
    data["resumable"] = False
    settings = data.get("train_config")
    if isinstance(settings, dict):  # a shipped file names files by name only, not where they lay
        data["train_config"] = {k: recorded_name(v) if k in _PATH_SETTINGS and isinstance(v, str) else v
                                for k, v in settings.items()}
    return save_checkpoint(dst, data)

# ---------------------------------------------------------------- inference

_HEAVY = ("state_dict", "optimizer", "rng")


class LoadedModel:
    """A trained network ready for inference: ``model(image, mask=None) -> image``.

    ``checkpoint`` is the checkpoint's metadata (network and objective config,
    loss-network identity, training record) without the tensors.
    """

    def __init__(self, net: nn.Module, checkpoint: Mapping[str, Any], *, path: str | None = None) -> None:
        self.net = net.eval()
        self.checkpoint = dict(checkpoint)
        self.path = path
        self.inference = False
        """True for :meth:`for_inference`'s copy: batch norm folded, channels-last, inference mode."""

    def for_inference(self) -> "LoadedModel":
        """A copy for running many batches: batch norm folded into the convolutions
        (:func:`fold_batchnorm`), the weights channels-last, and :func:`apply_model` under
        ``torch.inference_mode``. The same outputs within float32 rounding (about 1e-6), about
        1.5x faster on a CPU; this model (its ``net``, for training) is left as it is.

        >>> from masked_gatys import nets
        >>> model = LoadedModel(nets.build("purifier", width=2).eval(), {})
        >>> x, m = torch.rand(2, 3, 12, 20), torch.ones(2, 1, 12, 20)
        >>> fast = model.for_inference()
        >>> fast.inference, bool(torch.allclose(fast(x, m), model(x, m), atol=1e-5))
        (True, True)
        """
        net = fold_batchnorm(copy.deepcopy(self.net).eval()).to(memory_format=torch.channels_last)
        fast = LoadedModel(net, self.checkpoint, path=self.path)
        fast.inference = True
        return fast

    @property
    def name(self) -> str:
        return str(getattr(self.net, "name", type(self.net).__name__))

    @property
    def objective_config(self) -> dict[str, Any] | None:
        return self.checkpoint.get("objective")

    @property
    def weights_identity(self) -> dict[str, Any] | None:
        return self.checkpoint.get("weights")

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> "LoadedModel":
        self.net.to(device)
        return self

    @property
    def trained_sizes(self) -> list[tuple[int, int]]:
        """The ``(h, w)`` sizes the network was trained on (older checkpoints: their one ``size``)."""
        sizes = self.checkpoint.get("trained_sizes") or ([self.checkpoint["size"]] if self.checkpoint.get("size")
                                                        else [])
        return [(int(h), int(w)) for h, w in sizes]

    def working_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The trained size to resize an ``(h, w)`` image to, or None when it is inside the trained range.

        Inside means between the smallest and largest trained height and width.
        Outside, the nearest trained size (in log scale) is returned.

        >>> LoadedModel(torch.nn.Identity(), {"trained_sizes": [[36, 60], [144, 240]]}).working_size((72, 120))
        >>> LoadedModel(torch.nn.Identity(), {"size": [48, 72]}).working_size((36, 60))
        (48, 72)
        """
        sizes = self.trained_sizes
        if not sizes:
            return None
        h, w = size
        if (min(s[0] for s in sizes) <= h <= max(s[0] for s in sizes)
                and min(s[1] for s in sizes) <= w <= max(s[1] for s in sizes)):
            return None
        return min(sizes, key=lambda s: abs(math.log(s[0] / h)) + abs(math.log(s[1] / w)))

    def __call__(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        return apply_model(self, image, mask)

    def __repr__(self) -> str:
        return f"LoadedModel({self.name}, path={self.path!r})"


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu", layout: str | None = None) -> LoadedModel:
    """Load a trained network from a checkpoint written by :func:`train`.

    Raises :class:`~masked_gatys.errors.CheckpointError` naming the file when
    it is missing, corrupt or not a network checkpoint.

    ``path`` may also be the name of a shipped checkpoint (``johnson``,
    ``purifier``) when no file of that name exists; ``layout`` then picks the one trained in
    that layout where one is shipped (:func:`shipped_checkpoint`).

    >>> len(load_model("purifier").trained_sizes) >= 1
    True
    >>> load_model("/nonexistent/net.pt")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: /nonexistent/net.pt: checkpoint not found
    """
    if str(path) in SHIPPED and not Path(path).is_file():
        path = shipped_checkpoint(str(path), layout)
    data = read_checkpoint(path)
    try:
        net = nets.build(**data["net"])
        net.load_state_dict(data["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: the network does not load: {first}") from None
    meta = {k: v for k, v in data.items() if k not in _HEAVY}
    return LoadedModel(net.to(device).eval(), meta, path=str(path))


#: the eye checkpoints installed with the package (masked_gatys/data/README.md)
SHIPPED = {"johnson": "johnson_eyes.pt", "purifier": "purifier_eyes.pt"}
#: shipped checkpoints trained in a layout (:mod:`masked_gatys.eyes.layouts`) other than the
#: original one: ``(name, layout) -> file``; a layout not here takes ``SHIPPED[name]``
SHIPPED_BY_LAYOUT: dict[tuple[str, str], str] = {("purifier", "mpiigaze"): "purifier_mpiigaze.pt",
                                                   ("johnson", "mpiigaze"): "johnson_mpiigaze.pt",
                                                   ("purifier", "nir"): "purifier_nir.pt",
                                                   ("johnson", "nir"): "johnson_nir.pt"}


def _data_dir() -> Path:
    return Path(__file__).resolve().parent / "data"


def shipped_checkpoint(name: str, layout: str | None = None) -> Path:
    """Path of a checkpoint installed with the package: ``johnson`` or ``purifier`` (eyes),
    the one trained in ``layout`` where one is shipped (``SHIPPED_BY_LAYOUT``), else the
    original layout's.

    >>> shipped_checkpoint("purifier").name
    'purifier_eyes.pt'
    """
    if name not in SHIPPED:
        raise CheckpointError(f"no shipped checkpoint {name!r}: choose one of {', '.join(sorted(SHIPPED))}")
    path = _data_dir() / SHIPPED_BY_LAYOUT.get((name, layout or "unity"), SHIPPED[name])
    if not path.is_file():
        raise CheckpointError(f"{path}: shipped checkpoint missing (reinstall the package)")
    return path


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return dict(value)


def check_compatible(model: LoadedModel | Mapping[str, Any], objective_config: Any, weights_identity: Any) -> None:
    """Refuse to report an objective the checkpoint was not trained against.

    ``objective_config`` is an :class:`~masked_gatys.objective.ObjectiveConfig`
    (or its dict), ``weights_identity`` a ``WeightsIdentity`` (or its dict).
    Raises :class:`~masked_gatys.errors.CheckpointError` saying what differs.

    >>> meta = {"objective": {"tv_weight": 0.0}, "weights": {"name": "a", "sha256": "1", "format": "caffe"}}
    >>> check_compatible(meta, {"tv_weight": 0.0}, {"name": "a", "sha256": "1", "format": "caffe"})
    >>> check_compatible(meta, {"tv_weight": 0.0}, {"name": "b", "sha256": "2", "format": "caffe"})
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: checkpoint was trained against loss network a (sha256 1), not b (sha256 2): its objective values do not compare
    """
    if isinstance(model, LoadedModel):
        meta, label = model.checkpoint, f"checkpoint {model.path}" if model.path else "checkpoint"
    else:
        meta, label = dict(model), "checkpoint"
    trained_w = _as_dict(meta.get("weights"))
    wanted_w = _as_dict(weights_identity)
    if trained_w.get("sha256") != wanted_w.get("sha256"):
        raise CheckpointError(
            f"{label} was trained against loss network {trained_w.get('name')} "
            f"(sha256 {str(trained_w.get('sha256'))[:12]}), not {wanted_w.get('name')} "
            f"(sha256 {str(wanted_w.get('sha256'))[:12]}): its objective values do not compare")
    trained_o = _as_dict(meta.get("objective"))
    wanted_o = _as_dict(objective_config)
    if trained_o != wanted_o:
        keys = sorted(k for k in set(trained_o) | set(wanted_o) if trained_o.get(k) != wanted_o.get(k))
        raise CheckpointError(
            f"{label} was trained on another objective (preset {trained_o.get('preset')}; differs in "
            f"{', '.join(keys)}): its objective values do not compare; use the checkpoint's objective "
            "(--preset, weights and --max-layer it was trained with)")


def _as_net(model: LoadedModel | nn.Module) -> nn.Module:
    return model.net if isinstance(model, LoadedModel) else model


def apply_model(model: LoadedModel | nn.Module, image: Tensor, mask: Tensor | None = None) -> Tensor:
    """Run a trained network: ``(B, 3, H, W)`` or ``(3, H, W)`` image, attention mask -> image.

    The mask may be ``(B, 1, H, W)``, ``(1, H, W)``, ``(H, W)``, a
    :class:`~masked_gatys.masks.Regions` (its attention region) or None. The
    result has the input's shape, on the input's device, in [0, 1].

    >>> import torch
    >>> from masked_gatys import nets
    >>> apply_model(nets.build("purifier", width=2), torch.rand(3, 10, 14), torch.ones(10, 14)).shape
    torch.Size([3, 10, 14])
    """
    net = _as_net(model)
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    if x.dim() != 4 or x.shape[1] != 3:
        raise ImageError(f"expected an image (B, 3, H, W) or (3, H, W), got {tuple(image.shape)}")
    out_dtype = image.dtype if image.is_floating_point() else torch.float32
    x = as_unit_float(x, "image")  # uint8 scaled, NaN refused, outside [0, 1] clamped with a warning
    m = mask
    if m is not None and not isinstance(m, Tensor):
        m = attention_of(m)
    if m is not None:
        m = m.detach().float() / 255.0 if m.dtype == torch.uint8 else m.detach().float()
        if not torch.isfinite(m).all():
            raise MaskError("the mask holds NaN or infinite values")
        m = m.clamp(0, 1)  # as stylize's masks
        while m.dim() < 4:
            m = m.unsqueeze(0)
        if m.shape[1] != 1:
            raise MaskError(f"expected a one-channel attention mask, got {tuple(mask.shape)}")  # type: ignore[union-attr]
        if m.shape[-2:] != x.shape[-2:]:
            raise MaskError(f"mask is {tuple(m.shape[-2:])} but the image is {tuple(x.shape[-2:])}")
    device = next(net.parameters()).device
    size = tuple(x.shape[-2:])
    work = model.working_size(size) if isinstance(model, LoadedModel) else None
    if work is not None:
        # outside the trained range the nets break down (blown pupils at 72x120 for a 48x72 net)
        sizes = model.trained_sizes
        trained = (f"{sizes[0][0]}x{sizes[0][1]}" if len(sizes) == 1 else
                   f"{min(s[0] for s in sizes)}x{min(s[1] for s in sizes)} to "
                   f"{max(s[0] for s in sizes)}x{max(s[1] for s in sizes)}")
        warnings.warn(f"{model.name} was trained on {trained} images; this {size[0]}x{size[1]} image is "
                      f"resized to {work[0]}x{work[1]} and back", UserWarning, stacklevel=2)
        x = _resize(x, work)
        m = None if m is None else _resize(m, work, mask=True)
    fast = isinstance(model, LoadedModel) and model.inference
    was_training = net.training
    net.eval()
    try:
        if fast:  # for_inference's copy: channels-last in (oneDNN's fast layout), no autograd at all
            with torch.inference_mode():
                y = net(x.to(device, torch.float32).contiguous(memory_format=torch.channels_last),
                        None if m is None else m.to(device, torch.float32).contiguous(memory_format=torch.channels_last))
                y = y.contiguous()
        else:
            with torch.no_grad():
                y = net(x.to(device, torch.float32), None if m is None else m.to(device, torch.float32))
    finally:
        net.train(was_training)
    if not torch.isfinite(y).all():
        bad = [n for n, p in net.named_parameters() if not torch.isfinite(p).all()]
        why = f"its weights hold NaN or infinite values ({bad[0]}{', ...' if len(bad) > 1 else ''})" if bad else \
            "its weights are finite, so the input or the network's arithmetic overflowed"
        name = getattr(model, "name", type(net).__name__)
        raise CheckpointError(f"the network {name} output NaN or infinite values: {why}")
    if work is not None:
        y = _resize(y, size)
    y = y.to(image.device, out_dtype)
    return y[0] if squeeze else y


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """The network (changed in place, and returned) for inference: in every ``nn.Sequential``,
    each ``Conv2d`` followed by a ``BatchNorm2d`` becomes one convolution with the batch norm's
    running statistics and affine folded in, a ``ReLU`` right after such a convolution works in
    place, and dropout (an identity in eval mode) goes. For eval mode only: the result computes
    what ``net.eval()`` computes (within float32 rounding) and is not for training.

    >>> from masked_gatys import nets
    >>> net = nets.build("purifier", width=2).eval()
    >>> x, m = torch.rand(1, 3, 8, 12), torch.ones(1, 1, 8, 12)
    >>> with torch.no_grad():
    ...     before = net(x, m)
    ...     after = fold_batchnorm(net)(x, m)
    >>> bool(torch.allclose(before, after, atol=1e-5)), any(isinstance(k, nn.BatchNorm2d) for k in net.modules())
    (True, False)
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module, fuse_conv_bn_eval)
        for name, child in list(module.named_children()):
            if isinstance(child, (nn.Dropout, nn.Dropout2d)) and not isinstance(module, nn.Sequential):
                setattr(module, name, nn.Identity())
    return net


def _fold_sequential(seq: nn.Sequential, fuse: Any) -> None:
    """Conv2d + BatchNorm2d pairs of ``seq`` folded (its modules renumbered), in place."""
    mods, out, i = list(seq), [], 0
    while i < len(mods):
        mod = mods[i]
        if isinstance(mod, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(fuse(mod, mods[i + 1]))
            i += 2
            if i < len(mods) and type(mods[i]) is nn.ReLU:  # on the convolution's own fresh output
                out.append(nn.ReLU(inplace=True))
                i += 1
            continue
        if not isinstance(mod, (nn.Dropout, nn.Dropout2d)):
            out.append(mod)
        i += 1
    if len(out) != len(mods):
        for key in list(seq._modules):
            del seq._modules[key]
        for k, mod in enumerate(out):
            seq.add_module(str(k), mod)


def check_finite_state(state: Mapping[str, Any], source: str | os.PathLike) -> None:
    """Refuse weights (or optimizer state) holding NaN or infinite values, naming the first tensor.

    Training from them fails at once with a loss of NaN, whose message (lower the learning rate)
    would point the wrong way.

    >>> check_finite_state({"w": torch.tensor([1.0, float("nan")])}, "a.pt")
    Traceback (most recent call last):
    ...
    masked_gatys.errors.CheckpointError: a.pt: its w holds NaN or infinite values; it cannot be trained from: use an earlier checkpoint
    """
    def tensors(obj: Any, prefix: str):
        if isinstance(obj, Tensor):
            yield prefix, obj
        elif isinstance(obj, Mapping):
            for key, value in obj.items():
                yield from tensors(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(obj, (list, tuple)):
            for k, value in enumerate(obj):
                yield from tensors(value, f"{prefix}.{k}")

    for name, t in tensors(state, ""):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{source}: its {name} holds NaN or infinite values; it cannot be trained "
                                  "from: use an earlier checkpoint")
