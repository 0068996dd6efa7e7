"""Exceptions the library raises; the CLI turns them into one-line messages.

>>> from masked_gatys.errors import MaskError
>>> issubclass(MaskError, ValueError)
True
"""


class MaskedGatysError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageError(MaskedGatysError, ValueError):
    """An image file is missing, unreadable or not an image."""


class MaskError(MaskedGatysError, ValueError):
    """A mask does not fit its image, or a region is empty or vanishes."""


class WeightsError(MaskedGatysError, ValueError):
    """Loss-network weights are missing, of an unknown format or lack a layer."""


class LayerError(MaskedGatysError, KeyError):
    """An unknown VGG layer name."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else ""


class ObjectiveError(MaskedGatysError, ValueError):
    """An objective that cannot be built or evaluated (e.g. a NaN loss)."""


class CheckpointError(MaskedGatysError, ValueError):
    """A network checkpoint that is unreadable or does not match."""


class GazeError(MaskedGatysError, ValueError):
    """A gaze data set, label file or estimator that cannot be read, built or used."""


class OutputError(MaskedGatysError, ValueError):
    """An output that would replace an input, another output, or something not a regular file."""


class DeviceError(MaskedGatysError, RuntimeError):
    """A device that is unknown here or absent on this machine (CUDA asked for without CUDA)."""
