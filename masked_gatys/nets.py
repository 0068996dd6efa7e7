"""Feed-forward transformation networks: ``johnson`` and ``purifier``.

Both map ``(image (B, 3, H, W), mask (B, 1, H, W) or None) -> image (B, 3, H, W)``
in ``[0, 1]``, with the output the size of the input for any ``H`` and ``W``:
the input is padded by reflection to a multiple of 4 (the two stride-2
downsamplings) and the output cropped back.

- :class:`JohnsonNet`: Johnson, Alahi & Fei-Fei (2016) -- the paper's "Feifei
  Li et al." baseline. It ignores the mask.
- :class:`Purifier`: Yan et al.'s attention-guided network (Sections 3.1-3.2,
  Fig. 2-3, Eq. 7-9). It reads the mask as a fourth input channel and learns
  an attention map that gates an attention stream and a background stream.

``width`` sets the base channel count (the reference networks use 32); the
default 16 keeps a float32 checkpoint under 2 MB.

>>> import torch
>>> net = build("purifier", width=4)
>>> net(torch.rand(2, 3, 17, 23), torch.rand(2, 1, 17, 23)).shape
torch.Size([2, 3, 17, 23])
>>> build(**net.config).config == net.config
True
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["JohnsonNet", "Purifier", "build", "NETS", "pad_to_multiple"]


def pad_to_multiple(x: Tensor, multiple: int = 4, *, minimum: int = 0) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``x`` on the bottom and right to a multiple of ``multiple`` (and at least ``minimum``).

    Reflection where the image is large enough, replication otherwise (reflection
    needs the pad to be smaller than the side). Returns the padded tensor and the
    original ``(H, W)`` for cropping back.

    >>> import torch
    >>> y, hw = pad_to_multiple(torch.rand(1, 3, 5, 8))
    >>> tuple(y.shape), hw
    ((1, 3, 8, 8), (5, 8))
    """
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, -(-minimum // multiple) * multiple)
    tw = max(-(-w // multiple) * multiple, -(-minimum // multiple) * multiple)
    ph, pw = th - h, tw - w
    while ph or pw:  # reflection can add at most side-1 pixels per pass
        sh = min(ph, x.shape[-2] - 1)
        sw = min(pw, x.shape[-1] - 1)
        if sh <= 0 and ph or sw <= 0 and pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            break
        x = F.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x, (h, w)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}: use 'instance' or 'batch'")


class ConvLayer(nn.Sequential):
    """Reflection pad + convolution (+ norm + ReLU): no zero borders."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1,
                 norm: str | None = "instance", relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2),
                                   nn.Conv2d(cin, cout, kernel, stride=stride)]
        if norm is not None:
            layers.append(_norm(norm, cout))
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour upsampling by 2, then a convolution (Odena et al. 2016).

    Used instead of a transposed convolution, whose uneven kernel overlap
    paints checkerboard artefacts.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, norm: str = "instance") -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         ConvLayer(cin, cout, kernel, norm=norm))


class ResidualBlock(nn.Module):
    """``x + norm(conv(relu(norm(conv(x)))))``, optional dropout between the convolutions."""

    def __init__(self, channels: int, *, norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, norm=norm)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = ConvLayer(channels, channels, 3, norm=norm, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.drop(self.conv1(x)))


def _squash(x: Tensor, output: str) -> Tensor:
    if output == "sigmoid":
        return torch.sigmoid(x)
    return (torch.tanh(x) + 1.0) / 2.0  # the scaled tanh: [-1, 1] -> [0, 1]


def _check_inputs(image: Tensor, mask: Tensor | None) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
    if mask is not None:
        if mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must have shape (B, 1, H, W), got {tuple(mask.shape)}")
        if mask.shape[-2:] != image.shape[-2:] or mask.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"mask {tuple(mask.shape)} does not fit image {tuple(image.shape)}")


class JohnsonNet(nn.Module):
    """Johnson et al. (2016) image transformation network.

    9x9 convolution in, two stride-2 3x3 downsamplings, ``blocks`` residual
    blocks, two nearest-upsample + 3x3 convolutions, 9x9 convolution out; all
    with reflection padding and instance norm (Ulyanov et al.'s fix, as in the
    pytorch/examples version). The output is squashed to [0, 1] by ``sigmoid``
    or the scaled ``tanh`` ((tanh + 1) / 2). The mask is accepted and ignored.

    >>> import torch
    >>> JohnsonNet(width=4, blocks=1)(torch.rand(1, 3, 9, 7)).shape
    torch.Size([1, 3, 9, 7])
    """

    name = "johnson"

    def __init__(self, *, width: int = 16, blocks: int = 5, output: str = "sigmoid") -> None:
        super().__init__()
        if width < 1 or blocks < 0:
            raise ValueError(f"width must be >= 1 and blocks >= 0, got {width}, {blocks}")
        if output not in ("sigmoid", "tanh"):
            raise ValueError(f"unknown output {output!r}: use 'sigmoid' or 'tanh'")
        self._config = {"name": self.name, "width": width, "blocks": blocks, "output": output}
        w = width
        self.encode = nn.Sequential(
            ConvLayer(3, w, 9),
            ConvLayer(w, 2 * w, 3, stride=2),
            ConvLayer(2 * w, 4 * w, 3, stride=2),
        )
        self.residual = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(blocks)])
        self.decode = nn.Sequential(
            UpsampleConv(4 * w, 2 * w),
            UpsampleConv(2 * w, w),
            ConvLayer(w, 3, 9, norm=None, relu=False),
        )

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments of :func:`build` that rebuild this network."""
        return dict(self._config)

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        _check_inputs(image, mask)
        # at least 8 px so the 1/4-size bottleneck has more than one position
        # (instance norm needs more than one)
        x, (h, w) = pad_to_multiple(image, 4, minimum=8)
        y = self.decode(self.residual(self.encode(x)))
        return _squash(y, self._config["output"])[..., :h, :w]


class Purifier(nn.Module):
    """Yan et al.'s attention-guided purification network (Fig. 2-3, Eq. 7-9).

    The input is RGB plus the attention mask (4 channels). A 9x9 convolution
    and two stride-2 convolutions give the full-image features ``f_full``; a
    small branch turns the mask alone into ``f_mask`` on the same grid. The
    attention subnet computes ``att+ = sigmoid(conv([f_full, f_mask]))`` and
    ``att- = 1 - att+`` (Eq. 7-9). Four residual blocks (batch norm, ReLU,
    dropout) transform ``f_full``; an attention-stream head and a
    background-stream head each map the result, and the streams are mixed by
    the attention maps, ``att+ * A(f) + att- * B(f)``. Upsampling is
    nearest + convolution (no checkerboard), the last layer is 9x9 and the
    output the scaled tanh ``(tanh + 1) / 2``. ``mask=None`` means the whole
    image is the attention region (an all-ones mask).

    Where the paper leaves details open we guessed (marked ``GUESS`` in the
    code): the mask branch, the kernel of the attention convolution, where the
    gating sits, the dropout rate and where the dropout sits in a block.

    >>> import torch
    >>> net = Purifier(width=4)
    >>> net(torch.rand(2, 3, 15, 21), torch.ones(2, 1, 15, 21)).shape
    torch.Size([2, 3, 15, 21])
    >>> net.attention_map(torch.rand(1, 3, 16, 16), None).shape  # att+ at 1/4 size
    torch.Size([1, 1, 4, 4])
    """

    name = "purifier"

    def __init__(self, *, width: int = 16, blocks: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if width < 1 or blocks < 0:
            raise ValueError(f"width must be >= 1 and blocks >= 0, got {width}, {blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._config = {"name": self.name, "width": width, "blocks": blocks, "dropout": dropout}
        w = width
        # RGB + mask in, 9x9 first layer, then the two downsamplings.
        self.encode = nn.Sequential(
            ConvLayer(4, w, 9, norm="batch"),
            ConvLayer(w, 2 * w, 3, stride=2, norm="batch"),
            ConvLayer(2 * w, 4 * w, 3, stride=2, norm="batch"),
        )
        # GUESS: the paper names f_mask but not the layers that make it; we
        # encode the mask alone with two stride-2 convolutions to the f_full
        # grid (w channels: the mask carries little information).
        self.mask_encode = nn.Sequential(
            ConvLayer(1, w, 3, stride=2, norm="batch"),
            ConvLayer(w, w, 3, stride=2, norm="batch"),
        )
        # Eq. 7: att+ = sigmoid(conv([f_full, f_mask])). GUESS: 3x3 kernel, one
        # output channel shared by all feature channels.
        self.attention = ConvLayer(5 * w, 1, 3, norm=None, relu=False)
        # GUESS: dropout 0.1 (the paper gives no rate), between the two convs.
        self.residual = nn.Sequential(*[ResidualBlock(4 * w, norm="batch", dropout=dropout)
                                        for _ in range(blocks)])
        # GUESS: each stream is one 3x3 conv head after the shared residual
        # blocks; Eq. 8-9 gate the streams with att+ and att- and sum them.
        self.attention_stream = ConvLayer(4 * w, 4 * w, 3, norm="batch")
        self.background_stream = ConvLayer(4 * w, 4 * w, 3, norm="batch")
        self.decode = nn.Sequential(
            UpsampleConv(4 * w, 2 * w, norm="batch"),
            UpsampleConv(2 * w, w, norm="batch"),
            ConvLayer(w, 3, 9, norm=None, relu=False),
        )

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments of :func:`build` that rebuild this network."""
        return dict(self._config)

    def _prepare(self, image: Tensor, mask: Tensor | None) -> tuple[Tensor, tuple[int, int]]:
        _check_inputs(image, mask)
        if mask is None:
            mask = torch.ones_like(image[:, :1])
        mask = mask.to(image.dtype).expand(image.shape[0], 1, *image.shape[-2:])
        x, hw = pad_to_multiple(torch.cat([image, mask], dim=1), 4, minimum=8)
        return x, hw

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f_full = self.encode(x)
        f_mask = self.mask_encode(x[:, 3:4])
        att = torch.sigmoid(self.attention(torch.cat([f_full, f_mask], dim=1)))
        return f_full, att

    def attention_map(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        """The learned ``att+`` map, ``(B, 1, H', W')`` on the padded 1/4-size grid."""
        x, _ = self._prepare(image, mask)
        return self._features(x)[1]

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        x, (h, w) = self._prepare(image, mask)
        f_full, att_pos = self._features(x)
        att_neg = 1.0 - att_pos
        f = self.residual(f_full)
        f = att_pos * self.attention_stream(f) + att_neg * self.background_stream(f)
        return _squash(self.decode(f), "tanh")[..., :h, :w]


NETS: dict[str, Callable[..., nn.Module]] = {"johnson": JohnsonNet, "purifier": Purifier}


def build(name: str = "johnson", **config: Any) -> nn.Module:
    """Build a network by name: ``build("purifier", width=16)``; ``build(**net.config)`` rebuilds.

    >>> build("johnson", width=2, blocks=1).config
    {'name': 'johnson', 'width': 2, 'blocks': 1, 'output': 'sigmoid'}
    >>> build("unet")
    Traceback (most recent call last):
    ...
    ValueError: unknown network 'unet': choose one of johnson, purifier
    """
    factory = NETS.get(name)
    if factory is None:
        raise ValueError(f"unknown network {name!r}: choose one of {', '.join(sorted(NETS))}")
    try:
        return factory(**config)
    except TypeError as exc:
        raise ValueError(f"bad configuration for network {name!r}: {exc}") from None
