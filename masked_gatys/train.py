"""Training the feed-forward networks on the optimizer's objective.

Checkpoints (saving, loading, the shipped nets, :func:`apply_model`) live in
:mod:`masked_gatys.checkpoints`; their names are re-exported here.

The network is trained on exactly the objective ``stylize`` minimises: the
same :class:`~masked_gatys.objective.Objective` object built from the same
preset, with the content targets set per batch. Its objective values are
therefore directly comparable with the optimizer's, as long as the loss
network and the objective config are the same -- which :func:`check_compatible`
checks against what the checkpoint records.

Training is exactly resumable: the batch drawn at step ``s`` and the dropout
noise of step ``s`` are functions of ``(seed, s)`` only, and a checkpoint holds
the network, Adam's state and the step, so ``N`` steps, then a resume to
``N + M``, gives the weights of ``N + M`` steps in one run. With ``mask_jitter``, the
masks the network is given are perturbed from a generator seeded by ``(seed, step)``
too (:mod:`masked_gatys.mask_jitter`); the objective keeps the true masks.

>>> _batch_indices(5, 3, seed=0, step=1).tolist() == _batch_indices(5, 3, seed=0, step=1).tolist()
True
>>> TrainConfig(net="johnson", sizes=((36, 60), (72, 120))).train_sizes
((36, 60), (72, 120))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from masked_gatys import __version__, nets
from masked_gatys.checkpoints import (  # re-exported: masked_gatys.train.load_model etc. keep working
    CHECKPOINT_FORMAT, SHIPPED, LoadedModel, apply_model, check_compatible, check_finite_state, load_model,
    read_checkpoint, save_checkpoint, shipped_checkpoint, strip_checkpoint)
from masked_gatys.config import LEGACY_SETTINGS, TrainConfig  # re-exported: the settings live in config
from masked_gatys.encoder import (LoadedWeights, VGGEncoder, auto_max_layer, layer_names, load_encoder, resolve_weights,
                                  warn_if_random)
from masked_gatys.errors import CheckpointError, ObjectiveError
from masked_gatys.mask_jitter import jitter_masks
from masked_gatys.eyes.labels import EYE_PARTS
from masked_gatys.eyes.styles import StylePool
from masked_gatys.eyes.training_data import (TrainingData, eye_regions_for, folder_data, mix_seed, segmenter_masks, sized_data,
                                             style_eye, style_gazes, style_pool)
from masked_gatys.objective import Objective, ObjectiveConfig, ObjectiveValue, preset
from masked_gatys.sheet import Column, compose_sheet, save_sheet

_read_checkpoint = read_checkpoint  # its name before masked_gatys.checkpoints (cli/train.py, older scripts)

__all__ = [
    "TrainConfig", "TrainProgress", "TrainResult", "train", "train_step", "LoadedModel", "load_model",
    "check_compatible", "apply_model", "save_checkpoint", "strip_checkpoint",
    "CHECKPOINT_FORMAT", "SHIPPED", "shipped_checkpoint", "training_objective",
]

# Options that may differ between a checkpoint and the run that resumes it:
# none of them changes what the next step computes.
_RESUMABLE = {"iterations", "output", "resume", "device", "sample_every", "sample_dir",
              "val_every", "checkpoint_every"}


@dataclass(frozen=True)
class TrainProgress:
    """What the callback gets after each step. ``val`` is set on validation steps."""

    step: int
    iterations: int
    loss: float
    terms: dict[str, float]
    elapsed: float
    val: float | None = None
    sample: str | None = None


@dataclass
class TrainResult:
    """The trained network and its record."""

    net: nn.Module
    step: int
    history: list[dict[str, Any]]
    val_history: list[dict[str, Any]]
    seconds: float
    checkpoint: str | None
    objective_config: dict[str, Any]
    weights: dict[str, Any]
    interrupted: bool = False
    samples: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- data (masked_gatys.eyes.training_data)

def _style_pool(config: TrainConfig, size: tuple[int, int]) -> StylePool:
    """The run's style pool at ``size`` (:func:`~masked_gatys.eyes.training_data.style_pool`)."""
    return style_pool(config.style_pool, size, config.seed, config.layout)


