"""Gaze estimators (paper Sec. 4.2): the CNN, kNN on appearance, and scikit-learn's SVR and RF.

Every estimator is trained on a :class:`~masked_gatys.eyes.datasets.GazeSet` and predicts
``(yaw, pitch)`` in degrees in the project's convention (:mod:`masked_gatys.eyes.render`);
:func:`score` gives the angular errors. ``svr`` and ``rf`` need scikit-learn
(``pip install masked-gatys[gaze]``); :func:`available_estimators` leaves them out, with a
reason, where it is missing.

>>> from masked_gatys.eyes.datasets import render_set
>>> train = render_set(60, size=(36, 60), seed=0)
>>> knn = build_estimator("knn").fit(train)
>>> err = score(knn, render_set(8, size=(36, 60), seed=1))
>>> err.shape, bool((err >= 0).all())
((8,), True)
"""

from __future__ import annotations

import copy
import io
import math
import time
from pathlib import Path
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masked_gatys import __version__
from masked_gatys.errors import GazeError
from masked_gatys.eyes.datasets import GazeSet
from masked_gatys.eyes.features import appearance_features, grey_standardised  # re-exported (their old home)
from masked_gatys.eyes.render import angular_error, gaze_to_vector, vector_to_gaze
from masked_gatys.files import atomic_write

__all__ = [
    "GazeCNN",
    "CNNConfig",
    "CNNEstimator",
    "KNNEstimator",
    "SklearnEstimator",
    "ESTIMATORS",
    "available_estimators",
    "build_estimator",
    "appearance_features",
    "grey_standardised",
    "score",
    "load_estimator",
    "save_estimator",
]

Progress = Callable[[int, int, dict], None]  # (done, total, info)


# --------------------------------------------------------------------------- inputs
# grey_standardised and appearance_features live in masked_gatys.eyes.features (re-exported above)


def _unit_vectors(gaze: np.ndarray) -> np.ndarray:
    return gaze_to_vector(gaze[:, 0], gaze[:, 1])


def score(estimator: Any, test: GazeSet) -> np.ndarray:
    """Angular error in degrees of ``estimator`` on each eye of ``test``, shape ``(N,)``."""
    pred = estimator.predict(test.images)
    return np.asarray(angular_error(pred, test.gaze), dtype=np.float64).reshape(-1)


# --------------------------------------------------------------------------- the CNN


