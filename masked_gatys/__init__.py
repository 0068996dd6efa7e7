"""masked-gatys: neural style transfer with segmentation masks.

Importing the package does nothing heavy: the public names below are loaded
on first use, so ``masked-gatys --help`` stays fast and no import downloads,
creates folders or changes global settings.

>>> import masked_gatys
>>> masked_gatys.__version__  # doctest: +ELLIPSIS
'...'
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "stylize": "masked_gatys.stylize",
    "StylizeConfig": "masked_gatys.stylize",
    "StylizeResult": "masked_gatys.stylize",
    "load_image": "masked_gatys.image",
    "save_image": "masked_gatys.image",
    "load_mask": "masked_gatys.masks",
    "Regions": "masked_gatys.masks",
    "VGGEncoder": "masked_gatys.encoder",
    "load_encoder": "masked_gatys.encoder",
    "Objective": "masked_gatys.objective",
    "ObjectiveConfig": "masked_gatys.objective",
    "Term": "masked_gatys.objective",
    "preset": "masked_gatys.objective",
    "gram_matrix": "masked_gatys.functional",
    "content_loss": "masked_gatys.functional",
    "style_loss": "masked_gatys.functional",
    "tv_loss": "masked_gatys.functional",
    "projected_lbfgs": "masked_gatys.optim",
    "render_eye": "masked_gatys.eyes.render",
    "pupil_center": "masked_gatys.eyes.pupil",
    "load_model": "masked_gatys.checkpoints",
    "purify": "masked_gatys.purify",
    "PurifyConfig": "masked_gatys.purify",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'masked_gatys' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


class _Package(types.ModuleType):
    """The package module, keeping its public functions over same-named submodules.

    Importing a submodule binds it as an attribute of its package, so after
    ``import masked_gatys.stylize`` (done by ``from masked_gatys.stylize import
    prepare``, say) the name ``masked_gatys.stylize`` would be the module and
    ``from masked_gatys import stylize`` would hand out a module. The binding
    is skipped for the exported names; the submodule stays in ``sys.modules``,
    and ``from masked_gatys.stylize import ...`` works as before (use
    ``importlib.import_module("masked_gatys.stylize")`` for the module itself).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (name in _EXPORTS and isinstance(value, types.ModuleType)
                and value.__name__ == f"{self.__name__}.{name}"):
            return  # the function, loaded by __getattr__, keeps the name
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