def _style(config: TrainConfig, size: tuple[int, int] | None = None,
           index: int = 0) -> tuple[Tensor, Tensor, Tensor | None]:
    """Style eye ``index`` of ``config.styles`` at a training size (default ``config.size``)."""
    return style_eye(config.style, size or config.size, seed=config.seed, style_mask=config.style_mask,
                     gaze=style_gazes(config.styles, config.seed)[index], layout=config.layout)


def _batch_indices(n: int, batch: int, seed: int, step: int) -> Tensor:
    """Indices of step ``step``'s batch: epochs of random permutations, a function of (seed, step)."""
    out = []
    for k in range(step * batch, (step + 1) * batch):
        epoch, pos = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, 3, epoch)))
        out.append(int(perm[pos]))
    return torch.tensor(out)


# ---------------------------------------------------------------- objective

def _resolve_max_layer(config: TrainConfig) -> tuple[str | None, LoadedWeights | None]:
    """``config.max_layer`` with ``auto`` resolved against the weights (stylize's rule), and
    the weights loaded for it (None when nothing was loaded)."""
    if config.max_layer != "auto":
        return config.max_layer, None

    weights = resolve_weights(config.weights, seed=config.seed)
    warn_if_random(weights, stacklevel=4)
    return auto_max_layer(preset(config.preset).layers, weights.deepest), weights


def _build_objective(config: TrainConfig, style: Tensor, style_mask: Tensor, device: torch.device,
                     encoder: VGGEncoder | None = None, max_layer: str | None = None,
                     weights: LoadedWeights | None = None, style_parts: Tensor | None = None) -> Objective:
    """The objective of one style (or of a pool: a batch of paired styles); ``style_parts``
    given: ``masked`` becomes ``masked-eye`` with skin and sclera apart (what ``stylize``
    and ``purify`` run on labelled eyes, so the objective values compare)."""
    if max_layer is None and weights is None:
        max_layer, weights = _resolve_max_layer(config)
    name, regions = config.preset, None
    if style_parts is not None and config.preset == "masked":
        name, regions = "masked-eye", EYE_PARTS
    cfg = preset(name, content_weight=config.content_weight, style_weight=config.style_weight,
                 tv_weight=config.tv_weight, max_layer=max_layer, regions=regions)
    if encoder is None:
        encoder = load_encoder(weights=config.weights if weights is None else weights, layers=cfg.layers,
                               device=device, seed=config.seed)
    style_regions = eye_regions_for(style_mask, style, cfg, style_parts)
    return Objective(encoder, cfg, style=style.to(device), style_regions=style_regions.to(device))


def training_objective(model: "LoadedModel", images: Tensor, masks: Tensor, *, parts: Tensor | None = None,
                       encoder: VGGEncoder | None = None, weights: Any = None) -> Objective:
    """The objective a network was trained on, with ``images`` as the content: its recorded
    preset and terms, its style eye (the rendered one, or each image's nearest eye of its style
    pool, rendered at the images' size), and the part labels ``parts`` ``(B, H, W)`` where it
    matched skin and sclera apart. The optimizer minimising it from ``images`` is what the
    network's output compares with (``benchmarks/pupil.py``'s equivalent iterations).

    ``encoder`` (covering the objective's layers) or ``weights`` (default: the checkpoint's
    recorded file name, as ``--weights``) gives the loss network; its identity must be the
    checkpoint's (:func:`check_compatible`).
    """
    meta = model.checkpoint
    if not meta.get("train_config") or not meta.get("objective"):
        raise CheckpointError(f"{model.path or 'checkpoint'}: it records no training settings or objective")
    config = TrainConfig.from_dict({**LEGACY_SETTINGS, **meta["train_config"], "resume": None, "init": None})
    cfg = ObjectiveConfig.from_dict(meta["objective"])
    if encoder is None:
        encoder = load_encoder(weights=weights if weights is not None else config.weights, layers=cfg.layers,
                               device=images.device, seed=config.seed)
    check_compatible(model, cfg, encoder.identity)
    size = tuple(images.shape[-2:])
    if config.style_pool:
        pool = _style_pool(config, size)
        style_parts = pool.parts if "skin" in cfg.regions else None
        bank = Objective(encoder, cfg, style=pool.images,
                         style_regions=eye_regions_for(pool.masks, pool.images, cfg, style_parts))
        objective = bank.select_styles(pool.nearest(images))
    else:
        style, style_mask, style_parts = _style(config, size)
        objective = Objective(encoder, cfg, style=style, style_regions=eye_regions_for(style_mask, style, cfg, style_parts))
    objective.set_content(images, regions=eye_regions_for(masks, images, cfg, parts))
    return objective