class GazeCNN(nn.Module):
    """The paper's gaze CNN (Sec. 4.2, after Shrivastava et al. 2017 and Zhang et al. 2015).

    Grey ``(N, 1, H, W)`` in, the gaze vector ``(N, 3)`` out: conv 32@3x3, conv 32@3x3,
    conv 64@3x3, max-pool 3x3 (stride 2), conv 80@3x3, conv 192@3x3, max-pool 2x2, then fully
    connected 1000 and 3. ReLU after each hidden layer, no padding.

    The paper lists "FC9600, FC1000, FC3": 9600 is exactly the flattened size of the last
    pool at the paper's 35x55 input (192 x 5 x 10), so we read FC9600 as that flattened
    vector, not as a 9600-unit layer (which would hold 92 M weights). At 36x60 it is 10560.

    >>> net = GazeCNN((35, 55))
    >>> net.flat_features, tuple(net(torch.zeros(2, 1, 35, 55)).shape)
    (9600, (2, 3))
    """

    def __init__(self, size: tuple[int, int] = (36, 60), hidden: int = 1000) -> None:
        super().__init__()
        h, w = size
        if h < 20 or w < 20:
            raise GazeError(f"the gaze CNN needs eyes of at least 20x20 pixels, got {h}x{w}")
        self.size = (int(h), int(w))
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 80, 3), nn.ReLU(),
            nn.Conv2d(80, 192, 3), nn.ReLU(),
            nn.MaxPool2d(2, stride=2),
        )
        with torch.no_grad():
            self.flat_features = int(self.features(torch.zeros(1, 1, h, w)).numel())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(self.flat_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class CNNConfig:
    """Training settings of the CNN. The paper: Adam, constant lr 1e-3, batch 512, "until the
    validation error converges"; with a few thousand eyes batch 512 gives too few steps per
    epoch, so the default batch is 64 and training stops when the validation error has not
    improved for ``patience`` epochs (the best epoch's weights are kept)."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    patience: int = 3
    val_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None


class CNNEstimator:
    """The paper's CNN as an estimator: ``fit`` (with validation and early stopping), ``predict``.

    >>> from masked_gatys.eyes.datasets import render_set
    >>> est = CNNEstimator(CNNConfig(epochs=1, batch_size=16)).fit(render_set(40, size=(36, 60)))
    >>> est.predict(render_set(2, size=(36, 60), seed=5).images).shape
    (2, 2)
    """

    name = "cnn"

    def __init__(self, config: CNNConfig | None = None) -> None:
        self.config = config or CNNConfig()
        self.net: GazeCNN | None = None
        self.record: dict[str, Any] = {}

    def _inputs(self, images: Tensor) -> Tensor:
        if self.net is not None and tuple(images.shape[-2:]) != self.net.size:
            images = F.interpolate(images.float(), size=self.net.size, mode="bilinear",
                                   antialias=True, align_corners=False)
        return grey_standardised(images)

    def fit(self, train: GazeSet, val: GazeSet | None = None, *, progress: Progress | None = None) -> CNNEstimator:
        """Train on ``train`` (a ``val_fraction`` split of it is the validation set unless
        ``val`` is given); keeps the weights of the epoch with the lowest validation error."""
        cfg = self.config
        if val is None:
            train, val = train.split(cfg.val_fraction, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        self.net = GazeCNN(train.size)
        x, y = self._inputs(train.images), torch.from_numpy(_unit_vectors(train.gaze)).float()
        xv = self._inputs(val.images)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(cfg.seed)
        best, best_state, curve, stale = math.inf, None, [], 0
        start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            self.net.train()
            order = torch.randperm(len(train), generator=gen)
            total = 0.0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                loss = F.mse_loss(self.net(x[idx]), y[idx], reduction="sum") / len(idx)  # Euclidean loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            val_err = float(np.mean(angular_error(self._predict_inputs(xv), val.gaze)))
            curve.append({"epoch": epoch, "train_loss": total / len(train), "val_error": val_err,
                          "seconds": time.perf_counter() - start})
            if val_err < best - 1e-6:
                best, best_state, stale = val_err, copy.deepcopy(self.net.state_dict()), 0
            else:
                stale += 1
            if progress is not None:
                progress(epoch, cfg.epochs, curve[-1])
            if stale >= cfg.patience:
                break
        assert best_state is not None
        self.net.load_state_dict(best_state)
        self.record = {"train_n": len(train), "val_n": len(val), "best_val_error": best,
                       "epochs_run": len(curve), "curve": curve, "config": asdict(cfg)}
        return self

    def _predict_inputs(self, x: Tensor) -> np.ndarray:
        assert self.net is not None
        self.net.eval()
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], 512):
                out.append(self.net(x[i:i + 512]))
        return vector_to_gaze(torch.cat(out).double().numpy())

    def predict(self, images: Tensor) -> np.ndarray:
        """``(N, 2)`` (yaw, pitch) degrees for ``(N, 3, H, W)`` eyes (resized to the trained size)."""
        if self.net is None:
            raise GazeError("the CNN has not been trained (call fit or load a checkpoint)")
        return self._predict_inputs(self._inputs(images))

    def state(self) -> dict[str, Any]:
        if self.net is None:
            raise GazeError("the CNN has not been trained")
        return {"estimator": self.name, "size": list(self.net.size), "state_dict": self.net.state_dict(),
                "config": asdict(self.config), "record": self.record}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CNNEstimator:
        est = cls(CNNConfig(**state["config"]))
        est.net = GazeCNN(tuple(state["size"]))
        est.net.load_state_dict(state["state_dict"])
        est.record = dict(state.get("record", {}))
        return est


# --------------------------------------------------------------------------- kNN


class KNNEstimator:
    """k nearest neighbours on appearance (the paper's kNN baseline, appearance part).

    The gaze of a test eye is the normalised mean of its ``k`` nearest training eyes' gaze
    vectors (Euclidean distance of :func:`appearance_features`). ``k=None`` picks k from
    (1, 3, 5, 9, 15) by the error on a held-out tenth of the training set (a fixed split; not leave-one-out).

    The paper's cascaded kNN also uses head pose and the pupil centre; rendered eyes have no
    head pose, and the pupil centre would hand the estimator the quantity under test.
    """

    name = "knn"

    def __init__(self, k: int | None = None, feature_size: tuple[int, int] = (15, 25)) -> None:
        self.k = k
        self.feature_size = tuple(feature_size)
        self.features: Tensor | None = None
        self.vectors: Tensor | None = None
        self.record: dict[str, Any] = {}

    def _neighbour_mean(self, feats: Tensor, bank: Tensor, vectors: Tensor, k: int) -> np.ndarray:
        out = []
        for i in range(0, feats.shape[0], 1024):
            d = torch.cdist(feats[i:i + 1024], bank)
            idx = d.topk(min(k, bank.shape[0]), largest=False).indices
            out.append(vectors[idx].mean(1))
        return vector_to_gaze(torch.cat(out).numpy())

    def fit(self, train: GazeSet, val: GazeSet | None = None, *, progress: Progress | None = None) -> KNNEstimator:
        feats = torch.from_numpy(appearance_features(train.images, self.feature_size))
        vectors = torch.from_numpy(_unit_vectors(train.gaze))
        if self.k is None:
            n_val = max(1, len(train) // 10)
            perm = torch.from_numpy(np.random.default_rng(0).permutation(len(train)))
            held, rest = perm[:n_val], perm[n_val:]
            errors = {}
            for k in (1, 3, 5, 9, 15):
                pred = self._neighbour_mean(feats[held], feats[rest], vectors[rest], k)
                errors[k] = float(np.mean(angular_error(pred, train.gaze[held.numpy()])))
            self.k = min(errors, key=errors.get)
            self.record["k_errors"] = errors
        self.features, self.vectors = feats, vectors
        self.record.update({"train_n": len(train), "k": self.k})
        if progress is not None:
            progress(1, 1, {"k": self.k})
        return self

    def predict(self, images: Tensor) -> np.ndarray:
        if self.features is None or self.vectors is None or self.k is None:
            raise GazeError("kNN has not been fitted")
        feats = torch.from_numpy(appearance_features(images, self.feature_size))
        return self._neighbour_mean(feats, self.features, self.vectors, self.k)


# --------------------------------------------------------------------------- scikit-learn


def _sklearn_missing() -> str | None:
    import importlib.util

    # find_spec, not import: importing scikit-learn takes seconds, and only svr and rf need it
    if importlib.util.find_spec("sklearn") is None:
        return "scikit-learn is not installed (pip install masked-gatys[gaze])"
    return None


class SklearnEstimator:
    """SVR (RBF kernel) or random forest from scikit-learn on :func:`appearance_features`.

    Predicts yaw and pitch (one SVR each; one multi-output forest). Raises ``GazeError`` with
    the install line when scikit-learn is missing.
    """

    def __init__(self, kind: str, *, seed: int = 0, feature_size: tuple[int, int] = (15, 25),
                 **params: Any) -> None:
        if kind not in ("svr", "rf"):
            raise GazeError(f"unknown scikit-learn estimator {kind!r}: use 'svr' or 'rf'")
        missing = _sklearn_missing()
        if missing:
            raise GazeError(f"{kind}: {missing}")
        self.name = kind
        self.seed = seed
        self.feature_size = tuple(feature_size)
        self.params = params
        self.model: Any = None
        self.record: dict[str, Any] = {}

    def _build(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.multioutput import MultiOutputRegressor
        from sklearn.svm import SVR

        if self.name == "svr":
            return MultiOutputRegressor(SVR(**{"C": 10.0, "epsilon": 0.5, "gamma": "scale", **self.params}))
        return RandomForestRegressor(**{"n_estimators": 100, "max_features": 0.33, "min_samples_leaf": 2,
                                        "random_state": self.seed, "n_jobs": 1, **self.params})

    def fit(self, train: GazeSet, val: GazeSet | None = None, *, progress: Progress | None = None) -> SklearnEstimator:
        start = time.perf_counter()
        self.model = self._build().fit(appearance_features(train.images, self.feature_size), train.gaze)
        self.record = {"train_n": len(train), "params": {k: str(v) for k, v in self.params.items()},
                       "seconds": time.perf_counter() - start}
        if progress is not None:
            progress(1, 1, {})
        return self

    def predict(self, images: Tensor) -> np.ndarray:
        if self.model is None:
            raise GazeError(f"{self.name} has not been fitted")
        return np.asarray(self.model.predict(appearance_features(images, self.feature_size)), dtype=np.float64)


# --------------------------------------------------------------------------- registry

ESTIMATORS = ("cnn", "knn", "svr", "rf")


def available_estimators(names: Sequence[str] = ESTIMATORS) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the estimators of ``names`` that can run here, {skipped name: reason}).

    >>> ok, skipped = available_estimators(("cnn", "knn"))
    >>> ok, skipped
    (('cnn', 'knn'), {})
    """
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise GazeError(f"unknown estimator(s) {unknown}: choose from {', '.join(ESTIMATORS)}")
    missing = _sklearn_missing()
    skipped = {n: missing for n in names if n in ("svr", "rf") and missing}
    return tuple(n for n in names if n not in skipped), skipped


def build_estimator(name: str, *, cnn: CNNConfig | None = None, seed: int = 0) -> Any:
    """A fresh estimator by name: ``cnn``, ``knn``, ``svr``, ``rf``."""
    if name == "cnn":
        return CNNEstimator(cnn or CNNConfig(seed=seed))
    if name == "knn":
        return KNNEstimator()
    if name in ("svr", "rf"):
        return SklearnEstimator(name, seed=seed)
    raise GazeError(f"unknown estimator {name!r}: choose from {', '.join(ESTIMATORS)}")


def save_estimator(estimator: CNNEstimator, path: Any, *, provenance: dict[str, Any]) -> None:
    """Save a trained CNN with its provenance (data source, seeds, settings, version)."""
    payload = {"kind": "masked-gatys gaze estimator", "version": __version__,
               "provenance": provenance, **estimator.state()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def load_estimator(path: Any) -> CNNEstimator:
    """Load a CNN saved by :func:`save_estimator` (``weights_only``: runs no pickled code)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GazeError(f"{path}: no such gaze checkpoint") from None
    except Exception as exc:
        raise GazeError(f"{path}: not a readable gaze checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("kind") != "masked-gatys gaze estimator":
        raise GazeError(f"{path}: not a masked-gatys gaze checkpoint")
    try:
        return CNNEstimator.from_state(payload)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise GazeError(f"{path}: damaged gaze checkpoint ({exc})") from None
