"""What an objective is made of: named terms (:class:`Term`), their set (:class:`ObjectiveConfig`),
the presets (``gatys``, ``masked``, ``masked-eye``, ``regional``) and :func:`with_layers`.

Data only: no tensors, no network (the module that evaluates them is
:mod:`masked_gatys.objective`, which re-exports every name here).

>>> [t.name for t in preset("gatys", max_layer="relu3_4").terms]
['content/relu3_2@whole', 'style/relu1_1@whole', 'style/relu2_1@whole', 'style/relu3_1@whole']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

from masked_gatys.encoder import check_layers, layer_names
from masked_gatys.errors import ObjectiveError

__all__ = ["Term", "ObjectiveConfig", "preset", "with_layers", "PRESETS"]

_KINDS = ("content", "style")


@dataclass(frozen=True)
class Term:
    """One loss term: a kind, a VGG layer, a region (None = whole image), a weight.

    >>> Term("style", "relu3_1", "attention", 0.2).name
    'style/relu3_1@attention'
    """

    kind: str
    layer: str
    region: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ObjectiveError(f"unknown term kind {self.kind!r}: use content or style")
        check_layers([self.layer])
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ObjectiveError(f"term {self.name} has an invalid weight {self.weight}")

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.layer}@{self.region or 'whole'}"


@dataclass(frozen=True)
class ObjectiveConfig:
    """The terms and the three group weights (paper Eq. 20-21).

    ``total = content_weight * sum(content terms) + style_weight * sum(style
    terms) + tv_weight * tv``, each term times its own ``weight``.

    >>> cfg = preset("masked")
    >>> ObjectiveConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    terms: tuple[Term, ...]
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    normalize: bool = True
    preset: str | None = None
    geometry_weight: float = 0.0
    """Weight of the pupil-geometry term ``geometry@<geometry_region>`` (0: none):
    the dark blob's soft centroid and second moments inside that region kept
    at the content image's (``functional.geometry_loss``)."""
    geometry_region: str = "attention"

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(self.terms))
        if not self.terms:
            raise ObjectiveError("an objective needs at least one term")
        names = [t.name for t in self.terms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ObjectiveError(f"duplicate terms: {', '.join(dupes)}")
        for label in ("content_weight", "style_weight", "tv_weight", "geometry_weight"):
            value = getattr(self, label)
            if not math.isfinite(value) or value < 0:
                raise ObjectiveError(f"{label} must be a finite number >= 0, got {value}")

    @property
    def layers(self) -> list[str]:
        """The layers the terms use, in forward order."""
        order = layer_names("vgg19")
        return sorted({t.layer for t in self.terms}, key=order.index)

    @property
    def regions(self) -> list[str]:
        """The named regions the terms use (not counting the whole image)."""
        used = {t.region for t in self.terms if t.region is not None}
        if self.geometry_weight:
            used.add(self.geometry_region)
        return sorted(used)

    def to_dict(self) -> dict:
        extra = ({"geometry_weight": self.geometry_weight, "geometry_region": self.geometry_region}
                 if self.geometry_weight else {})  # absent when unused: older checkpoints still compare
        return {**{
            "terms": [{"kind": t.kind, "layer": t.layer, "region": t.region, "weight": t.weight}
                      for t in self.terms],
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            "normalize": self.normalize,
            "preset": self.preset,
        }, **extra}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ObjectiveConfig":
        try:
            terms = tuple(Term(**t) for t in data["terms"])
            return cls(terms, float(data["content_weight"]), float(data["style_weight"]),
                       float(data["tv_weight"]), bool(data.get("normalize", True)), data.get("preset"),
                       float(data.get("geometry_weight", 0.0)), str(data.get("geometry_region", "attention")))
        except (KeyError, TypeError) as exc:
            raise ObjectiveError(f"not an objective config: {exc}") from None

    def restricted(self, deepest: str) -> "ObjectiveConfig":
        """The same objective on layers no deeper than ``deepest``.

        Style terms deeper than ``deepest`` are dropped and each region's
        remaining style terms rescaled so the region keeps its total weight; a
        deeper content term moves to the same position within the deepest
        block available (relu4_2 -> relu3_2 for ``deepest="relu3_4"``). Used
        with weight files that hold only the first layers.

        >>> [t.name for t in preset("masked").restricted("relu3_4").terms][:2]
        ['content/relu3_2@whole', 'content/relu3_2@attention']
        """
        order = layer_names("vgg19")
        check_layers([deepest])
        limit = order.index(deepest)
        terms: list[Term] = []
        for t in self.terms:
            if order.index(t.layer) <= limit:
                terms.append(t)
            elif t.kind == "content":
                terms.append(replace(t, layer=_same_position_within(t.layer, limit, order)))
        if not any(t.kind == "style" for t in terms) and any(t.kind == "style" for t in self.terms):
            raise ObjectiveError(f"no style term is left at or above {deepest}")
        # keep each region's total style weight
        for region in {t.region for t in self.terms if t.kind == "style"}:
            before = sum(t.weight for t in self.terms if t.kind == "style" and t.region == region)
            after = sum(t.weight for t in terms if t.kind == "style" and t.region == region)
            if after > 0 and before != after:
                terms = [replace(t, weight=t.weight * before / after)
                         if t.kind == "style" and t.region == region else t for t in terms]
        # two content terms may land on the same layer and region: merge them
        merged: dict[str, Term] = {}
        for t in terms:
            merged[t.name] = replace(t, weight=merged[t.name].weight + t.weight) if t.name in merged else t
        return replace(self, terms=tuple(merged.values()))


def _same_position_within(layer: str, limit: int, order: Sequence[str]) -> str:
    if layer.startswith("pool"):
        pools = [name for name in order[: limit + 1] if name.startswith("pool")]
        if not pools:
            raise ObjectiveError(f"no pooling layer at or above the limit for {layer}")
        return pools[-1]
    kind, rest = layer[:4], layer[4:]
    n = int(rest.split("_")[1])
    candidates = [name for name in order[: limit + 1] if name.startswith(kind)]
    same_n = [name for name in candidates if int(name.split("_")[1]) == n]
    if same_n:
        return same_n[-1]
    if not candidates:
        raise ObjectiveError(f"no layer of kind {kind} at or above the limit for {layer}")
    return candidates[-1]


# ---------------------------------------------------------------- presets

_GATYS_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_MASKED_BACKGROUND = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_PUPIL_STYLE = ("relu1_1", "relu2_1")

# Group weights for normalised terms, chosen by a sweep on the ImageNet VGG-19
# (conv1_1..conv3_4) with eye images (benchmarks/tune_weights.py,
# docs/tuning.md): the largest style weight that keeps the eye's geometry.
# The masked preset tolerates ten times more style than gatys because its
# local content term and per-region statistics hold the iris in place.
PRESETS: dict[str, dict[str, float]] = {
    "gatys": {"content_weight": 1.0, "style_weight": 1e2, "tv_weight": 0.0},
    "masked": {"content_weight": 1.0, "style_weight": 1e3, "tv_weight": 0.0},
    "regional": {"content_weight": 1.0, "style_weight": 1e2, "tv_weight": 0.0},
    # masked for eye images: style per part (docs/tuning.md, "Keeping the pupil")
    "masked-eye": {"content_weight": 1.0, "style_weight": 1e3, "tv_weight": 0.0},
}


def _style_terms(layers: Iterable[str], region: str | None) -> list[Term]:
    layers = list(layers)
    return [Term("style", layer, region, 1.0 / len(layers)) for layer in layers]


def preset(
    name: str,
    *,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    max_layer: str | None = None,
    regions: Sequence[str] | None = None,
    normalize: bool = True,
    geometry_weight: float | None = None,
) -> ObjectiveConfig:
    """A ready-made objective (DESIGN.md, "Presets").

    - ``gatys``: content relu4_2 and style relu1_1 ... relu5_1, whole image.
    - ``masked`` (Yan et al.): content relu3_2 on the whole image (global) and
      relu4_2 on the attention region (local); style of the background on
      relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 and of the attention region
      on relu1_1 ... relu5_1. Regions are named ``attention`` and
      ``background``. The paper's lambda_g and lambda_l are both 1 here.
    - ``regional``: the gatys layers with style matched in every region of
      ``regions`` (any label mask), content on the whole image.
    - ``masked-eye``: ``masked`` with the attention region's style matched
      separately in the ``iris`` (relu1_1 ... relu5_1) and the ``pupil``
      (relu1_1, relu2_1: a flat dark disc, a few positions deeper down), so
      the pupil no longer trades area with the iris; regions from
      ``masked_gatys.eyes.parts.eye_regions``. What ``stylize`` runs for
      ``masked`` on eye images (``subject="auto"``). ``geometry_weight`` adds
      the pupil-geometry term (``functional.geometry_loss``; 0 by default).
      With ``regions`` naming ``skin`` and ``sclera`` (a label mask,
      ``masked_gatys.eyes.parts.parts_from_labels``) the background's style
      is matched in each of them apart.

    Style layer weights within a region sum to 1. ``max_layer`` restricts the
    preset (see :meth:`ObjectiveConfig.restricted`).

    >>> [t.name for t in preset("masked").terms if t.kind == "content"]
    ['content/relu3_2@whole', 'content/relu4_2@attention']
    >>> len(preset("regional", regions=["#000000", "#ffffff"]).terms)
    11
    """
    if name == "gatys":
        terms = [Term("content", "relu4_2")] + _style_terms(_GATYS_STYLE, None)
    elif name == "masked":
        terms = ([Term("content", "relu3_2"), Term("content", "relu4_2", "attention")]
                 + _style_terms(_MASKED_BACKGROUND, "background")
                 + _style_terms(_GATYS_STYLE, "attention"))
    elif name == "masked-eye":
        # Given the skin and the sclera apart (a label mask), each has its own statistics, so
        # neither takes the other's area: on 50 real renders this halves the pupil's distance from
        # its true centre and lowers kNN's gaze error by 2 degrees (docs/gaze.md). The paper
        # has one background region.
        split = regions is not None and {"skin", "sclera"} <= set(regions)
        background = (_style_terms(_MASKED_BACKGROUND, "skin") + _style_terms(_MASKED_BACKGROUND, "sclera")
                      if split else _style_terms(_MASKED_BACKGROUND, "background"))
        terms = ([Term("content", "relu3_2"), Term("content", "relu4_2", "attention")]
                 + background
                 + _style_terms(_GATYS_STYLE, "iris")
                 + _style_terms(_PUPIL_STYLE, "pupil"))
    elif name == "regional":
        if not regions:
            raise ObjectiveError("the regional preset needs the region names of the mask")
        terms = [Term("content", "relu4_2")]
        for region in regions:
            terms += _style_terms(_GATYS_STYLE, region)
    else:
        raise ObjectiveError(f"unknown preset {name!r}: use one of {sorted(PRESETS)}")
    weights = dict(PRESETS[name])
    for key, value in (("content_weight", content_weight), ("style_weight", style_weight),
                       ("tv_weight", tv_weight), ("geometry_weight", geometry_weight)):
        if value is not None:
            weights[key] = float(value)
    config = ObjectiveConfig(tuple(terms), normalize=normalize, preset=name, **weights)
    return config.restricted(max_layer) if max_layer else config


def _layer_spec(spec: str) -> tuple[str, str | None]:
    """``"relu4_2"`` -> ("relu4_2", None); ``"relu4_2@attention"`` -> ("relu4_2", "attention")."""
    layer, _, region = spec.strip().partition("@")
    check_layers([layer])
    return layer, (region or None) if region != "whole" else None


def _layer_weights(weights: Sequence[float] | None, n: int, label: str) -> list[float]:
    if weights is None:
        return [1.0] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ObjectiveError(f"{len(weights)} {label} layer weights for {n} {label} layers")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ObjectiveError(f"{label} layer weights must be finite and >= 0, got {weights}")
    return weights


def with_layers(config: ObjectiveConfig, *, content_layers: Sequence[str] | None = None,
                style_layers: Sequence[str] | None = None,
                content_layer_weights: Sequence[float] | None = None,
                style_layer_weights: Sequence[float] | None = None) -> ObjectiveConfig:
    """``config`` with its content and/or style terms on chosen layers.

    A layer is ``"relu4_2"`` or ``"relu4_2@region"``. Content layers without a
    region are matched on the whole image; style layers without a region in
    every region ``config``'s style terms use (the whole image for
    ``gatys``, attention and background for ``masked``). Content layer
    weights default to 1 each. Style layer weights (default equal) are
    normalised to sum 1 within each region, as in the presets, so
    ``style_weight`` keeps its meaning. ``None`` keeps that kind's terms.

    >>> cfg = with_layers(preset("masked"), content_layers=["relu2_2"], style_layers=["relu1_1", "relu2_1"],
    ...                   style_layer_weights=[3, 1])
    >>> [(t.name, t.weight) for t in cfg.terms][:3]
    [('content/relu2_2@whole', 1.0), ('style/relu1_1@background', 0.75), ('style/relu2_1@background', 0.25)]
    """
    terms = list(config.terms)
    if content_layers is not None:
        specs = [_layer_spec(s) for s in content_layers]
        weights = _layer_weights(content_layer_weights, len(specs), "content")
        terms = [t for t in terms if t.kind != "content"]
        terms = [Term("content", layer, region, w) for (layer, region), w in zip(specs, weights)] + terms
    elif content_layer_weights is not None:
        raise ObjectiveError("content layer weights need --content-layers")
    if style_layers is not None:
        specs = [_layer_spec(s) for s in style_layers]
        weights = _layer_weights(style_layer_weights, len(specs), "style")
        base = list(dict.fromkeys(t.region for t in config.terms if t.kind == "style")) or [None]
        named = [r for _, r in specs if r is not None and r not in base]
        chosen: list[tuple[str, str | None, float]] = []
        for region in base + list(dict.fromkeys(named)):
            mine = [(layer, w) for (layer, r), w in zip(specs, weights)
                    if r == region or (r is None and region in base)]
            total = sum(w for _, w in mine)
            chosen += [(layer, region, w / total if total > 0 else 0.0) for layer, w in mine]
        terms = [t for t in terms if t.kind != "style"] + [Term("style", layer, region, w)
                                                           for layer, region, w in chosen]
        if not any(t.kind == "style" and t.weight > 0 for t in terms):
            raise ObjectiveError("the style layers give no style term a weight above 0")
    elif style_layer_weights is not None:
        raise ObjectiveError("style layer weights need --style-layers")
    return replace(config, terms=tuple(terms))