def _build_objectives(config: TrainConfig, device: torch.device, buckets: Sequence[TrainingData],
                      ) -> dict[tuple[int, int], Objective]:
    """One objective per (training size, style eye), sharing one loss network; with a style
    pool, one per size holding the whole pool (``select_styles`` picks each batch's), and each
    bucket's ``train_styles`` / ``val_styles`` set to its eyes' nearest pool eyes."""
    objectives: dict[tuple[int, int], Objective] = {}
    encoder = None
    max_layer, weights = _resolve_max_layer(config)
    labelled = config.parts and config.preset == "masked" and all(
        d.train_parts is not None and d.val_parts is not None for d in buckets)
    for b, size in enumerate(config.train_sizes):
        if config.style_pool:
            pool = _style_pool(config, size)
            bucket = buckets[b]
            bucket.train_styles = pool.nearest(bucket.train_images)
            bucket.val_styles = pool.nearest(bucket.val_images) if bucket.val_images.shape[0] else None
            sources = [(pool.images, pool.masks, pool.parts)]
        else:
            sources = [_style(config, size if config.sizes else None, j) for j in range(config.styles)]
        for j, (style, style_mask, style_parts) in enumerate(sources):
            objective = _build_objective(config, style, style_mask, device, encoder, max_layer, weights,
                                         style_parts if labelled else None)
            encoder = objective.encoder
            objectives[(b, j)] = objective
    return objectives


def _warm_start(net: nn.Module, source: str) -> None:
    """Load the network weights of a checkpoint (a path or a shipped name) into ``net``."""
    path = shipped_checkpoint(source) if source in SHIPPED and not Path(source).is_file() else Path(source)
    data = read_checkpoint(path)
    if data["net"] != net.config:
        raise CheckpointError(f"{path}: its network {data['net']} is not the one being trained ({net.config})")
    check_finite_state(data["state_dict"], path)
    net.load_state_dict(data["state_dict"])


def _step_choice(config: TrainConfig, step: int) -> tuple[int, int]:
    """(size bucket, style index) of a step: a function of (seed, step), so resumes are exact."""
    b = mix_seed(config.seed, 5, step) % len(config.train_sizes)
    j = mix_seed(config.seed, 6, step) % config.styles
    return b, j


def _for_batch(objective: Objective, styles: Tensor | None, idx: Tensor | slice) -> Objective:
    """The objective for a batch: with a style pool, each eye's own pool eye."""
    return objective if styles is None else objective.select_styles(styles[idx])


def _evaluate(net: nn.Module, objective: Objective, images: Tensor, masks: Tensor, batch: int,
              parts: Tensor | None = None, styles: Tensor | None = None,
              net_masks: Tensor | None = None) -> tuple[float, dict[str, float]]:
    """Mean objective of the network's outputs on a fixed set (eval mode, no grad); the network
    is given ``net_masks`` where given (the objective always ``masks``)."""
    was_training = net.training
    net.eval()
    totals: list[Tensor] = []
    terms: dict[str, list[Tensor]] = {}
    try:
        with torch.no_grad():
            for i in range(0, images.shape[0], batch):
                x, m = images[i:i + batch], masks[i:i + batch]
                p = None if parts is None else parts[i:i + batch]
                judge = _for_batch(objective, styles, slice(i, i + batch))
                judge.set_content(x, regions=eye_regions_for(m, x, judge.config, p))
                value = judge(net(x, m if net_masks is None else net_masks[i:i + batch]))
                totals.append(value.total)
                for name, t in value.terms.items():
                    terms.setdefault(name, []).append(t)
    finally:
        net.train(was_training)
    return float(torch.cat(totals).mean()), {k: float(torch.cat(v).mean()) for k, v in terms.items()}


