"""Tests of ``masked_gatys.bench`` and ``masked-gatys bench``: records, maths, robustness. No timing assertions."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from masked_gatys import bench
from masked_gatys.bench import (
    HELDOUT_SEEDS,
    RESULT_FIELDS,
    Timing,
    equivalent_iterations,
    measure_eval,
    measure_floor,
    quick_config,
    ratio_to_floor,
    run_bench,
    summarize,
    timed,
)
from masked_gatys.cli import main

# the fields issue 6 asks every result record for (where they apply)
ISSUE_FIELDS = ("method", "preset", "size", "seconds_per_eval", "floor_seconds", "ratio_to_floor",
                "seconds_for_n_iterations", "n_iterations", "measured_iterations", "seconds_per_image",
                "speedup_vs_optimizer", "peak_memory_bytes", "objective", "equivalent_iterations")
META_FIELDS = ("package_version", "torch", "torchvision", "numpy", "python", "device", "device_name", "cpu",
               "torch_threads", "weights", "git_commit", "date", "memory_method", "config")


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_weights_env(monkeypatch):
    monkeypatch.delenv("MASKED_GATYS_WEIGHTS", raising=False)


# ----------------------------------------------------------------------------- the command


def test_quick_cli_writes_json_and_plot(tmp_path, keep_threads, no_weights_env):
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    result = CliRunner().invoke(main, ["bench", "--quick", "--threads", "1", "--no-progress",
                                       "--json", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "random VGG weights" in result.output  # the notice
    assert "ratio" in result.output and "speed-up" in result.output
    data = json.loads(out.read_text())
    for key in META_FIELDS:
        assert key in data["metadata"], key
    assert data["metadata"]["torch_threads"] == 1
    assert data["metadata"]["weights"]["name"] == "random(seed=0)"
    records = data["results"]
    assert {r["kind"] for r in records} == {"objective", "optimizer", "net"}
    for rec in records:
        assert set(RESULT_FIELDS) <= set(rec)
        assert set(ISSUE_FIELDS) <= set(rec)
    quick = quick_config()
    optimizers = [r for r in records if r["kind"] == "optimizer"]
    assert len(optimizers) == len(quick.sizes) * len(quick.presets) * len(quick.optimizers)
    for rec in optimizers:
        assert rec["seconds_per_eval"] > 0 and rec["floor_seconds"] > 0
        assert rec["ratio_to_floor"] == pytest.approx(rec["seconds_per_eval"] / rec["floor_seconds"])
        assert rec["n_iterations"] == quick.iterations and rec["measured_iterations"] >= 1
        assert rec["extrapolated"] is True  # 3 iterations run, N = 10
        assert rec["seconds_for_n_iterations"] == pytest.approx(rec["seconds_per_iteration"] * quick.iterations)
        assert rec["evals_per_iteration"] >= 1
        for key in ("median", "min", "max", "q1", "q3", "n"):
            assert key in rec["eval_timing"] and key in rec["floor_timing"] and key in rec["iteration_timing"]
        assert rec["peak_memory_bytes"] > 0
        curve = rec["objective"]["curves"][0]
        assert len(curve) >= 3 and all(math.isfinite(v) for v in curve)
    nets = [r for r in records if r["kind"] == "net"]
    assert {r["method"] for r in nets} == {"johnson", "purifier"}
    for rec in nets:
        assert rec["seconds_per_image"] > 0 and rec["seconds_per_image_best_batch"] > 0
        assert rec["best_batch"] >= 1 and "1" in rec["batches"]
        assert rec["speedup_vs_optimizer"] > 0
        # the speed-up is the reference optimizer's time for N iterations over the net's seconds per image
        ref = rec["speedup_reference"]
        (opt,) = [r for r in optimizers if (r["method"], r["preset"], r["size"]) == (ref["method"], ref["preset"],
                                                                                     rec["size"])]
        assert ref["seconds_for_n_iterations"] == opt["seconds_for_n_iterations"]
        assert rec["speedup_vs_optimizer"] == pytest.approx(opt["seconds_for_n_iterations"] / rec["seconds_per_image"])
        # the shipped nets were trained against the ImageNet layers, not random weights
        assert rec["objective"]["available"] is False
        assert "loss network" in rec["objective"]["reason"]
        assert rec["equivalent_iterations"] is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line(tmp_path, no_weights_env):
    runner = CliRunner()
    bad = runner.invoke(main, ["bench", "--quick", "--optimizers", "newton", "--no-progress"])
    assert bad.exit_code == 1 and "unknown optimizer" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(main, ["bench", "--quick", "--weights", str(tmp_path / "none.pth")])
    assert missing.exit_code == 1 and "weights file not found" in missing.output
    sizes = runner.invoke(main, ["bench", "--sizes", "8"])
    assert sizes.exit_code == 2 and "at least 16" in sizes.output
    if not torch.cuda.is_available():
        cuda = runner.invoke(main, ["bench", "--quick", "--device", "cuda"])
        assert cuda.exit_code == 1 and "CUDA" in cuda.output


def test_help_shows_the_config_defaults():
    text = CliRunner().invoke(main, ["bench", "--help"]).output
    config = bench.BenchConfig()
    assert ",".join(map(str, config.sizes)) in text
    text = " ".join(text.split())
    assert f"default: ({config.iterations}" in text and f"default: ({config.repeats})" in text
    assert f"default: ({config.eyes})" in text


# ----------------------------------------------------------------------------- nets' objective


def _checkpoint(path, objective: dict, weights: dict) -> str:
    from masked_gatys import nets
    from masked_gatys.train import CHECKPOINT_FORMAT, save_checkpoint

    torch.manual_seed(0)
    net = nets.build("purifier", width=2, blocks=1)
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "net": net.config, "state_dict": net.state_dict(),
                           "objective": objective, "weights": weights})
    return str(path)


def test_compatible_net_gets_equivalent_iterations_and_incompatible_is_unavailable(tmp_path, no_weights_env):
    from masked_gatys.encoder import resolve_weights
    from masked_gatys.objective import preset

    config = quick_config(sizes=(32,), presets=("masked",), optimizers=("plbfgs",), weights="random",
                          run_iterations=3, full_curves=True, time_limit=None)
    objective = preset("masked", max_layer=config.max_layer).to_dict()
    identity = resolve_weights("random").identity.to_dict()
    good = _checkpoint(tmp_path / "good.pt", objective, identity)
    other = _checkpoint(tmp_path / "other.pt", dict(objective, tv_weight=1.0), identity)
    config = dataclasses.replace(config, nets=(good, other))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_bench(config)
    nets = {r["checkpoint"]: r for r in result.results if r["kind"] == "net"}
    ok, refused = nets[Path(good).name], nets[Path(other).name]  # recorded by name, not folder

    assert ok["objective"]["available"] is True
    assert len(ok["objective"]["values"]) == config.eyes
    eq = ok["equivalent_iterations"]
    assert eq["optimizer"] == "plbfgs" and len(eq["per_eye"]) == config.eyes
    curves = next(r for r in result.results if r["kind"] == "optimizer")["objective"]["curves"]
    assert len(curves) == config.eyes and all(len(c) == 4 for c in curves)  # start + 3 iterations
    for curve, level, value, at_least in zip(curves, ok["objective"]["values"], eq["per_eye"], eq["at_least"]):
        assert value == equivalent_iterations(curve, level)
        assert (at_least == 3) if value is None else (at_least is None)
    assert eq["n"] + eq["missing"] == config.eyes

    assert refused["objective"]["available"] is False
    assert "another objective" in refused["objective"]["reason"]
    assert refused["equivalent_iterations"] is None
    assert refused["seconds_per_image"] > 0  # speed is still measured
    assert "unavailable" in bench.format_table(result)


def test_heldout_eyes_are_not_training_eyes():
    """The shipped nets' training and validation render seeds (masked_gatys.train's recipe)."""
    from masked_gatys.checkpoints import load_model, shipped_checkpoint
    from masked_gatys.eyes.training_data import mix_seed as _mix

    seeds = set()
    for name in ("johnson", "purifier"):
        cfg = load_model(shipped_checkpoint(name)).checkpoint["train_config"]
        for stream, n in ((1, cfg["render"]), (2, cfg["val"])):
            gen = torch.Generator().manual_seed(_mix(cfg["seed"], stream))
            torch.rand(n, 2, generator=gen)
            seeds |= set(torch.randint(0, 2**31 - 1, (n,), generator=gen).tolist())
    assert len(seeds) > 200
    assert not seeds & {HELDOUT_SEEDS + k for k in range(1000)}


# ----------------------------------------------------------------------------- pieces


def test_equivalent_iterations_on_a_synthetic_curve():
    curve = [10.0, 8.0, 4.0, 2.0]
    assert equivalent_iterations(curve, 5.0) == pytest.approx(1.75)   # 1 + (8 - 5) / (8 - 4)
    assert equivalent_iterations(curve, 8.0) == pytest.approx(1.0)    # exactly at iteration 1
    assert equivalent_iterations(curve, 3.0) == pytest.approx(2.5)    # 2 + (4 - 3) / (4 - 2)
    assert equivalent_iterations(curve, 12.0) == 0.0                  # the start is already as good
    assert equivalent_iterations(curve, 1.0) is None                  # never reached in this run
    assert equivalent_iterations([10.0, 4.0, 9.0, 1.0], 5.0) == pytest.approx(5 / 6)  # the first crossing
    assert equivalent_iterations([], 1.0) is None
    assert summarize([1.0, 2.0, 3.0, None]) == {"mean": 2.0, "std": 1.0, "n": 3, "missing": 1}
    assert summarize([None]) == {"mean": None, "std": None, "n": 0, "missing": 1}


def test_floor_and_eval_medians_and_ratio():
    from masked_gatys.eyes import render_eye
    from masked_gatys.stylize import StylizeConfig, prepare

    content = render_eye(domain="real", size=(32, 32), seed=HELDOUT_SEEDS)
    style = render_eye(domain="synthetic", size=(32, 32), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = prepare(content.image, style.image, mask=content.mask, style_mask=style.mask,
                          config=StylizeConfig(preset="masked", weights="random", max_layer="relu2_2",
                                               device="cpu"))
    floor = measure_floor(problem.encoder, problem.x0, repeats=3, warmup=1)
    per_eval = measure_eval(problem.objective, problem.x0, repeats=3, warmup=1)
    for t in (floor, per_eval):
        assert t.median > 0 and t.n == 3 and t.warmup == 1 and len(t.samples) == 3
        assert t.min <= t.q1 <= t.median <= t.q3 <= t.max
        assert set(t.to_dict()) == {"median", "min", "max", "q1", "q3", "n", "warmup", "samples"}
    assert ratio_to_floor(per_eval, floor) == per_eval.median / floor.median
    # the measurements leave no gradient behind on the frozen encoder
    assert all(p.grad is None and not p.requires_grad for p in problem.encoder.parameters())


def test_timed_repeats_warmup_and_time_limit():
    calls = []
    t = timed(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and t.n == 4
    calls.clear()
    t = timed(lambda: calls.append(1), repeats=50, warmup=0, time_limit=1e-12)
    assert t.n == 2 and len(calls) == 2  # stops at the limit, keeping two samples
    assert Timing.of([2.0]).q1 == Timing.of([2.0]).q3 == 2.0
    with pytest.raises(ValueError):
        timed(lambda: None, repeats=0)


def test_iteration_stats_extrapolate_and_label():
    run = bench.measures.OptimizerRun(curve=[3.0, 2.0, 1.5, 1.2], times=[2.0, 3.0, 5.0], calls=[3, 4, 6], peak=1)
    stats = bench.measures.iteration_stats([run], 400)
    # the first iteration is a warm-up: 2 measured iterations, 3 s, 3 evaluations
    assert stats["measured_iterations"] == 2 and stats["seconds_per_iteration"] == pytest.approx(1.5)
    assert stats["evals_per_iteration"] == pytest.approx(1.5)
    assert stats["seconds_for_n_iterations"] == pytest.approx(600.0) and stats["extrapolated"] is True
    done = bench.measures.iteration_stats([run], 3)  # all N iterations were run: the measured time
    assert done["seconds_for_n_iterations"] == 5.0 and done["extrapolated"] is False


def test_memory_probe_and_config_checks():
    probe = bench.MemoryProbe("cpu")
    probe.start()
    assert probe.peak() > 0 and "RSS" in probe.method
    with pytest.raises(ValueError, match="unknown optimizer"):
        bench.BenchConfig(optimizers=("sgd",))
    with pytest.raises(ValueError, match="unknown preset"):
        bench.BenchConfig(presets=("regional",))
    with pytest.raises(ValueError, match="run_iterations"):
        bench.BenchConfig(run_iterations=1)


def test_floor_and_eval_interleaved():
    order = []
    a, b = bench.timed_together([lambda: order.append("a"), lambda: order.append("b")], repeats=3, warmup=1)
    assert order == ["a", "b"] * 4 and a.n == b.n == 3


def test_a_net_trained_on_another_objective_is_judged_on_its_own(tmp_path, no_weights_env):
    """The shipped nets were trained on ``masked-eye`` with a style pool, which none of the
    benchmark's presets is: the bench scores them on their training objective (the fix: it
    reported them unavailable), and the optimizer runs on that same objective."""
    from masked_gatys.train import TrainConfig, load_model, train, training_objective

    out = tmp_path / "pool.pt"
    train(TrainConfig(net="purifier", width=2, blocks=1, render=4, val=1, size=(24, 40), iterations=1,
                      batch_size=2, weights="random", max_layer="relu2_1", style_pool=4, output=str(out)))
    config = quick_config(sizes=(32,), presets=("masked",), optimizers=("plbfgs",), weights="random",
                          run_iterations=4, full_curves=True, time_limit=None, eyes=2, nets=(str(out),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_bench(config)
    (rec,) = [r for r in result.results if r["kind"] == "net"]
    obj, eq = rec["objective"], rec["equivalent_iterations"]
    assert obj["available"] is True and obj["objective"] == "training" and obj["preset"] == "masked-eye"
    assert eq["objective"] == "training" and len(eq["per_eye"]) == 2
    for curve, level, value in zip(obj["curves"], obj["values"], eq["per_eye"]):
        assert len(curve) == 5 and value == equivalent_iterations(curve, level)
    # the levels and the curves' starts are the net's objective on these eyes' output and input
    eyes = bench.held_out_eyes((32, 32), 2)
    images, masks = torch.cat([e[0] for e in eyes]), torch.cat([e[1] for e in eyes])
    parts = torch.stack([e[2]["labels"] for e in eyes])
    model = load_model(out)
    objective = training_objective(model, images, masks, parts=parts, weights="random")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert objective(model(images, masks)).total.tolist() == pytest.approx(obj["values"], rel=1e-5)
        assert objective(images).total.tolist() == pytest.approx([c[0] for c in obj["curves"]], rel=1e-5)
    assert "its training objective" in bench.format_table(result)

    # a net trained with other loss-network weights than these: unavailable, saying why
    data = torch.load(out, weights_only=False)
    data["weights"] = dict(data["weights"], name="vgg19-other.pth", sha256="0" * 64)
    torch.save(data, tmp_path / "other.pt")
    other = dataclasses.replace(config, nets=(str(tmp_path / "other.pt"),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (refused,) = [r for r in run_bench(other).results if r["kind"] == "net"]
    assert refused["objective"]["available"] is False
    assert "vgg19-other.pth" in refused["objective"]["reason"]  # the weights it was trained against


def test_an_interrupted_bench_keeps_its_finished_sizes_and_resumes(tmp_path, monkeypatch, keep_threads,
                                                                    no_weights_env):
    out = tmp_path / "b.json"
    args = ["bench", "--quick", "--threads", "1", "--no-progress", "--nets", "none", "--json", str(out)]
    real = bench.held_out_eyes
    measured = []

    def second_size_interrupted(size, count):
        measured.append(size[0])
        if size[0] == 48:
            raise KeyboardInterrupt
        return real(size, count)

    monkeypatch.setattr(bench.run, "held_out_eyes", second_size_interrupted)
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 130, first.output
    assert "--resume" in first.output
    kept = json.loads(out.read_text())
    assert {r["size"] for r in kept["results"]} == {32}  # the finished size, written before the cut

    monkeypatch.setattr(bench.run, "held_out_eyes", lambda size, count: measured.append(size[0]) or real(size, count))
    measured.clear()
    second = CliRunner().invoke(main, args + ["--resume"])
    assert second.exit_code == 0, second.output
    assert measured == [48]  # 32 px was not measured again
    done = json.loads(out.read_text())
    assert {r["size"] for r in done["results"]} == {32, 48}
    assert [r for r in done["results"] if r["size"] == 32] == kept["results"]  # kept as recorded
    assert done["metadata"]["resumed_sizes"] == [32]
    # another size later: measured and added, the earlier sizes kept in the file
    more = CliRunner().invoke(main, args + ["--resume", "--sizes", "40"])
    assert more.exit_code == 0, more.output
    grown = json.loads(out.read_text())
    assert {r["size"] for r in grown["results"]} == {32, 40, 48}
    assert grown["metadata"]["config"]["sizes"] == [32, 40, 48]
    assert [r for r in grown["results"] if r["size"] != 40] == done["results"]

    # other settings than the recorded run's: refused in one line, the JSON untouched
    before = out.read_text()
    third = CliRunner().invoke(main, args + ["--resume", "--eyes", "3"])
    assert third.exit_code != 0 and "other settings (eyes)" in third.output
    assert out.read_text() == before
    fourth = CliRunner().invoke(main, ["bench", "--quick", "--resume"])
    assert fourth.exit_code != 0 and "--json" in fourth.output
