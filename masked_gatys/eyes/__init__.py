"""The eye domain, one concern a module.

Eye primitives (layer L1: they import only the core, and earlier modules of this list):

- :mod:`masked_gatys.eyes.labels`: part label ids and colours, and the regions they make.
- :mod:`masked_gatys.eyes.render`: procedural eye images with masks and ground truth, and the
  project's gaze convention (``gaze_to_vector``, ``vector_to_gaze``, ``angular_error``);
  :mod:`masked_gatys.eyes.layouts` (framings: unity, mpiigaze, nir; ``guess_layout``),
  :mod:`masked_gatys.eyes.looks` (captures) and :mod:`masked_gatys.eyes.drawing` under it.
- :mod:`masked_gatys.eyes.pupil`: pupil centre and pupil shift.
- :mod:`masked_gatys.eyes.parts`: iris and pupil regions of an eye from its attention mask.
- :mod:`masked_gatys.eyes.features`: appearance features (grey, standardised, small).
- :mod:`masked_gatys.eyes.datasets`: gaze data sets (rendered, labelled folders, UnityEyes,
  MPIIGaze).
- :mod:`masked_gatys.eyes.styles`: style pools (the nearest synthetic eye per content eye).
- :mod:`masked_gatys.eyes.gaze`: gaze estimators (the paper's CNN, kNN, SVR, random forest).
- :mod:`masked_gatys.eyes.training_data`: the networks' eye training data.
- :mod:`masked_gatys.eyes.segment`: eye parts (skin, sclera, iris, pupil) from the image, by a
  small shipped network (``segment``, ``load_segmenter``; ``masked-gatys segment``).

Applications (layer L3, on top of the pipelines, though they live here):

- :mod:`masked_gatys.eyes.experiment`: the paper's gaze experiment (``masked-gatys gaze``).
- :mod:`masked_gatys.eyes.demo`: the purification demo (``masked-gatys demo``).

docs/INTERFACES.md ("Architecture") gives every module's layer. The names below are loaded on
first use.

>>> from masked_gatys.eyes import render_eye, pupil_center
>>> r = render_eye(yaw=0.0, pitch=0.0, domain="synthetic", size=(36, 60), seed=0)
>>> x, y = pupil_center(r.image, r.mask)
>>> abs(x - r.truth["pupil_center"][0]) < 0.5
True
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EyeError": "render",
    "EyeRender": "render",
    "render_eye": "render",
    "labels_to_rgb": "render",
    "gaze_to_vector": "render",
    "vector_to_gaze": "render",
    "angular_error": "render",
    "pupil_center": "pupil",
    "pupil_shift": "pupil",
    "GazeSet": "datasets",
    "render_set": "datasets",
    "load_gaze_set": "experiment",
    "evaluate": "experiment",
    "ExperimentConfig": "experiment",
    "looks_like_eye": "pupil",
    "eye_regions": "parts",
    "parts_from_labels": "labels",
    "load_parts": "labels",
    "pupil_disc": "parts",
    "StylePool": "styles",
    "style_eye": "render",
    "render_many": "datasets",
    "get_layout": "layouts",
    "guess_layout": "layouts",
    "LAYOUTS": "layouts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'masked_gatys.eyes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"masked_gatys.eyes.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