# ---------------------------------------------------------------- training

def _sample_sheet(path: Path, rows: list[tuple[Tensor, Tensor]], title: str) -> None:
    """Content | output pairs, one row each, as a labelled PNG sheet (:mod:`masked_gatys.sheet`)."""
    columns = [Column("content", [c for c, _ in rows]), Column("output", [o for _, o in rows])]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_sheet(compose_sheet(columns, title=title), path)


def _check_resume(path: str, checkpoint: Mapping[str, Any], config: TrainConfig) -> None:
    if checkpoint.get("resumable") is False or "optimizer" not in checkpoint:
        raise CheckpointError(f"{path}: this checkpoint holds no optimizer state and cannot be resumed")
    for key, kind in (("step", int), ("optimizer", dict), ("train_config", dict), ("state_dict", dict)):
        if key not in checkpoint:
            raise CheckpointError(f"{path}: the checkpoint lacks {key!r}; cannot resume")
        if not isinstance(checkpoint[key], kind) or isinstance(checkpoint[key], bool):
            raise CheckpointError(f"{path}: the checkpoint's {key!r} is a {type(checkpoint[key]).__name__}, "
                                  f"not a {kind.__name__}; cannot resume")
    for key in ("history", "val_history"):
        if not isinstance(checkpoint.get(key, []), list):
            raise CheckpointError(f"{path}: the checkpoint's {key!r} is not a list; cannot resume")
    # settings added later did, before them, what these values do
    saved = {**LEGACY_SETTINGS, **(checkpoint.get("train_config") or {})}
    mine = config.to_dict()
    # max_layer is checked through the objective it resolves to (train: the layers must match)
    differ = sorted(k for k in mine if k not in _RESUMABLE | {"max_layer"} and k in saved and saved[k] != mine[k])
    if differ:
        detail = ", ".join(f"{k}={saved[k]!r} (now {mine[k]!r})" for k in differ)
        raise CheckpointError(f"{path}: cannot resume with different settings: {detail}")


def _objective_mismatch(checkpoint: Mapping[str, Any], objective: Mapping[str, Any], identity: Mapping[str, Any],
                        config: TrainConfig) -> str:
    """What differs between a checkpoint's objective and loss network and this run's, in a line."""
    saved_w = checkpoint.get("weights") or {}
    if saved_w != identity:
        return (f"trained with the weights {saved_w.get('name')!r} (sha256 {str(saved_w.get('sha256'))[:12]}), "
                f"this run has {identity.get('name')!r} (sha256 {str(identity.get('sha256'))[:12]}); give --weights")
    saved_o = checkpoint.get("objective") or {}
    order = layer_names()

    def deepest(obj: Mapping[str, Any]) -> str | None:
        layers = [t.get("layer") for t in obj.get("terms", []) if t.get("layer") in order]
        return max(layers, key=order.index) if layers else None

    if deepest(saved_o) != deepest(objective):
        recorded = (checkpoint.get("train_config") or {}).get("max_layer", checkpoint.get("max_layer"))
        return (f"trained with layers up to {deepest(saved_o)} (max_layer {recorded!r}), this run's objective "
                f"goes to {deepest(objective)} (max_layer {config.max_layer!r}); give --max-layer "
                f"{deepest(saved_o)}")
    keys = sorted(k for k in set(saved_o) | set(objective) if saved_o.get(k) != objective.get(k))
    return f"trained on another objective (differs in: {', '.join(keys)})"


