"""Gaze estimators: the paper's CNN, kNN, scikit-learn's SVR and RF; checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masked_gatys.errors import GazeError
from masked_gatys.eyes import gaze as gaze_module
from masked_gatys.eyes.datasets import render_set
from masked_gatys.eyes.gaze import (
    CNNConfig,
    CNNEstimator,
    GazeCNN,
    KNNEstimator,
    appearance_features,
    available_estimators,
    build_estimator,
    grey_standardised,
    load_estimator,
    save_estimator,
    score,
)
from masked_gatys.eyes.render import angular_error, gaze_to_vector, vector_to_gaze

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def train_set():
    return render_set(240, domain="synthetic", size=(36, 60), seed=0)


@pytest.fixture(scope="module")
def test_set():
    return render_set(30, domain="synthetic", size=(36, 60), seed=1)


def _constant_error(train, test):
    """Error of predicting the training set's mean gaze for every eye: what learning must beat."""
    mean = vector_to_gaze(gaze_to_vector(train.gaze[:, 0], train.gaze[:, 1]).mean(0))
    return float(np.mean(angular_error(np.repeat(mean[None], len(test), 0), test.gaze)))


def test_cnn_layers_follow_the_paper():
    net = GazeCNN((35, 55))
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 80, 192]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert net.flat_features == 9600  # the paper's "FC9600" at its 35x55 input
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1000, 3]
    with pytest.raises(GazeError, match="at least 20x20"):
        GazeCNN((16, 40))


def test_grey_standardised_removes_exposure():
    x = torch.rand(2, 3, 36, 60)
    a, b = grey_standardised(x), grey_standardised(0.5 * x + 0.2)
    assert torch.allclose(a, b, atol=1e-4)


def test_cnn_learns_gaze(train_set, test_set):
    small = train_set.subset(range(160))
    est = CNNEstimator(CNNConfig(epochs=2, batch_size=16, patience=2)).fit(small)
    err = score(est, test_set)
    assert err.mean() < 0.7 * _constant_error(small, test_set)
    curve = est.record["curve"]
    assert est.record["best_val_error"] == min(c["val_error"] for c in curve)


def test_knn_matches_a_brute_force_reference(train_set, test_set):
    est = KNNEstimator(k=3).fit(train_set)
    pred = est.predict(test_set.images)
    a = appearance_features(train_set.images)
    b = appearance_features(test_set.images)
    vec = gaze_to_vector(train_set.gaze[:, 0], train_set.gaze[:, 1])
    ref = []
    for row in b:  # float64 numpy, one eye at a time
        d = np.sqrt(((a - row) ** 2).sum(1))
        ref.append(vec[np.argsort(d, kind="stable")[:3]].mean(0))
    assert pred == pytest.approx(vector_to_gaze(np.array(ref)), abs=1e-3)


def test_knn_picks_k_on_held_out_eyes(train_set, test_set):
    est = KNNEstimator().fit(train_set)
    errors = est.record["k_errors"]
    assert est.k == min(errors, key=errors.get)
    assert score(est, test_set).mean() < _constant_error(train_set, test_set)


@pytest.mark.parametrize("name", ["svr", "rf"])
def test_sklearn_estimators_learn(name, train_set, test_set):
    pytest.importorskip("sklearn")
    est = build_estimator(name).fit(train_set)
    assert est.predict(test_set.images).shape == (len(test_set), 2)
    assert score(est, test_set).mean() < _constant_error(train_set, test_set)


def test_missing_sklearn_is_skipped_with_the_install_line(monkeypatch):
    monkeypatch.setattr(gaze_module, "_sklearn_missing", lambda: "scikit-learn is not installed (pip install masked-gatys[gaze])")
    ok, skipped = available_estimators(("cnn", "svr", "rf"))
    assert ok == ("cnn",) and set(skipped) == {"svr", "rf"} and "masked-gatys[gaze]" in skipped["svr"]
    with pytest.raises(GazeError, match="masked-gatys\\[gaze\\]"):
        build_estimator("rf")


def test_unknown_estimator():
    with pytest.raises(GazeError, match="choose from cnn, knn, svr, rf"):
        available_estimators(("cnn", "svm"))


def test_checkpoint_round_trip(tmp_path, train_set, test_set):
    est = CNNEstimator(CNNConfig(epochs=1, batch_size=64)).fit(train_set.subset(range(24)))
    path = tmp_path / "estimators" / "cnn.pt"  # a folder that does not exist yet
    save_estimator(est, path, provenance={"train": train_set.source, "seed": 0})
    back = load_estimator(path)
    assert np.array_equal(back.predict(test_set.images), est.predict(test_set.images))
    payload = torch.load(path, weights_only=True)
    assert payload["provenance"]["train"]["kind"] == "rendered" and payload["version"]
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(GazeError, match="not a masked-gatys gaze checkpoint"):
        load_estimator(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(GazeError, match="not a readable"):
        load_estimator(tmp_path / "junk.pt")


def test_cnn_predicts_other_sizes_by_resizing(train_set):
    est = CNNEstimator(CNNConfig(epochs=1)).fit(train_set.subset(range(24)))
    big = render_set(2, size=(72, 120), seed=3)
    assert est.predict(big.images).shape == (2, 2)
    with pytest.raises(GazeError, match="not been trained"):
        CNNEstimator().predict(big.images)
