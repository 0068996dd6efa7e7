"""``purify``'s methods: a trained network, or an objective preset minimised by ``stylize``.

Each is built from a :class:`~masked_gatys.purify.PurifyConfig` and runs a batch:
``run(images, masks[, parts]) -> (outputs, objectives)``; ``needs_mask`` says whether it
needs an attention mask per eye (``purify`` gives it the input's own, or the segmenter's
with ``mask="auto"``), ``identity`` what goes into the output folder's settings.

>>> NETWORKS
('johnson', 'purifier')
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from masked_gatys import nets
from masked_gatys.checkpoints import SHIPPED, load_model, shipped_checkpoint
from masked_gatys.config import ObjectiveSettings, OptimizerSettings, shared_settings
from masked_gatys.encoder import VGGEncoder, resolve_weights, warn_if_random
from masked_gatys.errors import MaskedGatysError, MaskError
from masked_gatys.eyes.labels import load_parts, parts_from_labels
from masked_gatys.eyes.layouts import LAYOUTS, layout_for
from masked_gatys.eyes.render import style_eye
from masked_gatys.eyes.styles import StylePool
from masked_gatys.files import sha256_file
from masked_gatys.image import load_image
from masked_gatys.manifests import find_companion
from masked_gatys.masks import Regions, load_mask
from masked_gatys.objective import PRESETS
from masked_gatys.stylize import StylizeConfig, objective_config_for, stylize

__all__ = ["NETWORKS", "Network", "shipped_for", "Optimizer", "check_method", "uses_parts"]

#: network methods shipped with the package (any other checkpoint path works too)
NETWORKS = tuple(sorted(SHIPPED))


def check_method(cfg: Any) -> None:
    """An unknown method is named as such, before any other setting is judged by it.

    >>> from masked_gatys.purify import PurifyConfig
    >>> check_method(PurifyConfig(method="nonet"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masked_gatys.errors.MaskedGatysError: unknown method 'nonet': give a preset (...) or a network (...)
    """
    if cfg.is_network and cfg.method not in NETWORKS and not Path(cfg.method).is_file():
        raise MaskedGatysError(f"unknown method {cfg.method!r}: give a preset ({', '.join(sorted(PRESETS))}) "
                               f"or a network ({', '.join(NETWORKS)} or a checkpoint file)")


def shipped_for(name: str, image: Any, layout: str | None = None) -> tuple[Path, str]:
    """The shipped network ``name`` for eyes like ``image`` (a tensor, or a shape ``(C, H, W)``)
    and the layout it was chosen for: ``layout`` when named, else the one
    :func:`~masked_gatys.eyes.layouts.guess_layout` recognises from the size and channels; a
    layout with no network of its own takes the original one
    (:data:`~masked_gatys.checkpoints.SHIPPED_BY_LAYOUT`).

    >>> path, layout = shipped_for("purifier", (3, 72, 120))
    >>> path.name, layout
    ('purifier_eyes.pt', 'unity')
    """
    chosen, _ = layout_for(image, layout)
    return shipped_checkpoint(name, chosen), chosen


class Network:
    """A trained network, batched: ``run(images, masks) -> (outputs, objectives)``.

    A shipped network by name runs, for each batch, the checkpoint trained in the batch's
    layout (named in ``cfg.layout``, else guessed from its size and channels) where one is
    shipped; ``identity`` names every checkpoint it may run.

    >>> from masked_gatys.purify import PurifyConfig
    >>> net = Network(PurifyConfig(method="purifier"), torch.device("cpu"))
    >>> net.needs_mask, net.identity["checkpoint"]
    (True, 'purifier_eyes.pt')
    """

    def __init__(self, cfg: Any, device: torch.device) -> None:
        check_method(cfg)
        self.cfg, self.device = cfg, device
        self.shipped = cfg.method in NETWORKS
        path = shipped_checkpoint(cfg.method, cfg.layout) if self.shipped else Path(cfg.method)
        self.path = Path(path)
        # folded batch norm, channels-last, inference mode: the same outputs within 1e-5, 1.5x faster
        self.model = load_model(path, device=device).for_inference()
        self._models = {self.path: self.model}
        self.needs_mask = isinstance(self.model.net, nets.Purifier)
        self.identity: dict[str, Any] = {"checkpoint": self.path.name, "sha256": sha256_file(self.path)}
        if self.shipped and cfg.layout is None:  # chosen per batch: every one it may choose
            by_layout = {layout: shipped_checkpoint(cfg.method, layout) for layout in LAYOUTS}
            self.identity["by_layout"] = {layout: {"checkpoint": p.name, "sha256": sha256_file(p)}
                                          for layout, p in by_layout.items() if p != self.path}

    def model_for(self, images: Tensor) -> Any:
        """The loaded network for a batch: the shipped one of its layout, or the named file."""
        if not self.shipped or self.cfg.layout is not None:
            return self.model
        path, layout = shipped_for(self.cfg.method, images)
        if path not in self._models:
            self._models[path] = load_model(path, device=self.device).for_inference()
            if path != self.path:  # said once per run and network
                warnings.warn(f"{self.cfg.method}: {path.name}, the network trained in the {layout} layout, "
                              f"for eyes of that layout ({layout_for(images)[1]}; --layout names one)", stacklevel=2)
        return self._models[path]

    def run(self, images: Tensor, masks: Tensor | None) -> tuple[Tensor, list[float | None]]:
        return self.model_for(images)(images, masks).cpu(), [None] * images.shape[0]


class Optimizer:
    """A preset minimised by :func:`~masked_gatys.stylize.stylize`, one encoder for every batch.

    ``stop(working)`` after each iteration (the batch's share of its budget done, in
    images): True stops the batch.

    >>> import warnings
    >>> from masked_gatys.purify import PurifyConfig
    >>> cfg = PurifyConfig(method="masked", style="rendered", weights="random", max_layer="relu1_1")
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     Optimizer(cfg, torch.device("cpu")).needs_mask
    True
    """

    def __init__(self, cfg: Any, device: torch.device,
                 stop: Callable[[float], bool] | None = None) -> None:
        if cfg.style is None and cfg.style_pool is None:
            raise MaskedGatysError(f"the {cfg.method} preset needs a style image (--style FILE, or "
                                   "--style rendered for a rendered synthetic eye, or --style-pool FOLDER)")
        if cfg.style is not None and cfg.style_pool is not None:
            raise MaskedGatysError("give --style or --style-pool, not both")
        self.needs_mask = cfg.method in ("masked", "regional")
        self.uses_parts = uses_parts(cfg)
        self.scfg = StylizeConfig(preset=cfg.method, iterations=cfg.iterations, device=str(device), colour=cfg.colour,
                                  **shared_settings(cfg, ObjectiveSettings), **shared_settings(cfg, OptimizerSettings))
        self.cfg = cfg
        self.rendered = cfg.style == "rendered"
        self.style: Tensor | None = None
        self.style_regions = None
        self.pool = None
        self.style_parts: Tensor | None = None
        self._warned_parts = False
        if cfg.style_pool is not None:
            self.pool = StylePool.from_folder(cfg.style_pool)
            identity: dict[str, Any] = {"style_pool": Path(cfg.style_pool).name, "style_pool_sha256":
                                        self.pool.fingerprint, "style_pool_n": len(self.pool)}
        else:
            identity = {"style": "rendered" if self.rendered else Path(cfg.style).name}
        if not self.rendered and self.pool is None:
            style_path = Path(cfg.style)
            self.style = load_image(style_path)
            mask_path = Path(cfg.style_mask) if cfg.style_mask else find_companion(style_path, "mask")
            if mask_path is not None:
                self.style_regions = load_mask(mask_path)
                if self.style_regions.size != tuple(self.style.shape[-2:]):
                    (mh, mw), (h, w) = self.style_regions.size, self.style.shape[-2:]
                    raise MaskError(f"the style mask {mask_path.name} is {mw}x{mh} px but the style image "
                                    f"{style_path.name} is {w}x{h} px (width x height): give a mask of the "
                                    "style image's size")
                identity["style_mask_sha256"] = sha256_file(mask_path)
            labels_path = find_companion(style_path, "labels")
            if labels_path is not None:
                self.style_parts = load_parts(labels_path)
                identity["style_labels_sha256"] = sha256_file(labels_path)
            identity["style_sha256"] = sha256_file(style_path)
        weights = resolve_weights(cfg.weights, seed=cfg.seed)
        probe = Regions.from_binary(torch.full((1, 1, 2, 2), 0.5)) if self.needs_mask else None
        objective_cfg = objective_config_for(self.scfg, probe, weights)
        warn_if_random(weights, stacklevel=4)  # the one wording (encoder)
        self.encoder = VGGEncoder(objective_cfg.layers, weights, pooling=self.scfg.pooling).to(device)
        identity["weights"] = self.encoder.identity.to_dict()
        identity["objective"] = objective_cfg.to_dict()
        self.identity = identity
        self._rendered: dict[tuple[tuple[int, int], str], tuple[Tensor, Regions, Tensor]] = {}
        self._said: set[str] = set()
        self._stop = stop

    def _style_key(self, images: Tensor) -> tuple[tuple[int, int], str]:
        """The rendered style eye's size and layout for this batch (the layout named or guessed)."""
        name, reason = layout_for(images, self.cfg.layout)
        if self.cfg.layout is None and name != "unity" and name not in self._said:
            self._said.add(name)
            warnings.warn(f"style 'rendered': {reason}, so the style eye is rendered in the {name} layout "
                          "(--layout names another)", stacklevel=4)
        return tuple(images.shape[-2:]), name

    def _style_for(self, images: Tensor) -> tuple[Tensor, Regions | None]:
        if not self.rendered:
            return self.style, self.style_regions  # type: ignore[return-value]
        key = self._style_key(images)
        if key not in self._rendered:
            # unity: the same eye as always, render_eye(yaw=0, pitch=0, domain="synthetic", seed)
            eye = style_eye(key[1], size=key[0], seed=self.cfg.seed)
            self._rendered[key] = (eye.image.float(), Regions.from_binary(eye.mask.float()), eye.labels[None])
        return self._rendered[key][:2]

    def _style_parts_for(self, images: Tensor) -> Tensor | None:
        """The one style eye's part labels: the rendered eye's, or ``STYLE_labels.png``."""
        hw = tuple(images.shape[-2:])
        if self.rendered:
            self._style_for(images)  # rendered once per size and layout, with its labels
            return self._rendered[self._style_key(images)][2]
        if self.style_parts is not None and tuple(self.style_parts.shape[-2:]) == tuple(hw):
            return self.style_parts
        return None

    def run(self, images: Tensor, masks: Tensor | None,
            parts: Tensor | None = None) -> tuple[Tensor, list[float | None]]:
        if self.pool is not None:
            style, pool_masks, style_parts = self.pool.styles_for(images, tuple(images.shape[-2:]))
            style_regions = Regions.from_binary(pool_masks)
        else:
            style, style_regions = self._style_for(images)
            style_parts = self._style_parts_for(images)
        if parts is not None and style_parts is not None and self.cfg.method == "masked":
            # both sides labelled: the skin and the sclera are matched apart (masked-eye preset)
            masks = parts_from_labels(parts)
            style_regions = parts_from_labels(style_parts)
        elif parts is not None and not self._warned_parts:
            self._warned_parts = True
            warnings.warn("the inputs have part labels but the style eye has none (STYLE_labels.png, or a "
                          "pool with NAME_labels.png): skin and sclera are matched as one background",
                          stacklevel=2)
        if masks is None:
            style_regions = None
        n, on_step = images.shape[0], self._stop
        stop = (lambda p: on_step(n * p.step / max(p.total_steps, 1))) if on_step is not None else None
        result = stylize(images, style, mask=masks, style_mask=style_regions, config=self.scfg,
                         encoder=self.encoder, callback=stop)
        if result.interrupted:
            raise KeyboardInterrupt
        totals = result.total if isinstance(result.total, list) else [result.total]
        return result.image, [float(t) for t in totals]


def uses_parts(cfg: Any) -> bool:
    """Whether the method reads an input's part labels (NAME_labels.png): the optimizer's
    ``masked`` splits its background into skin and sclera with them.

    >>> from masked_gatys.purify import PurifyConfig
    >>> uses_parts(PurifyConfig(method="masked", style="rendered")), uses_parts(PurifyConfig())
    (True, False)
    """
    return cfg.method == "masked"