def train_step(net: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, images: Tensor,
               masks: Tensor, parts: Tensor | None = None, *, net_masks: Tensor | None = None) -> ObjectiveValue:
    """One optimisation step on a batch: set the content targets, loss = mean total, Adam step.

    ``parts``: the batch's part labels ``(B, H, W)``, for an objective that
    matches skin and sclera apart. ``net_masks``: the masks the network is given
    (default ``masks``; with ``TrainConfig.mask_jitter``, perturbed copies), while the
    objective's regions always come from ``masks`` and ``parts``. Returns the batch's
    :class:`~masked_gatys.objective.ObjectiveValue` (before the step). Raises
    ``ObjectiveError`` if the loss is not finite.
    """
    objective.set_content(images, regions=eye_regions_for(masks, images, objective.config, parts))
    value = objective(net(images, masks if net_masks is None else net_masks))
    loss = value.total.mean()
    if not torch.isfinite(loss):
        raise ObjectiveError(f"the training loss became {float(loss)}; lower the learning rate (--lr)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


def train(config: TrainConfig, *, callback: Callable[[TrainProgress], Any] | None = None) -> TrainResult:
    """Train a network on the style objective; write checkpoints to ``config.output``.

    ``callback(progress)`` runs after every step; returning True stops the run
    (the checkpoint is still written). KeyboardInterrupt writes the checkpoint
    and propagates.

    >>> import warnings
    >>> cfg = TrainConfig(net="johnson", width=2, blocks=1, render=2, val=1, size=(24, 32),
    ...                   iterations=1, batch_size=2, weights="random", max_layer="relu2_1")
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     result = train(cfg)
    >>> result.step, len(result.val_history)
    (1, 2)
    """
    start = time.perf_counter()
    checkpoint: dict[str, Any] | None = None
    if config.resume is not None:  # fail before the slow set-up
        checkpoint = read_checkpoint(config.resume)
        _check_resume(config.resume, checkpoint, config)
        check_finite_state({"state_dict": checkpoint["state_dict"], "optimizer": checkpoint["optimizer"]},
                           config.resume)
    session = _Session(config, _load_buckets(config), checkpoint)
    interrupted = False
    if session.step == 0 and config.val_every:
        session.validate()
    try:
        with torch.random.fork_rng(devices=[session.device] if session.device.type == "cuda" else []):
            while session.step < config.iterations:
                progress = session.advance()
                if callback is not None and callback(progress) is True:
                    interrupted = True
                    if config.val_every:
                        session.validate()  # the record ends with the weights it keeps
                    break
    except KeyboardInterrupt:
        session.write()
        raise
    path = session.write()
    session.net.eval()
    return TrainResult(net=session.net, step=session.step, history=session.history,
                       val_history=session.val_history, seconds=time.perf_counter() - start, checkpoint=path,
                       objective_config=session.objective_dict, weights=session.identity,
                       interrupted=interrupted, samples=session.samples)


def _load_buckets(config: TrainConfig) -> list[TrainingData]:
    """The training data: a content folder at ``size``, or rendered eyes at each training size."""
    if config.content_dir is None:
        buckets = sized_data(config.render, config.val, config.size, config.sizes, config.seed,
                             layout=config.layout, look=config.look)
    elif config.sizes:
        raise ValueError("several training sizes (sizes) need rendered eyes (--render), not --content")
    else:
        buckets = [folder_data(Path(config.content_dir), config.size, config.val)]
    if config.net_masks == "segmenter":  # what purify --mask auto gives the network in use
        for d in buckets:
            d.train_net_masks, d.val_net_masks = segmenter_masks(d.train_images), segmenter_masks(d.val_images)
    return buckets


def _on(t: Tensor | None, device: torch.device) -> Tensor | None:
    return None if t is None else t.to(device)


class _Session:
    """One training run's state: network, optimizer, objectives, data on the device, records.

    Built from the config (and the checkpoint it resumes); :meth:`advance` takes one step
    with its validation, sample and periodic checkpoint; :meth:`write` saves the checkpoint.
    """

    def __init__(self, config: TrainConfig, buckets: list[TrainingData],
                 checkpoint: dict[str, Any] | None) -> None:
        self.config = config
        self.device = device = torch.device(config.device)
        self.objectives = _build_objectives(config, device, buckets)
        objective = self.objectives[(0, 0)]
        self.objective_dict = objective.config.to_dict()
        self.identity = objective.encoder.identity.to_dict()
        with torch.random.fork_rng(devices=[]):  # the initialisation is a function of the seed
            torch.manual_seed(mix_seed(config.seed, 0))
            self.net = nets.build(**config.net_config())
        if config.init is not None and checkpoint is None:
            _warm_start(self.net, config.init)
        self.net.to(device).train()
        self.ranks = _Ranks(self.net, config.batch_size)  # one process, or a torchrun rank with DDP
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.val_history: list[dict[str, Any]] = []
        self.seconds_before = 0.0
        if checkpoint is not None:
            self._restore(checkpoint)
        self.train_sets = [(d.train_images.to(device), d.train_masks.to(device), _on(d.train_parts, device),
                            d.train_styles) for d in buckets]
        # the masks the network is given (the segmenter's, with net_masks="segmenter"), by bucket
        self.net_masks = [(_on(d.train_net_masks, device), _on(d.val_net_masks, device)) for d in buckets]
        self.val_sets = [(d.val_images.to(device), d.val_masks.to(device), _on(d.val_parts, device),
                          d.val_styles) for d in buckets]
        self.samples: list[str] = []
        output = Path(config.output) if config.output else None
        self.sample_dir = Path(config.sample_dir) if config.sample_dir else (
            output.with_suffix("").with_name(output.stem + "_samples") if output else None)
        self.run_start = time.perf_counter()

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint: its objective and loss network must be this run's."""
        if checkpoint["objective"] != self.objective_dict or checkpoint["weights"] != self.identity:
            raise CheckpointError(f"{self.config.resume}: cannot resume: "
                                  f"{_objective_mismatch(checkpoint, self.objective_dict, self.identity, self.config)}")
        self.net.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step = int(checkpoint["step"])
        self.history = list(checkpoint.get("history", []))
        self.val_history = list(checkpoint.get("val_history", []))
        self.seconds_before = float(checkpoint.get("seconds", 0.0))

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.run_start

    def checkpoint_dict(self) -> dict[str, Any]:
        config = self.config
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "net": self.net.config,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "objective": self.objective_dict,
            "weights": self.identity,
            "max_layer": config.max_layer,
            "size": list(config.size),
            "trained_sizes": [list(s) for s in config.train_sizes],
            "style": config.style,
            "train_config": config.to_dict(),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "rng": {"torch": torch.get_rng_state()},
            "step": self.step,
            "history": self.history,
            "val_history": self.val_history,
            "seconds": self.elapsed(),
            "resumable": True,
        }

    def write(self) -> str | None:
        if self.config.output is None or not self.ranks.main:
            return None
        save_checkpoint(self.config.output, self.checkpoint_dict())
        return str(self.config.output)

    def validate(self) -> float | None:
        val_images = self.val_sets[0][0]
        if val_images.shape[0] == 0 or not self.ranks.main or any(v["step"] == self.step for v in self.val_history):
            return None
        by_size = {}
        for b, (vi, vm, vp, vs) in enumerate(self.val_sets):  # style 0 (or each eye's pool eye) at every size
            by_size[b] = _evaluate(self.net, self.objectives[(b, 0)], vi, vm, self.config.batch_size, vp, vs,
                                   self.net_masks[b][1])
        total = sum(t for t, _ in by_size.values()) / len(by_size)
        terms = {k: sum(tr[k] for _, tr in by_size.values()) / len(by_size) for k in by_size[0][1]}
        record = {"step": self.step, "total": total, "terms": terms, "seconds": self.elapsed()}
        if self.config.sizes:
            h_w = self.config.train_sizes
            record["by_size"] = {f"{h_w[b][0]}x{h_w[b][1]}": t for b, (t, _) in by_size.items()}
        self.val_history.append(record)
        return total

    def sample(self) -> str | None:
        val_images, val_masks = self.val_sets[0][:2]
        if self.net_masks[0][1] is not None:
            val_masks = self.net_masks[0][1]
        if self.sample_dir is None or val_images.shape[0] == 0 or not self.ranks.main:
            return None
        self.net.eval()
        with torch.no_grad():
            n = min(4, val_images.shape[0])
            out = self.net(val_images[:n], val_masks[:n])
        self.net.train()
        path = self.sample_dir / f"step{self.step:06d}.png"
        _sample_sheet(path, [(val_images[i:i + 1].cpu(), out[i:i + 1].cpu()) for i in range(n)],
                      f"step {self.step}")
        self.samples.append(str(path))
        return str(path)

    def _train_one(self) -> tuple[float, dict[str, float]]:
        """The step's batch (a function of seed and step), one optimizer step; the global means."""
        config, device = self.config, self.device
        b, j = _step_choice(config, self.step)
        train_images, train_masks, train_parts, train_styles = self.train_sets[b]
        batch_seed = config.seed if not config.sizes else mix_seed(config.seed, 8, b)
        batch = _batch_indices(train_images.shape[0], config.batch_size, batch_seed, self.step)
        idx = self.ranks.share(batch)
        x, m = train_images[idx.to(device)], train_masks[idx.to(device)]
        p = None if train_parts is None else train_parts[idx.to(device)]
        given = self.net_masks[b][0]  # the segmenter's masks, or None: the true ones
        net_m = None if given is None else given[idx.to(device)]
        if config.mask_jitter:  # the global batch's masks, perturbed as a function of (seed, step)
            base = train_masks if given is None else given
            jittered = jitter_masks(base[batch.to(device)], config.mask_jitter,
                                    torch.Generator().manual_seed(mix_seed(config.seed, 10, self.step)))
            net_m = jittered[self.ranks.share(torch.arange(len(batch))).to(device)]
        torch.manual_seed(mix_seed(config.seed, 4, self.step))  # dropout noise of this step
        value = train_step(self.ranks.model, _for_batch(self.objectives[(b, j)], train_styles, idx),
                           self.optimizer, x, m, p, net_masks=net_m)
        self.step += 1
        return self.ranks.mean(float(value.total.detach().mean()),
                               {k: float(v.detach().mean()) for k, v in value.terms.items()})

    def advance(self) -> TrainProgress:
        """One step, then what falls due at it: validation, a sample sheet, a checkpoint."""
        config = self.config
        loss_value, terms = self._train_one()
        step, last = self.step, self.step == config.iterations
        self.history.append({"step": step, "loss": loss_value, "terms": terms})
        val = self.validate() if (config.val_every and step % config.val_every == 0) or last else None
        sheet = self.sample() if config.sample_every and (step % config.sample_every == 0 or last) else None
        if config.checkpoint_every and step % config.checkpoint_every == 0 and not last:
            self.write()
        return TrainProgress(step, config.iterations, loss_value, terms, self.elapsed(), val, sheet)


