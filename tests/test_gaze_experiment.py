"""The gaze experiment end to end: evaluate() and `masked-gatys gaze`, with random weights and tiny sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from masked_gatys.cli import main
from masked_gatys.eyes import datasets as datasets_module
from masked_gatys.eyes import experiment as experiment_module
from masked_gatys.eyes.experiment import evaluate, format_table, quick_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(*args):
    return CliRunner().invoke(main, ["gaze", *args], catch_exceptions=False)


def test_cli_raw_sets_table_and_files(tmp_path):
    out = tmp_path / "g"
    result = _run("--quick", "-q", "--estimators", "knn", "--purify", "none", "--train-n", "60",
                  "--test-n", "6", "-o", str(out), "--json", str(tmp_path / "copy.json"))
    assert result.exit_code == 0, result.output
    assert "| knn |" in result.output and "synthetic" in result.output and "domain gap" in result.output
    data = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in data["columns"]] == ["synthetic", "real"]
    assert data["errors"]["knn"]["real"]["n"] == 6
    assert data == json.loads((tmp_path / "copy.json").read_text())
    for name in ("table.md", "sheet.png", "plot.png"):
        assert (out / name).is_file()
    assert str(tmp_path) not in (out / "results.json").read_text()  # no paths of this machine


def test_rerun_reuses_the_rendered_sets(tmp_path, monkeypatch):
    cfg = quick_config(str(tmp_path), estimators=("knn",), purify=("none",), train_n=40, test_n=4)
    first = evaluate(cfg)

    def no_render(*a, **k):
        raise AssertionError("rendered again")

    monkeypatch.setattr(experiment_module, "render_set", no_render)
    second = evaluate(cfg)
    assert second.errors == first.errors


def test_cli_errors_are_one_line(tmp_path):
    result = _run("--quick", "--estimators", "knn,svm", "-o", str(tmp_path))
    assert result.exit_code == 1 and "choose from cnn, knn, svr, rf" in result.output
    assert len(result.output.strip().splitlines()) == 1
    style = tmp_path / "s.png"
    style.write_bytes(b"")
    result = _run("--quick", "--style-mask", str(style), "-o", str(tmp_path))
    assert result.exit_code == 1 and "--style-mask needs --style" in result.output


def test_labelled_test_set_from_a_folder(tmp_path):
    test = datasets_module.render_set(5, domain="real", size=(36, 60), seed=9)
    test.write(tmp_path / "mine")
    cfg = quick_config(str(tmp_path / "out"), estimators=("knn",), purify=("none",), train_n=40,
                       test=(str(tmp_path / "mine"),))
    report = evaluate(cfg)
    assert [c["name"] for c in report.columns] == ["mine"]
    assert report.errors["knn"]["mine"]["n"] == 5


def test_purified_columns_are_cached(tmp_path):
    cfg = quick_config(str(tmp_path), estimators=("knn",), purify=("none", "masked", "purifier"),
                       train_n=40, test_n=4, purify_n=3, iterations=2, weights="random", max_layer="relu2_2")
    report = evaluate(cfg)
    names = [c["name"] for c in report.columns]
    assert names == ["synthetic", "real", "real+masked", "real+purifier"]
    col = report.columns[2]
    assert col["n"] == 3 and col["failed"] == 0 and col["shift_content"]["n"] == 3
    assert report.errors["knn"]["real"]["n"] == 4  # raw columns keep every eye
    paired = report.errors["knn"]["real+masked"]["paired_vs_raw"]
    assert paired["n"] == 3
    assert paired["mean"] == pytest.approx(report.errors["knn"]["real+masked"]["mean"] - paired["raw_mean"])
    outputs = sorted((tmp_path / "purified").rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in outputs]
    evaluate(cfg)
    assert [p.stat().st_mtime_ns for p in outputs] == stamps  # nothing purified twice
    assert "real+purifier" in format_table(report)
    # the paired change carries its 95 % interval (1.96 standard errors of the per-eye differences)
    assert f"({paired['mean']:+.1f} +- {paired['ci95']:.1f})" in format_table(report)
    assert str(tmp_path) not in (tmp_path / "results.json").read_text()  # no paths of this machine


@pytest.mark.slow
def test_cli_quick_defaults(tmp_path):
    result = _run("--quick", "-q", "--weights", "random", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "real+masked" in result.output and "real+purifier" in result.output


def test_default_layers_keep_every_eye_at_36x60(tmp_path):
    # with the full (random) VGG-19 and relu5_1 in use, the iris region of some 36x60 eyes falls
    # under the coverage check and those eyes fail; the experiment's default layers keep them all
    cfg = quick_config(str(tmp_path), estimators=("knn",), purify=("masked",), train_n=20, test_n=4,
                       iterations=1, weights="random")
    report = evaluate(cfg)
    assert report.columns[-1]["name"] == "real+masked" and report.columns[-1]["failed"] == 0


def test_optimizer_columns_take_their_style_eyes_from_the_training_pool(tmp_path):
    cfg = quick_config(str(tmp_path), estimators=("knn",), purify=("masked", "purifier"), train_n=30, test_n=3,
                       iterations=1, weights="random", max_layer="relu2_2", style_pool_n=10)
    evaluate(cfg)
    pool = next((tmp_path / "style-pool").iterdir())
    assert len(list(pool.glob("*_labels.png"))) == 10 and len(list(pool.glob("*_mask.png"))) == 10
    settings = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "purified").rglob("purify.json")}
    masked = next(v for k, v in settings.items() if "-masked-" in k)
    assert masked["settings"]["identity"]["style_pool_n"] == 10  # chosen per eye from the pool
    assert masked["settings"]["identity"]["style_pool_sha256"]  # and recorded by content
    net = next(v for k, v in settings.items() if "-purifier-" in k)
    assert "style_pool" not in net["settings"]["identity"]
    one = quick_config(str(tmp_path / "one"), estimators=("knn",), purify=("masked",), train_n=30, test_n=3,
                       iterations=1, weights="random", max_layer="relu2_2", style_pool=None)
    evaluate(one)
    assert not (tmp_path / "one" / "style-pool").exists() and (tmp_path / "one" / "style" / "style.png").is_file()


@pytest.mark.parametrize("n", [2, 12, 40])
def test_paired_change_and_its_interval_against_scipy(n):
    """The paired 95 % interval is Student's t (scipy's paired t-test's own interval), not 1.96 standard
    errors: at n = 12 that was 11 % too narrow."""
    from scipy import stats

    from masked_gatys.eyes.experiment import _paired

    rng = np.random.default_rng(n)
    raw = rng.uniform(2, 12, n)
    err = raw - 1.5 + rng.normal(0, 2, n)
    d = _paired(err, raw)
    assert d["mean"] == pytest.approx(float(np.mean(err - raw)))
    low, high = stats.ttest_rel(err, raw).confidence_interval(0.95)
    assert d["ci95"] == pytest.approx((high - low) / 2, rel=1e-9)
    assert d["mean"] == pytest.approx((high + low) / 2)
    assert d["n"] == n and d["raw_mean"] == pytest.approx(float(raw.mean()))


def test_the_run_record_is_the_benchmarks_and_names_the_weights_used(tmp_path, monkeypatch):
    """The gaze record is bench's machine_metadata, and its weights are those the run used: with
    nothing named and nothing cached, random (it said imagenet); a file by name and sha256."""
    import hashlib

    import torch

    from masked_gatys.bench import machine_metadata
    from masked_gatys.eyes.experiment import _metadata, quick_config

    monkeypatch.delenv("MASKED_GATYS_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    meta = _metadata(quick_config(str(tmp_path / "out")))
    assert meta["weights"] == {"name": "random"}
    assert set(machine_metadata()) <= set(meta) and "scikit-learn" in meta
    assert meta["config"]["out"] == "out"  # no path of this machine
    weights = tmp_path / "w" / "vgg.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"not really weights")
    monkeypatch.setenv("MASKED_GATYS_WEIGHTS", str(weights))
    meta = _metadata(quick_config(str(tmp_path / "out")))
    assert meta["weights"] == {"name": "vgg.pth", "sha256": hashlib.sha256(b"not really weights").hexdigest()}