class _Ranks:
    """One process, or this rank of a torchrun job: DistributedDataParallel over the global batch.

    Every rank draws the same global batch (a function of seed and step) and a
    DistributedSampler (no shuffling) gives rank r its elements r, r + W, ...;
    DDP averages the ranks' gradients of their mean losses, which is the
    gradient of the global batch's mean loss: the same steps as one process
    with that batch, to float tolerance. Not so for batch norm on CPU (each
    rank normalises over its share; on CUDA it becomes SyncBatchNorm) or for
    dropout (each rank draws its own share's noise). Rank 0 alone validates,
    samples and writes checkpoints; the records hold the global means.
    """

    def __init__(self, net: nn.Module, batch_size: int) -> None:
        import torch.distributed as dist

        self.on = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if self.on else (0, 1)
        self.main = self.rank == 0
        self.model: nn.Module = net
        if not self.on:
            return
        if batch_size % self.world:
            raise ValueError(f"the batch ({batch_size}) must split evenly over the {self.world} ranks")
        from torch.nn.parallel import DistributedDataParallel

        self.device = next(net.parameters()).device
        if self.device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        self.model = DistributedDataParallel(net, device_ids=[self.device] if self.device.type == "cuda" else None)

    def share(self, idx: Tensor) -> Tensor:
        if not self.on:
            return idx
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(len(idx)), num_replicas=self.world, rank=self.rank, shuffle=False)
        return idx[list(sampler)]

    def mean(self, loss: float, terms: dict[str, float]) -> tuple[float, dict[str, float]]:
        if not self.on:
            return loss, terms
        import torch.distributed as dist

        values = torch.tensor([loss, *terms.values()], dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        values = (values / self.world).tolist()
        return values[0], dict(zip(terms, values[1:]))


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
